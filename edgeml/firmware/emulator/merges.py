"""Two-input merges (``nnet_merge.h``, ``nnet_merge_stream.h``): Add, Subtract, Multiply, Average, Maximum,
Minimum (hls4ml's Merge) and Concatenate.

ap_fixed's ``+ - *`` widen to a type that holds the result exactly, ``* ap_ufixed<1,0>(0.5)`` halves
exactly, and ``a > b`` compares exact values: only the assignment to the result type rounds and
overflows, as here. io_parallel broadcasts the smaller input (``data[i % n_elem]``); io_stream, which
hls4ml only allows for equal sizes, computes the same elementwise values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import _fixed, _is_stream, _pack_size, _Step, _Unsupported, register
from edgeml.fixed import Fixed

_OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum")


def _merge_info(layer) -> dict:
    out = layer.get_output_variable()
    if len(layer.inputs) != 2:
        raise _Unsupported(f"{len(layer.inputs)} inputs")
    return dict(name=layer.name, input=tuple(layer.inputs), output=layer.outputs[0], variable=out.name,
                out_t=_fixed(out.type.precision, "result"), size=int(np.prod(out.shape)),
                a_t=_fixed(layer.get_input_variable(layer.inputs[0]).type.precision, "input 1"),
                b_t=_fixed(layer.get_input_variable(layer.inputs[1]).type.precision, "input 2"))


@dataclass
class _MergeStep(_Step):
    a_t: Fixed = None
    b_t: Fixed = None
    op: str = "add"
    a_index: np.ndarray | None = None  # broadcasting: which element of each input output i reads
    b_index: np.ndarray | None = None

    def __post_init__(self):
        self.frac = max(self.a_t.frac, self.b_t.frac)

    def __call__(self, a, b):
        if self.a_index is not None:
            a = a[:, self.a_index]
        if self.b_index is not None:
            b = b[:, self.b_index]
        if self.op == "multiply":
            return self.out_t.requantize(a * b, self.a_t.frac + self.b_t.frac)
        a = a << (self.frac - self.a_t.frac)
        b = b << (self.frac - self.b_t.frac)
        if self.op == "add":
            return self.out_t.requantize(a + b, self.frac)
        if self.op == "subtract":
            return self.out_t.requantize(a - b, self.frac)
        if self.op == "average":
            return self.out_t.requantize(a + b, self.frac + 1)
        pick = a > b if self.op == "maximum" else a < b
        return self.out_t.requantize(np.where(pick, a, b), self.frac)


def _magnitude_bits(t: Fixed) -> int:
    return t.width + (not t.signed)


@register("Merge")
def _merge_step(layer) -> _MergeStep:
    info = _merge_info(layer)
    op = str(layer.get_attr("op")).lower()
    if op not in _OPS:
        raise _Unsupported(f"merge operation {op}")
    a_t, b_t = info["a_t"], info["b_t"]
    frac = max(a_t.frac, b_t.frac)
    bits = (_magnitude_bits(a_t) + _magnitude_bits(b_t) if op == "multiply"
            else max(_magnitude_bits(a_t) + frac - a_t.frac, _magnitude_bits(b_t) + frac - b_t.frac) + 1)
    if bits > 62:
        raise _Unsupported(f"{op} of {a_t} and {b_t} needs {bits} bits")
    n1, n2 = (int(np.prod(layer.get_input_variable(name).shape)) for name in layer.inputs)
    n = info["size"]
    if n != max(n1, n2):
        raise _Unsupported(f"output of {n} elements for inputs of {n1} and {n2}")
    if _is_stream(layer):
        words = {_pack_size(layer.get_input_variable(name)) for name in layer.inputs}
        words.add(_pack_size(layer.get_output_variable()))
        if len(words) != 1:  # nnet_merge_stream.h asserts equal word sizes
            raise _Unsupported(f"io_stream merge of streams with words of {sorted(words)} values")
    a_index = None if n1 == n else np.arange(n) % n1
    b_index = None if n2 == n else np.arange(n) % n2
    return _MergeStep(**info, op=op, a_index=a_index, b_index=b_index)


@dataclass
class _ConcatStep(_Step):
    a_t: Fixed = None
    b_t: Fixed = None
    a_shape: tuple = ()
    b_shape: tuple = ()
    axis: int = -1

    def __call__(self, a, b):
        n = len(a)
        a = self.out_t.requantize(a, self.a_t.frac).reshape(n, *self.a_shape)
        b = self.out_t.requantize(b, self.b_t.frac).reshape(n, *self.b_shape)
        return np.concatenate([a, b], axis=self.axis + 1).reshape(n, -1)


@register("Concatenate")
def _concatenate_step(layer) -> _ConcatStep:
    """The axis as the C++ reads hls4ml's (Keras's, batch included) axis: for rank 3, 3 or -1 is the last,
    2 or -2 the middle, anything else the first; for rank 2, 2 or -1 the last, else the first."""
    info = _merge_info(layer)
    a_shape, b_shape = (tuple(int(s) for s in layer.get_input_variable(name).shape) for name in layer.inputs)
    rank = len(a_shape)
    if rank != len(b_shape) or rank not in (1, 2, 3):
        raise _Unsupported(f"concatenation of shapes {a_shape} and {b_shape}")
    given = int(layer.get_attr("axis", -1))
    if rank == 3:
        axis = 2 if given in (3, -1) else 1 if given in (2, -2) else 0
    elif rank == 2:
        axis = 1 if given in (2, -1) else 0
    else:
        axis = 0
    others = [k for k in range(rank) if k != axis]
    if [a_shape[k] for k in others] != [b_shape[k] for k in others]:
        raise _Unsupported(f"concatenation of shapes {a_shape} and {b_shape} on axis {given}")
    expected = sum(a_shape) + sum(b_shape) if rank == 1 else int(np.prod(a_shape)) + int(np.prod(b_shape))
    if info["size"] != expected:
        raise _Unsupported("output size")
    return _ConcatStep(**info, a_shape=a_shape, b_shape=b_shape, axis=axis)


@register("Dot")
def _dot_step(layer):
    raise _Unsupported("Dot merge (dot1d) is not emulated")
