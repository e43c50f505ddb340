"""Resource and latency estimates of an hls4ml design before synthesis, in well under a second.

``estimate(target)`` accepts an hls4ml ModelGraph or an hls4ml project directory (``hls4ml_config.yml`` +
``firmware/``). A Keras/QKeras model needs a ``builder`` that turns it into a ModelGraph (the CLI passes
``edgeml.convert.build_hls_model``): this package imports nothing from the converter. Two answers: what HLS
C-synthesis (csynth) reports (``total``) and the Vivado post-synthesis utilization (``post_synthesis``,
``edgeml.estimate.synthesis``); ``basis`` picks the one that decides ``fits`` and ``cost``. The HLS tool (Vivado
HLS / Vitis HLS and version) is an input, shown in every result. A local calibration
(``edgeml.estimate.calibration``) is applied unless ``calibration=False``. Output layout: docs/estimate.md.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from edgeml.errors import InputError

from edgeml.estimate import calibration as calib
from edgeml.estimate import devices, domain, synthesis
from edgeml.estimate.layers import LayerSpec, from_firmware, from_model_graph
from edgeml.estimate.model import combine, estimate_layers, load_coefficients, logic_delay, rf_envelope, spec_kind
from edgeml.estimate.reports import read_project_reports
from edgeml.estimate.tools import DEFAULT_UNCERTAINTY, parse_tool, tool_from_backend

__all__ = ["estimate", "estimate_project", "estimate_specs", "compare", "project_meta", "design_kind", "METRICS"]

METRICS = ("dsp", "lut", "ff", "bram_18k", "uram", "latency_min", "latency_max", "ii")
POST_SYNTHESIS_METRICS = ("dsp", "lut", "ff", "bram_18k")
BASES = ("post_synthesis", "csynth")  # which answer decides fits and cost
COMPARED = ("dsp", "lut", "ff", "bram_18k", "latency_max", "ii")
CYCLE_METRICS = ("latency_min", "latency_max", "ii")


def estimate(target, hls: dict | None = None, coefficients: dict | None = None, tool: str | None = None,
             calibration: bool = True, builder=None, basis: str = "post_synthesis") -> dict:
    """Estimate csynth and post-synthesis resources and latency of ``target``; see the module docstring.

    ``builder(keras_model, hls) -> ModelGraph`` converts Keras/QKeras models (object or .h5/.keras path).
    ``basis`` (``post_synthesis`` | ``csynth``): which answer decides ``fits`` and ``cost``.
    """
    if _is_model_graph(target):
        meta = _graph_meta(target, tool)
        return estimate_specs(from_model_graph(target), **meta, coefficients=coefficients, calibration=calibration,
                              basis=basis)
    if isinstance(target, (str, Path)):
        path = Path(target)
        if path.is_dir():
            return estimate_project(path, coefficients=coefficients, tool=tool, calibration=calibration, basis=basis)
        if not path.exists():
            raise InputError(f"{path}: no such file or directory; give a .h5/.keras model or an hls4ml project folder")
        if builder is None:
            raise InputError(f"{path}: a Keras model must be converted first; pass builder= (e.g. "
                             "edgeml.convert.build_hls_model) or run 'edgeml estimate MODEL'")
        from edgeml.modelio import load_model

        target = load_model(path)
    if hasattr(target, "layers") and hasattr(target, "predict"):
        if builder is None:
            raise InputError("a Keras model must be converted first: estimate(edgeml.convert.build_hls_model(model, "
                             "hls, out_dir)) or pass builder=")
        return estimate(builder(target, hls or {}), coefficients=coefficients, tool=tool, calibration=calibration,
                        basis=basis)
    raise InputError(f"cannot estimate a {type(target).__name__}; give an hls4ml ModelGraph, a Keras model or a project folder")


def estimate_project(project_dir: Path, coefficients: dict | None = None, tool: str | None = None,
                     calibration: bool = True, basis: str = "post_synthesis") -> dict:
    """Estimate from what an hls4ml project folder holds, and compare with its reports if it has any.

    The tool is ``tool``, else the one named in the folder's csynth report, else the one the project's
    hls4ml backend drives.
    """
    meta = project_meta(project_dir)
    reports = read_project_reports(project_dir)
    meta["tool"] = tool or ((reports or {}).get("csynth") or {}).get("tool") or meta["tool"]
    meta["io_type"] = firmware_io_type(project_dir) or meta["io_type"]
    specs = from_firmware(project_dir, io_type=meta["io_type"])
    result = estimate_specs(specs, **meta, coefficients=coefficients, calibration=calibration, basis=basis,
                            mul_impl=mul_impl(project_dir))
    result["source"] = {"kind": "hls4ml project", "path": str(project_dir)}
    if reports:
        result["report"] = reports
        if "csynth" in reports:
            result["comparison"] = compare(result["total"], reports["csynth"])
        if "vivado" in reports:
            result["post_synthesis_comparison"] = compare(result["post_synthesis"], reports["vivado"],
                                                          POST_SYNTHESIS_METRICS)
    return result


def design_kind(specs: list[LayerSpec], io_type: str) -> str:
    """'conv' for designs with a convolution (their ranges, tool factors and calibration are kept apart), else
    'dense', whatever the IOType: the same split as the ground-truth families the ranges are calibrated on."""
    return spec_kind(specs)


def estimate_specs(specs: list[LayerSpec], part: str, clock_ns: float, io_type: str = "io_parallel",
                   uncertainty: float | None = None, coefficients: dict | None = None, tool: str | None = None,
                   calibration: bool = True, basis: str = "post_synthesis", mul_impl: str | None = None) -> dict:
    """The estimate for layer specs on ``part`` at ``clock_ns``: totals, per layer, part usage, warnings.

    ``mul_impl``: the build script's ``config_op mul -impl`` (``dsp`` / ``fabric``), None when unset.
    """
    if basis not in BASES:
        raise InputError(f"estimate basis {basis!r} is not one of {', '.join(BASES)}")
    co = coefficients or load_coefficients()
    tool_info = parse_tool(tool)
    if uncertainty is None:
        uncertainty = DEFAULT_UNCERTAINTY[tool_info["kind"]]
    device = devices.lookup(part)
    layers = estimate_layers(specs, device, clock_ns, uncertainty, co, tool_info["name"], mul_impl)
    total = combine(specs, layers, clock_ns, co, tool_info["kind"])
    kind = design_kind(specs, io_type)
    ranges = co.get("ranges", {}).get(kind, {})
    reasons = domain.outside(domain.traits(specs, tool_info["kind"], device["family"], io_type),
                             co.get("domain", {}).get(kind, {}))
    widen = domain.widening(reasons)
    envelope = rf_envelope(specs, device, clock_ns, uncertainty, co, tool_info["name"], mul_impl)
    out_total = _with_ranges(total, ranges, widen, envelope)
    warnings: list[str] = []
    if reasons:
        warnings.append(f"unlike every fitted {kind} design ({'; '.join(reasons)}): likely ranges widened x{widen:g}")
    applied = None
    if calibration:
        stored, problem = calib.load()
        if problem:
            warnings.append(problem)
        applied = calib.apply(out_total, kind, stored)
    out_total["latency_ns"] = round(out_total["latency_max"] * clock_ns, 3)
    lat_lo, lat_hi = out_total["latency_max_range"]
    out_total["latency_ns_range"] = [round(lat_lo * clock_ns, 3), round(lat_hi * clock_ns, 3)]
    out_total["clock_ns"] = clock_ns
    post = post_synthesis(specs, layers, out_total, device, tool_info, co)
    part_info = {k: device.get(k) for k in ("part", "device", "known", "family")}
    if device["known"]:
        part_info["capacity"] = {k: device[k] for k in devices.RESOURCES}
        for name, values in (("csynth", out_total), ("post_synthesis", post)):
            fits = True
            for k in devices.RESOURCES:
                cap = device[k]
                pct = 100.0 * values[k] / cap if cap else (0.0 if values[k] == 0 else math.inf)
                values[f"{k}_pct"] = round(pct, 2) if math.isfinite(pct) else None
                if values[k] > cap:
                    fits = False
                    if name == basis:
                        warnings.append(f"{k} {values[k]:.0f} ({name}) exceeds the {device['device']} capacity {cap} "
                                        f"({pct:.0f}%)")
                elif pct > 80 and name == basis:
                    warnings.append(f"{k} at {pct:.0f}% of {device['device']} ({name}): placement and timing get hard "
                                    "above ~80%")
            values["fits_csynth" if name == "csynth" else "fits"] = fits
        # "fits the part" is decided on the basis; the csynth answer's own verdict stays beside it
        out_total["fits"] = post["fits"] if basis == "post_synthesis" else out_total["fits_csynth"]
    else:
        out_total["fits"] = post["fits"] = None
        warnings.append(f"part {part!r} is not in the device table ({', '.join(devices.DEVICES)}): no percentages")
    timing_warnings, risk = _timing_check(specs, layers, device, clock_ns, uncertainty, co)
    warnings += timing_warnings
    da_layers = [e.name for e in layers if e.info.get("priced_by") == "da4ml"]
    notes = []
    if da_layers:
        notes.append(f"{', '.join(da_layers)}: Strategy distributed_arithmetic, priced from da4ml's own solution "
                     "(LUT = its adder cost, FF = registers at the pipeline cuts, no DSP, latency = adder depth)")
    return {
        "predicts": f"two answers: 'total' = HLS C-synthesis (csynth) estimates for {tool_info['name']}; "
                    f"'post_synthesis' = Vivado post-synthesis utilization for {post['tool']}; "
                    f"fits/cost use {basis}",
        "kind": kind,
        "basis": basis,
        "total": out_total,
        "post_synthesis": post,
        "cost": cost_values(out_total, post, basis),
        "layers": [_layer_dict(spec, est, ranges, widen) for spec, est in zip(specs, layers)],
        "part": part_info,
        "settings": {"tool": tool_info["name"], "io_type": io_type, "clock_ns": clock_ns,
                     "clock_uncertainty": uncertainty,
                     "strategies": sorted({s.strategy for s in specs if s.kind in ("dense", "conv1d", "conv2d")}),
                     "reuse_factors": sorted({s.reuse_factor for s in specs if s.kind in ("dense", "conv1d", "conv2d")})},
        "ranges_coverage": co.get("ranges", {}).get("coverage"),
        "extrapolation": {"reasons": reasons, "range_widening": widen},
        "calibration": applied,
        "timing_risk": risk,
        "warnings": warnings,
        "notes": notes,
    }


def post_synthesis(specs, layers, total: dict, device: dict, tool_info: dict, co: dict) -> dict:
    """Vivado post-synthesis LUT/FF/DSP/BRAM_18K from the csynth estimate (``edgeml.estimate.synthesis``), each with
    its 80% range (leave-one-family-out residuals against real Vivado reports)."""
    ps = co.get("post_synthesis") or {}
    dsp = sum(e.dsp for e in layers)
    fabric = sum(e.info.get("fabric_add_bits", 0.0) for e in layers) * co["lut"].get("mac.lut_add", 1.5)
    values = synthesis.spec_drivers(specs, device, tool_info["kind"])
    pred = synthesis.predict(total, fabric / dsp if dsp else 0.0, device, values, ps)
    out: dict = {"tool": f"vivado-{tool_info['version']}"}
    bands = ps.get("ranges") or {}
    for k in POST_SYNTHESIS_METRICS:
        v = pred[k]
        out[k] = round(v, 1) if k == "bram_18k" else round(v)
        lo_f, hi_f = bands.get(k) or [0.5, 2.0]
        out[f"{k}_range"] = [round(max(0.0, (v + 1) * lo_f - 1), 1), round((v + 1) * hi_f - 1, 1)]
    # the DSP range never exceeds what csynth bound (Vivado does not add DSP slices to constant products)
    out["dsp_range"][1] = min(out["dsp_range"][1], max(float(total["dsp"]), out["dsp_range"][0]))
    out["uram"] = total.get("uram", 0)
    out["dsp_moved_to_lut"] = round(pred["moved_dsp"])
    out["drivers"] = {k: round(v, 3) for k, v in values.items()}
    return out


def cost_values(total: dict, post: dict, basis: str) -> dict:
    """The numbers that rank designs (search objective, report's cost column, Pareto front, budget): DSP/LUT/FF/BRAM
    from ``basis``, latency and II from csynth (the only answer for them)."""
    src = post if basis == "post_synthesis" else total
    out = {k: src.get(k) for k in ("dsp", "lut", "ff", "bram_18k", "uram")}
    out.update({f"{k}_pct": src.get(f"{k}_pct") for k in devices.RESOURCES})
    out.update({k: total.get(k) for k in ("latency_min", "latency_max", "latency_ns", "ii", "clock_ns")})
    out["fits"] = total.get("fits")
    out["basis"] = basis
    return out


def compare(total: dict, report: dict, metrics=None) -> dict:
    """Per metric: report value, estimate, relative error (estimate - report) / report."""
    out = {}
    for k in metrics or COMPARED:
        rep, est = report.get(k), total.get(k)
        if rep is None or est is None:
            continue
        rel = (est - rep) / rep if rep else None
        out[k] = {"report": rep, "estimate": est, "rel_error": None if rel is None else round(rel, 4),
                  "abs_error": round(est - rep, 3)}
        if f"{k}_range" in total:
            lo, hi = total[f"{k}_range"]
            out[k]["in_range"] = bool(lo <= rep <= hi)
    return out


# ----------------------------------------------------------------------------- helpers

def _is_model_graph(obj) -> bool:
    return hasattr(obj, "get_layers") and hasattr(obj, "config") and hasattr(obj.config, "get_config_value")


def _graph_meta(hls_model, tool: str | None) -> dict:
    cfg = hls_model.config
    clock = float(cfg.get_config_value("ClockPeriod") or 5.0)
    backend = cfg.get_config_value("Backend") or type(getattr(cfg, "backend", None)).__name__
    return {"part": str(cfg.get_config_value("Part") or "xcu250-figd2104-2L-e"), "clock_ns": clock,
            "io_type": str(cfg.get_config_value("IOType") or "io_parallel"), "tool": tool or tool_from_backend(backend),
            "uncertainty": _uncertainty(cfg.get_config_value("ClockUncertainty"), clock)}


def _uncertainty(value, clock_ns: float) -> float | None:
    """hls4ml ClockUncertainty ('12.5%' or ns) -> fraction of the period; None = the tool's default."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text) / clock_ns
    except ValueError:
        return None


def project_meta(project_dir: Path, tool: str | None = None) -> dict:
    """Part, clock, IOType and tool from hls4ml_config.yml (tolerant: hls4ml writes custom YAML tags)."""
    path = Path(project_dir) / "hls4ml_config.yml"
    if not path.is_file():
        raise InputError(f"{project_dir}: no hls4ml_config.yml; point at the output folder of an hls4ml conversion")
    text = path.read_text(errors="replace")

    def find(key: str, default: str) -> str:
        m = re.search(r"['\"]?" + key + r"['\"]?\s*:\s*['\"]?([\w.%-]+)", text)
        return m.group(1) if m else default

    clock = float(find("ClockPeriod", "5"))
    return {"part": find("Part", "xcu250-figd2104-2L-e"), "clock_ns": clock, "io_type": find("IOType", "io_parallel"),
            "tool": tool or tool_from_backend(find("Backend", "")),
            "uncertainty": _uncertainty(find("ClockUncertainty", ""), clock)}


def firmware_io_type(project_dir: Path) -> str | None:
    """The IOType parameters.h declares (``nnet::io_stream`` / ``nnet::io_parallel``): what was synthesised."""
    path = Path(project_dir) / "firmware" / "parameters.h"
    text = path.read_text(errors="replace") if path.is_file() else ""
    if "nnet::io_stream" in text:
        return "io_stream"
    return "io_parallel" if "nnet::io_parallel" in text else None


_MUL_IMPL = re.compile(r"^\s*config_op\s+mul\b[^\n]*-impl\s+(\w+)", re.M)


def mul_impl(project_dir: Path) -> str | None:
    """`config_op mul -impl dsp|fabric` of the project's build scripts (fabric: no DSP multipliers); None: unset."""
    for name in ("build_prj.tcl", "project.tcl"):
        path = Path(project_dir) / name
        m = _MUL_IMPL.search(path.read_text(errors="replace")) if path.is_file() else None
        if m:
            return m.group(1).lower()
    return None


def _with_ranges(values: dict, ranges: dict, widen: float = 1.0, envelope: dict | None = None) -> dict:
    """Each metric rounded, with its calibrated range: a ratio band (resources, conv cycles) or +-cycles, its log
    half-width times ``widen`` (extrapolation), and stretched to cover ``envelope`` (metric -> (low, high))."""
    out: dict = {}
    for k in METRICS:
        v = values[k]
        out[k] = round(v) if k != "bram_18k" else round(v, 1)
        band = ranges.get(k) or ({"cycles": [-2, 2]} if k in CYCLE_METRICS else {"ratio": [0.8, 1.25]})
        if "cycles" in band:
            lo, hi = domain.widen_cycles(band["cycles"], widen)
            floor = 1 if k == "ii" else 0  # an initiation interval is at least one cycle
            rng = [max(floor, round(v + lo)), round(v + hi)]
        else:
            # the band is on value + 1, so a count of zero (no DSP, no BRAM) still gets a range
            lo, hi = ((v + 1) * f - 1 for f in domain.widen_ratio(band["ratio"], widen))
            if k in CYCLE_METRICS:
                rng = [max(1, math.floor(lo)), math.ceil(hi)]
            else:
                rng = [round(max(0.0, lo), 1), round(hi, 1)]
        if envelope and k in envelope:  # the other readings carry the same model uncertainty
            low, high = (_with_ranges(dict(values, **{k: e}), {k: band}, widen)[f"{k}_range"] for e in envelope[k])
            rng = [min(rng[0], low[0]), max(rng[1], high[1])]
        out[f"{k}_range"] = rng
    return out


def _layer_dict(spec: LayerSpec, est, ranges: dict, widen: float = 1.0) -> dict:
    values = {"dsp": est.dsp, "lut": est.info.get("lut", 0.0), "ff": est.info.get("ff", 0.0),
              "bram_18k": est.bram_18k, "uram": 0, "latency_min": est.cycles, "latency_max": est.cycles,
              "ii": est.ii}
    d = {"name": spec.name, "kind": spec.kind, "strategy": spec.strategy, "reuse_factor": spec.reuse_factor}
    d.update(_with_ranges(values, ranges, widen))
    d["details"] = {k: v for k, v in est.info.items() if k not in ("lut", "ff")}
    return d


def _timing_check(specs, layers, device, clock_ns, uncertainty, co) -> tuple[list[str], str | None]:
    """Warnings on layers whose multiply-add is slower than the usable clock, by what HLS can do about it, and the
    verdict in a word: 'likely_fail', 'may_fail' or None.

    A multiplication bound to LUTs is one combinational operation that HLS cannot cut with a register: such a
    layer misses timing (csynth's estimated clock above the target on every ground-truth design that has one:
    AK_*_lut, HGQ_M_z020, NG_*, PK_*_z020). DSP-bound products are pipelined inside the slice and shift-adds are
    adders HLS cuts anywhere, so at ReuseFactor 1 those close (AK_*_dsp RF 1, IRIS, K); shared multipliers behind
    the ReuseFactor's multiplexers sometimes do not (3 of 14 ground-truth designs missed)."""
    t = co["timing"]
    clock_eff = clock_ns * (1 - uncertainty)
    stage = logic_delay(device, t) * (t["t_mul"] + t["t_add"])
    where = f"~{stage:.1f} ns on {device.get('device') or device['part']}, more than the {clock_eff:.2f} ns usable " \
            f"of the {clock_ns} ns clock"
    fabric, shared = [], []
    for spec, est in zip(specs, layers):
        if spec.kind not in ("dense", "conv1d", "conv2d") or stage <= clock_eff:
            continue
        if est.info.get("fabric_multipliers", 0) > 0:
            fabric.append(spec.name)
        elif spec.reuse_factor > 1:
            shared.append(spec.name)
    out = []
    if fabric:
        out.append(f"{', '.join(fabric)}: multiplications bound to LUTs, which HLS cannot pipeline, need {where}: "
                   "timing will likely fail; lengthen ClockPeriod")
    if shared:
        out.append(f"{', '.join(shared)}: a shared multiplier with its ReuseFactor multiplexer needs {where}: "
                   "timing is tight and may fail")
    if clock_ns < 2.5:
        out.append(f"clock period {clock_ns} ns is below what HLS designs usually close on these parts (~2.5-3 ns)")
    return out, ("likely_fail" if fabric else "may_fail" if shared else None)
