"""``edgeml train CONFIG``: train the float baseline alone."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="models/trained", show_default=True,
              help="Directory for the model, scaler, metrics and history.")
@click.option("--name", default="baseline", show_default=True, help="File stem of the saved artifacts.")
@click.option("--force", is_flag=True, help="Overwrite an existing model of the same name.")
def train_command(config: str, out_dir: str, name: str, force: bool) -> None:
    """Train the float jet tagger described by CONFIG."""
    from edgeml import config as cfgmod
    from edgeml.errors import InputError
    from edgeml.io import read_json
    from edgeml.train import artifact_paths, train

    cfg = cfgmod.load(config)
    if artifact_paths(out_dir, name).model.exists() and not force:
        raise InputError(f"{artifact_paths(out_dir, name).model} exists; pass --force to overwrite it "
                         "or --name to choose another name")
    paths = train(cfg, Path(out_dir), name)
    m = read_json(paths.metrics)
    click.echo(f"saved {paths.model}: accuracy {m['accuracy']:.4f}, "
               + ", ".join(f"AUC({c}) {v:.3f}" for c, v in m["auc"].items()))


def register(main: click.Group) -> None:
    main.add_command(train_command)
