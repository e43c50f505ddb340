"""Fit the estimator's coefficients on real hls4ml csynth reports: ``python -m edgeml.estimate.fit``.

Cases come from ``shared/ground-truth/<id>/`` (an hls4ml project folder with firmware/ and reports,
plus manifest.json). K has no firmware (an hls4ml unit-test fixture with random weights): it is rebuilt
from its transcribed config (Dense(16->5, relu), io_stream, xc7z020, 5 ns) with seeded random weights.
Cases without firmware (T1, T2, JD_*) cannot be estimated; those with a Vivado report still teach the
csynth -> Vivado ratios (``post_synthesis_rows``, drivers from the manifest). Part and clock come from the csynth
report (several ymls are stale copies), IOType from parameters.h, the multiplier binding from the manifest's notes.
The wa-hls4ml single-layer table (``load_bulk``) is an evaluation family only.

Every case belongs to a **family**: its source repository and kind (dense / conv), from manifest.json.
Validation leaves a whole family out (``leave_one_family_out``), so designs that share a model, an author's
flow or a tool setup never sit on both sides of a split.

Fitting order (each step uses the previous ones; every loss weights a family's designs by min(1, 3/n)):
1. DSP rule: the CSD-digit threshold and minimum input width for constant multipliers (grid search).
2. Timing: adder/multiplier delays, layer-boundary registers, stream parameters and the Vitis delay factor (grid
   search on capped cycle errors).
3. LUT and FF: non-negative least squares of relative error on the Vivado HLS designs; per kind (dense / conv) one
   Vitis HLS LUT and FF factor and extra cycles (one vote per Vitis family and per published Vitis total paired
   with its Vivado twin), shrunk toward 1 by one pseudo-vote.
4. The fitted span per kind (``domain``): designs outside it get wider ranges.
5. Ranges (shipped file only): split-conformal bands from leave-one-family-out residuals, per kind and metric,
   normalised by each design's widening.
6. Post-synthesis: the csynth -> Vivado ratio model (``edgeml.estimate.synthesis``) on every design with both
   reports, and its ranges from leave-one-family-out residuals.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.errors import InputError
from edgeml.estimate import devices, domain, synthesis
from edgeml.estimate.layers import LayerSpec, from_firmware, from_model_graph
from edgeml.estimate.model import (COEFFICIENTS_PATH, DEFAULT_COEFFICIENTS, FF_FEATURES, LUT_FEATURES, TOP_LEVEL,
                                   combine, estimate_layers, feature_totals, rf_envelope)
from edgeml.estimate.reports import read_project_reports
from edgeml.estimate.tools import DEFAULT_UNCERTAINTY, parse_tool

METRICS = ("dsp", "lut", "ff", "bram_18k", "latency_max", "ii")


@dataclass
class Case:
    """One ground-truth design: layer specs, settings and the csynth report."""

    id: str
    family: str  # dense | conv (the kind; ranges and summaries are kept apart by it)
    specs: list[LayerSpec]
    part: str
    clock_ns: float
    io_type: str
    report: dict
    uncertainty: float = 0.125
    tool: str = "vivado-2020.1"
    group: str = ""  # source family: repository + kind; left out together in validation
    modules: dict | None = None  # layer name -> csynth of its module {latency, lut, ff} (flat io_parallel designs)
    vivado: dict | None = None  # post-synthesis utilization (report_utilization), when the case has one
    mul_impl: str | None = None  # `config_op mul -impl` of the build script: 'fabric' forbids DSP multipliers
    category: str = ""  # dense | hgq | conv: how the benchmark summarises it (HGQ designs are dense designs)


def load_cases(ground_truth: Path, quick: bool = False) -> list[Case]:
    """Every ground-truth case we can estimate (firmware present, or K rebuilt unless ``quick``)."""
    cases = []
    for folder in sorted(p for p in Path(ground_truth).iterdir() if p.is_dir()):
        prj = folder / "hls4ml_prj"
        if (prj / "firmware" / "parameters.h").is_file():
            reports = read_project_reports(prj)
            report = reports["csynth"]
            meta = _case_meta(folder, prj, report)
            specs = from_firmware(prj, io_type=meta["io_type"])
            case = _case(folder.name, specs, meta["part"], meta["clock_ns"], meta["io_type"], report)
            case.vivado = reports.get("vivado")
            case.mul_impl = meta["mul_impl"]
            case.modules = _modules(folder / "manifest.json", specs)
        elif folder.name == "K" and not quick:
            case = _k_case(folder)
            meta = {"uncertainty": None}
        else:
            continue
        case.tool = case.report["tool"]
        unc = meta["uncertainty"]
        case.uncertainty = unc if unc is not None else DEFAULT_UNCERTAINTY[parse_tool(case.tool)["kind"]]
        case.group = _group(folder / "manifest.json", case.family)
        case.category = _category(folder / "manifest.json", case.family)
        cases.append(case)
    return cases


BULK_GROUP = "wa-hls4ml:single_layer"


def load_bulk(bulk_dir: Path, limit: int | None = None) -> list[Case]:
    """The wa-hls4ml single-QDense-layer table (``ground-truth-bulk/wa-hls4ml``): one case per successful csynth row.

    Each model is one ``QDense(d_out)`` on ``d_in`` inputs with ``quantized_bits(p, 0, alpha=1)`` kernel and bias,
    converted by hls4ml 0.8.1 with ``granularity='name'`` and the ap_fixed<16,6> default: weights ap_fixed<p,1>
    (QKeras ``integer`` + sign), input, accumulator and result ap_fixed<16,6>; io_parallel, xcu250, 5 ns, Vivado HLS
    2020.1. The kernel is read from the h5 with h5py (no TensorFlow) and quantised as QKeras does:
    clip(round(w * 2^(p-1)), -2^(p-1), 2^(p-1) - 1) / 2^(p-1). Parsed numbers, untrained random weights (README)."""
    import csv

    import h5py

    from edgeml.estimate.layers import Fixed, quantize

    kernels: dict = {}
    cases = []
    for name in ("results_latency.csv", "results_resource.csv"):
        path = Path(bulk_dir) / "results" / name
        if not path.is_file():
            continue
        with path.open() as fh:
            rows = [r for r in csv.DictReader(fh) if r["hls_synth_success"] == "True"]
        seen = set()
        for r in rows:
            key = (r["model_name"], r["rf"], r["strategy"])
            if key in seen:  # dense_128_128_10b has two identical rows
                continue
            seen.add(key)
            bits, d_in, d_out = int(r["prec"]), int(r["d_in"]), int(r["d_out"])
            if r["model_file"] not in kernels:
                with h5py.File(Path(bulk_dir) / r["model_file"], "r") as h5:
                    group = h5["model_weights"][r["model_name"]][r["model_name"]]
                    kernel = np.asarray(group["kernel:0"], dtype=np.float64)
                m = 2.0 ** (bits - 1)
                kernels[r["model_file"]] = np.clip(np.round(kernel * m), -m, m - 1) / m
            w_type = Fixed(bits, 1)
            spec = LayerSpec(name="dense", kind="dense", strategy=r["strategy"].lower(), reuse_factor=int(r["rf"]),
                             n_in=d_in, n_out=d_out, in_type=Fixed(16, 6), result_type=Fixed(16, 6),
                             accum_type=Fixed(16, 6), weight_type=w_type,
                             weights=quantize(kernels[r["model_file"]], w_type))
            report = {"dsp": float(r["DSP_hls"]), "lut": float(r["LUT_hls"]), "ff": float(r["FF_hls"]),
                      "bram_18k": float(r["BRAM_18K_hls"]), "latency_max": float(r["WorstLatency_hls"]),
                      "ii": float(r["IntervalMax_hls"]), "tool": "vivado-2020.1"}
            case = Case(f"{r['model_name']}_rf{r['rf']}_{r['strategy'].lower()}", "dense", [spec],
                        "xcu250-figd2104-2L-e", 5.0, "io_parallel", report, DEFAULT_UNCERTAINTY["vivado"],
                        "vivado-2020.1", BULK_GROUP)
            case.category = "single_layer"
            cases.append(case)
            if limit and len(cases) >= limit:
                return cases
    return cases


def _case_meta(folder: Path, prj: Path, report: dict) -> dict:
    """Part and clock of what was synthesised (the csynth report: several ymls are stale copies), IOType from
    parameters.h, clock uncertainty from the yml, the multiplier binding from the manifest's notes."""
    from edgeml.estimate import firmware_io_type, project_meta

    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").is_file() else {}
    notes = manifest.get("notes") or {}
    try:
        meta = project_meta(prj, report["tool"])
    except InputError:  # no yml (NG_v3): everything from the firmware and the report
        meta = {"part": report.get("part") or "", "clock_ns": report.get("clock_period_ns") or 5.0,
                "io_type": "io_parallel", "tool": report["tool"], "uncertainty": None}
    meta["io_type"] = firmware_io_type(prj) or meta["io_type"]
    meta["part"] = report.get("part") or notes.get("part_project_tcl") or meta["part"]
    meta["clock_ns"] = report.get("clock_period_ns") or notes.get("clock_ns_project_tcl") or meta["clock_ns"]
    meta["mul_impl"] = notes.get("mul_impl")
    return meta


def _category(manifest_path: Path, kind: str) -> str:
    """'hgq' for HGQ designs (manifest tag), else the kind."""
    notes = json.loads(manifest_path.read_text()).get("notes", {}) if manifest_path.is_file() else {}
    return "hgq" if "HGQ" in (notes.get("index_tags") or []) else kind


def _group(manifest_path: Path, kind: str) -> str:
    """Source family of a case: the repository it came from, and its kind."""
    source = json.loads(manifest_path.read_text()).get("source", {}) if manifest_path.is_file() else {}
    return f"{source.get('repo', manifest_path.parent.name)}:{kind}"


def _modules(manifest_path: Path, specs) -> dict | None:
    """Per-layer csynth numbers from the manifest's per-module reports (mapped to layers by the manifest).

    ``latency``/``lut``/``ff``: the layer's outermost module (largest latency); ``block_latency``: its
    multiply-accumulate kernel (hls4ml's dense_latency/dense_resource/dense_wrapper), when it has one.
    """
    if not manifest_path.is_file():
        return None
    modules = json.loads(manifest_path.read_text()).get("reports", {}).get("per_module", [])
    names = {s.name for s in specs}
    out: dict = {}
    for m in modules:
        layer = m.get("layer_guess")
        if layer not in names or m.get("latency_max") is None:
            continue
        entry = out.setdefault(layer, {"latency": -1})
        if m["latency_max"] > entry["latency"]:
            entry.update(latency=m["latency_max"], lut=m["resources"].get("LUT", 0), ff=m["resources"].get("FF", 0))
        if m["module"].startswith("dense_") and not m["module"].startswith("dense_array"):
            entry["block_latency"] = max(entry.get("block_latency", 0), m["latency_max"])
    return out or None


def _case(cid, specs, part, clock, io_type, report) -> Case:
    conv = any(s.kind in ("conv1d", "conv2d") for s in specs)
    return Case(cid, "conv" if conv else "dense", specs, part, clock, io_type, report)


def _k_case(folder: Path) -> Case:
    """K: hls4ml's test_report fixture, Dense(5, relu) on 16 inputs, weights random (seeded) like the test."""
    import os
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import hls4ml
    from tensorflow import keras

    manifest = json.loads((folder / "manifest.json").read_text())
    cfg = manifest["notes"]["config_transcribed"]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(5, input_shape=(16,), activation="relu", name="fc1")])
    hls_cfg = hls4ml.utils.config_from_keras_model(model, granularity="model", default_precision="ap_fixed<16,6>")
    hls_model = hls4ml.converters.convert_from_keras_model(
        model, hls_config=hls_cfg, output_dir=tempfile.mkdtemp(prefix="edgeml_fitK_"), part=cfg["Part"],
        clock_period=cfg["ClockPeriod"], io_type=cfg["IOType"], backend="Vivado")
    reports = read_project_reports(folder / "hls4ml_prj")
    case = _case("K", from_model_graph(hls_model), cfg["Part"], float(cfg["ClockPeriod"]), cfg["IOType"],
                 reports["csynth"])
    case.vivado = reports.get("vivado")
    return case


def predict(case: Case, co: dict) -> tuple[dict, dict]:
    device = devices.lookup(case.part)
    layers = estimate_layers(case.specs, device, case.clock_ns, case.uncertainty, co, case.tool, case.mul_impl)
    return combine(case.specs, layers, case.clock_ns, co, _tool_kind(case)), feature_totals(layers)


def _tool_kind(case: Case) -> str:
    return parse_tool(case.tool)["kind"]


def _rel(pred: float, true: float) -> float:
    return abs(pred - true) / max(true, 1.0)


def family_weights(cases) -> dict:
    """Loss weight per family: a family of many designs (AK_*: 35 variants of six models) weighs as much as about
    three single designs, not 35."""
    size: dict = {}
    for c in cases:
        size[c.group] = size.get(c.group, 0) + 1
    return {g: min(1.0, 3.0 / n) for g, n in size.items()}


def _dsp_loss(cases, co) -> float:
    # weighted mean of capped relative errors: every family counts, one wild case cannot dominate
    w = family_weights(cases)
    return float(sum(w[c.group] * min(1.0, _rel(predict(c, co)[0]["dsp"], c.report["dsp"])) for c in cases)
                 / sum(w[c.group] for c in cases))


def _latency_loss(cases, co) -> float:
    total = 0.0
    weights = family_weights(cases)
    for c in cases:
        loss = 0.0
        device = devices.lookup(c.part)
        layers = estimate_layers(c.specs, device, c.clock_ns, c.uncertainty, co, c.tool, c.mul_impl)
        p = combine(c.specs, layers, c.clock_ns, co, _tool_kind(c), cycles_only=True)
        for est in layers:  # per-layer cycles where csynth reports them per module: direct evidence
            module = (c.modules or {}).get(est.name)
            if module is None:
                continue
            if "block_latency" in module and "block_cycles" in est.info:
                loss += 2 * min(5.0, abs(est.info["block_cycles"] - module["block_latency"]))
            if c.io_type == "io_stream":
                loss += 10 * min(1.0, abs(est.cycles - module["latency"]) / max(1, module["latency"]))
            else:
                loss += 2 * min(5, abs(est.cycles - module["latency"]))
        for k in ("latency_max", "ii"):
            err = abs(p[k] - c.report[k])
            # io_parallel: cycles matter one by one; io_stream: thousands of cycles, judge relatively
            # capped: a design whose cycles the model cannot explain (AK_har: a 561-input layer csynth schedules over
            # 192 cycles) must not pull the shared delays away from the designs it does explain
            loss += min(5.0, err) if c.io_type != "io_stream" else 10 * min(1.0, err / max(1, c.report[k]))
        total += weights[c.group] * loss
    return total


TIMING_GRID = {
    "t_mul": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
    "t_add": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.4, 1.6, 2.0],
    "t_table": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "delay_7series": [1.6, 2.0, 2.5, 3.0, 3.5],
    "overhead_a": [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8],
    "overhead_b": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
    "rf_levels": [0.0, 0.25, 0.5, 1.0],
    "pixel_overhead": [1, 2, 3, 4, 5],
    "stream_fill": [0.5, 1.0, 1.5, 2.0],
    "delay_vitis": [1.0, 1.25, 1.5, 1.75, 2.0, 2.5],
}


def fit(cases: list[Case]) -> dict:
    """Coefficients fitted on ``cases`` (no ranges)."""
    co = copy.deepcopy(DEFAULT_COEFFICIENTS)
    co["ranges"] = {}
    best = None
    for csd, bits in itertools.product((1, 2, 3), (6, 8, 10, 12)):
        co["dsp"].update(csd_max_lut=csd, min_input_bits=bits)
        loss = _dsp_loss(cases, co)
        prior = abs(csd - 2) + abs(bits - 10) / 2  # ties: the physically expected rule
        if best is None or (loss, prior) < best[:2]:
            best = (loss, prior, csd, bits)
    co["dsp"].update(csd_max_lut=best[2], min_input_bits=best[3])
    # multiplier and adder delays trade off against each other: search them jointly first. Registers only
    # bound delays from below, so among equally good pairs take the fastest logic (HLS chains as much as
    # the clock allows)
    scores = []
    for t_mul, t_add, slow in itertools.product(TIMING_GRID["t_mul"], TIMING_GRID["t_add"],
                                                TIMING_GRID["delay_7series"]):
        co["timing"].update(t_mul=t_mul, t_add=t_add, delay_7series=slow)
        scores.append((_latency_loss(cases, co), t_mul + 4 * t_add, slow, t_mul, t_add))
    *_, co["timing"]["delay_7series"], co["timing"]["t_mul"], co["timing"]["t_add"] = min(scores)
    for _ in range(3):  # coordinate descent over the timing grid
        for key, grid in TIMING_GRID.items():
            if key in ("t_mul", "t_add", "delay_7series"):
                continue
            scores = []
            for value in grid:
                co["timing"][key] = value
                scores.append((_latency_loss(cases, co), abs(value - DEFAULT_COEFFICIENTS["timing"][key]), value))
            co["timing"][key] = min(scores)[2]  # ties: the value nearest the physical default
    co["tools"] = copy.deepcopy(DEFAULT_COEFFICIENTS["tools"])
    # LUT/FF coefficients describe what Vivado HLS builds, fitted on the Vivado HLS designs; the Vitis factors are
    # then Vitis's evidence over that model. (Fitting both on everything lets a large Vitis family trade a factor
    # against the shared coefficients: with the 35 AK designs in, Vitis FF x2.4 and the Vivado designs' FF halved.)
    vivado = [c for c in cases if _tool_kind(c) == "vivado"] or cases
    weight = {g: math.sqrt(w) for g, w in family_weights(vivado).items()}  # least squares: the root of the weight
    for metric, names in (("lut", LUT_FEATURES), ("ff", FF_FEATURES)):
        rows = [(x, y, weight[c.group]) for c in vivado for x, y in _rows(c, co, metric, names)]
        co[metric] = _nnls(np.array([r[0] for r in rows], dtype=float), np.array([r[1] for r in rows], dtype=float),
                           names, metric, np.array([r[2] for r in rows], dtype=float))
    co["tools"]["vitis"] = _tool_factors(cases, co)
    co["domain"] = {kind: domain.span([case_traits(c) for c in cases if c.family == kind]) for kind in ("dense", "conv")}
    return co


def case_traits(case: Case) -> dict:
    return domain.traits(case.specs, _tool_kind(case), devices.lookup(case.part)["family"], case.io_type)


def shown(case: Case, co: dict) -> tuple[dict, float, list[str], dict | None]:
    """What the estimator shows for a case: the totals, the range widening and its reasons, the RF envelope."""
    reasons = domain.outside(case_traits(case), co.get("domain", {}).get(case.family, {}))
    envelope = rf_envelope(case.specs, devices.lookup(case.part), case.clock_ns, case.uncertainty, co, case.tool,
                           case.mul_impl)
    return predict(case, co)[0], domain.widening(reasons), reasons, envelope


# Published Vitis HLS totals of the hls4ml tutorial jet tagger (Vitis HLS 2024.1, xcu250, 5 ns, hls4ml's Vitis
# default 27% clock uncertainty; shared/README.md), paired with the ground-truth Vivado HLS 2019.2 case of the same
# architecture and compression. Similar, not identical, trained models: only the Vitis/Vivado ratios of a pair
# are used, never the totals themselves. The 75%-pruned float point has no Vivado counterpart and is not used.
PUBLISHED_VITIS_DENSE = (
    {"like": "A", "tool": "vitis-2024.1", "uncertainty": 0.27, "what": "float <16,6>, RF 1",
     "latency_max": 14, "dsp": 1502, "lut": 101800, "ff": 9400},
    {"like": "D", "tool": "vitis-2024.1", "uncertainty": 0.27, "what": "QKeras 6-bit, 75% pruned, RF 1",
     "latency_max": 12, "dsp": 34, "lut": 42200, "ff": 3200},
)


def _as_tool(case: Case, tool: str, uncertainty: float) -> Case:
    return dataclasses.replace(case, tool=tool, uncertainty=uncertainty)


def tool_evidence(cases: list[Case], co: dict) -> dict:
    """Per kind, the log Vitis/Vivado ratios (LUT, FF) and extra cycles the training data supports.

    Vitis designs in ``cases``: report over the Vivado-style prediction (tool factors 1). Published Vitis points
    whose Vivado twin is in ``cases`` (dense): the published/Vivado report ratio divided by the ratio the model
    already predicts between the two tools (deeper pipelining at 27% clock uncertainty), so model errors that the
    twins share cancel.
    """
    base = _fill_defaults(copy.deepcopy(co))
    base["tools"] = copy.deepcopy(DEFAULT_COEFFICIENTS["tools"])
    out = {kind: {"lut": [], "ff": [], "cycles": []} for kind in ("dense", "conv")}
    for c in cases:
        if _tool_kind(c) != "vitis":
            continue
        pred = predict(c, base)[0]
        for metric in ("lut", "ff"):
            out[c.family][metric].append((c.group, math.log(max(1.0, c.report[metric]) / max(1.0, pred[metric]))))
        if c.io_type == "io_parallel":
            out[c.family]["cycles"].append((c.group, c.report["latency_max"] - pred["latency_max"]))
    by_id = {c.id: c for c in cases}
    for point in PUBLISHED_VITIS_DENSE:
        twin = by_id.get(point["like"])
        if twin is None or _tool_kind(twin) != "vivado":
            continue
        vivado = predict(twin, base)[0]
        vitis = predict(_as_tool(twin, point["tool"], point["uncertainty"]), base)[0]
        label = f"published:{point['like']}"
        for metric in ("lut", "ff"):
            out["dense"][metric].append(
                (label, math.log((point[metric] / twin.report[metric]) / (vitis[metric] / vivado[metric]))))
        out["dense"]["cycles"].append((label, (point["latency_max"] - twin.report["latency_max"])
                                       - (vitis["latency_max"] - vivado["latency_max"])))
    return out


def _tool_factors(cases: list[Case], co: dict) -> dict:
    """Vitis / Vivado LUT and FF factors per kind: each family's (or published pair's) mean log ratio is one vote
    (``tool_evidence``); the factor is the median of the votes and one pseudo-vote for 1, so neither a single family
    nor one family's model error (IRIS's FF x8.7, HGQ_L53's x0.6) sets it. Extra io_parallel cycles: the median
    vote (AK_har/mnist's unexplained +180/+40 cycles must not shift every Vitis design)."""
    out = {}
    for kind, ev in tool_evidence(cases, co).items():
        votes = {m: _votes(ev[m]) for m in ("lut", "ff", "cycles")}
        entry = {m: round(math.exp(float(np.median(votes[m] + [0.0]))), 4) for m in ("lut", "ff")}
        entry["cycles"] = int(round(float(np.median(votes["cycles"])))) if votes["cycles"] else 0
        entry["evidence"] = len(votes["lut"])
        out[kind] = entry
    return out


def _votes(labelled: list[tuple[str, float]]) -> list[float]:
    """One mean per label (family or published pair), in first-seen order."""
    groups: dict = {}
    for label, value in labelled:
        groups.setdefault(label, []).append(value)
    return [sum(v) / len(v) for v in groups.values()]


def _rows(case: Case, co: dict, metric: str, names) -> list[tuple[list[float], float]]:
    """Regression rows of one case: its total, or (flat designs) one row per module plus the top-level rest.

    Module rows pin each coefficient to the layers it describes; the rest row holds what the top function
    adds (io_parallel: the registers between layers, feature ``par.ff_io``).
    """
    layers = estimate_layers(case.specs, devices.lookup(case.part), case.clock_ns, case.uncertainty, co,
                             case.tool, case.mul_impl)
    if not case.modules:  # no per-layer csynth: the total is the only evidence
        totals = feature_totals(layers)
        return [([totals[n] for n in names], float(case.report[metric]))]
    rows, covered, rest = [], 0.0, dict.fromkeys(names, 0.0)
    for est in layers:
        module = case.modules.get(est.name)
        feats = {n: est.features.get(n, 0.0) for n in names}
        for top in TOP_LEVEL:  # the top function owns the boundary registers and the FIFOs
            if top in feats:
                rest[top] += feats[top]
                feats[top] = 0.0
        if module is None:
            for n in names:
                rest[n] += feats[n]
            continue
        rows.append(([feats[n] for n in names], float(module[metric])))
        covered += module[metric]
    rows.append(([rest[n] for n in names], max(0.0, float(case.report[metric]) - covered)))
    return rows


PRIOR_WEIGHT = 0.5  # pull of each coefficient's physical default, in units of one design's row

# Coefficients read off csynth's per-instance tables instead of fitted (the fit would trade them against features
# the same designs exercise), kept at their defaults: the dense_resource rewind multiplexers on every input bit (O6
# and O8 dense_wrapper "Multiplexer" rows: 1404 and 1428 LUT for 32 16-bit inputs, 2.75 per bit) and a 2-to-1
# select (csynth prices a w-bit select at w LUT). The accumulator crossbar of dense_resource at RF >= 3 n_in is counted
# from its multiplexers (an N-to-1 multiplexer bit is N/4 LUT6): the ground-truth layers that have one hold it as a
# small share of their module (PK, O8 convs: one multiplier), so a fit would set it by the other features' residue.
MEASURED = {**{n: DEFAULT_COEFFICIENTS["lut"][n] for n in ("mac.lut_rin", "mac.lut_rchain", "mac.lut_xbar")},
            # Vitis HLS's packed-word stream FIFOs, read off Q's csynth FIFO table (its only io_stream Vitis design)
            "str.ff_wfifo": DEFAULT_COEFFICIENTS["ff"]["str.ff_wfifo"],
            # fabric products of element-wise layers, read off the AK_*_lut / AK_*_dsp softmax pairs (only AK forces
            # fabric, so a fit would learn it from one family)
            **{n: DEFAULT_COEFFICIENTS["lut"][n] for n in ("par.lut_fmul", "str.lut_fmul")}}


def _nnls(X: np.ndarray, y: np.ndarray, names, metric: str, sample_weight: np.ndarray | None = None) -> dict:
    """Non-negative least squares of relative error, each coefficient pulled toward its physical default.

    The pull is one pseudo-row per feature, as heavy as ``PRIOR_WEIGHT`` of the training row that uses the
    feature most: a coefficient that only one family exercises cannot swing far on that family alone.
    """
    from scipy.optimize import nnls

    # relative error (small designs count as much as large), floored so that a module csynth reports as empty (D: the
    # dense modules of a design whose layers are all combinational) cannot outweigh the rows with registers
    w = 1.0 / np.maximum(y, 1000.0)
    fixed = np.array([n in MEASURED for n in names])
    if fixed.any():  # counted from csynth's own per-instance prices, not fitted: their share leaves the target
        y = y - X[:, fixed] @ np.array([MEASURED[n] for n in np.array(names)[fixed]])
        X = np.where(fixed[None, :], 0.0, X)
    keep = X.any(axis=0)  # a feature no training case exercises keeps its physical default
    if sample_weight is not None:
        w = w * sample_weight
    coef = np.zeros(X.shape[1])
    if keep.any():
        A, b = X[:, keep] * w[:, None], y * w
        prior = np.array([DEFAULT_COEFFICIENTS[metric][n] for n, k in zip(names, keep) if k])
        scale = PRIOR_WEIGHT * np.abs(A).max(axis=0)
        A = np.vstack([A, np.diag(scale)])
        b = np.concatenate([b, scale * prior])
        coef[keep] = nnls(A, b)[0]
    return {n: (MEASURED[n] if n in MEASURED else round(float(c), 5) if k else None)
            for n, c, k in zip(names, coef, keep)}


def _fill_defaults(co: dict) -> dict:
    for metric in ("lut", "ff"):
        for k, v in list(co[metric].items()):
            if v is None:
                co[metric][k] = DEFAULT_COEFFICIENTS[metric][k]
    return co


def leave_one_family_out(cases: list[Case], nested_ranges: bool = True) -> list[dict]:
    """For each case: the prediction of coefficients fitted without its whole family, and its report.

    With ``nested_ranges`` each held-out family's ranges are calibrated on the other families' residuals only (from
    this same leave-one-family-out pass, whose fits for those families did include the held-out one: one refit per
    family instead of one per pair, ~17 s each on 64 designs), so ``in_range`` never uses the family's own residuals.
    """
    rows = []
    shown_by_id = {}
    for group in dict.fromkeys(c.group for c in cases):
        train = [c for c in cases if c.group != group]
        co = _fill_defaults(fit(train))
        for case in (c for c in cases if c.group == group):
            pred, widen, reasons, envelope = shown(case, co)
            shown_by_id[case.id] = (widen, envelope)
            rows.append({"id": case.id, "family": case.family, "category": case.category or case.family,
                         "group": group, "tool": case.tool, "estimate": pred,
                         "report": {k: case.report.get(k) for k in METRICS}, "range_widening": widen,
                         "outside_fitted": reasons, "coefficients": co})
    if nested_ranges:
        for group in dict.fromkeys(r["group"] for r in rows):
            ranges = ranges_from([r for r in rows if r["group"] != group])
            for row in (r for r in rows if r["group"] == group):
                widen, envelope = shown_by_id[row["id"]]
                row["in_range"] = in_range(row["estimate"], row["report"], ranges.get(row["family"], {}), widen,
                                           envelope)
    return rows


def in_range(pred: dict, report: dict, ranges: dict, widen: float = 1.0, envelope: dict | None = None) -> dict:
    """Per metric: does the report fall in the range the estimator would show for ``pred``?"""
    from edgeml.estimate import _with_ranges

    values = dict(pred)
    values.setdefault("uram", 0)
    values.setdefault("latency_min", pred["latency_max"])
    bands = _with_ranges(values, ranges, widen, envelope)
    return {k: bool(bands[f"{k}_range"][0] <= report[k] <= bands[f"{k}_range"][1])
            for k in METRICS if report.get(k) is not None}


CATEGORIES = ("dense", "hgq", "conv", "single_layer")


def error_summary(rows: list[dict], by: str = "category", metrics=METRICS) -> dict:
    """Median and 90th percentile absolute relative error (latency also in cycles) per metric and category."""
    out = {}
    for family in CATEGORIES:
        sub = [r for r in rows if (r.get(by) or r.get("family")) == family]
        if not sub:
            continue
        fam = {"cases": [r["id"] for r in sub]}
        for k in metrics:
            have = [r for r in sub if r["report"].get(k) is not None and (r.get("estimate") or {}).get(k) is not None]
            rel = [abs(r["estimate"][k] - r["report"][k]) / r["report"][k] for r in have if r["report"][k]]
            entry = {"median_abs_rel_error": _q(rel, 50), "p90_abs_rel_error": _q(rel, 90), "designs": len(have)}
            if k in ("latency_max", "ii"):
                cyc = [abs(r["estimate"][k] - r["report"][k]) for r in have]
                entry.update(median_abs_error_cycles=_q(cyc, 50), p90_abs_error_cycles=_q(cyc, 90))
            fam[k] = entry
        out[family] = fam
    return out


def _q(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


COVERAGE = 0.8  # the ranges are calibrated to hold the csynth value for 80% of unseen designs


def _conformal(scores: list[float], coverage: float = COVERAGE) -> float:
    """Split-conformal quantile: the ceil((n+1) * coverage)-th smallest of n scores. When that rank exceeds n (too
    few designs for the guarantee, which would need an unbounded band) the largest score times ``SMALL_N_STRETCH``."""
    ordered = sorted(scores)
    k = math.ceil((len(ordered) + 1) * coverage)
    return ordered[-1] * SMALL_N_STRETCH if k > len(ordered) else ordered[k - 1]


SMALL_N_STRETCH = 1.5


def _family_quantile(scores: list[float], groups: list[str], coverage: float = COVERAGE) -> float:
    """The ``coverage`` quantile of the scores with each family weighing one in total: the smallest score whose
    families' cumulative weight reaches ``coverage`` of all. A new design comes from a family the fit has not seen;
    counted per design, one large family decides the band (the 35 AK_* designs, whose csynth DSP the estimate
    gives exactly, would make the dense DSP band zero wide)."""
    size = Counter(groups)
    ordered = sorted(zip(scores, groups))
    total, need = 0.0, coverage * len(size)
    for score, group in ordered:
        total += 1.0 / size[group]
        if total >= need - 1e-9:
            return score
    return ordered[-1][0]


def ranges_from(rows: list[dict]) -> dict:
    """Ranges per kind and metric from out-of-sample residuals: their ``COVERAGE`` quantile, each family weighing one.

    Resources and conv cycles: a symmetric band in log((report + 1) / (estimate + 1)). Dense latency and II:
    +-cycles (at least 1). Each residual is divided by the widening its design got for lying outside the fitted
    span (``domain``), so the band is in units of the un-widened width (normalised conformal scores).
    """
    out: dict = {"coverage": COVERAGE}
    for family in ("dense", "conv"):
        sub = [r for r in rows if r["family"] == family]
        if not sub:
            continue
        fam = {}
        for k in ("dsp", "lut", "ff", "bram_18k", "latency_max", "ii"):
            pairs = [(r["estimate"][k], r["report"][k], r.get("range_widening", 1.0), r.get("group", r["id"]))
                     for r in sub if r["report"].get(k) is not None]
            groups = [g for *_, g in pairs]
            if family == "dense" and k in ("latency_max", "ii"):
                q = max(1.0, round(_family_quantile([abs(rep - est) / w for est, rep, w, _ in pairs], groups), 3))
                fam[k] = {"cycles": [-q, q]}
            else:
                q = _family_quantile([abs(math.log((rep + 1) / (est + 1))) / w for est, rep, w, _ in pairs], groups)
                fam[k] = {"ratio": [round(math.exp(-q), 4), round(math.exp(q), 4)]}
        fam["latency_min"] = fam["latency_max"]
        out[family] = fam
    return out


# ----------------------------------------------------------------------------- post-synthesis (Vivado) ratios

def fabric_lut_per_dsp(case: Case, co: dict) -> float:
    """LUT one DSP-bound product of ``case`` would cost in fabric (the estimate's shift-add / LUT-multiplier price)."""
    layers = estimate_layers(case.specs, devices.lookup(case.part), case.clock_ns, case.uncertainty, co,
                             case.tool, case.mul_impl)
    dsp = sum(e.dsp for e in layers)
    bits = sum(e.info.get("fabric_add_bits", 0.0) for e in layers)
    return bits * co["lut"].get("mac.lut_add", 1.5) / dsp if dsp else 0.0


def _declared_bits(text: str) -> float:
    """Weight bits from a manifest's precision note: 'W ap_fixed<4,1> ...' -> 4, 'W6/A6 ...' -> 6; else 16."""
    import re

    m = re.search(r"W\s*ap_u?fixed<\s*(\d+)", text or "") or re.search(r"\bW(\d+)\b", text or "")
    return float(m.group(1)) if m else 16.0


def post_synthesis_rows(ground_truth: Path, cases: list[Case], co: dict) -> list[dict]:
    """Every ground-truth design with both a csynth and a Vivado report: the loaded cases (drivers from their specs)
    and the report-only ones (drivers from the manifest: declared weight bits, strategy, IOType, part, tool)."""
    rows = []
    loaded = {c.id: c for c in cases}
    for folder in sorted(p for p in Path(ground_truth).iterdir() if p.is_dir()):
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            continue
        manifest = json.loads(manifest_path.read_text())
        summary = manifest.get("summary") or {}
        case = loaded.get(folder.name)
        if case is not None and case.vivado:
            device = devices.lookup(case.part)
            csynth = {k: case.report.get(k) for k in ("dsp", "lut", "ff", "bram_18k")}
            values = synthesis.spec_drivers(case.specs, device, _tool_kind(case))
            vivado = {k: case.vivado.get(k) for k in ("dsp", "lut", "ff", "bram_18k")}
            per_dsp = fabric_lut_per_dsp(case, co)
            rows.append({"id": case.id, "group": case.group, "category": case.category, "part": case.part,
                         "csynth": csynth, "vivado": vivado, "drivers": values, "fabric_lut_per_dsp": per_dsp,
                         "estimated": True})
            continue
        viv, cs = summary.get("vivado_synth"), summary.get("csynth")
        if case is not None or not viv or not cs or folder.name in loaded:
            continue
        part = summary.get("part") or ""
        device = devices.lookup(part)
        notes = manifest.get("notes") or {}
        text = notes.get("precision_text") or " ".join(summary.get("precisions_in_firmware", {}).get("weight") or [])
        strategy = str(summary.get("strategy_default") or (manifest.get("hls4ml_config") or {}).get("Strategy") or "")
        kind = "conv" if "cnn" in folder.name.lower() or "conv" in json.dumps(summary.get("architecture", [])).lower() \
            else "dense"
        tool = "vitis" if "vitis" in str(summary.get("hls_tool", "")).lower() else "vivado"
        io = str(summary.get("io_type") or notes.get("io_type") or ("io_stream" if kind == "conv" else "io_parallel"))
        values = synthesis.drivers(_declared_bits(text), strategy.lower() == "resource", io == "io_stream",
                                   device["family"] == "7series", tool == "vitis")
        csynth = {"dsp": cs.get("DSP", cs.get("DSP48E")), "lut": cs.get("LUT"), "ff": cs.get("FF"),
                  "bram_18k": cs.get("BRAM_18K")}
        vivado = {"dsp": viv.get("DSP"), "lut": viv.get("LUT"), "ff": viv.get("FF"),
                  "bram_18k": 2 * viv["BRAM_tile"] if viv.get("BRAM_tile") is not None else None}
        rows.append({"id": folder.name, "group": _group(manifest_path, kind), "category": kind, "part": part,
                     "csynth": csynth, "vivado": vivado, "drivers": values, "fabric_lut_per_dsp": 60.0,
                     "estimated": False})
    for r in rows:
        device = devices.lookup(r["part"])
        cap = device.get("dsp") if device.get("known") else None
        moved = max(0.0, (r["csynth"]["dsp"] or 0) - cap) if cap else 0.0
        r["moved_lut"] = moved * r["fabric_lut_per_dsp"]
    return rows


def post_synthesis_lofo(post_rows: list[dict], csynth_rows: list[dict]) -> list[dict]:
    """Leave-one-family-out post-synthesis answers: the ratio model refitted without the family, applied to the
    family's leave-one-family-out csynth *estimate* (``estimate``; designs the estimator can read) and, to separate
    the two error sources, to its *reported* csynth (``from_reported_csynth``; every design with both reports)."""
    by_id = {r["id"]: r for r in csynth_rows}
    out = []
    for group in dict.fromkeys(r["group"] for r in post_rows):
        coefficients = synthesis.fit([r for r in post_rows if r["group"] != group])
        for r in (x for x in post_rows if x["group"] == group):
            device = devices.lookup(r["part"])
            row = {"id": r["id"], "group": group, "category": r["category"], "report": r["vivado"],
                   "from_reported_csynth": _post(synthesis.predict(r["csynth"], r["fabric_lut_per_dsp"], device,
                                                                   r["drivers"], coefficients))}
            est = by_id.get(r["id"])
            if est is not None:
                per_dsp = r["fabric_lut_per_dsp"]
                row["estimate"] = _post(synthesis.predict(est["estimate"], per_dsp, device, r["drivers"], coefficients))
            out.append(row)
    return out


def _post(pred: dict) -> dict:
    return {k: round(pred[k], 1) for k in ("dsp", "lut", "ff", "bram_18k")}


def post_synthesis_ranges(rows: list[dict]) -> dict:
    """Split-conformal 80% bands of post-synthesis answers (ratio on value + 1), pooled over kinds: few designs."""
    out = {}
    for k in ("dsp", "lut", "ff", "bram_18k"):
        scores = [abs(math.log((r["report"][k] + 1) / (r["estimate"][k] + 1))) for r in rows
                  if "estimate" in r and r["report"].get(k) is not None]
        if scores:
            q = _conformal(scores)
            out[k] = [round(math.exp(-q), 4), round(math.exp(q), 4)]
    return out


def post_in_range(row: dict, ranges: dict) -> dict:
    out = {}
    for k, (lo, hi) in ranges.items():
        if "estimate" in row and row["report"].get(k) is not None:
            v = row["estimate"][k]
            out[k] = bool((v + 1) * lo - 1 <= row["report"][k] <= (v + 1) * hi - 1)
    return out


def main(argv=None) -> None:
    from edgeml.paths import shared_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ground-truth", type=Path, default=None, help="default: <shared>/ground-truth")
    parser.add_argument("--out", type=Path, default=COEFFICIENTS_PATH)
    args = parser.parse_args(argv)
    gt = args.ground_truth or (shared_dir() / "ground-truth" if shared_dir() else None)
    if gt is None or not gt.is_dir():
        raise SystemExit("no ground truth found: pass --ground-truth or set EDGEML_SHARED")
    cases = load_cases(gt)
    co = _fill_defaults(fit(cases))
    rows = leave_one_family_out(cases, nested_ranges=False)
    for r in rows:
        r.pop("coefficients", None)
    co["ranges"] = ranges_from(rows)
    post_rows = post_synthesis_rows(gt, cases, co)
    co["post_synthesis"] = synthesis.fit(post_rows)
    post_lofo = post_synthesis_lofo(post_rows, rows)
    co["post_synthesis"]["ranges"] = post_synthesis_ranges(post_lofo)
    co["fitted_on"] = {c.id: c.group for c in cases}
    co["leave_one_family_out"] = error_summary(rows)
    co["leave_one_family_out_post_synthesis"] = error_summary(post_lofo, metrics=("dsp", "lut", "ff", "bram_18k"))
    from edgeml.io import write_json

    write_json(args.out, co)
    print(json.dumps(co["leave_one_family_out"], indent=1))


if __name__ == "__main__":
    main()
