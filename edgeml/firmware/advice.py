"""Precision advice: per-layer types that would make the firmware follow Keras (NumPy only).

Reads the per-layer rows of ``fidelity.layer_fidelity`` and never writes to a model;
``apply_precisions`` turns the advice into ``hls.LayerName`` overrides.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from edgeml import config as cfgmod
from edgeml.simulate import Fixed, bits_for

AGREEMENT_TARGET = 0.999
INP_NORM = "ap_ufixed<18,4,AP_TRN,AP_SAT>"  # x_max - x_i saturating at 16: exp(-16) is 0 at 18 bits anyway
TABLE_SIZES = [1024 * 2 ** k for k in range(7)]
TIE_BUDGET = (1 - AGREEMENT_TARGET) / 2  # half of the 0.1% disagreement budget may go to softmax ties
SOFTMAX_TABLE_SIZE = 4096


def argmax_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose decision (argmax, first maximum on ties) is the same in ``a`` and ``b``."""
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def extra_fraction_bits(firmware_logits: np.ndarray, keras_logits: np.ndarray) -> int:
    """Fractional bits to add everywhere so that the logit error drops below the gap between the two
    largest Keras logits of all but 0.1% of jets (each bit halves the rounding error)."""
    if keras_logits.shape[1] < 2 or argmax_agreement(firmware_logits, keras_logits) >= AGREEMENT_TARGET:
        return 0
    top = np.sort(keras_logits, axis=1)
    gap = float(np.quantile(top[:, -1] - top[:, -2], 1 - AGREEMENT_TARGET))
    error = float(np.max(np.abs(firmware_logits - keras_logits)))
    if error <= 0:
        return 0
    return int(min(8, max(1, math.ceil(math.log2(2 * error / max(gap, error / 256))))))


def table_size_needed(logits: np.ndarray, span: float = 16.0) -> int:
    """Smallest exp-table size whose step (span/size) separates the two largest logits of all but
    ``TIE_BUDGET`` of the jets (closer logits share a table entry and tie)."""
    top = np.sort(logits, axis=1)
    gap = top[:, -1] - top[:, -2]
    return next((size for size in TABLE_SIZES if np.mean(gap < span / size) <= TIE_BUDGET), TABLE_SIZES[-1])


def suggest_precisions(rows: list[dict], extra_frac: int = 0) -> dict:
    """Per-layer precisions: integer bits from the observed range (25% margin); fractional bits kept,
    plus ``extra_frac`` where the logit error decides classes (see ``extra_fraction_bits``) and 4 more
    on a layer whose own error is too large. QKeras layers are left alone: their types come from the
    quantizers. A softmax that merges outputs or errs gets finer tables.
    """
    suggested = {}
    for row in rows:
        if row["class"] == "Softmax":
            if row.get("implementation") == "argmax":  # no tables to refine: it outputs the decision
                continue
            if row["status"] != "ok" or row.get("ties", 0) > 0:
                suggested[row["name"]] = softmax_fix(row)
            continue
        if row["quantizer_derived"] or row["range"] is None:
            continue
        current = parse_fixed(row["precision"])
        if current is None:
            continue
        frac = current.width - current.integer + extra_frac + (4 if row["status"] == "error" else 0)
        kinds = {"result": fixed_string(bits_for(max(map(abs, row["output_range"]))), frac)}
        if row["class"] == "Input":
            suggested[row["name"]] = kinds
            continue
        if row.get("weight_range") is not None:
            w = parse_fixed(row["weight_precision"])
            wfrac = (w.width - w.integer + extra_frac) if w else frac
            kinds["weight"] = fixed_string(bits_for(max(map(abs, row["weight_range"]))), wfrac)
        if "bias_precision" in row:
            b = parse_fixed(row["bias_precision"])
            kinds["bias"] = row["bias_precision"] if b is None or not row.get("bias_overflow_fraction") \
                else fixed_string(b.integer + 2, b.width - b.integer)
        if "accum_bound" in row:
            a = parse_fixed(row["accum_precision"])
            afrac = a.width - a.integer + extra_frac if a else frac
            kinds["accum"] = fixed_string(bits_for(row["accum_bound"]), max(afrac, frac))
        suggested[row["name"]] = kinds
    return suggested


def softmax_fix(row: dict) -> dict:
    """A softmax that keeps the order of close logits and its sum accurate.

    - inp_norm (x_max - x_i) saturating at 16 instead of wrapping at the input type's range;
    - TableSize: the smallest power of two whose exp-table step (16/size) separates the two largest
      logits of all but 0.05% of jets;
    - inv_inp sized to the exp sum (1..n_classes): hls4ml's default ap_fixed<18,8> indexes the 1/sum
      table in steps of 0.25.
    """
    integer = max(1, math.ceil(math.log2(row["n_out"] + 1)))
    return {"inp_norm": INP_NORM, "inv_inp": f"ap_ufixed<18,{integer},AP_RND,AP_SAT>",
            "TableSize": max(row.get("table_size_needed", SOFTMAX_TABLE_SIZE), 1024)}


def apply_precisions(hls: dict, suggested: dict) -> dict:
    """A copy of the ``hls`` section with ``suggested`` per-layer precisions as LayerName overrides."""
    out = copy.deepcopy(hls)
    layers = out.setdefault("LayerName", {})
    for name, kinds in suggested.items():
        entry = layers.setdefault(name, {"Precision": None, "ReuseFactor": None, "Strategy": None})
        kinds = dict(kinds)
        if "TableSize" in kinds:
            entry["TableSize"] = kinds.pop("TableSize")
        entry["Precision"] = kinds
    return cfgmod.validate({"hls": out})["hls"]


def parse_fixed(text: str) -> Fixed | None:
    try:
        signed, width, integer = cfgmod.parse_precision(text)
    except ValueError:
        return None
    return Fixed(signed, width, integer)


def fixed_string(integer: int, frac: int) -> str:
    return f"ap_fixed<{integer + frac},{integer}>"
