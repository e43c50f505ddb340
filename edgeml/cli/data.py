"""``edgeml data ...``: inspect (and, with the generate extra, produce) jet datasets."""

from __future__ import annotations

import click

from edgeml.cli.common import echo_json


@click.group("data")
def data_group() -> None:
    """Inspect jet datasets."""


@data_group.command("info")
@click.option("--data", "source", default="default", show_default=True,
              help="'default', 'openml', or a CSV/NPZ/HDF5/Parquet file.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(source: str, as_json: bool) -> None:
    """Describe a dataset: jets, classes, per-class feature statistics."""
    from edgeml.data import default_sample_metadata, describe, load_jets

    summary = describe(load_jets(source))
    if source == "default":
        summary["metadata"] = default_sample_metadata()
    if as_json:
        echo_json(summary)
        return
    click.echo(f"source:   {summary['source']}")
    click.echo(f"jets:     {summary['n_jets']}")
    click.echo("classes:  " + ", ".join(f"{c}={n}" for c, n in summary["class_counts"].items()))
    header = "feature".ljust(16) + "".join(f"{'median ' + c:>14}" for c in summary["classes"])
    click.echo(header)
    for feature, per_class in summary["stats"].items():
        click.echo(feature.ljust(16) + "".join(f"{per_class[c]['median']:>14.4g}" if c in per_class else " " * 14
                                               for c in summary["classes"]))
    if summary.get("metadata", {}).get("PLACEHOLDER"):
        click.echo("note: this is a synthetic PLACEHOLDER sample, not physics")


def register(main: click.Group) -> None:
    from edgeml.cli.generate import generate

    data_group.add_command(generate)
    main.add_command(data_group)
