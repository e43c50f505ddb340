"""``edgeml run [CONFIG]``: the whole flow in a run directory."""

from __future__ import annotations

import click

DEFAULT_CONFIG = "configs/default.yaml"


@click.command("run")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run directory (default runs/<name>/).")
@click.option("--only", "only", metavar="STAGE", help="Run only this stage (its inputs must be up to date).")
@click.option("--from", "from_stage", metavar="STAGE", help="Rerun from this stage on.")
@click.option("--force", is_flag=True, help="Reuse a run directory that holds another config's results.")
@click.option("--wait", is_flag=True, help="If another edgeml process uses the run directory, wait for it "
              "instead of failing.")
def run_command(config: str | None, run_dir: str | None, only: str | None, from_stage: str | None,
                force: bool, wait: bool) -> None:
    """Run data -> baseline -> compress -> convert -> estimate -> report on CONFIG.

    CONFIG defaults to ./configs/default.yaml, else the copy installed with edgeml.
    """
    from pathlib import Path

    from edgeml import config as cfgmod
    from edgeml.paths import packaged_configs
    from edgeml.pipeline import default_run_dir, run, summarize

    if config is None:
        config = DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else packaged_configs() / "default.yaml"
    cfg = cfgmod.load(config)
    run_dir = Path(run_dir) if run_dir else default_run_dir(cfg)
    manifest = run(cfg, run_dir, force=force, only=only, from_stage=from_stage, wait=wait)
    click.echo(summarize(run_dir, manifest))


def register(main: click.Group) -> None:
    main.add_command(run_command)
