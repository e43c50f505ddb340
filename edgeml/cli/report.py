"""``edgeml report RUN_DIR``: re-render a run's report.html, report.md and summary.json from its files."""

from __future__ import annotations

import click

from edgeml.cli.common import echo_json


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the file paths.")
@click.option("--wait", is_flag=True, help="If another edgeml process uses RUN_DIR, wait for it instead of failing.")
def report_command(run_dir: str, as_json: bool, wait: bool) -> None:
    """Re-render RUN_DIR/report.html (+ report.md, summary.json) from the artifacts on disk."""
    from pathlib import Path

    from edgeml import integrity, locks
    from edgeml.io import read_json
    from edgeml.pipeline import verify_run
    from edgeml.report import render_report

    with locks.hold(run_dir, locks.REPORT_RUN_DIR, wait), integrity.refused_writes(Path(run_dir), "RUN_DIR"):
        verify_run(Path(run_dir))
        paths = render_report(run_dir)
    if as_json:
        echo_json(read_json(paths["summary"]))
        return
    for kind, path in paths.items():
        click.echo(f"{kind:<8} {path}")


def register(main: click.Group) -> None:
    main.add_command(report_command)
