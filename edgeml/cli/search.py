"""``edgeml search [CONFIG]``: the best jet tagger that fits a trigger budget (Optuna proposes, Ray Tune runs)."""

from __future__ import annotations

import click


@click.command("search")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--trials", type=int, help="Number of trials (default: search.trials).")
@click.option("--workers", type=int, help="Trials at once on a local Ray (default: one per core).")
@click.option("--address", metavar="HOST:PORT", help="Run on an existing Ray cluster (`ray start --head`).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where trials and results go "
              "(default runs/<name>/search/).")
@click.option("--resume", is_flag=True, help="Continue an interrupted search without rerunning finished trials.")
@click.option("--epochs", type=int, help="Training epochs of every trial, qkeras and hgq (default: search.epochs, "
              "search.hgq_epochs).")
@click.option("--time-budget", type=float, metavar="MINUTES", help="Stop after this much wall clock of trials, "
              "even before --trials have run (running trials are stopped).")
@click.option("--force", is_flag=True, help="Start over in a run directory that holds a search.")
@click.option("--wait", is_flag=True, help="If another edgeml process uses the run directory, wait for it "
              "instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print trials and front as JSON.")
def search_command(config, trials, workers, address, run_dir, resume, epochs, time_budget, force, wait,
                   as_json) -> None:
    """Search QKeras and HGQ taggers (widths, bits, input precision, sparsity, distillation, ReuseFactor,
    Strategy, HGQ's beta and initial bits) for the most accurate designs that fit search.budget (see
    docs/search.md).

    CONFIG defaults to ./configs/default.yaml, else the copy installed with edgeml.
    """
    from pathlib import Path

    from edgeml import config as cfgmod
    from edgeml.cli.common import echo_json
    from edgeml.cli.run import DEFAULT_CONFIG
    from edgeml.errors import InputError
    from edgeml.paths import packaged_configs
    from edgeml.report import TIMING_RISK
    from edgeml.search import json_result, search
    from edgeml.search.records import read_trials

    for name, value in (("--trials", trials), ("--workers", workers), ("--epochs", epochs)):
        if value is not None and value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if config is None:
        config = DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else packaged_configs() / "default.yaml"
    cfg = cfgmod.load(config)
    summary = search(cfg, run_dir=run_dir, trials=trials, workers=workers, address=address, epochs=epochs,
                     resume=resume, force=force, wait=wait, time_budget_min=time_budget)
    if as_json:
        echo_json(json_result(summary, read_trials(Path(summary["run_dir"])) or []))
        return
    click.echo(f"search: {summary['counts']['completed']} feasible, {summary['counts']['infeasible']} infeasible, "
               f"{summary['counts']['failed']} failed trials in {summary['seconds']['total']:.0f} s; "
               f"front ({len(summary['front'])} models):")
    for f in summary["front"]:
        ebops = f", EBOPs {f['ebops']:,}" if f.get("ebops") is not None else ""
        click.echo(f"  {f.get('model', f['design_id'])} ({f['method']}): val acc {f['accuracy_val']:.4f}, firmware "
                   f"test acc {f.get('accuracy_test', float('nan')):.4f}, cost {f['cost']:,.0f}, LUT {f['lut']:,}, "
                   f"DSP {f['dsp']}, latency {f['latency_ns']:g} ns, BOPs {f['bops']:,}{ebops}"
                   + (f", {TIMING_RISK[f['timing_risk']]}" if f.get("timing_risk") else ""))
    click.echo(f"report: {Path(summary['run_dir']) / 'search_report.html'}")


def register(main: click.Group) -> None:
    main.add_command(search_command)
