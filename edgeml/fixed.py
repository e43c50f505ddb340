"""One fixed-point type: ``ap_fixed`` / ``ap_ufixed`` with its rounding and overflow modes.

Values are carried as int64 integers counting units of ``lsb``. ``quantize_to_ints`` and
``requantize`` reproduce what an assignment to an ``ap_fixed`` does in Vivado/Vitis HLS C
simulation (the ``ap_fixed_base(double)`` constructor and ``ap_fixed = ap_fixed`` conversion
in hls4ml's ``ap_types/ap_fixed_base.h``): first the quantization mode drops the extra
fraction bits, then the overflow mode folds the result into range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
SATURATION_MODES = ("WRAP", "SAT")

_TEXT = re.compile(r"^\s*ap_(u?)fixed\s*<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(?:AP_)?(\w+)\s*)?(?:,\s*(?:AP_)?(\w+)\s*)?"
                   r"(?:,\s*0\s*)?>\s*$")
_HLS4ML_TEXT = re.compile(r"^\s*(u?)fixed\s*<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(\w+)\s*)?(?:,\s*(\w+)\s*)?(?:,\s*0\s*)?>\s*$")


@dataclass(frozen=True)
class Fixed:
    """An ap_fixed (``signed``) or ap_ufixed of ``width`` bits, ``integer`` of them above the binary point."""

    signed: bool
    width: int
    integer: int
    rounding: str = "TRN"
    saturation: str = "WRAP"

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"fixed-point width must be at least 1, got {self.width}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"unknown rounding mode AP_{self.rounding} (known: {', '.join(ROUNDING_MODES)})")
        if self.saturation not in SATURATION_MODES:
            raise ValueError(f"unsupported overflow mode AP_{self.saturation} (supported: {', '.join(SATURATION_MODES)})")

    @classmethod
    def parse(cls, text: str) -> "Fixed":
        """``ap_fixed<16,6>``, ``ap_ufixed<8,0,AP_RND_CONV,AP_SAT>`` or hls4ml's ``fixed<16,6,TRN,WRAP,0>``."""
        match = _TEXT.match(text) or _HLS4ML_TEXT.match(text)
        if match is None:
            raise ValueError(f"not a fixed-point type: {text!r} (expected e.g. ap_fixed<16,6> or ap_ufixed<8,0,AP_RND,AP_SAT>)")
        unsigned, width, integer, rounding, saturation = match.groups()
        return cls(not unsigned, int(width), int(integer), rounding or "TRN", saturation or "WRAP")

    @classmethod
    def from_hls(cls, precision) -> "Fixed":
        """hls4ml ``FixedPrecisionType`` -> Fixed; ValueError for anything else.

        ``ap_int`` (IntegerPrecisionType) is refused: it converts from double and from ap_fixed
        by C truncation towards zero, not by a quantization mode.
        """
        from hls4ml.model.types import FixedPrecisionType

        if not isinstance(precision, FixedPrecisionType):
            raise ValueError(f"not a fixed-point type: {precision}")
        width, integer = precision.width, precision.integer
        if getattr(precision, "saturation_bits", 0):
            raise ValueError(f"saturation bits are not supported: {precision}")
        rounding = getattr(precision, "rounding_mode", None)
        saturation = getattr(precision, "saturation_mode", None)
        return cls(bool(precision.signed), int(width), int(integer),
                   rounding.name if rounding is not None else "TRN",
                   saturation.name if saturation is not None else "WRAP")

    @property
    def frac(self) -> int:
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def int_range(self) -> tuple[int, int]:
        """Smallest and largest integer (in units of lsb)."""
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, (1 << self.width) - 1

    @property
    def range(self) -> tuple[float, float]:
        """Smallest and largest representable value."""
        lo, hi = self.int_range
        return lo * self.lsb, hi * self.lsb

    def __str__(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        modes = "" if (self.rounding, self.saturation) == ("TRN", "WRAP") else f",AP_{self.rounding},AP_{self.saturation}"
        return f"{kind}<{self.width},{self.integer}{modes}>"

    def quantize_to_ints(self, x) -> np.ndarray:
        """int64 integers (units of lsb) that assigning the doubles ``x`` to this type stores.

        Exact: scaling a double by a power of two and taking its floor lose nothing, and the
        remainder decides the rounding the way ``quantization_adjust`` does. +-inf behave like
        the 2**1024 the constructor sees (0 when wrapping, the range end when saturating).
        """
        x = np.asarray(x, dtype=np.float64)
        scaled = np.ldexp(x, self.frac)
        lo, hi = self.int_range
        if scaled.size and np.abs(scaled).max() < 2.0 ** 51:  # the common case: one NumPy rounding call
            q = _ROUND_FLOAT[self.rounding](scaled)
            if lo <= q.min() and q.max() <= hi:
                return q.astype(np.int64)
            if self.saturation == "SAT":
                return np.clip(q, lo, hi).astype(np.int64)
            return self.fold(q.astype(np.int64))
        inf = np.isinf(scaled)
        scaled = np.where(inf, 0.0, scaled)
        low = np.floor(scaled)
        q = low + _round_up(scaled - low, low, scaled < 0, self.rounding)
        if self.saturation == "SAT":
            q = np.clip(q, lo, hi)
            q = np.where(inf, np.where(x > 0, hi, lo), q)
            return q.astype(np.int64)
        span = 2.0 ** self.width
        q = np.fmod(q, span)  # exact on doubles, whose integers may exceed int64
        q = np.where(q < lo, q + span, q)
        q = np.where(q > hi, q - span, q)
        return q.astype(np.int64)

    def quantize_to_floats(self, x) -> np.ndarray:
        """The values (as doubles) that assigning the doubles ``x`` to this type stores."""
        return self.to_float(self.quantize_to_ints(x))

    def requantize(self, v: np.ndarray, frac: int) -> np.ndarray:
        """Assign int64 fixed-point values with ``frac`` fraction bits to this type (ap_fixed = ap_fixed)."""
        return self.fold(self.rescale(v, frac))

    def rescale(self, v: np.ndarray, frac: int) -> np.ndarray:
        """``requantize`` before the overflow mode: only the fraction bits are rounded (may return ``v`` itself)."""
        v = np.asarray(v, dtype=np.int64)
        shift = frac - self.frac
        if shift > 0:
            return _shift_rounding(v, shift, self.rounding)
        if shift < 0:
            return v << -shift
        return v

    def fold(self, v: np.ndarray) -> np.ndarray:
        """The overflow mode applied to integers already at this type's lsb."""
        lo, hi = self.int_range
        if self.saturation == "SAT":
            return np.clip(v, lo, hi)
        if np.size(v) and lo <= np.min(v) and np.max(v) <= hi:  # two reductions are cheaper than the fold
            return v
        return ((v - lo) & ((1 << self.width) - 1)) + lo

    def to_float(self, v: np.ndarray) -> np.ndarray:
        return np.ldexp(np.asarray(v, dtype=np.float64), -self.frac)

    def holds(self, lo: int, hi: int, frac: int) -> bool:
        """Whether every integer in [lo, hi] at ``frac`` fraction bits fits without rounding or overflow."""
        if frac > self.frac:
            return False
        shift = self.frac - frac
        t_lo, t_hi = self.int_range
        return t_lo <= (lo << shift) and (hi << shift) <= t_hi


# Exact while |x| < 2**51: adding 0.5 then loses nothing. Ties: RND up, RND_MIN_INF down,
# RND_CONV to even (rint), RND_ZERO towards zero, RND_INF away from zero.
_ROUND_FLOAT = {
    "TRN": np.floor,
    "TRN_ZERO": np.trunc,
    "RND": lambda x: np.floor(x + 0.5),
    "RND_MIN_INF": lambda x: np.ceil(x - 0.5),
    "RND_CONV": np.rint,
    "RND_ZERO": lambda x: np.copysign(np.ceil(np.abs(x) - 0.5), x),
    "RND_INF": lambda x: np.copysign(np.floor(np.abs(x) + 0.5), x),
}


def _round_up(fraction, low, negative, mode: str):
    """1 where the quantization mode rounds the dropped ``fraction`` (in [0, 1)) up, else 0 (floats)."""
    half = fraction == 0.5
    above = fraction > 0.5
    if mode == "TRN":
        return np.zeros_like(fraction)
    if mode == "TRN_ZERO":
        return (negative & (fraction > 0)).astype(np.float64)
    if mode == "RND":
        return (fraction >= 0.5).astype(np.float64)
    if mode == "RND_ZERO":
        return (above | (half & negative)).astype(np.float64)
    if mode == "RND_MIN_INF":
        return above.astype(np.float64)
    if mode == "RND_INF":
        return (above | (half & ~negative)).astype(np.float64)
    return (above | (half & (np.fmod(low, 2.0) != 0))).astype(np.float64)  # RND_CONV: ties to even


def _shift_rounding(v, s: int, mode: str):
    """v / 2**s rounded by ``mode``, as one offset before an arithmetic (floor) shift.

    With v = a*2**s + r: a carry happens exactly when r + offset >= 2**s, so the offset picks
    which remainders round up (half = 2**(s-1); ties decided by sign or by the parity of a).
    In place on one new array: these run on every activation of every jet.
    """
    half = 1 << (s - 1)
    if mode == "TRN":
        return v >> s
    if mode in ("RND", "RND_MIN_INF"):
        out = v + (half if mode == "RND" else half - 1)
    elif mode == "RND_CONV":
        out = v >> s
        out &= 1
        out += v
        out += half - 1
    else:
        out = (v < 0).astype(np.int64)
        if mode == "TRN_ZERO":
            out *= (1 << s) - 1
            out += v
        elif mode == "RND_ZERO":
            out += v
            out += half - 1
        else:  # RND_INF
            np.subtract(v, out, out=out)
            out += half
    out >>= s
    return out
