"""``edgeml compress CONFIG [--from MODEL]``: run compression recipes on a float tagger."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("compress")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "from_model", type=click.Path(exists=True, dir_okay=False),
              help="Float baseline (.h5) to start from and distil with; default: train it from CONFIG first.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="models/compressed", show_default=True,
              help="Directory for each recipe's model, scaler, metrics and history.")
@click.option("--force", is_flag=True, help="Overwrite existing models of the same names.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics of every model as JSON.")
def compress_command(config: str, from_model: str | None, out_dir: str, force: bool, as_json: bool) -> None:
    """Prune, quantize (QKeras) and/or distil as CONFIG's compression section says.

    CONFIG lists recipes (compression.recipes) or is a recipe itself.
    """
    from edgeml import config as cfgmod
    from edgeml.cli.common import echo_json
    from edgeml.compress.recipes import compress, load_recipes
    from edgeml.data import Scaler, splits_from_config
    from edgeml.errors import InputError
    from edgeml.io import read_json
    from edgeml.modelio import load_model
    from edgeml.train import artifact_paths

    cfg = cfgmod.load(config)
    recipes = load_recipes(cfg, default_name=Path(config).stem)
    if not recipes:
        raise InputError(f"{config} has no compression recipe: list files in compression.recipes or set "
                         "compression.prune/quantize/distill/student")
    names = [r.name for r in recipes] + ([] if from_model else ["baseline"])
    existing = [str(artifact_paths(out_dir, n).model) for n in names if artifact_paths(out_dir, n).model.exists()]
    if existing and not force:
        raise InputError(f"{existing[0]} exists; pass --force to overwrite or --out to choose another directory")
    splits = splits_from_config(cfg)
    baseline = None
    if from_model:
        scaler_file = Path(from_model).with_name(Path(from_model).stem + "_scaler.json")
        if scaler_file.is_file() and Scaler.load(scaler_file).to_dict() != splits.scaler.to_dict():
            raise InputError(f"{from_model} was trained on differently scaled data ({scaler_file}); use the "
                             "config it was trained with")
        baseline = load_model(from_model)
    results = compress(cfg, Path(out_dir), baseline=baseline, splits=splits, default_name=Path(config).stem)
    metrics = {name: read_json(paths.metrics) for name, paths in results.items()}
    if as_json:
        echo_json(metrics)
        return
    for name, m in metrics.items():
        click.echo(f"{name:<18} accuracy {m['accuracy']:.4f}  BOPs {m.get('bops', '-')}  "
                   f"sparsity {m.get('sparsity', 0):.2f}  -> {results[name].model}")


def register(main: click.Group) -> None:
    main.add_command(compress_command)
