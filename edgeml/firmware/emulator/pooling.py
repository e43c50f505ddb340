"""Max and average pooling, 1D/2D and global (``nnet_pooling.h``, ``nnet_pooling_stream.h``), channels last.

The two IO types compute differently:

- io_parallel: max over the window in the input type, then cast to ``accum_t``; average adds the window
  into ``accum_t`` one element at a time (each sum cast to ``accum_t``, pads add 0), then ``/= n`` with n the
  pixels inside the image (C integer division of the accum_t integer, towards zero). Max pooling pads
  with the input type's top-bit pattern (``x[width - 1] = 1``): the most negative value of a signed type
  but half the range of an unsigned one, which then wins the max.
- io_stream: every window element is cast to ``accum_t`` first; max and sum are balanced trees
  (``nnet::reduce``) in ``accum_t``, the sum divided by the window size. Global pooling runs over the
  pixels in order: max from ``accum_t``'s minimum, sum from 0, divided by the pixel count at the end.

The result is assigned to the output type in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import (_channels_last, _common, _is_stream, _pack_size, _Step, _trunc_div,
                                           _type_attr, _Unsupported, register)
from edgeml.firmware.emulator.softmax import _tree_sum
from edgeml.fixed import Fixed


@dataclass
class _PoolStep(_Step):
    in_t: Fixed = None
    acc_t: Fixed = None
    windows: np.ndarray = None  # (k, n_out): input index of window element k of each output, -1 for a pad
    counts: np.ndarray = None  # (n_out,) divisor of each average
    op: str = "Max"
    stream: bool = False
    tree: bool = True  # io_stream windows reduce as a tree; global pooling runs in order
    # io_stream 2D/1D pooling (no padding, stride = pool): (h, w, c, pool_h, pool_w, out_h, out_w), whose
    # windows are then strided views of the input instead of gathered copies
    grid: tuple = None

    def __post_init__(self):
        self.frac = max(self.in_t.frac, self.acc_t.frac)
        self.pads = (self.windows < 0).any(axis=1)
        lo, hi = self.in_t.int_range
        self.pad = lo if self.in_t.signed else hi + 1 >> 1  # the bit pattern with only the top bit set
        # Rounding and saturation are monotone, wrapping is where no input overflows accum_t: the max of
        # the cast window elements is then the cast of their max (one cast per output, not per element)
        cast = self.acc_t.rescale(np.array([lo, hi]), self.in_t.frac)
        a_lo, a_hi = self.acc_t.int_range
        self.monotone = self.acc_t.saturation == "SAT" or bool(a_lo <= cast[0] and cast[1] <= a_hi)

    def _element(self, x, k):
        v = x[:, np.maximum(self.windows[k], 0)]
        if self.pads[k]:
            v[:, self.windows[k] < 0] = self.pad if self.op == "Max" else 0
        return v

    def _views(self, x):
        """The window elements of io_stream pooling: strided views of ``x`` (grid) or gathered copies."""
        if self.grid is None:
            return (x[:, self.windows[k]] for k in range(len(self.windows)))
        h, w, c, pool_h, pool_w, out_h, out_w = self.grid
        image = x.reshape(len(x), h, w, c)[:, :out_h * pool_h, :out_w * pool_w]
        return (image[:, ky::pool_h, kx::pool_w] for ky in range(pool_h) for kx in range(pool_w))

    def _stream_max(self, x):
        """Running max over the window elements (each cast to accum_t first), no stacked copy."""
        if not self.monotone:
            x = self.acc_t.requantize(x, self.in_t.frac)
        views = self._views(x)
        acc = np.array(next(views))
        for v in views:
            np.maximum(acc, v, out=acc)
        acc = acc.reshape(len(x), -1)
        return self.acc_t.requantize(acc, self.in_t.frac) if self.monotone else acc

    def __call__(self, x):
        k_all = range(len(self.windows))
        if self.stream and self.op == "Max":
            acc = self._stream_max(x)
        elif self.stream:
            terms = [self.acc_t.requantize(self._element(x, k), self.in_t.frac) for k in k_all]
            if self.tree:
                acc = _tree_sum(terms, self.acc_t)
            else:
                acc = terms[0]
                for term in terms[1:]:
                    acc = self.acc_t.fold(acc + term)
        elif self.op == "Max":
            acc = self._element(x, 0)  # a fresh gathered copy
            for k in k_all[1:]:
                np.maximum(acc, self._element(x, k), out=acc)
            acc = self.acc_t.requantize(acc, self.in_t.frac)
        else:
            up = self.frac - self.in_t.frac
            acc = np.zeros((len(x), self.windows.shape[1]), dtype=np.int64)
            for k in k_all:  # accum_t y = 0; y += x[i]: each sum rounded and folded into accum_t
                total = (acc << (self.frac - self.acc_t.frac)) + (self._element(x, k) << up)
                acc = self.acc_t.requantize(total, self.frac)
        if self.op != "Max":
            acc = _trunc_div_each(acc, self.counts)
        return self.out_t.requantize(acc, self.acc_t.frac)


def _trunc_div_each(a, d: np.ndarray):
    """C integer division (towards zero) of each column by its positive divisor."""
    if (d == d[0]).all():
        return _trunc_div(a, int(d[0]))
    q = np.abs(a) // d
    return np.where(a < 0, -q, q)


def _pool_op(layer) -> str:
    op = str(layer.get_attr("pool_op"))
    if op not in ("Max", "Average"):
        raise _Unsupported(f"pool_op {op}")
    return op


def _windows(h, w, c, pool_h, pool_w, stride_h, stride_w, pad_t, pad_l, out_h, out_w):
    """(pool_h * pool_w, out_h * out_w * c) input indices, window elements row by row; -1 outside the image."""
    oy, ox, ch = np.meshgrid(np.arange(out_h), np.arange(out_w), np.arange(c), indexing="ij")
    rows = []
    for ky in range(pool_h):
        for kx in range(pool_w):
            y = oy * stride_h + ky - pad_t
            x = ox * stride_w + kx - pad_l
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            rows.append(np.where(inside, (y * w + x) * c + ch, -1).reshape(-1))
    return np.array(rows)


@register("Pooling1D", "Pooling2D")
def _pooling_step(layer) -> _PoolStep:
    info = _common(layer)
    _channels_last(layer)
    a = layer.get_attr
    two_d = layer.class_name == "Pooling2D"
    h, out_h = (int(a("in_height")), int(a("out_height"))) if two_d else (1, 1)
    w, out_w = (int(a("in_width")), int(a("out_width"))) if two_d else (int(a("n_in")), int(a("n_out")))
    pool_h, stride_h = (int(a("pool_height")), int(a("stride_height"))) if two_d else (1, 1)
    pool_w, stride_w = int(a("pool_width")), int(a("stride_width"))
    pad_t, pad_b = (int(a("pad_top")), int(a("pad_bottom"))) if two_d else (0, 0)
    pad_l, pad_r = int(a("pad_left")), int(a("pad_right"))
    c = int(a("n_filt"))
    op = _pool_op(layer)
    stream = _is_stream(layer)
    if stream and (pad_t or pad_b or pad_l or pad_r):
        raise _Unsupported("io_stream pooling with padding (hls4ml's stream pooling asserts there is none)")
    if stream and (pool_h != stride_h or pool_w != stride_w):
        raise _Unsupported(f"io_stream pooling with stride {stride_h}x{stride_w} != pool {pool_h}x{pool_w}")
    # the C++ loops cover (padded - pool) / stride + 1 positions; hls4ml's out_width is Keras's
    expected = ((h + pad_t + pad_b - pool_h) // stride_h + 1, (w + pad_l + pad_r - pool_w) // stride_w + 1)
    if expected != (out_h, out_w):
        raise _Unsupported(f"output {out_h}x{out_w} but the loops give {expected[0]}x{expected[1]}")
    windows = _windows(h, w, c, pool_h, pool_w, stride_h, stride_w, pad_t, pad_l, out_h, out_w)
    count_pad = bool(a("count_pad", False))
    counts = np.full(windows.shape[1], len(windows)) if count_pad or stream else (windows >= 0).sum(axis=0)
    grid = (h, w, c, pool_h, pool_w, out_h, out_w) if stream else None
    return _PoolStep(**info, acc_t=_type_attr(layer, "accum_t"), windows=windows, counts=counts, op=op,
                     stream=stream, grid=grid)


@register("GlobalPooling1D", "GlobalPooling2D")
def _global_pooling_step(layer) -> _PoolStep:
    info = _common(layer)
    _channels_last(layer)
    a = layer.get_attr
    pixels = int(a("in_height")) * int(a("in_width")) if layer.class_name == "GlobalPooling2D" else int(a("n_in"))
    c = int(a("n_filt"))
    if int(np.prod(layer.get_input_variable().shape)) != pixels * c:
        raise _Unsupported("input size is not pixels x n_filt")
    stream = _is_stream(layer)
    if stream and _pack_size(layer.get_input_variable()) != c:
        raise _Unsupported("io_stream input packed other than one pixel per word")
    windows = (np.arange(pixels)[:, None] * c + np.arange(c)[None, :])
    return _PoolStep(**info, acc_t=_type_attr(layer, "accum_t"), windows=windows, counts=np.full(c, pixels),
                     op=_pool_op(layer), stream=stream, tree=False)

