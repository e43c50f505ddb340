"""Rendering of the convert report: convert_report.md and the lines the CLI prints."""

from __future__ import annotations

from pathlib import Path

ENGINE_NAMES = {"csim": "C-sim (g++)", "emulate": "emulator"}


def _rate_text(r: dict) -> str:
    rate = f", {r['jets_per_second']:,.0f} jets/s" if r.get("jets_per_second") else ""
    return f"{r['seconds']:.3g} s{rate}"


def _cross_check_text(x: dict) -> str:
    differ = round(x["n"] * (1 - x["identical_fraction"]))
    return (f"emulate vs csim: {x['identical_fraction']:.4%} of {x['n']} jets identical in every layer "
            f"({differ} differ), max |diff| {x['max_abs_diff']:.3g}")


def _engine_md(report: dict) -> list[str]:
    lines = []
    if report.get("engine_note"):
        lines += [f"Note: {report['engine_note']}.", ""]
    if report.get("engines"):
        lines += ["| engine | seconds (C-sim: compile + run) | jets/s |", "|---|---|---|",
                  *[f"| {name} | {r['seconds']:.3g} | {r['jets_per_second'] or 0:,.0f} |"
                    for name, r in report["engines"].items()], ""]
    if report.get("emulate_vs_csim"):
        lines += [_cross_check_text(report["emulate_vs_csim"]) + ".", ""]
    return lines


def render_markdown(report: dict) -> str:
    c = report["csim"]
    lines = [f"# hls4ml conversion of {report['name']}", "",
             f"Model `{report['model']}`, hls4ml {report['hls4ml_version']}, backend {report['hls']['Backend']}, "
             f"part {report['hls']['Part']}, {report['hls']['ClockPeriod']} ns, {report['hls']['IOType']}, "
             f"strategy {report['hls']['Strategy']}, RF {report['hls']['ReuseFactor']}.",
             f"Compared on {c['n']} jets ({report['data']}); firmware evaluated by "
             f"{ENGINE_NAMES[c.get('engine', 'csim')]}.", "",
             *_engine_md(report),
             "## Firmware vs Keras", "",
             "| quantity | value |", "|---|---|",
             f"| accuracy Keras (float input) | {c['accuracy_keras']:.4f} |",
             f"| accuracy firmware | {c['accuracy_csim']:.4f} |",
             f"| decision agreement: argmax of the outputs | {c['argmax_agreement']:.4%} |",
             f"| decision agreement: argmax before the softmax | {c['argmax_agreement_logits']:.4%} |",
             f"| max / mean abs diff (outputs) | {c['max_abs_diff']:.3g} / {c['mean_abs_diff']:.3g} |",
             f"| max abs diff (logits, layer {c['logits_layer']}) | {c['max_abs_diff_logits']:.3g} |",
             f"| logits bit-exact | {'yes' if c['bit_exact_logits'] else 'no'} |",
             f"| input type / input overflow | {c['input_type']} / {c['input_overflow_fraction']:.3%} |", "",
             "| class | AUC Keras | AUC firmware |", "|---|---|---|",
             *[f"| {k} | {v:.4f} | {c['auc_csim'].get(k, float('nan')):.4f} |" for k, v in c["auc_keras"].items()],
             "", "## Layers", "",
             "| layer | type | precision | range | Keras output range | max abs diff | overflow | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["layers"]:
        rng = "-" if r["range"] is None else f"[{r['range'][0]:.4g}, {r['range'][1]:.4g}]"
        lines.append(f"| {r['name']} | {r['class']} | `{r['precision']}` | {rng} | "
                     f"[{r['output_range'][0]:.4g}, {r['output_range'][1]:.4g}] | {r['max_abs_diff']:.3g} | "
                     f"{r['overflow_fraction']:.2%} | {r['status']} |")
    broken = report.get("first_broken_layer")
    lines += ["", "First broken layer: " + ("none" if not broken else f"**{broken['name']}** ({broken['status']})"), ""]
    if report["suggested_precision"]:
        lines += ["## Suggested precisions", "", "| layer | suggestion |", "|---|---|",
                  *[f"| {k} | " + ", ".join(f"{kind} `{v}`" for kind, v in kinds.items()) + " |"
                    for k, kinds in report["suggested_precision"].items()], ""]
    if "auto_precision" in report:
        a = report["auto_precision"]
        lines += ["## --auto-precision", "", "| | before | after |", "|---|---|---|",
                  *[f"| {k} | {a['before'][k]} | {a['after'][k]} |" for k in a["before"]], ""]
    if c.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in c["notes"]], ""]
    if report.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in report["warnings"]], ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def summary_lines(report: dict) -> list[str]:
    """The few lines the CLI prints."""
    c = report["csim"]
    engine = c.get("engine", "csim")
    lines = [f"project {report['project_dir']}" + (" (cached)" if report.get("cache", {}).get("hit") else ""),
             f"{ENGINE_NAMES[engine]} on {c['n']} jets: accuracy Keras {c['accuracy_keras']:.4f}, "
             f"firmware {c['accuracy_csim']:.4f}; decision agreement {c['argmax_agreement']:.4%} "
             f"(before the softmax {c['argmax_agreement_logits']:.4%}); max |diff| outputs {c['max_abs_diff']:.3g}, "
             f"logits {c['max_abs_diff_logits']:.3g}" + (" (bit-exact)" if c["bit_exact_logits"] else "")]
    if report.get("engine_note"):
        lines.append(f"note: {report['engine_note']}")
    lines += [f"{name}: {_rate_text(r)}" for name, r in report.get("engines", {}).items()]
    if report.get("emulate_vs_csim"):
        lines.append(_cross_check_text(report["emulate_vs_csim"]))
    broken = report.get("first_broken_layer")
    if broken:
        fix = report["suggested_precision"].get(broken["name"])
        lines.append(f"first broken layer: {broken['name']} ({broken['status']})"
                     + (f"; suggested {fix}" if fix else "") + "; rerun with --auto-precision to apply")
    if "auto_precision" in report:
        a = report["auto_precision"]
        lines.append(f"auto-precision: argmax agreement {a['before']['argmax_agreement']:.4%} -> "
                     f"{a['after']['argmax_agreement']:.4%}")
    lines += _layer_lines(report["layers"]) + _estimate_lines(report.get("estimate"))
    lines.append(f"full report: {Path(report['project_dir']) / 'convert_report.md'}")
    return lines


def _layer_lines(layers: list[dict]) -> list[str]:
    lines = [f"{'layer':<14}{'result type':<35}{'max |diff|':>11}{'overflow':>10}  status"]
    for layer in layers:
        lines.append(f"{layer['name']:<14}{str(layer.get('precision', '')):<35}{layer.get('max_abs_diff', 0):>11.3g}"
                     f"{layer.get('overflow_fraction', 0):>10.2%}  {layer.get('status', '')}")
    return lines


def _estimate_lines(estimate: dict | None) -> list[str]:
    """Totals of the resource/latency estimate, the numbers users read before synthesis."""
    if not estimate:
        return []
    if "error" in estimate:
        return [f"estimate: not available ({estimate['error']})"]
    t = estimate["total"]
    part = estimate.get("part", {}).get("part", "?")
    lines = [f"estimate for {part} at {t.get('clock_ns', '?')} ns (HLS csynth-equivalent):"
             f" DSP {t['dsp']:,} ({t.get('dsp_pct', 0):.1f}%), LUT {t['lut']:,} ({t.get('lut_pct', 0):.1f}%),"
             f" FF {t['ff']:,}, BRAM18K {t['bram_18k']:g}, latency {t['latency_max']} cycles"
             f" = {t['latency_ns']:g} ns, II {t['ii']}, fits: {'yes' if t.get('fits') else 'NO'}"]
    lines += [f"warning: {w}" for w in estimate.get("warnings", [])]
    return lines
