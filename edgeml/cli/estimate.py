"""``edgeml estimate TARGET``: csynth and Vivado post-synthesis resource/latency estimate of a model or an hls4ml project, in seconds.

``edgeml estimate --calibrate PROJECT_DIR...`` learns correction factors from the user's synthesised projects.
A project folder never imports TensorFlow or the converter; a Keras model is converted here (the estimator
package itself takes hls4ml graphs and project folders only).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from edgeml.cli.common import echo_json


@click.command("estimate")
@click.argument("targets", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="edgeml YAML config whose hls section sets part, clock, precision, RF, strategy (Keras targets).")
@click.option("--tool", default=None, metavar="TOOL",
              help="HLS tool and version, e.g. vitis-2023.2 (default), vitis-2022.2, vivado-2020.1. Default: the "
                   "project's csynth report, else its hls4ml backend (Vivado -> vivado-2020.1, Vitis -> vitis-2023.2).")
@click.option("--calibrate", is_flag=True,
              help="Learn per-metric correction factors from the csynth reports of the given hls4ml project folders.")
@click.option("--reset", is_flag=True, help="With --calibrate: remove the stored calibration first.")
@click.option("--no-calibration", is_flag=True, help="Ignore the stored local calibration.")
@click.option("--basis", type=click.Choice(["post_synthesis", "csynth"]), default=None,
              help="Which answer decides 'fits the part': post_synthesis (Vivado, default) or csynth; default: the "
                   "config's estimate.basis.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (layout: docs/estimate.md).")
def estimate_command(targets: tuple[Path, ...], config_path: Path | None, tool: str | None, calibrate: bool,
                     reset: bool, no_calibration: bool, basis: str | None, as_json: bool) -> None:
    """Estimate DSP/LUT/FF/BRAM, latency and II that HLS C-synthesis would report, and the Vivado
    post-synthesis utilization.

    TARGET is a Keras/QKeras model (.h5/.keras; converted with the config's hls section) or an
    hls4ml project folder (hls4ml_config.yml + firmware/). A project holding csynth/Vivado
    reports is also compared with them. With --calibrate, TARGETs are synthesised project folders.
    """
    from edgeml.errors import InputError

    if calibrate:
        _calibrate(targets, reset, tool, as_json)
        return
    if reset:
        raise InputError("--reset goes with --calibrate: 'edgeml estimate --calibrate --reset'")
    if len(targets) != 1:
        raise InputError("give one TARGET (a .h5/.keras model or an hls4ml project folder); "
                         "several project folders go with --calibrate")
    target = targets[0]
    if config_path is not None and target.is_dir():
        raise InputError("--config applies to Keras models; an hls4ml project folder already fixes its settings")
    from edgeml.estimate import estimate

    if basis is None:
        basis = "post_synthesis"
        if config_path is not None:
            from edgeml import config as cfgmod

            basis = cfgmod.load(config_path)["estimate"]["basis"]
    with tempfile.TemporaryDirectory(prefix="edgeml_estimate_") as scratch:
        builder = None if target.is_dir() else _keras_builder(config_path, Path(scratch))
        result = estimate(target, tool=tool, calibration=not no_calibration, builder=builder, basis=basis)
    if as_json:
        echo_json(result)
        return
    _print_human(result)


def _keras_builder(config_path: Path | None, scratch: Path):
    """Keras model -> hls4ml ModelGraph with the config's hls section (written nowhere but ``scratch``)."""
    def build(model, _hls):
        from edgeml import config as cfgmod
        from edgeml.convert import build_hls_model

        section = cfgmod.load(config_path)["hls"] if config_path else cfgmod.defaults()["hls"]
        return build_hls_model(model, section, scratch / "project")

    return build


def _calibrate(projects: tuple[Path, ...], reset: bool, tool: str | None, as_json: bool) -> None:
    from edgeml.errors import InputError
    from edgeml.estimate import calibration

    if reset:
        removed = calibration.reset()
        if not projects:
            msg = f"calibration removed ({calibration.calibration_path()})" if removed else "no calibration stored"
            echo_json({"reset": removed, "file": str(calibration.calibration_path())}) if as_json else click.echo(msg)
            return
    if not projects:
        raise InputError("--calibrate needs synthesised hls4ml project folders: edgeml estimate --calibrate PRJ_DIR...")
    for p in projects:
        if not p.is_dir():
            raise InputError(f"{p}: --calibrate takes hls4ml project folders (with csynth reports), not files")
    data = calibration.calibrate(projects, tool=tool)
    if as_json:
        echo_json(data)
        return
    click.echo(f"calibration stored in {calibration.calibration_path()} ({len(data['designs'])} designs)")
    for kind, entry in data["factors"].items():
        factors = ", ".join(f"{k} x{v:.3g}" for k, v in entry["factors"].items())
        click.echo(f"  {kind} ({entry['designs']} designs): {factors}")


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if isinstance(v, (int, float)) and abs(v) >= 10 or float(v).is_integer() else f"{v:.1f}"


def _print_human(r: dict) -> None:
    t, part = r["total"], r["part"]
    click.echo("HLS C-synthesis (csynth) estimate, per layer and total:")
    head = f"{'layer':<20}{'kind':<11}{'RF':>5}{'DSP':>8}{'LUT':>10}{'FF':>9}{'BRAM18K':>9}{'cycles':>8}{'II':>7}"
    click.echo(head)
    for layer in r["layers"]:
        click.echo(f"{layer['name'][:19]:<20}{layer['kind']:<11}{layer['reuse_factor']:>5}{_fmt(layer['dsp']):>8}"
                   f"{_fmt(layer['lut']):>10}{_fmt(layer['ff']):>9}{_fmt(layer['bram_18k']):>9}"
                   f"{_fmt(layer['latency_max']):>8}{_fmt(layer['ii']):>7}")
    click.echo("-" * len(head))
    s = r["settings"]
    click.echo(f"part {part['part']} ({part.get('device') or 'unknown'}), clock {t['clock_ns']} ns, "
               f"tool {s['tool']}, {s['io_type']}")
    coverage = r.get("ranges_coverage")
    cov = f"{100 * coverage:.0f}% ranges" if coverage else "ranges"
    for k, label in (("dsp", "DSP"), ("lut", "LUT"), ("ff", "FF"), ("bram_18k", "BRAM_18K"), ("uram", "URAM")):
        lo, hi = t[f"{k}_range"]
        pct = t.get(f"{k}_pct")
        pct_text = f"  {pct:.1f}% of part" if pct is not None else ""
        click.echo(f"{label:<10}{_fmt(t[k]):>10}   likely {_fmt(lo)}-{_fmt(hi)}{pct_text}")
    lo, hi = t["latency_max_range"]
    click.echo(f"{'latency':<10}{t['latency_max']:>10} cycles = {t['latency_ns']} ns   likely {lo}-{hi} cycles")
    lo, hi = t["ii_range"]
    click.echo(f"{'II':<10}{t['ii']:>10} cycles   likely {lo}-{hi}")
    click.echo(f"({cov}: calibrated on leave-one-family-out residuals of the ground truth)")
    p = r.get("post_synthesis")
    if p:
        click.echo(f"Vivado post-synthesis ({p['tool']}):")
        for k, label in (("dsp", "DSP"), ("lut", "LUT"), ("ff", "FF"), ("bram_18k", "BRAM_18K")):
            lo, hi = p[f"{k}_range"]
            pct = p.get(f"{k}_pct")
            pct_text = f"  {pct:.1f}% of part" if pct is not None else ""
            click.echo(f"  {label:<8}{_fmt(p[k]):>10}   likely {_fmt(lo)}-{_fmt(hi)}{pct_text}")
        if p.get("dsp_moved_to_lut"):
            click.echo(f"  ({p['dsp_moved_to_lut']} DSP products beyond the part's capacity counted as LUT logic)")
    if r.get("calibration"):
        c = r["calibration"]
        click.echo(f"calibrated from {c['designs']} designs ({c['file']}; --no-calibration ignores it)")
    if t.get("fits") is not None:
        click.echo(f"fits the part ({r.get('basis', 'csynth').replace('_', '-')} estimate): "
                   f"{'yes' if t['fits'] else 'NO'}")
    if r.get("comparison"):
        click.echo(f"\ncsynth report ({r['report']['csynth'].get('file', '')}):")
        click.echo(f"  {'metric':<12}{'report':>10}{'estimate':>10}  error")
        for k, c in r["comparison"].items():
            rel = f"{100 * c['rel_error']:+.0f}%" if c["rel_error"] is not None else f"{c['abs_error']:+g}"
            flag = {True: "  within the likely range", False: "  outside the likely range"}.get(c.get("in_range"), "")
            click.echo(f"  {k:<12}{_fmt(c['report']):>10}{_fmt(c['estimate']):>10}  {rel:>6}{flag}")
        if r.get("post_synthesis_comparison"):
            click.echo(f"Vivado synthesis report ({r['report']['vivado'].get('file', '')}):")
            for k, c in r["post_synthesis_comparison"].items():
                rel = f"{100 * c['rel_error']:+.0f}%" if c["rel_error"] is not None else f"{c['abs_error']:+g}"
                flag = {True: "  within the likely range", False: "  outside the likely range"}.get(c.get("in_range"), "")
                click.echo(f"  {k:<12}{_fmt(c['report']):>10}{_fmt(c['estimate']):>10}  {rel:>6}{flag}")
    for w in r["warnings"]:
        click.echo(f"warning: {w}")
    for n in r.get("notes", []):
        click.echo(f"note: {n}")
    click.echo(f"note: {r['predicts']}")


def register(main: click.Group) -> None:
    main.add_command(estimate_command)
