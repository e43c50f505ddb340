"""Rendering of the convert report: convert_report.md and the lines the CLI prints."""

from __future__ import annotations

from pathlib import Path

ENGINE_NAMES = {"csim": "C-sim (g++)", "emulate": "emulator"}


def _rate_text(r: dict) -> str:
    rate = f", {r['jets_per_second']:,.0f} events/s" if r.get("jets_per_second") else ""
    return f"{r['seconds']:.3g} s{rate}"


def _cross_check_text(x: dict, label: str = "emulate vs csim") -> str:
    differ = round(x["n"] * (1 - x["identical_fraction"]))
    text = (f"{label}: {x['identical_fraction']:.4%} of {x['n']} events identical in every layer "
            f"({differ} differ), max |diff| {x['max_abs_diff']:.3g}")
    worst = sorted((v, k) for k, v in x.get("layers", {}).items() if v < 1)[:3]
    return text + ("; least identical layers: " + ", ".join(f"{k} {v:.2%}" for v, k in worst) if worst else "")


def _engine_md(report: dict) -> list[str]:
    lines = []
    if report.get("engine_note"):
        lines += [f"Note: {report['engine_note']}.", ""]
    if report.get("engines"):
        lines += ["| engine | seconds (C-sim: compile + run) | events/s |", "|---|---|---|",
                  *[f"| {name} | {r['seconds']:.3g} | {r['jets_per_second'] or 0:,.0f} |"
                    for name, r in report["engines"].items()], ""]
    if report.get("emulate_vs_csim"):
        lines += [_cross_check_text(report["emulate_vs_csim"]) + ".", ""]
    proxy = _proxy_texts(report)
    lines += [text + "." for text in proxy] + ([""] if proxy else [])
    return lines


def _proxy_texts(report: dict) -> list[str]:
    """HGQ proxy models: the proxy's own predictions against each firmware engine that ran."""
    return [_cross_check_text(report[f"proxy_vs_{engine}"], f"HGQ proxy vs {engine}") for engine in ("emulate", "csim")
            if report.get(f"proxy_vs_{engine}")]


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _task_text(c: dict) -> str:
    return f"task {c.get('task', 'classification')} ({c.get('task_reason', 'jet tagger')})"


def _classification_md(c: dict) -> list[str]:
    lines = ["| quantity | value |", "|---|---|",
             f"| accuracy Keras (float input) | {_num(c['accuracy_keras'], '.4f')} |",
             f"| accuracy firmware | {_num(c['accuracy_csim'], '.4f')} |",
             f"| decision agreement: argmax of the outputs | {c['argmax_agreement']:.4%} |",
             f"| decision agreement: argmax before the softmax | {c['argmax_agreement_logits']:.4%} |",
             f"| max / mean abs diff (outputs) | {c['max_abs_diff']:.3g} / {c['mean_abs_diff']:.3g} |",
             f"| max abs diff (logits, layer {c['logits_layer']}) | {c['max_abs_diff_logits']:.3g} |",
             f"| logits bit-exact | {'yes' if c['bit_exact_logits'] else 'no'} |",
             f"| input type / input overflow | {c['input_type']} / {c['input_overflow_fraction']:.3%} |", ""]
    if c.get("auc_keras"):
        lines += ["| class | AUC Keras | AUC firmware |", "|---|---|---|",
                  *[f"| {k} | {v:.4f} | {c['auc_csim'].get(k, float('nan')):.4f} |" for k, v in c["auc_keras"].items()],
                  ""]
    if c.get("working_points"):
        lines += ["### Trigger working points", "",
                  "Signal efficiency at a background rate (one class against the rest; events strictly above the "
                  "threshold, so events tied at it are never split: the achieved rate can fall below the target).",
                  "", "| class | target background rate | efficiency Keras (rate) | efficiency firmware (rate) | "
                  "firmware with its tied events (rate) | Keras-selected also selected by firmware | "
                  "firmware events tied at threshold |",
                  "|---|---|---|---|---|---|---|"]
        for cls, rows in c["working_points"].items():
            for r in rows:
                k, f = r["keras"], r["firmware"]
                lines.append(f"| {cls} | {r['background_rate_target']:g} | {_num(k['signal_efficiency'], '.4f')} "
                             f"({k['background_rate']:.4g}) | {_num(f['signal_efficiency'], '.4f')} "
                             f"({f['background_rate']:.4g}) | {_num(f['signal_efficiency_with_ties'], '.4f')} "
                             f"({f['background_rate_with_ties']:.4g}) | {_num(r['selected_by_both_fraction'], '.2%')} | "
                             f"{f['ties_at_threshold']} |")
        lines.append("")
    return lines


def _outputs_md(report: dict) -> list[str]:
    lines = ["| output | task | values | max abs diff | mean abs diff | relative error p99 |",
             "|---|---|---|---|---|---|"]
    for o in report.get("outputs", []):
        lines.append(f"| {o['name']} | {o['task']} ({o['task_reason']}) | {o['size']} | {o['max_abs_diff_all']:.3g} | "
                     f"{sum(o['mean_abs_diff']) / max(len(o['mean_abs_diff']), 1):.3g} | "
                     f"{o['relative_error_p99_all']:.3g} |")
    return lines + [""]


def _score_md(score: dict) -> list[str]:
    lines = [f"### Anomaly score: {score['score']}", "",
             f"Spearman rank correlation Keras (float input) vs firmware: {score['spearman']:.6f}; "
             f"{score['distinct_firmware_values']} distinct firmware values.", "",
             "| percentile | threshold Keras / firmware | selected Keras / firmware | selected by both |",
             "|---|---|---|---|"]
    for r in score["thresholds"]:
        lines.append(f"| {r['quantile'] * 100:g}th | {r['threshold_keras']:.4g} / {r['threshold_firmware']:.4g} | "
                     f"{r['selected_keras']} / {r['selected_firmware']} | {r['selected_by_both']} "
                     f"({_num(r['selected_by_both_fraction'], '.2%')}) |")
    return lines + [""]


def render_markdown(report: dict) -> str:
    c = report["csim"]
    lines = [f"# hls4ml conversion of {report['name']}", "",
             f"Model `{report['model']}`, hls4ml {report['hls4ml_version']}, backend {report['hls']['Backend']}, "
             f"part {report['hls']['Part']}, {report['hls']['ClockPeriod']} ns, {report['hls']['IOType']}, "
             f"strategy {report['hls']['Strategy']}, RF {report['hls']['ReuseFactor']}.",
             f"Compared on {c['n']} events ({report['data']}); {_task_text(c)}; firmware evaluated by "
             f"{ENGINE_NAMES[c.get('engine', 'csim')]}.", "",
             *_engine_md(report),
             "## Firmware vs Keras", ""]
    if c.get("task", "classification") == "classification":
        lines += _classification_md(c)
    else:
        lines += [f"Input type / input overflow: {c['input_type']} / {c['input_overflow_fraction']:.3%}.", ""]
        if c.get("target"):
            lines += [f"Mean absolute error against the target: Keras {c['target']['mae_keras']:.4g}, "
                      f"firmware {c['target']['mae_firmware']:.4g}.", ""]
    lines += _outputs_md(report)
    if c.get("score"):
        lines += _score_md(c["score"])
    lines += ["## Layers", "",
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
                  *[f"| {k} | {a['before'][k]} | {a['after'].get(k)} |" for k in a["before"]], ""]
    if c.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in c["notes"]], ""]
    if report.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in report["warnings"]], ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _fidelity_line(c: dict, engine: str) -> str:
    head = f"{ENGINE_NAMES[engine]} on {c['n']} events, {_task_text(c)}: "
    if c.get("task", "classification") == "classification":
        accuracy = (f"accuracy Keras {c['accuracy_keras']:.4f}, firmware {c['accuracy_csim']:.4f}; "
                    if c["accuracy_keras"] is not None else "no labels; ")
        return (head + accuracy + f"decision agreement {c['argmax_agreement']:.4%} "
                f"(before the softmax {c['argmax_agreement_logits']:.4%}); max |diff| outputs {c['max_abs_diff']:.3g}, "
                f"logits {c['max_abs_diff_logits']:.3g}" + (" (bit-exact)" if c["bit_exact_logits"] else ""))
    return head + f"max |diff| outputs {c['max_abs_diff']:.3g}, mean {c['mean_abs_diff']:.3g}"


def _score_line(score: dict) -> str:
    parts = [f"{r['quantile'] * 100:g}th percentile selected by both {r['selected_by_both']}/{r['selected_keras']}"
             for r in score["thresholds"]]
    return f"score ({score['score']}): Spearman {score['spearman']:.6f}; " + ", ".join(parts)


def _working_point_lines(c: dict) -> list[str]:
    """One line per background rate: each class's signal efficiency, Keras -> firmware."""
    points = c.get("working_points") or {}
    if not points:
        return []
    rates = [r["background_rate_target"] for r in next(iter(points.values()))]
    def pair(row: dict) -> str:
        return f"{_num(row['keras']['signal_efficiency'], '.3f')}->{_num(row['firmware']['signal_efficiency'], '.3f')}"

    return [f"signal efficiency Keras -> firmware at background rate {rate:g}: "
            + ", ".join(f"{cls} {pair(rows[i])}" for cls, rows in points.items()) for i, rate in enumerate(rates)]


def summary_lines(report: dict) -> list[str]:
    """The few lines the CLI prints."""
    c = report["csim"]
    engine = c.get("engine", "csim")
    lines = [f"project {report['project_dir']}" + (" (cached)" if report.get("cache", {}).get("hit") else ""),
             _fidelity_line(c, engine), *_working_point_lines(c)]
    if c.get("score"):
        lines.append(_score_line(c["score"]))
    if report.get("synthetic"):
        lines.append("note: synthetic inputs: overflow and precision advice hold for their distribution only")
    if report.get("engine_note"):
        lines.append(f"note: {report['engine_note']}")
    lines += [f"{name}: {_rate_text(r)}" for name, r in report.get("engines", {}).items()]
    if report.get("emulate_vs_csim"):
        lines.append(_cross_check_text(report["emulate_vs_csim"]))
    lines += _proxy_texts(report)
    broken = report.get("first_broken_layer")
    if broken:
        fix = report["suggested_precision"].get(broken["name"])
        lines.append(f"first broken layer: {broken['name']} ({broken['status']})"
                     + (f"; suggested {fix}" if fix else "") + "; rerun with --auto-precision to apply")
    if "auto_precision" in report and "argmax_agreement" in report["auto_precision"]["before"]:
        a = report["auto_precision"]
        lines.append(f"auto-precision: argmax agreement {a['before']['argmax_agreement']:.4%} -> "
                     f"{a['after']['argmax_agreement']:.4%}")
    lines += _layer_lines(report["layers"]) + _estimate_lines(report.get("estimate"))
    lines.append(f"full report: {Path(report['project_dir']) / 'convert_report.md'}")
    return lines


def _layer_lines(layers: list[dict]) -> list[str]:
    width = max([14] + [len(layer["name"]) + 2 for layer in layers])
    lines = [f"{'layer':<{width}}{'result type':<35}{'max |diff|':>11}{'overflow':>10}  status"]
    for layer in layers:
        lines.append(f"{layer['name']:<{width}}{str(layer.get('precision', '')):<35}"
                     f"{layer.get('max_abs_diff', 0):>11.3g}{layer.get('overflow_fraction', 0):>10.2%}  "
                     f"{layer.get('status', '')}")
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
