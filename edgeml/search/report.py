"""``search_report.html``: one self-contained file (inline PNGs) with the fronts, the trial history and the
parameter importances. Computing (``importances``) and drawing (``plot_*``) are separate."""

from __future__ import annotations

import html
import time
from pathlib import Path

from edgeml.io import write_text
from edgeml.report import _CSS, TIMING_RISK, _png, _pyplot

COST_LABEL = {"lut_dsp": "LUT + 55·DSP", "latency": "latency (ns)", "bops": "BOPs"}
STATUS_COLOR = {"completed": "#1f77b4", "infeasible": "#bbbbbb"}
METHOD_MARKER = {"qkeras": "o", "hgq": "^"}


def importances(records: list[dict]) -> dict[str, float] | None:
    """Optuna's fANOVA importance of each parameter for the validation accuracy (None: too few trials)."""
    import optuna

    done = [r for r in records if r.get("accuracy") is not None]
    if len(done) < 4:
        return None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    for r in done:
        params = r["config"]
        dists = {k: _distribution(v) for k, v in params.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=r["accuracy"]))
    try:
        return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):  # e.g. every trial took the same values
        return None


def _distribution(value):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(value, (bool, str)):
        return CategoricalDistribution([value])
    return FloatDistribution(float(value), float(value)) if isinstance(value, float) else \
        CategoricalDistribution([value])


def _scatter_by_status(ax, records: list[dict], key: str, label: str) -> None:
    """Validation accuracy against ``key``: a colour per status, a marker per method (``label`` formats both)."""
    for status, color in STATUS_COLOR.items():
        for method, marker in METHOD_MARKER.items():
            pts = [r for r in records if r["status"] == status and (r.get("method") or "qkeras") == method]
            if pts:
                ax.scatter([r[key] for r in pts], [r["accuracy"] for r in pts], c=color, marker=marker, s=22,
                           label=label.format(f"{method} {status}"))


def plot_front(records: list[dict], front: list[dict], references: dict, key: str, label: str) -> str | None:
    done = [r for r in records if r.get("accuracy") is not None]
    if not done:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _scatter_by_status(ax, done, key, "{} designs (validation accuracy)")
    if front:
        xs = [f[key] for f in front]
        ax.plot(xs, [f["accuracy_val"] for f in front], "-", color="#1f77b4", lw=1)
        test = [(f[key], f["accuracy_test"]) for f in front if "accuracy_test" in f]
        if test:
            ax.scatter(*zip(*test), facecolors="none", edgecolors="#d62728", s=60,
                       label="front, bit-exact firmware test accuracy")
    for name, ref in references.items():
        ax.scatter([ref[key]], [ref["accuracy_test"]], marker="*", s=160, label=f"{name} (test)")
        ax.annotate(name, (ref[key], ref["accuracy_test"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(label)
    ax.set_ylabel("accuracy")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def plot_history(records: list[dict]) -> str | None:
    done = sorted((r for r in records if r.get("accuracy") is not None), key=lambda r: r["trial"])
    if not done:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    _scatter_by_status(ax, done, "trial", "{}")
    best, line = None, []
    for r in done:
        if r["status"] == "completed":
            best = r["accuracy"] if best is None else max(best, r["accuracy"])
        line.append(best)
    ax.step([r["trial"] for r in done], line, where="post", color="#2ca02c", label="best feasible so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def render(path: Path, summary: dict, designs: list[dict], records: list[dict]) -> Path:
    """The report of a search: ``designs`` every candidate (``records.candidates``), ``records`` the trials."""
    esc = html.escape
    cost = COST_LABEL[summary["objective"]]
    plots = {f"Accuracy vs cost ({cost})": plot_front(designs, summary["front"], summary["reference"], "cost", cost),
             "Accuracy vs latency": plot_front(designs, summary["front_latency"], summary["reference"],
                                               "latency_ns", "latency (ns)"),
             "Trial history": plot_history(records)}
    c = summary["counts"]
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>edgeml search report</title><style>{_CSS}</style></head><body>",
           "<h1>edgeml search report</h1>",
           f"<p class='note'>Run directory <code>{esc(summary['run_dir'])}</code>; engine Ray "
           f"({esc(summary['address'] or 'local, 127.0.0.1')}, {summary['workers']} workers); part "
           f"<code>{esc(summary['budget']['Part'])}</code> at {summary['budget']['ClockPeriod']} ns; "
           f"{c['completed']} feasible, {c['infeasible']} infeasible, {c['failed']} failed trials; "
           f"{_designs_line(summary.get('designs'))}"
           f"{summary['epochs']} epochs per trial; generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>",
           "<h2>Budget</h2><p>" + esc(budget_line(summary["budget"], summary["budget_limits"])) + "</p>"]
    if summary.get("tightest_constraint"):
        closest = f"; {summary['closest_design']}" if summary.get("closest_design") else ""
        out.append(f"<p class='note'>No trial met the budget: {esc(summary['tightest_constraint'] + closest)}.</p>")
    out += ["<h2>Pareto front (accuracy vs cost)</h2>",
            "<p class='note'>Validation accuracy while searching; test accuracy of the firmware (hls4ml "
            "C-simulation of every test jet) measured afterwards. Resources and latency are edgeml's estimate. "
            "Reference recipes: Keras test accuracy from their metrics files, estimated like the trials.</p>",
            _table(summary)]
    for title, png in plots.items():
        out.append(f"<h2>{esc(title)}</h2>")
        out.append("<p class='na note'>Not available: no trial finished.</p>" if png is None
                   else f"<img alt='{esc(title)}' src='data:image/png;base64,{png}'>")
    imp = importances(records)
    out.append("<h2>Parameter importances (validation accuracy, Optuna fANOVA)</h2>")
    out.append("<p class='na note'>Not available: fewer than four finished trials.</p>" if not imp else
               "<table><tr><th>parameter</th><th>importance</th></tr>"
               + "".join(f"<tr><td>{esc(k)}</td><td>{v:.3f}</td></tr>" for k, v in imp.items()) + "</table>")
    out.append("</body></html>")
    return write_text(path, "\n".join(out) + "\n")


def budget_line(budget: dict, limits: dict) -> str:
    """'LUT ≤ 15,960 (30% of xc7z020), ..., latency ≤ 300 ns': each limit with the share of the part it is."""
    from edgeml.estimate.devices import device_key
    from edgeml.search.budget import CONSTRAINTS, UNITS, shown

    keys = {name: (key, share) for name, key, _, share in CONSTRAINTS}
    device = device_key(budget["Part"])

    def one(name: str, value: float) -> str:
        key, share = keys[name]
        return f"{name} ≤ {shown(value)}" + (f" ({budget[key]:g}% of {device})" if share else UNITS.get(name, ""))

    return ", ".join(one(name, value) for name, value in limits.items())


def _table(summary: dict) -> str:
    esc = html.escape
    cols = ["model", "method", "architecture", "val acc", "test acc (firmware)", "LUT", "DSP", "FF", "latency ns",
            "II", "BOPs", "EBOPs", "nonzero params", "timing"]
    rows = []
    for f in summary["front"]:
        rows.append([f.get("model", f["design_id"]), f.get("method") or "qkeras", f.get("architecture", ""),
                     f"{f['accuracy_val']:.4f}", f"{f['accuracy_test']:.4f}" if "accuracy_test" in f else "—",
                     f"{f['lut']:,}", f"{f['dsp']:,}", f"{f['ff']:,}", f"{f['latency_ns']:g}", str(f["ii"]),
                     f"{f['bops']:,}", _count(f.get("ebops")), f"{f['params']:,}", _timing(f)])
    for name, r in summary["reference"].items():
        rows.append([f"{name} (reference)", r.get("method", "qkeras"), "", "—", f"{r['accuracy_test']:.4f} (Keras)",
                     f"{r['lut']:,}", f"{r['dsp']:,}", f"{r['ff']:,}", f"{r['latency_ns']:g}", str(r["ii"]),
                     f"{r['bops']:,}", _count(r.get("ebops")), f"{r['params']:,}", _timing(r)])
    return ("<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in rows)
            + "</tbody></table>")


def _timing(row: dict) -> str:
    return TIMING_RISK.get(row.get("timing_risk"), "")


def _count(value) -> str:
    return "—" if value is None else f"{value:,}"


def _designs_line(designs: dict | None) -> str:
    """How many candidate designs the trials gave (an HGQ trial gives one per snapshot on its front)."""
    if not designs:
        return ""
    by = ", ".join(f"{n} {m}" for m, n in designs["by_method"].items())
    return f"{designs['total']} candidate designs ({by}), {designs['feasible']} within budget; "
