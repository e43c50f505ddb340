"""BatchNormalization and ApplyAlpha (QKeras's scale): ``x * scale + bias``, exact, then cast."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import _common, _Step, _Unsupported, _weight_ints, register
from edgeml.fixed import Fixed


@dataclass
class _BatchNormStep(_Step):
    in_t: Fixed = None
    scale: np.ndarray = None
    bias: np.ndarray = None  # at frac in_t.frac + scale_t.frac
    frac: int = 0

    def __call__(self, x):
        return self.out_t.requantize(x * self.scale + self.bias, self.frac)


@register("BatchNormalization", "ApplyAlpha")
def _batchnorm_step(layer) -> _Step:
    info = _common(layer)
    if _is_exponent(layer.weights["scale"].type.precision):
        return _exponent_scale_step(layer, info)
    scale, s_t = _weight_ints(layer, "scale")
    bias, b_t = _weight_ints(layer, "bias")
    frac = max(info["in_t"].frac + s_t.frac, b_t.frac)
    n_in, n_filt = int(info["size"]), int(layer.get_attr("n_filt", -1))
    index = np.arange(n_in) if n_filt == -1 else np.arange(n_in) % n_filt
    scale = scale.reshape(-1)[index] << (frac - info["in_t"].frac - s_t.frac)
    bias = bias.reshape(-1)[index] << (frac - b_t.frac)
    return _BatchNormStep(**info, scale=scale, bias=bias, frac=frac)


def _is_exponent(precision) -> bool:
    from hls4ml.model.types import ExponentPrecisionType

    return isinstance(precision, ExponentPrecisionType)


def _exponent_scale_step(layer, info: dict) -> _BatchNormStep:
    """hls4ml's power-of-two scale (a QKeras ``alpha="auto_po2"``): ``product::weight_exponential``
    casts x to a type r_T, shifts it by the exponent (right when negative), negates it for sign 0,
    and adds the bias. While r_T holds x * 2**shift exactly, that is a BatchNorm with scale +-2**shift."""
    var = layer.weights["scale"]
    pairs = [re.fullmatch(r"\{\s*([-+0-9.eE]+)\s*,\s*([-+0-9]+)\s*\}", text) for text in var]
    if not all(pairs):
        raise _Unsupported(f"scale type {var.type.precision}")
    width, x_t = int(var.type.precision.width), info["in_t"]
    exponent_t = Fixed(bool(var.type.precision.signed), width, width, "TRN", "WRAP")  # ap_int<W> from an int
    shift = exponent_t.fold(np.array([int(m.group(2)) for m in pairs], dtype=np.int64))
    sign = np.where(np.array([int(float(m.group(1))) % 2 for m in pairs]) == 1, 1, -1)  # ap_uint<1> sign
    r_frac = r_int = width + x_t.width  # r_T = ap_fixed<2 * (W + x width), W + x width>
    right = max(0, -int(shift.min()))
    bias, b_t = _weight_ints(layer, "bias")
    frac = max(x_t.frac + right, b_t.frac)
    if r_frac < x_t.frac + right or r_int <= x_t.integer + max(0, int(shift.max())) \
            or x_t.width + frac - x_t.frac + max(0, int(shift.max())) > 60:
        raise _Unsupported(f"power-of-two scale that r_T does not hold exactly (input {x_t})")
    n_in, n_filt = int(info["size"]), int(layer.get_attr("n_filt", -1))
    index = np.arange(n_in) if n_filt == -1 else np.arange(n_in) % n_filt
    scale = sign * (np.int64(1) << (shift + frac - x_t.frac))
    return _BatchNormStep(**info, scale=scale[index], bias=bias.reshape(-1)[index] << (frac - b_t.frac), frac=frac)
