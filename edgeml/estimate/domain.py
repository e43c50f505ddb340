"""Where the fitted coefficients hold: the span of the designs they were fitted on, per kind (dense / conv).

A design outside that span (a larger ReuseFactor, wider types, many more or fewer multiplications, another HLS
tool family, FPGA family, strategy or IOType than any fitted design of its kind) is an extrapolation: its likely
ranges are widened, ``WIDEN_PER_REASON`` of the band's log half-width per reason, and the result says why. The
range calibration divides each residual by the widening its design got, so the conformal quantile is in units of
"band widths" and the coverage target holds for in-span and out-of-span designs alike.
"""

from __future__ import annotations

import math

MAC_KINDS = ("dense", "conv1d", "conv2d")
WIDEN_PER_REASON = 0.5
MACS_SLACK = 2.0  # within a factor 2 of the fitted sizes still counts as inside


def traits(specs, tool_kind: str, device_family: str, io_type: str) -> dict:
    """What decides whether a design is like the fitted ones."""
    macs = [s for s in specs if s.kind in MAC_KINDS]
    widths = [t.width for s in macs for t in (s.in_type, s.weight_type, s.accum_type) if t is not None]
    return {
        "rf": max((max(1, s.reuse_factor) for s in macs), default=1),
        "bits": [min(widths, default=16), max(widths, default=16)],
        "macs": sum(s.n_in * s.n_out * max(1, s.n_positions) for s in macs),
        "tool": tool_kind,
        "device_family": device_family,
        "strategy": sorted({s.strategy for s in macs}),
        "io_type": io_type,
    }


def span(designs: list[dict]) -> dict:
    """The fitted span of a list of ``traits``."""
    if not designs:
        return {}
    return {
        "rf": [min(d["rf"] for d in designs), max(d["rf"] for d in designs)],
        "bits": [min(d["bits"][0] for d in designs), max(d["bits"][1] for d in designs)],
        "macs": [min(d["macs"] for d in designs), max(d["macs"] for d in designs)],
        "tool": sorted({d["tool"] for d in designs}),
        "device_family": sorted({d["device_family"] for d in designs}),
        "strategy": sorted({s for d in designs for s in d["strategy"]}),
        "io_type": sorted({d["io_type"] for d in designs}),
    }


def outside(design: dict, fitted: dict) -> list[str]:
    """Reasons the design lies outside the fitted span (empty: inside, or no span known)."""
    if not fitted:
        return []
    reasons = []
    lo, hi = fitted["rf"]
    if not lo <= design["rf"] <= hi:
        reasons.append(f"ReuseFactor {design['rf']} outside the fitted {lo}-{hi}")
    lo, hi = fitted["bits"]
    if design["bits"][0] < lo or design["bits"][1] > hi:
        reasons.append(f"types {design['bits'][0]}-{design['bits'][1]} bits outside the fitted {lo}-{hi}")
    lo, hi = fitted["macs"]
    if not lo / MACS_SLACK <= design["macs"] <= hi * MACS_SLACK:
        reasons.append(f"{design['macs']} multiplications outside the fitted {lo}-{hi}")
    for key, label in (("tool", "HLS tool"), ("device_family", "FPGA family"), ("io_type", "IOType")):
        if design[key] not in fitted[key]:
            reasons.append(f"{label} {design[key]} not among the fitted ({', '.join(fitted[key])})")
    extra = sorted(set(design["strategy"]) - set(fitted["strategy"]))
    if extra:
        reasons.append(f"strategy {', '.join(extra)} not among the fitted ({', '.join(fitted['strategy'])})")
    return reasons


def widening(reasons: list[str]) -> float:
    """Factor on the log half-width of every likely range."""
    return 1.0 + WIDEN_PER_REASON * len(reasons)


def widen_ratio(band: list[float], factor: float) -> list[float]:
    lo, hi = band
    return [lo ** factor, hi ** factor]


def widen_cycles(band: list[int], factor: float) -> list[int]:
    lo, hi = band
    return [-math.ceil(-lo * factor), math.ceil(hi * factor)]
