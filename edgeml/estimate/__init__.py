"""Resource and latency estimates of an hls4ml design before synthesis, in well under a second.

``estimate(target, hls=None)`` accepts an hls4ml ModelGraph, a Keras/QKeras model (object or .h5/.keras
path, converted with ``hls``, the edgeml config's ``hls`` section) or an hls4ml project directory
(``hls4ml_config.yml`` + ``firmware/``). It predicts what HLS C-synthesis (csynth) reports, not
post-implementation Vivado numbers. Output layout: docs/estimate.md.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from edgeml.errors import InputError

from edgeml.estimate import devices
from edgeml.estimate.layers import LayerSpec, from_firmware, from_model_graph
from edgeml.estimate.model import combine, estimate_layers, load_coefficients, logic_delay
from edgeml.estimate.reports import read_project_reports

__all__ = ["estimate", "estimate_project", "estimate_specs", "compare", "project_meta", "METRICS"]

METRICS = ("dsp", "lut", "ff", "bram_18k", "uram", "latency_min", "latency_max", "ii")
COMPARED = ("dsp", "lut", "ff", "bram_18k", "latency_max", "ii")
DEFAULT_UNCERTAINTY = 0.125  # Vivado HLS default clock uncertainty (12.5% of the period)


def estimate(target, hls: dict | None = None, coefficients: dict | None = None) -> dict:
    """Estimate csynth resources and latency of ``target``; see the module docstring for accepted targets."""
    if _is_model_graph(target):
        meta = _graph_meta(target)
        return estimate_specs(from_model_graph(target), **meta, coefficients=coefficients)
    if isinstance(target, (str, Path)):
        path = Path(target)
        if path.is_dir():
            return estimate_project(path, coefficients=coefficients)
        if not path.exists():
            raise InputError(f"{path}: no such file or directory; give a .h5/.keras model or an hls4ml project folder")
        from edgeml.modelio import load_model

        target = load_model(path)
    if hasattr(target, "layers") and hasattr(target, "predict"):
        return estimate(_convert(target, hls or {}), coefficients=coefficients)
    raise InputError(f"cannot estimate a {type(target).__name__}; give an hls4ml ModelGraph, a Keras model or a project folder")


def estimate_project(project_dir: Path, coefficients: dict | None = None) -> dict:
    """Estimate from what an hls4ml project folder holds, and compare with its reports if it has any."""
    meta = project_meta(project_dir)
    specs = from_firmware(project_dir, io_type=meta["io_type"])
    result = estimate_specs(specs, **meta, coefficients=coefficients)
    result["source"] = {"kind": "hls4ml project", "path": str(project_dir)}
    reports = read_project_reports(project_dir)
    if reports:
        result["report"] = reports
        if "csynth" in reports:
            result["comparison"] = compare(result["total"], reports["csynth"])
    return result


def estimate_specs(specs: list[LayerSpec], part: str, clock_ns: float, io_type: str = "io_parallel",
                   uncertainty: float = DEFAULT_UNCERTAINTY, coefficients: dict | None = None) -> dict:
    """The estimate for layer specs on ``part`` at ``clock_ns``: totals, per layer, part usage, warnings."""
    co = coefficients or load_coefficients()
    device = devices.lookup(part)
    layers = estimate_layers(specs, device, clock_ns, uncertainty, co)
    total = combine(specs, layers, clock_ns, co)
    family = "conv" if any(s.kind in ("conv1d", "conv2d") for s in specs) or io_type == "io_stream" else "dense"
    ranges = co.get("ranges", {}).get(family, {})
    out_total = _with_ranges(total, ranges)
    out_total["latency_ns"] = round(total["latency_max"] * clock_ns, 3)
    lat_lo, lat_hi = out_total["latency_max_range"]
    out_total["latency_ns_range"] = [round(lat_lo * clock_ns, 3), round(lat_hi * clock_ns, 3)]
    out_total["clock_ns"] = clock_ns
    warnings: list[str] = []
    part_info = {k: device.get(k) for k in ("part", "device", "known", "family")}
    if device["known"]:
        part_info["capacity"] = {k: device[k] for k in devices.RESOURCES}
        fits = True
        for k in devices.RESOURCES:
            cap = device[k]
            pct = 100.0 * total[k] / cap if cap else (0.0 if total[k] == 0 else math.inf)
            out_total[f"{k}_pct"] = round(pct, 2) if math.isfinite(pct) else None
            if total[k] > cap:
                fits = False
                warnings.append(f"{k} {total[k]:.0f} exceeds the {device['device']} capacity {cap} ({pct:.0f}%)")
            elif pct > 80:
                warnings.append(f"{k} at {pct:.0f}% of {device['device']}: placement and timing get hard above ~80%")
        out_total["fits"] = fits
    else:
        out_total["fits"] = None
        warnings.append(f"part {part!r} is not in the device table ({', '.join(devices.DEVICES)}): no percentages")
    warnings += _timing_warnings(specs, layers, device, clock_ns, uncertainty, co)
    return {
        "predicts": "HLS C-synthesis (csynth) estimates; post-synthesis Vivado LUT/DSP can differ (often fewer DSP, "
                    "LUT within ~2x)",
        "total": out_total,
        "layers": [_layer_dict(spec, est, ranges) for spec, est in zip(specs, layers)],
        "part": part_info,
        "settings": {"io_type": io_type, "clock_ns": clock_ns, "clock_uncertainty": uncertainty,
                     "strategies": sorted({s.strategy for s in specs if s.kind in ("dense", "conv1d", "conv2d")}),
                     "reuse_factors": sorted({s.reuse_factor for s in specs if s.kind in ("dense", "conv1d", "conv2d")})},
        "warnings": warnings,
    }


def compare(total: dict, report: dict) -> dict:
    """Per metric: report value, estimate, relative error (estimate - report) / report."""
    out = {}
    for k in COMPARED:
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


def _graph_meta(hls_model) -> dict:
    cfg = hls_model.config
    return {"part": str(cfg.get_config_value("Part") or "xcu250-figd2104-2L-e"),
            "clock_ns": float(cfg.get_config_value("ClockPeriod") or 5.0),
            "io_type": str(cfg.get_config_value("IOType") or "io_parallel"),
            "uncertainty": _uncertainty(cfg.get_config_value("ClockUncertainty"), float(cfg.get_config_value("ClockPeriod") or 5.0))}


def _uncertainty(value, clock_ns: float) -> float:
    """hls4ml ClockUncertainty ('12.5%' or ns) -> fraction of the period."""
    if value is None or value == "":
        return DEFAULT_UNCERTAINTY
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text) / clock_ns
    except ValueError:
        return DEFAULT_UNCERTAINTY


def project_meta(project_dir: Path) -> dict:
    """Part, clock and IOType from hls4ml_config.yml (tolerant: hls4ml writes custom YAML tags)."""
    path = Path(project_dir) / "hls4ml_config.yml"
    if not path.is_file():
        raise InputError(f"{project_dir}: no hls4ml_config.yml; point at the output folder of an hls4ml conversion")
    text = path.read_text(errors="replace")

    def find(key: str, default: str) -> str:
        m = re.search(r"['\"]?" + key + r"['\"]?\s*:\s*['\"]?([\w.%-]+)", text)
        return m.group(1) if m else default

    clock = float(find("ClockPeriod", "5"))
    return {"part": find("Part", "xcu250-figd2104-2L-e"), "clock_ns": clock, "io_type": find("IOType", "io_parallel"),
            "uncertainty": _uncertainty(find("ClockUncertainty", ""), clock)}


def _convert(model, hls: dict):
    import tempfile

    from edgeml import config as cfgmod
    from edgeml.convert import build_hls_model

    section = cfgmod.validate({"hls": hls})["hls"] if hls else cfgmod.defaults()["hls"]
    return build_hls_model(model, section, Path(tempfile.mkdtemp(prefix="edgeml_estimate_")))


def _range_value(value: float, factors) -> list[float]:
    lo, hi = factors or (0.8, 1.25)
    return [round(value * lo, 1), round(value * hi, 1)]


def _with_ranges(values: dict, ranges: dict) -> dict:
    out: dict = {}
    for k in METRICS:
        v = values[k]
        out[k] = round(v) if k != "bram_18k" else round(v, 1)
        if k in ("latency_min", "latency_max", "ii"):
            lo, hi = ranges.get(k, (-2, 2))  # cycles, additive
            floor = 1 if k == "ii" else 0  # an initiation interval is at least one cycle
            out[f"{k}_range"] = [max(floor, round(v + lo)), round(v + hi)]
        else:
            out[f"{k}_range"] = _range_value(v, ranges.get(k))
    return out


def _layer_dict(spec: LayerSpec, est, ranges: dict) -> dict:
    values = {"dsp": est.dsp, "lut": est.info.get("lut", 0.0), "ff": est.info.get("ff", 0.0),
              "bram_18k": est.bram_18k, "uram": 0, "latency_min": est.cycles, "latency_max": est.cycles,
              "ii": est.ii}
    d = {"name": spec.name, "kind": spec.kind, "strategy": spec.strategy, "reuse_factor": spec.reuse_factor}
    d.update(_with_ranges(values, ranges))
    d["details"] = {k: v for k, v in est.info.items() if k not in ("lut", "ff")}
    return d


def _timing_warnings(specs, layers, device, clock_ns, uncertainty, co) -> list[str]:
    """A RF=1 adder tree too deep for one cycle is pipelined by HLS; warn when the clock is very tight."""
    t = co["timing"]
    clock_eff = clock_ns * (1 - uncertainty)
    out = []
    for spec, est in zip(specs, layers):
        stage = logic_delay(device, t) * (t["t_mul"] + t["t_add"])  # one multiply + one add cannot be split
        if spec.kind in ("dense", "conv1d", "conv2d") and stage > clock_eff:
            out.append(f"{spec.name}: a multiply-add needs ~{stage:.1f} ns on {device.get('device') or device['part']}, "
                       f"more than the {clock_eff:.2f} ns usable of the {clock_ns} ns clock: timing will likely fail")
    if clock_ns < 2.5:
        out.append(f"clock period {clock_ns} ns is below what HLS designs usually close on these parts (~2.5-3 ns)")
    return out
