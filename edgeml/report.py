"""The run report: every model from float to firmware, side by side.

``render_report(run_dir)`` reads only files on disk (the manifest, each model's metrics
and history, each hls4ml project's ``convert_report.json`` and ``predictions.npz``, and
the resource estimates) and writes three files into the run directory:

* ``report.html`` — one self-contained page (plots embedded as base64 PNG),
* ``report.md``   — the same table in Markdown,
* ``summary.json`` — the numbers, for scripts and README tables.

Whatever is missing (a model that was never converted, a run without estimates) shows
as a "not available" cell instead of failing, so a half-finished run still renders.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeml.errors import InputError
from edgeml.io import json_text, read_json, write_texts

# Cost of a model on the accuracy-vs-cost plot: one DSP slice is worth ~55 LUTs, the
# usual exchange rate when folding DSPs into a single LUT-equivalent area number.
DSP_LUT_EQUIVALENT = 55
NOT_AVAILABLE = "n/a"
REPORT_FILES = ("report.html", "report.md", "summary.json")


@dataclass
class ModelRecord:
    """Everything on disk about one model; each part is None when its artifact is missing."""

    name: str
    metrics: dict | None = None
    history: dict | None = None
    conversion: dict | None = None  # convert_report.json
    predictions: dict | None = None  # predictions.npz arrays
    estimate: dict | None = None  # estimate(...) result
    missing: list[str] = field(default_factory=list)

    @property
    def csim(self) -> dict:
        return (self.conversion or {}).get("csim") or {}

    @property
    def total(self) -> dict:
        return (self.estimate or {}).get("total") or {}

    @property
    def ranked(self) -> dict:
        """The numbers the model is ranked on: the estimate's ``cost`` (post-synthesis by default, its ``basis``);
        the csynth ``total`` for estimates written before it had two answers."""
        return (self.estimate or {}).get("cost") or self.total

    def cost(self) -> float | None:
        lut, dsp = self.ranked.get("lut"), self.ranked.get("dsp")
        return None if lut is None or dsp is None else float(lut) + DSP_LUT_EQUIVALENT * float(dsp)

    def firmware_accuracy(self) -> float | None:
        """Firmware accuracy when the firmware was evaluated, else the Keras accuracy."""
        acc = self.csim.get("accuracy_csim")
        return acc if acc is not None else (self.metrics or {}).get("accuracy")


# ----------------------------------------------------------------------------- collecting


def collect(run_dir: str | Path) -> tuple[list[ModelRecord], dict]:
    """Read every model's artifacts from ``run_dir``; return (models, run information)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} does not exist; run `edgeml run` first or pass the right path")
    manifest = _read_optional(run_dir / "manifest.json") or {"stages": {}}
    stages = manifest.get("stages", {})
    model_files = _model_files(run_dir, stages)
    conversions = _stage_entries(stages, "convert", "conversions")
    estimates = _stage_entries(stages, "estimate", "estimates")
    for name in sorted(p.parent.name for p in run_dir.glob("hls/*/convert_report.json")):
        model_files.setdefault(name, {})
    if not model_files:
        raise InputError(f"{run_dir} holds no edgeml models (no manifest.json, models/*_metrics.json or "
                         "hls/*/convert_report.json); give the directory `edgeml run` wrote")
    records = [_record(run_dir, name, files, conversions.get(name, {}), estimates.get(name, {}))
               for name, files in model_files.items()]
    return records, _run_info(run_dir, stages)


def _model_files(run_dir: Path, stages: dict) -> dict[str, dict]:
    """name -> {model, metrics, history, ...} from every stage that produced models, in stage order."""
    found: dict[str, dict] = {}
    for record in stages.values():
        for name, files in (record.get("outputs", {}).get("models") or {}).items():
            if isinstance(files, dict):
                found[name] = files
    if not found:  # no manifest: fall back to the file layout every stage uses
        for metrics in sorted(run_dir.glob("models/*_metrics.json")):
            name = metrics.name[: -len("_metrics.json")]
            found[name] = {"metrics": str(metrics.relative_to(run_dir)),
                           "history": f"models/{name}_history.json", "model": f"models/{name}.h5"}
        found = dict(sorted(found.items(), key=lambda kv: kv[0] != "baseline"))
    return found


def _stage_entries(stages: dict, stage: str, key: str) -> dict:
    return (stages.get(stage, {}).get("outputs", {}) or {}).get(key) or {}


def _record(run_dir: Path, name: str, files: dict, conversion: dict, estimate: dict) -> ModelRecord:
    rec = ModelRecord(name)
    rec.metrics = _read_optional(_resolve(run_dir, files.get("metrics"), f"models/{name}_metrics.json"))
    rec.history = _read_optional(_resolve(run_dir, files.get("history"), f"models/{name}_history.json"))
    rec.conversion = _read_optional(_resolve(run_dir, conversion.get("report"), f"hls/{name}/convert_report.json"))
    rec.predictions = _read_npz(_resolve(run_dir, conversion.get("predictions"), f"hls/{name}/predictions.npz"))
    rec.estimate = _read_optional(_resolve(run_dir, estimate.get("estimate"), f"estimate/{name}.json"))
    if rec.estimate is None and rec.conversion is not None:
        rec.estimate = rec.conversion.get("estimate")
    estimate_error = (rec.estimate or {}).get("error")
    if rec.estimate is not None and "total" not in rec.estimate:  # e.g. {"error": ...}: the estimator failed
        rec.estimate = None
    for part, what in ((rec.metrics, "metrics"), (rec.history, "training history"),
                       (rec.conversion, "hls4ml conversion report"), (rec.predictions, "firmware predictions"),
                       (rec.estimate, "resource estimate" + (f" ({estimate_error})" if estimate_error else ""))):
        if part is None:
            rec.missing.append(what)
    return rec


def _resolve(run_dir: Path, relative: str | None, fallback: str) -> Path:
    return run_dir / (relative or fallback)


def _read_optional(path: Path) -> dict | None:
    try:
        return read_json(path) if path.is_file() else None
    except ValueError:  # a corrupt artifact is reported as missing, not as a crash of the report
        return None


def _read_npz(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None


def _run_info(run_dir: Path, stages: dict) -> dict:
    info = {"run_dir": str(run_dir), "name": run_dir.name, "classes": None, "n_jets": None, "config": None,
            "stage_seconds": {k: v.get("seconds") for k, v in stages.items()}}
    data = stages.get("data", {}).get("outputs", {})
    info["classes"] = data.get("classes")
    info["n_jets"] = data.get("n_jets")
    cfg_file = run_dir / "config.yaml"
    if cfg_file.is_file():
        import yaml

        info["config"] = yaml.safe_load(cfg_file.read_text())
        info["name"] = (info["config"] or {}).get("name", info["name"])
    return info


# ----------------------------------------------------------------------------- summary


def model_summary(rec: ModelRecord) -> dict:
    """The numbers of one model, as they go into summary.json (None when not available)."""
    m, c, r = rec.metrics or {}, rec.csim, rec.ranked
    ranges = dict(rec.total)  # latency/II ranges are csynth's; resource ranges follow the basis
    if r.get("basis") == "post_synthesis":
        ranges.update((rec.estimate or {}).get("post_synthesis") or {})
    return {
        "accuracy": m.get("accuracy"),
        "accuracy_csim": c.get("accuracy_csim"),
        "argmax_agreement": c.get("argmax_agreement"),
        "auc": m.get("auc"),
        "auc_csim": c.get("auc_csim"),
        "max_abs_diff": c.get("max_abs_diff"),
        "csim_jets": c.get("n"),
        "sparsity": sparsity(m),
        "bops": m.get("bops"),
        "parameters": m.get("parameters"),
        "nonzero_weights": m.get("nonzero_weights"),
        "estimate": {**{k: r.get(k) for k in ("dsp", "lut", "ff", "bram_18k", "uram", "latency_min", "latency_max",
                                              "latency_ns", "ii", "fits")},
                     "basis": r.get("basis", "csynth"),
                     "timing_risk": (rec.estimate or {}).get("timing_risk"),
                     "percentages": part_percentages(r),
                     "ranges": {k[: -len("_range")]: v for k, v in ranges.items() if k.endswith("_range")} or None},
        "cost_lut_equivalent": rec.cost(),
        "pareto": None,
        "missing": rec.missing,
    }


def part_percentages(total: dict) -> dict | None:
    """Share of the part per resource: the estimator's ``percentages`` dict or its ``<resource>_pct`` keys."""
    if isinstance(total.get("percentages"), dict):
        return total["percentages"]
    found = {k[: -len("_pct")]: v for k, v in total.items() if k.endswith("_pct")}
    return found or None


def sparsity(metrics: dict) -> float | None:
    """Fraction of zero weights: the compress stage's own number, else from the parameter counts."""
    if metrics.get("sparsity") is not None:
        return metrics["sparsity"]
    total, nonzero = metrics.get("parameters"), metrics.get("nonzero_weights")
    return None if not total or nonzero is None else 1.0 - nonzero / total


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names whose (cost, accuracy) no other model beats: cheaper-or-equal and at least as accurate."""
    front = []
    for name, (cost, acc) in points.items():
        dominated = any(c2 <= cost and a2 >= acc and (c2 < cost or a2 > acc)
                        for other, (c2, a2) in points.items() if other != name)
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: points[n][0])


# ----------------------------------------------------------------------------- plots


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: the report renders on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def _colors(records: list[ModelRecord]) -> dict[str, str]:
    cycle = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    return {r.name: cycle[i % len(cycle)] for i, r in enumerate(records)}


def plot_roc(records: list[ModelRecord], classes: list[str]) -> str | None:
    """One panel per class: signal efficiency vs background mistag, Keras solid, firmware dashed."""
    from edgeml.metrics import roc_curve

    with_predictions = [r for r in records if r.predictions is not None and "y_true" in r.predictions]
    if not with_predictions:
        return None
    plt = _pyplot()
    colors = _colors(records)
    ncols = min(len(classes), 3)
    nrows = math.ceil(len(classes) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.0 * nrows), squeeze=False)
    for i, cls in enumerate(classes):
        ax = axes[i // ncols][i % ncols]
        for rec in with_predictions:
            y = rec.predictions["y_true"]
            if not (y == i).any() or (y == i).all():
                continue
            for key, style in (("keras", "-"), ("csim", "--")):
                proba = rec.predictions.get(key)
                if proba is None:
                    continue
                if (rec.metrics or {}).get("kind") == "hgq":  # HGQ proxies output logits: score with their softmax
                    from edgeml.compress.hgq import softmax

                    proba = softmax(proba)
                fpr, tpr = roc_curve(y, proba, i)
                ax.plot(tpr, np.clip(fpr, 1e-4, 1.0), style, color=colors[rec.name], lw=1.3,
                        label=f"{rec.name} ({'Keras' if key == 'keras' else 'firmware'})")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_ylim(1e-3, 1)
        ax.set_title(f"{cls} vs rest")
        ax.set_xlabel("signal efficiency")
        ax.set_ylabel("background mistag rate")
        ax.grid(True, which="both", alpha=0.3)
    for j in range(len(classes), nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(len(labels), 1)), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.03 * math.ceil(len(labels) / 4)))
    fig.tight_layout()
    return _png(fig)


def plot_cost(records: list[ModelRecord], front: list[str]) -> str | None:
    """Accuracy (firmware when simulated) against LUT + 55 x DSP, the Pareto front joined by a line."""
    points = {r.name: (r.cost(), r.firmware_accuracy()) for r in records}
    points = {k: v for k, v in points.items() if v[0] is not None and v[1] is not None}
    if not points:
        return None
    plt = _pyplot()
    colors = _colors(records)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for name, (cost, acc) in points.items():
        on_front = name in front
        ax.scatter([cost], [acc], s=90 if on_front else 50, color=colors[name],
                   edgecolors="black" if on_front else "none", linewidths=1.5, zorder=3)
        ax.annotate(name, (cost, acc), textcoords="offset points", xytext=(6, 6), fontsize=9)
    if front:
        xs, ys = zip(*(points[n] for n in front))
        ax.step(xs, ys, where="post", color="black", lw=1, ls=":", label="Pareto front", zorder=2)
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel(f"estimated cost: LUT + {DSP_LUT_EQUIVALENT} x DSP (log)")
    ax.set_ylabel("accuracy (firmware where available)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def plot_training(records: list[ModelRecord]) -> str | None:
    """Loss and accuracy per epoch for every model that has a history (validation dashed)."""
    with_history = [r for r in records if r.history and r.history.get("loss")]
    if not with_history:
        return None
    plt = _pyplot()
    colors = _colors(records)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    for rec in with_history:
        h = rec.history
        for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = h.get(prefix + key)
                if values:
                    ax.plot(range(1, len(values) + 1), values, style, color=colors[rec.name],
                            label=f"{rec.name} ({'val' if prefix else 'train'})")
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _png(fig)


def fixed_point_span(precision, fallback_range=None) -> tuple[float, float] | None:
    """(smallest step, largest magnitude) a layer's fixed-point type can hold, for the log2 profile."""
    from edgeml.config import parse_precision

    text = precision.get("result") or precision.get("weight") if isinstance(precision, dict) else precision
    if isinstance(text, str):
        try:
            signed, width, integer = parse_precision(text)
            return 2.0 ** (integer - width), 2.0 ** (integer - 1 if signed else integer)
        except ValueError:
            pass
    if fallback_range and len(fallback_range) == 2 and None not in fallback_range:
        top = max(abs(float(fallback_range[0])), abs(float(fallback_range[1])))
        return (None, top) if top > 0 else None
    return None


def plot_precision(records: list[ModelRecord]) -> str | None:
    """Per layer: the fixed-point type's span (grey band) against the largest |weight| and |activation|."""
    converted = [r for r in records if r.conversion and r.conversion.get("layers")]
    if not converted:
        return None
    plt = _pyplot()
    n_layers = max(len(r.conversion["layers"]) for r in converted)
    ncols = min(len(converted), 2)
    nrows = math.ceil(len(converted) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, (1.0 + 0.45 * n_layers) * nrows),
                             squeeze=False, sharex=True)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(converted):]:
        ax.axis("off")
    for ax, rec in zip(flat, converted):
        layers = rec.conversion["layers"]
        for y, layer in enumerate(layers):
            span = fixed_point_span(layer.get("precision"), layer.get("range"))
            _span_bar(ax, y - 0.1, span, 0.5, "#cccccc", "#888888")
            if layer.get("weight_precision"):  # weights have their own type (QKeras: usually much narrower)
                _span_bar(ax, y + 0.28, fixed_point_span(layer["weight_precision"]), 0.18, "#aec7e8", "#1f77b4")
            for key, marker, color, label in (("weight_range", "o", "#1f77b4", "max |weight|"),
                                              ("output_range", "s", "#ff7f0e", "max |activation|")):
                top = _max_abs(layer.get(key))
                if top:
                    ax.plot([math.log2(top)], [y], marker, color=color, ms=7, label=label)
            if (layer.get("overflow_fraction") or 0) > 0:
                ax.plot([math.log2(span[1]) if span else 0], [y], "x", color="red", ms=10, mew=2, label="overflow")
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels([f"{lay.get('name')}\n{_short_precision(lay)}" for lay in layers], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(rec.name)
        ax.set_xlabel("log2 |value|")
        ax.grid(True, axis="x", alpha=0.3)
    handles, labels = [], []
    for ax in flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    from matplotlib.patches import Patch

    handles[:0] = [Patch(color="#cccccc", label="result type span"), Patch(color="#aec7e8", label="weight type span")]
    labels[:0] = ["result type span (LSB .. max)", "weight type span"]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False,
               bbox_to_anchor=(0.5, -0.06 / nrows))
    fig.tight_layout()
    return _png(fig)


def _max_abs(pair) -> float | None:
    if not pair or len(pair) != 2 or None in pair:
        return None
    top = max(abs(float(pair[0])), abs(float(pair[1])))
    return top if top > 0 and math.isfinite(top) else None


def _span_bar(ax, y: float, span, height: float, color: str, edge: str) -> None:
    if span is None:
        return
    low = span[0] if span[0] else span[1] * 2.0 ** -16  # unknown LSB: draw 16 bits below the top
    ax.barh(y, math.log2(span[1]) - math.log2(low), left=math.log2(low), height=height, color=color, edgecolor=edge)


def _short_precision(layer: dict) -> str:
    """'fx<16,6>' for the result type, plus ' w:fx<6,1>' when the weights have another type."""
    def short(text) -> str:
        return re.sub(r",\s*AP_\w+", "", str(text or "")).replace("ap_ufixed", "ufx").replace("ap_fixed", "fx")

    result, weight = layer.get("precision"), layer.get("weight_precision")
    if isinstance(result, dict):
        result, weight = result.get("result"), weight or result.get("weight")
    return short(result) + (f" w:{short(weight)}" if weight and weight != result else "")


# ----------------------------------------------------------------------------- table


COLUMNS = ["model", "accuracy", "accuracy (firmware)", "AUC per class", "sparsity", "BOPs", "firmware agreement",
           "DSP", "LUT", "FF", "BRAM18", "latency (ns)", "II", "% of part", "fits"]


def table_rows(records: list[ModelRecord], front: list[str]) -> list[list[str]]:
    rows = []
    for rec in records:
        s = model_summary(rec)
        e = s["estimate"]
        aucs = s["auc"] or {}
        rows.append([
            rec.name + (" *" if rec.name in front else ""),
            _fmt(s["accuracy"], "{:.4f}"),
            _fmt(s["accuracy_csim"], "{:.4f}"),
            " ".join(f"{c}:{v:.3f}" for c, v in aucs.items()) if aucs else NOT_AVAILABLE,
            _fmt(s["sparsity"], "{:.0%}"),
            _fmt(s["bops"], "{:,.0f}"),
            _fmt(s["argmax_agreement"], "{:.2%}"),
            _fmt(e["dsp"], "{:,.0f}"),
            _fmt(e["lut"], "{:,.0f}"),
            _fmt(e["ff"], "{:,.0f}"),
            _fmt(e["bram_18k"], "{:,.0f}"),
            _fmt(e["latency_ns"], "{:,.1f}"),
            _fmt(e["ii"], "{}"),
            _part_share(e["percentages"]),
            _fits_text(e),
        ])
    return rows


# the estimate's verdict on timing closure at the run's part and clock (docs/estimate.md, warnings)
TIMING_RISK = {"likely_fail": "timing will likely fail", "may_fail": "timing tight, may fail"}


def _fits_text(e: dict) -> str:
    """'yes' / 'no', and what the estimate says of timing closure."""
    fits = NOT_AVAILABLE if e["fits"] is None else ("yes" if e["fits"] else "no")
    timing = TIMING_RISK.get(e.get("timing_risk"))
    return f"{fits} ({timing})" if timing else fits


def _basis_text(records: list[ModelRecord]) -> str:
    """Which estimate the DSP/LUT/FF columns, the cost and 'fits' show: post-synthesis Vivado or csynth."""
    bases = sorted({r.ranked.get("basis", "csynth") for r in records if r.estimate})
    names = {"post_synthesis": "Vivado post-synthesis estimate", "csynth": "HLS csynth estimate"}
    return " / ".join(names.get(b, b) for b in bases) or "no estimate"


def _fmt(value, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_AVAILABLE
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def _part_share(percentages) -> str:
    """The most used resource, e.g. '23.1% LUT': the one that decides whether the model fits."""
    if not isinstance(percentages, dict):
        return NOT_AVAILABLE
    numeric = {k: v for k, v in percentages.items() if isinstance(v, (int, float))}
    if not numeric:
        return NOT_AVAILABLE
    key = max(numeric, key=numeric.get)
    return f"{numeric[key]:.1f}% {key.upper().replace('BRAM_18K', 'BRAM')}"


# ----------------------------------------------------------------------------- rendering


def render_report(run_dir: str | Path) -> dict[str, Path]:
    """Write report.html, report.md and summary.json into ``run_dir``; return their paths."""
    run_dir = Path(run_dir)
    records, info = collect(run_dir)
    classes = info["classes"] or _classes_from(records)
    points = {r.name: (r.cost(), r.firmware_accuracy()) for r in records}
    front = pareto_front({k: v for k, v in points.items() if None not in v})
    summary = {"run": {"name": info["name"], "run_dir": str(run_dir), "classes": classes, "n_jets": info["n_jets"],
                       "part": _part_name(records, info), "stage_seconds": info["stage_seconds"],
                       "cost_definition": f"LUT + {DSP_LUT_EQUIVALENT} x DSP ({_basis_text(records)})",
                       "estimate_predicts": next((r.estimate.get("predicts") for r in records
                                                  if r.estimate and r.estimate.get("predicts")), None)},
               "models": {}}
    for rec in records:
        summary["models"][rec.name] = {**model_summary(rec), "pareto": rec.name in front}
    rows = table_rows(records, front)
    plots = {
        "ROC curves per class (Keras solid, firmware dashed)": plot_roc(records, classes),
        "Accuracy vs estimated cost (Pareto front marked)": plot_cost(records, front),
        "Training curves": plot_training(records),
        "Per-layer precision profile": plot_precision(records),
    }
    paths = {"html": run_dir / "report.html", "md": run_dir / "report.md", "summary": run_dir / "summary.json"}
    write_texts({paths["summary"]: json_text(summary), paths["md"]: _markdown(summary, rows, records, plots),
                 paths["html"]: _html(summary, rows, records, plots)})  # all three or none (a full disk)
    return paths


def _classes_from(records: list[ModelRecord]) -> list[str]:
    for rec in records:
        if rec.metrics and rec.metrics.get("auc"):
            return list(rec.metrics["auc"])
    from edgeml.data import CLASSES

    return list(CLASSES)


def _part_name(records: list[ModelRecord], info: dict) -> str | None:
    for rec in records:
        part = (rec.estimate or {}).get("part")
        if isinstance(part, dict) and (part.get("part") or part.get("name")):
            return part.get("part") or part["name"]
        if isinstance(part, str):
            return part
    return ((info.get("config") or {}).get("hls") or {}).get("Part")


def _stage_times(run: dict) -> str:
    """'data 0.2 s, baseline 14.0 s, ...' for the stages this run directory last ran."""
    seconds = {k: v for k, v in (run.get("stage_seconds") or {}).items() if isinstance(v, (int, float))}
    return ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())


def _missing_notes(records: list[ModelRecord]) -> list[str]:
    return [f"{r.name}: {', '.join(r.missing)} not available" for r in records if r.missing]


def _markdown(summary: dict, rows: list[list[str]], records: list[ModelRecord], plots: dict) -> str:
    run = summary["run"]
    lines = [f"# edgeml run report: {run['name']}", "",
             f"Part {run['part'] or NOT_AVAILABLE}; {run['n_jets'] or NOT_AVAILABLE} jets; "
             f"cost = {run['cost_definition']}; * = on the accuracy/cost Pareto front."
             + (f" The estimate predicts {run['estimate_predicts']}." if run["estimate_predicts"] else ""), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    notes = _missing_notes(records)
    if notes:
        lines += ["", "Not available:", ""] + [f"- {n}" for n in notes]
    if _stage_times(run):
        lines += ["", f"Stage wall times: {_stage_times(run)}."]
    absent = [title for title, png in plots.items() if png is None]
    lines += ["", "Plots are in report.html" + (f" (not available: {'; '.join(absent)})" if absent else "") + "."]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 4px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; font-weight: 600; }
td.na { color: #999; font-style: italic; } tr.pareto td:first-child { color: #0a5; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; } .note { color: #666; font-size: 0.9em; }
"""


def _html(summary: dict, rows: list[list[str]], records: list[ModelRecord], plots: dict) -> str:
    run = summary["run"]
    esc = html.escape
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>edgeml report: {esc(str(run['name']))}</title><style>{_CSS}</style></head><body>",
           f"<h1>edgeml run report: {esc(str(run['name']))}</h1>",
           f"<p class='note'>Run directory <code>{esc(run['run_dir'])}</code>; part "
           f"<code>{esc(str(run['part'] or NOT_AVAILABLE))}</code>; {esc(str(run['n_jets'] or NOT_AVAILABLE))} jets; "
           f"generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>",
           "<h2>Every model, float to firmware</h2>",
           "<p class='note'>Accuracy and AUC on the run's test split (Keras); firmware columns from the hls4ml "
           "firmware evaluated bit-exactly (NumPy emulator or g++ C-simulation) on the same test jets; "
           "resources and latency are edgeml's estimate. "
           f"* marks the accuracy/cost Pareto front (cost = {esc(run['cost_definition'])}). "
           + (f"The estimate predicts {esc(run['estimate_predicts'])}." if run["estimate_predicts"] else "")
           + "</p>",
           "<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in COLUMNS) + "</tr></thead><tbody>"]
    for row in rows:
        css = " class='pareto'" if row[0].endswith(" *") else ""
        cells = "".join(f"<td class='na' title='artifact not available'>{NOT_AVAILABLE}</td>" if v == NOT_AVAILABLE
                        else f"<td>{esc(v)}</td>" for v in row)
        out.append(f"<tr{css}>{cells}</tr>")
    out.append("</tbody></table>")
    notes = _missing_notes(records)
    if notes:
        out.append("<p class='note'>Not available: " + "; ".join(esc(n) for n in notes) + ".</p>")
    if _stage_times(run):
        out.append(f"<p class='note'>Stage wall times: {esc(_stage_times(run))}.</p>")
    for title, png in plots.items():
        out.append(f"<h2>{esc(title)}</h2>")
        if png is None:
            out.append("<p class='na note'>Not available: no model in this run has the artifacts this plot needs.</p>")
        else:
            out.append(f"<img alt='{esc(title)}' src='data:image/png;base64,{png}'>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
