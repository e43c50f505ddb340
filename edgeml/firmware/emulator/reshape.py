"""Layers that only move values: Reshape (Flatten), Repack and Clone (inserted in io_stream), ZeroPadding1D/2D,
Cropping1D/2D, Resize (UpSampling1D/2D, nearest) and Transpose (Permute).

Each output element is one input element (or a zero) assigned to the output type, as the C++ does with
``res[i] = data[j]`` (``nnet_padding.h``, ``nnet_cropping.h``, ``nnet_image.h``, ``nnet_transpose.h``,
``nnet_stream.h`` and their stream forms, which move the same values in the same channels-last order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import _channels_last, _common, _is_stream, _pack_size, _Step, _Unsupported, register
from edgeml.fixed import Fixed


@dataclass
class _CopyStep(_Step):
    """``out[:, i] = in[:, index[i]]`` (0 where ``index[i]`` is -1), assigned to ``out_t``; ``index`` None:
    every element in place. A tuple ``output`` (Clone) gets the same values under every name."""

    in_t: Fixed = None
    index: np.ndarray | None = None

    def __post_init__(self):
        self.zeros = None if self.index is None else self.index < 0
        if self.zeros is not None and not self.zeros.any():
            self.zeros = None

    def __call__(self, x):
        if self.index is not None:
            x = x[:, np.maximum(self.index, 0)]
            if self.zeros is not None:
                x[:, self.zeros] = 0
        y = self.out_t.requantize(x, self.in_t.frac)
        return tuple(y for _ in self.output) if isinstance(self.output, tuple) else y


def _pixel_words(layer) -> None:
    """The stream padding, cropping and resize templates read one pixel (n_chan values) per word."""
    if _is_stream(layer) and _pack_size(layer.get_input_variable()) != int(layer.get_attr("n_chan")):
        raise _Unsupported(f"io_stream input in words of {_pack_size(layer.get_input_variable())} values, "
                           f"not one pixel of {layer.get_attr('n_chan')}")


def _same_size(layer, info) -> None:
    if int(np.prod(layer.get_input_variable().shape)) != info["size"]:
        raise _Unsupported("input and output sizes differ")


@register("Reshape", "Repack")
def _reshape_step(layer) -> _CopyStep:
    """A new shape over the same channels-last order (no function at all in io_parallel, an in-place stream or
    ``repack_stream`` in io_stream)."""
    info = _common(layer)
    _same_size(layer, info)
    if layer.class_name == "Repack":
        a, b = _pack_size(layer.get_input_variable()), _pack_size(layer.get_output_variable())
        if max(a, b) % min(a, b):  # pack_diff = larger / smaller, truncated: words are lost or left over
            raise _Unsupported(f"repack_stream from words of {a} to words of {b} (hls4ml needs one to divide "
                               "the other)")
    return _CopyStep(**info)


@register("Clone")
def _clone_step(layer) -> _CopyStep:
    """``clone_stream``: the input copied to every output stream (io_stream, for a value used more than once)."""
    info = _common(layer)
    _same_size(layer, info)
    types = {str(layer.get_output_variable(name).type.precision) for name in layer.outputs}
    if len(types) != 1:
        raise _Unsupported(f"outputs of different types {sorted(types)}")
    return _CopyStep(**{**info, "output": tuple(layer.outputs)})


def _grid(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape)


@register("ZeroPadding1D", "ZeroPadding2D")
def _zeropad_step(layer) -> _CopyStep:
    info = _common(layer)
    _channels_last(layer)
    _pixel_words(layer)
    a = layer.get_attr
    h = int(a("in_height", 1))
    top, bottom = (int(a("pad_top")), int(a("pad_bottom"))) if layer.class_name == "ZeroPadding2D" else (0, 0)
    index = np.pad(_grid(h, int(a("in_width")), int(a("n_chan"))),
                   ((top, bottom), (int(a("pad_left")), int(a("pad_right"))), (0, 0)), constant_values=-1)
    return _CopyStep(**info, index=index.reshape(-1))


@register("Cropping1D", "Cropping2D")
def _cropping_step(layer) -> _CopyStep:
    info = _common(layer)
    _channels_last(layer)
    _pixel_words(layer)
    a = layer.get_attr
    h, w, c = int(a("in_height", 1)), int(a("in_width")), int(a("n_chan"))
    top = int(a("crop_top", 0))
    left = int(a("crop_left"))
    out_h, out_w = int(a("out_height", 1)), int(a("out_width"))
    index = _grid(h, w, c)[top:top + out_h, left:left + out_w]
    return _CopyStep(**info, index=index.reshape(-1))


@register("Resize")
def _resize_step(layer) -> _CopyStep:
    """Nearest-neighbour resize. io_parallel picks source pixel ``(i * ratio) >> 16`` with
    ``ratio = (size << 16) / new_size + 1`` (``nnet_image.h``); io_stream repeats each pixel new/old times
    and requires whole ratios."""
    info = _common(layer)
    _channels_last(layer)
    algorithm = str(layer.get_attr("algorithm", "nearest"))
    if algorithm != "nearest":
        raise _Unsupported(f"{algorithm} interpolation")
    _pixel_words(layer)
    a = layer.get_attr
    h, w, c = int(a("in_height", 1)), int(a("in_width")), int(a("n_chan"))
    new_h, new_w = int(a("out_height", 1)), int(a("out_width"))
    if _is_stream(layer):
        if new_h % h or new_w % w:
            raise _Unsupported(f"io_stream resize from {h}x{w} to {new_h}x{new_w} (not a whole ratio)")
        rows, cols = np.arange(new_h) // (new_h // h), np.arange(new_w) // (new_w // w)
    else:
        rows = (np.arange(new_h) * (((h << 16) // new_h) + 1)) >> 16
        cols = (np.arange(new_w) * (((w << 16) // new_w) + 1)) >> 16
    index = _grid(h, w, c)[rows][:, cols]
    return _CopyStep(**info, index=index.reshape(-1))


@register("Transpose")
def _transpose_step(layer) -> _CopyStep:
    info = _common(layer)
    shape = [int(s) for s in layer.get_input_variable().shape]
    perm = [int(p) for p in layer.get_attr("perm")]
    if sorted(perm) != list(range(len(shape))):
        raise _Unsupported(f"permutation {perm} of a {len(shape)}-d input")
    index = _grid(*shape).transpose(perm)
    return _CopyStep(**info, index=index.reshape(-1))
