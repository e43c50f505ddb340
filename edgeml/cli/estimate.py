"""``edgeml estimate TARGET``: csynth resource/latency estimate of a model or an hls4ml project, in seconds."""

from __future__ import annotations

from pathlib import Path

import click

from edgeml.cli.common import echo_json


@click.command("estimate")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="edgeml YAML config whose hls section sets part, clock, precision, RF, strategy (Keras targets).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (layout: docs/estimate.md).")
def estimate_command(target: Path, config_path: Path | None, as_json: bool) -> None:
    """Estimate DSP/LUT/FF/BRAM, latency and II that HLS C-synthesis would report.

    TARGET is a Keras/QKeras model (.h5/.keras; converted with the config's hls section) or an
    hls4ml project folder (hls4ml_config.yml + firmware/). A project holding csynth/Vivado
    reports is also compared with them.
    """
    from edgeml import config as cfgmod
    from edgeml.errors import InputError
    from edgeml.estimate import estimate

    if config_path is not None and target.is_dir():
        raise InputError("--config applies to Keras models; an hls4ml project folder already fixes its settings")
    hls = cfgmod.load(config_path)["hls"] if config_path else None
    result = estimate(target, hls=hls)
    if as_json:
        echo_json(result)
        return
    _print_human(result)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if isinstance(v, (int, float)) and abs(v) >= 10 or float(v).is_integer() else f"{v:.1f}"


def _print_human(r: dict) -> None:
    t, part = r["total"], r["part"]
    head = f"{'layer':<20}{'kind':<11}{'RF':>5}{'DSP':>8}{'LUT':>10}{'FF':>9}{'BRAM18K':>9}{'cycles':>8}{'II':>7}"
    click.echo(head)
    for layer in r["layers"]:
        click.echo(f"{layer['name'][:19]:<20}{layer['kind']:<11}{layer['reuse_factor']:>5}{_fmt(layer['dsp']):>8}"
                   f"{_fmt(layer['lut']):>10}{_fmt(layer['ff']):>9}{_fmt(layer['bram_18k']):>9}"
                   f"{_fmt(layer['latency_max']):>8}{_fmt(layer['ii']):>7}")
    click.echo("-" * len(head))
    click.echo(f"part {part['part']} ({part.get('device') or 'unknown'}), clock {t['clock_ns']} ns")
    for k, label in (("dsp", "DSP"), ("lut", "LUT"), ("ff", "FF"), ("bram_18k", "BRAM_18K"), ("uram", "URAM")):
        lo, hi = t[f"{k}_range"]
        pct = t.get(f"{k}_pct")
        pct_text = f"  {pct:.1f}% of part" if pct is not None else ""
        click.echo(f"{label:<10}{_fmt(t[k]):>10}   likely {_fmt(lo)}-{_fmt(hi)}{pct_text}")
    lo, hi = t["latency_max_range"]
    click.echo(f"{'latency':<10}{t['latency_max']:>10} cycles = {t['latency_ns']} ns   likely {lo}-{hi} cycles")
    click.echo(f"{'II':<10}{t['ii']:>10} cycles")
    if t.get("fits") is not None:
        click.echo(f"fits the part: {'yes' if t['fits'] else 'NO'}")
    if r.get("comparison"):
        click.echo(f"\ncsynth report ({r['report']['csynth'].get('file', '')}):")
        click.echo(f"  {'metric':<12}{'report':>10}{'estimate':>10}  error")
        for k, c in r["comparison"].items():
            rel = f"{100 * c['rel_error']:+.0f}%" if c["rel_error"] is not None else f"{c['abs_error']:+g}"
            flag = {True: "  within the likely range", False: "  outside the likely range"}.get(c.get("in_range"), "")
            click.echo(f"  {k:<12}{_fmt(c['report']):>10}{_fmt(c['estimate']):>10}  {rel:>6}{flag}")
        if r["report"].get("vivado"):
            v = r["report"]["vivado"]
            click.echo("  Vivado synth: " + ", ".join(f"{k} {_fmt(v[k])}" for k in ("lut", "ff", "dsp", "bram_18k") if k in v))
    for w in r["warnings"]:
        click.echo(f"warning: {w}")
    click.echo(f"note: {r['predicts']}")


def register(main: click.Group) -> None:
    main.add_command(estimate_command)
