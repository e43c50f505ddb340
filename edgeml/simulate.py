"""Fixed-point helpers (ap_fixed types, overflow, integer bits) used by the fidelity analysis.

The C-simulation itself lives in ``edgeml.firmware.csim`` and the Keras reference in
``edgeml.firmware.reference``; their functions are re-exported here for existing callers.
"""

from __future__ import annotations

import math

import numpy as np

from edgeml.fixed import Fixed  # the one fixed-point type; re-exported for existing callers


def fixed_of(precision) -> Fixed | None:
    """hls4ml precision type -> Fixed (None for float or exotic types)."""
    width, integer = getattr(precision, "width", None), getattr(precision, "integer", None)
    if width is None or integer is None:
        return None
    rounding = getattr(precision, "rounding_mode", None)
    saturation = getattr(precision, "saturation_mode", None)
    try:
        return Fixed(bool(getattr(precision, "signed", True)), int(width), int(integer),
                     getattr(rounding, "name", "TRN") if rounding is not None else "TRN",
                     getattr(saturation, "name", "WRAP") if saturation is not None else "WRAP")
    except ValueError:  # a mode the fixed-point model does not know (e.g. AP_SAT_SYM): treated as exotic
        return None


def overflow_fraction(values: np.ndarray, t: Fixed) -> float:
    """Fraction of ``values`` that do not fit in ``t`` after its rounding (they wrap or saturate)."""
    lo, hi = t.range
    slack = t.lsb / 2 if t.rounding.startswith("RND") else t.lsb
    v = np.asarray(values, dtype=np.float64)
    return float(np.mean((v < lo) | (v >= hi + slack))) if v.size else 0.0


def bits_for(max_abs: float, margin: float = 1.25) -> int:
    """Integer bits (sign included) a signed fixed-point type needs to hold ±max_abs with a safety margin."""
    if max_abs <= 0:
        return 1
    return max(1, math.ceil(math.log2(max_abs * margin)) + 1)


# Re-exported at the end: edgeml.firmware imports the helpers above from this module.
from edgeml.firmware.csim import attach_library, compile_model, enable_tracing, run, simulate  # noqa: E402
from edgeml.firmware.hls import quiet  # noqa: E402
from edgeml.firmware.reference import keras_layer_outputs  # noqa: E402

__all__ = ["Fixed", "fixed_of", "overflow_fraction", "bits_for", "attach_library", "compile_model",
           "enable_tracing", "run", "simulate", "quiet", "keras_layer_outputs"]
