"""Elementwise activations: linear, relu, the indexed tables (sigmoid, tanh, softplus, softsign, elu, selu),
the parametrized ones (leaky_relu, thresholded_relu, elu's alpha, prelu) and hard_sigmoid / hard_tanh.
Constants are the literal hls4ml writes converted like ap_fixed(double); products and sums are exact,
as ap_fixed's widening operators make them, and only the assignment to the result rounds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import (_ceillog2, _common, _config, _from_double, _is_stream, _named_type, _Step,
                                           _trunc_div, _Unsupported, _weight_ints, register)
from edgeml.firmware.emulator.tables import (_elu_table, _INDEXED_TABLES, _selu_table)
from edgeml.fixed import Fixed


@dataclass
class _LinearStep(_Step):
    in_t: Fixed = None

    def __call__(self, x):
        return self.out_t.requantize(x, self.in_t.frac)


@dataclass
class _ReluStep(_Step):
    in_t: Fixed = None

    def __call__(self, x):
        if self.out_t.saturation == "WRAP":
            return self.out_t.requantize(np.maximum(x, 0), self.in_t.frac)
        lo, hi = self.out_t.int_range  # rounding is monotone and keeps 0: relu, round, saturate in one clip
        v = self.out_t.rescale(x, self.in_t.frac)
        v = np.maximum(v, max(lo, 0), out=None if v is x else v)
        return np.minimum(v, hi, out=v)


@dataclass
class _TableStep(_Step):
    """sigmoid / tanh / softplus / softsign: ``index = int(x * N / span) + N/2``, clipped, and a table entry
    cast to the result."""

    in_t: Fixed = None
    table: np.ndarray = None
    table_t: Fixed = None
    span: int = 16

    def __call__(self, x):
        n = len(self.table)
        index = _trunc_div(_trunc_div(x * n, self.span), 1 << self.in_t.frac) + self.span // 2 * n // self.span
        return self.out_t.requantize(self.table[np.clip(index, 0, n - 1)], self.table_t.frac)


@register("Activation")
def _activation_step(layer) -> _Step:
    info = _common(layer)
    kind = str(layer.get_attr("activation")).lower()
    if kind == "linear":
        return _LinearStep(**info)
    if kind == "relu":
        return _ReluStep(**info)
    if kind in _INDEXED_TABLES:
        build, span = _INDEXED_TABLES[kind]
        size, table_t = _table_config(layer, info)
        _check_index(info["in_t"], size, span)
        return _TableStep(**info, table=table_t.quantize_to_ints(build(size)), table_t=table_t, span=span)
    if kind == "selu":
        size, table_t = _table_config(layer, info)
        # nnet::selu's lambda: an ap_ufixed<16,1> in io_parallel, but cast to the input type in io_stream
        lam_t = _from_double(layer.get_input_variable().type.precision, "input") if _is_stream(layer) else _SELU_CONST_T
        lam, lam_frac = _constant(lam_t, 1.0507009873554805)
        return _elu_like_step(info, size, lam, lam_frac, table_t.quantize_to_ints(_selu_table(size)), table_t.frac)
    raise _Unsupported(f"activation {kind}")


def _check_index(in_t: Fixed, size: int, span: int):
    """The C++ index is an int: |x| * N / span must stay far below 2**31."""
    if in_t.integer + _ceillog2(size) - _ceillog2(span) > 29:
        raise _Unsupported(f"input type {in_t} overflows the int table index")


def _table_config(layer, info: dict) -> tuple[int, Fixed]:
    """table_size and table_t of a table activation's config struct."""
    if info["in_t"].frac < 0:
        raise _Unsupported("input type with negative fraction bits")
    config = _config(layer)
    size = int(config.get("table_size", layer.get_attr("table_size", 1024)))
    return size, _named_type(layer, config.get("table_t"), "table_t", table=True)


@dataclass
class _LeakyStep(_Step):
    """leaky_relu / prelu: ``x > 0 ? x : alpha * x``, the product at full precision, then cast to the result.
    ``wide``: the product may pass 62 bits; a stand-in with the same cast replaces it (``_wide_stand_in``)."""

    in_t: Fixed = None
    alpha: np.ndarray = None  # ints at alpha_frac >= 0, one or one per input
    alpha_frac: int = 0
    wide: bool = False

    def __call__(self, x):
        frac = self.in_t.frac + self.alpha_frac
        negative = x * self.alpha
        if not self.wide:
            return self.out_t.requantize(np.where(x > 0, x << self.alpha_frac, negative), frac)
        negative = self.out_t.requantize(_wide_stand_in(negative, x, self.alpha, self.out_t, frac), frac)
        return np.where(x > 0, self.out_t.requantize(x, self.in_t.frac), negative)


def _wide_stand_in(low, x, a, t: Fixed, frac: int):
    """For the exact product p = x * a, of which int64 ``low`` keeps the low 64 bits: an int64 of p's sign
    that ``t.requantize(., frac)`` maps to the same value. Needs s = frac - t.frac >= 0 and s + t.width <= 60.

    Wrapping keeps the low t.width bits of the rounded p >> s, which depend only on p mod 2**(s + width) and
    on p's sign (the rounding of ties and of TRN_ZERO): the residue, made negative for a negative p, has both.
    Saturating: while |p| < 2**62, ``low`` is p; above, p is far out of t's range and +-2**(s + width) saturates
    the same way. A float64 product tells the two apart (its relative error, 2**-52, cannot cross 2**61 to 2**62).
    """
    m = frac - t.frac + t.width
    negative = (x < 0) != (a < 0)
    negative &= (x != 0) & (a != 0)
    if t.saturation == "WRAP":
        residue = low & ((1 << m) - 1)
        return np.where(negative, residue - (1 << m), residue)
    big = np.abs(x.astype(np.float64) * a) >= 2.0 ** 61
    return np.where(big, np.where(negative, -(1 << m), 1 << m), low)


@dataclass
class _ThresholdStep(_Step):
    """thresholded_relu: ``x > theta ? x : 0``; ``above`` is the largest integer of the input type not above theta."""

    in_t: Fixed = None
    above: int = 0

    def __call__(self, x):
        return self.out_t.requantize(np.where(x > self.above, x, 0), self.in_t.frac)


@dataclass
class _HardStep(_Step):
    """hard_sigmoid / hard_tanh: ``v = slope * x + shift`` in the exact ap_fixed sum type (frac ``frac``),
    clipped to [0, 1], and ``2 * v - 1`` for tanh."""

    in_t: Fixed = None
    slope: int = 0  # at frac - in_t.frac
    shift: int = 0  # at frac
    frac: int = 0
    tanh: bool = False

    def __call__(self, x):
        one = 1 << self.frac
        v = x * self.slope
        v += self.shift
        v = np.clip(v, 0, one, out=v)
        if self.tanh:
            v = 2 * v - one
        return self.out_t.requantize(v, self.frac)


@dataclass
class _EluStep(_Step):
    """elu / selu: ``x >= 0 ? pos_scale * x : table[int(x * N / -8)]`` (the table entry already times alpha
    for elu), each product exact, then cast to the result at ``frac`` fraction bits."""

    in_t: Fixed = None
    pos_scale: int = 1  # at frac - in_t.frac
    table: np.ndarray = None  # at frac
    frac: int = 0

    def __call__(self, x):
        n = len(self.table)
        index = np.minimum((-x * n) // (8 << self.in_t.frac), n - 1)  # x < 0: C's truncating divisions are floors
        negative = self.table[np.maximum(index, 0)]
        return self.out_t.requantize(np.where(x >= 0, x * self.pos_scale, negative), self.frac)


def _param_literal(value) -> float:
    """The C++ literal hls4ml writes for a Python number (``str.format``), read back as the compiler reads it."""
    return float(f"{value}")


def _constant(t: Fixed, value) -> tuple[int, int]:
    """A double converted to ``t``, as (integer, frac) with frac >= 0 and no trailing zero bits above frac 0."""
    ints, frac = _exact_ints(t.quantize_to_ints(np.array([value])), t.frac)
    return int(ints[0]), frac


def _exact_ints(ints: np.ndarray, frac: int) -> tuple[np.ndarray, int]:
    """The same values with as few fraction bits as possible (never fewer than 0): smaller products."""
    if frac < 0:
        return ints << -frac, 0
    nonzero = ints[ints != 0]
    zeros = min([frac] + [int(v & -v).bit_length() - 1 for v in np.unique(np.abs(nonzero))])
    return ints >> zeros, frac - zeros


def _magnitude(t: Fixed) -> int:
    """The largest |integer| of the type."""
    return max(abs(v) for v in t.int_range)


def _leaky_step(info: dict, alpha: np.ndarray, alpha_frac: int) -> _LeakyStep:
    in_t, out_t = info["in_t"], info["out_t"]
    wide = _magnitude(in_t) * max(int(np.abs(alpha).max(initial=0)), 1 << alpha_frac) >= 2 ** 62
    shift = in_t.frac + alpha_frac - out_t.frac
    if wide and (shift < 0 or shift + out_t.width > 60):
        raise _Unsupported(f"alpha times input {in_t} exceeds 62 bits")
    return _LeakyStep(**info, alpha=alpha, alpha_frac=alpha_frac, wide=wide)


@register("ParametrizedActivation")
def _parametrized_step(layer) -> _Step:
    info = _common(layer)
    kind = layer._get_act_function_name()
    param_t = _from_double(layer.get_attr("param_t").precision, "param_t")
    alpha, alpha_frac = _constant(param_t, _param_literal(layer.get_attr("activ_param", 1.0)))
    in_t = info["in_t"]
    if kind == "leaky_relu":
        return _leaky_step(info, np.int64(alpha), alpha_frac)
    if kind == "thresholded_relu":
        shift = alpha_frac - in_t.frac
        above = alpha >> shift if shift >= 0 else alpha << -shift
        return _ThresholdStep(**info, above=min(max(above, -2 ** 62), 2 ** 62))  # beyond any input: same comparison
    if kind == "elu":
        size, table_t = _table_config(layer, info)
        table, frac = table_t.quantize_to_ints(_elu_table(size)) * alpha, table_t.frac + alpha_frac
        return _elu_like_step(info, size, 1, 0, table, frac)
    raise _Unsupported(f"activation {kind}")


def _elu_like_step(info: dict, size: int, pos: int, pos_frac: int, table, table_frac: int) -> _EluStep:
    """``pos`` (an integer at ``pos_frac``) scales x >= 0; ``table`` (at ``table_frac``) holds x < 0."""
    in_t = info["in_t"]
    _check_index(in_t, size, 8)
    frac = max(in_t.frac + pos_frac, table_frac)
    pos <<= frac - in_t.frac - pos_frac
    largest_entry = int(np.abs(table).max(initial=0)) << (frac - table_frac)
    if _magnitude(in_t) * max(abs(pos), size) >= 2 ** 62 or largest_entry >= 2 ** 62:
        raise _Unsupported(f"input type {in_t} too wide for the table index and products")
    return _EluStep(**info, pos_scale=pos, table=table << (frac - table_frac), frac=frac)


_SELU_CONST_T = Fixed(False, 16, 1)  # nnet::selu's selu_const_t (ap_ufixed<16, 1>) for lambda


@register("PReLU")
def _prelu_step(layer) -> _LeakyStep:
    info = _common(layer)
    alpha, alpha_t = _weight_ints(layer, "param")
    alpha, alpha_frac = _exact_ints(alpha.reshape(-1), alpha_t.frac)
    if alpha.size != info["size"]:
        raise _Unsupported("PReLU with shared axes")
    return _leaky_step(info, alpha, alpha_frac)


@register("HardActivation")
def _hard_step(layer) -> _HardStep:
    """``CONFIG_T::slope * data + CONFIG_T::shift`` has the ap_fixed product-then-sum type, which holds it
    exactly; ``datareg = 1`` stores 1 in that type, so a type without room for 1 is refused."""
    info = _common(layer)
    kind = str(layer.get_attr("activation")).lower()
    if kind not in ("hard_sigmoid", "hard_tanh"):
        raise _Unsupported(f"hard activation {kind}")
    slope_t = _from_double(layer.get_attr("slope_t").precision, "slope_t")
    shift_t = _from_double(layer.get_attr("shift_t").precision, "shift_t")
    slope = int(slope_t.quantize_to_ints(np.array([_param_literal(layer.get_attr("slope", 0.2))]))[0])
    shift = int(shift_t.quantize_to_ints(np.array([_param_literal(layer.get_attr("shift", 0.5))]))[0])
    in_t = info["in_t"]
    prod_signed, prod_int = slope_t.signed or in_t.signed, slope_t.integer + in_t.integer
    sum_int = 1 + max(prod_int + (shift_t.signed and not prod_signed),
                      shift_t.integer + (prod_signed and not shift_t.signed))
    sum_signed, frac = prod_signed or shift_t.signed, max(slope_t.frac + in_t.frac, shift_t.frac)
    if frac < 0 or sum_int < 1 + sum_signed:
        raise _Unsupported(f"sum type ap_fixed<{sum_int + frac},{sum_int}> cannot hold 1")
    if sum_int + frac > 60:
        raise _Unsupported(f"sum type ap_fixed<{sum_int + frac},{sum_int}> wider than 60 bits")
    return _HardStep(**info, slope=slope << (frac - slope_t.frac - in_t.frac), shift=shift << (frac - shift_t.frac),
                     frac=frac, tanh=kind == "hard_tanh")
