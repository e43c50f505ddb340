"""From csynth to Vivado post-synthesis utilization: what logic synthesis does to the RTL HLS wrote.

csynth prices every operator of the RTL on its own; Vivado synthesis then packs, shares and simplifies them.
What is mechanistic here:

* **DSP**: Vivado keeps the DSP slices HLS bound, up to the part's capacity; the products beyond it go to LUTs
  (H: 664 -> 220 on a full xc7z020, PK_qpcnn: 441 -> 220). A moved product is a multiplier instance that logic
  synthesis builds in fabric from its constant's binary partial products (``fabric_add_bits`` of the layer
  estimates: set bits - 1 adders of the product width; a LUT multiplier for a shared multiplier).
* **LUT, FF, BRAM**: a ratio to the csynth number, ``exp(b . drivers)``, learned per resource from the real designs
  that carry both a csynth and a Vivado report, as a function of what drives it (``DRIVERS``): the constants'
  bits (few-bit constants: csynth prices adders and multiplexers wider than Vivado builds them), the Resource
  strategy (csynth's multiplexer prices), io_stream (FIFOs, windows), the 7-series fabric and the HLS tool family.
  Ridge regression in log space, each driver's coefficient pulled toward 0 (a driver no design exercises stays
  neutral), the designs of one family weighted as one design together.

The tool version the answer is for is the Vivado release that goes with the HLS tool (same version number).
"""

from __future__ import annotations

import math

import numpy as np

# drivers of the csynth -> Vivado ratio, each 0 for a plain 16-bit Latency io_parallel UltraScale+ Vivado HLS design
DRIVERS = ("low_bits", "resource", "stream", "series7", "vitis")
RESOURCES = ("lut", "ff", "bram_18k")
RIDGE = 1.0  # pull of each driver coefficient toward 0, in units of one family's weight

# the starting point and fallback (no post_synthesis block in coefficients.json): the median ratios of the
# ground truth's designs with both reports
DEFAULT = {"lut": {"intercept": math.log(0.5)}, "ff": {"intercept": math.log(0.8)},
           "bram_18k": {"intercept": math.log(0.75)}}


def drivers(weight_bits: float, resource_share: float, stream: bool, series7: bool, vitis: bool) -> dict:
    """The ratio model's inputs. ``weight_bits``: the declared weight width, products-weighted over the layers."""
    return {"low_bits": max(0.0, 16.0 - weight_bits) / 8.0, "resource": float(resource_share),
            "stream": float(stream), "series7": float(series7), "vitis": float(vitis)}


def spec_drivers(specs, device: dict, tool_kind: str) -> dict:
    """Drivers of a design from its layer specs: the declared weight width (what report-only designs state too, so
    the ratio is learned on one scale), strategy, IOType, FPGA family, HLS tool."""
    bits = weights = resource = 0.0
    for s in specs:
        if s.kind not in ("dense", "conv1d", "conv2d"):
            continue
        n = float(s.n_in * s.n_out * max(1, s.n_positions))
        bits += n * float(s.weight_type.width if s.weight_type else 16)
        weights += n
        resource += n * (s.strategy == "resource")
    stream = any(s.io_type == "io_stream" for s in specs)
    return drivers(bits / weights if weights else 16.0, resource / weights if weights else 0.0, stream,
                   device["family"] == "7series", tool_kind == "vitis")


def ratio(coefficients: dict, resource: str, values: dict) -> float:
    entry = coefficients.get(resource) or DEFAULT[resource]
    return math.exp(entry.get("intercept", 0.0) + sum(entry.get(k, 0.0) * values.get(k, 0.0) for k in DRIVERS))


def predict(csynth: dict, fabric_lut_per_dsp: float, device: dict, values: dict, coefficients: dict) -> dict:
    """Post-synthesis LUT/FF/DSP/BRAM_18K from csynth totals (estimated or reported).

    ``fabric_lut_per_dsp``: LUT one DSP-bound product would cost in fabric (for the products beyond the part's DSP
    capacity, which Vivado moves into LUTs).
    """
    dsp = float(csynth["dsp"])
    cap = device.get("dsp") if device.get("known") else None
    kept = min(dsp, cap) if cap else dsp
    moved = dsp - kept
    return {"dsp": kept,
            "lut": ratio(coefficients, "lut", values) * float(csynth["lut"]) + moved * fabric_lut_per_dsp,
            "ff": ratio(coefficients, "ff", values) * float(csynth["ff"]),
            "bram_18k": ratio(coefficients, "bram_18k", values) * float(csynth["bram_18k"]),
            "moved_dsp": moved}


def fit(rows: list[dict]) -> dict:
    """Ratio coefficients from designs with both reports. A row: ``csynth`` and ``vivado`` totals, ``drivers``,
    ``moved_lut`` (fabric LUT of the DSP products beyond the part), ``group`` (its family, weighted 1 in total)."""
    out = {}
    counts: dict = {}
    for r in rows:
        counts[r["group"]] = counts.get(r["group"], 0) + 1
    for res in RESOURCES:
        X, y, w = [], [], []
        for r in rows:
            c, v = r["csynth"].get(res), r["vivado"].get(res)
            if not c or v is None or c <= 0:
                continue
            target = v - (r.get("moved_lut", 0.0) if res == "lut" else 0.0)
            if target <= 0:
                continue
            X.append([1.0] + [r["drivers"][k] for k in DRIVERS])
            y.append(math.log(target / c))
            w.append(1.0 / counts[r["group"]])
        if not X:
            out[res] = dict(DEFAULT[res])
            continue
        X, y, w = np.array(X), np.array(y), np.array(w)
        used = X[:, 1:].any(axis=0)
        sw = np.sqrt(w)[:, None]
        A = np.vstack([X * sw, np.hstack([np.zeros((len(DRIVERS), 1)), RIDGE * np.eye(len(DRIVERS))])])
        b = np.concatenate([y * np.sqrt(w), np.zeros(len(DRIVERS))])
        coef = np.linalg.lstsq(A, b, rcond=None)[0]
        out[res] = {"intercept": round(float(coef[0]), 4),
                    **{k: round(float(c), 4) for k, c, u in zip(DRIVERS, coef[1:], used) if u},
                    "designs": len(y)}
    return out
