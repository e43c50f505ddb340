"""``edgeml convert MODEL``: hls4ml project, bit-exact firmware evaluation (emulator or g++ C-sim), fidelity report."""

from __future__ import annotations

import click

from edgeml.cli.common import echo_json


@click.command("convert")
@click.argument("model", type=click.Path(exists=False))
@click.option("--weights", type=click.Path(dir_okay=False),
              help="HDF5 weights for a JSON architecture (default: <stem>_weights.h5 beside it).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="edgeml YAML config; its 'hls' section drives hls4ml (default: built-in defaults).")
@click.option("--data", help="The model's inputs: .npy, .npz (X or one array per input name, optional y), "
              ".h5 or FILE.h5:/group/dataset; 'synthetic' for uniform random inputs; for a jet tagger also jets "
              "(CSV/NPZ/HDF5/Parquet), default the test split of the config's data source.")
@click.option("--input-range", metavar="LO,HI", help="Range of --data synthetic (default: the firmware input "
              "type's range).")
@click.option("--task", type=click.Choice(["auto", "classification", "regression", "autoencoder"]),
              default="auto", show_default=True, help="What the fidelity report measures (auto: from the output "
              "layer).")
@click.option("--score-output", metavar="NAME", help="Model output that is an anomaly score (one value per event).")
@click.option("--n", "n", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Number of events to evaluate the firmware on.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False),
              help="Project directory (default: hls_projects/<model name>).")
@click.option("--force", is_flag=True, help="Replace an existing project directory.")
@click.option("--auto-precision", is_flag=True, help="Apply the suggested per-layer precisions and show "
              "the agreement before and after.")
@click.option("--engine", type=click.Choice(["emulate", "csim", "both"]), default=None,
              help="Firmware evaluation: the NumPy emulator (no g++), hls4ml's g++ C-simulation, or both "
              "cross-checked (default: the config's convert.engine, emulate).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--wait", is_flag=True, help="If another edgeml process uses the project directory, wait for it "
              "instead of failing.")
def convert_command(model, weights, config_path, data, input_range, task, score_output, n, output_dir, force,
                    auto_precision, engine, as_json, wait) -> None:
    """Convert MODEL (.h5, .json + weights, or SavedModel dir) with hls4ml and evaluate the firmware."""
    from edgeml import config as cfgmod
    from edgeml.convert import convert, summary_lines

    cfg = cfgmod.load(config_path) if config_path else None
    report = convert(model, cfg, output_dir=output_dir, data=data, n=n, force=force,
                     auto_precision=auto_precision, weights=weights, engine=engine, wait=wait, task=task,
                     score_output=score_output, input_range=input_range)
    for warning in report.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json(report)
        return
    for line in summary_lines(report):
        click.echo(line)


def register(main: click.Group) -> None:
    main.add_command(convert_command)
