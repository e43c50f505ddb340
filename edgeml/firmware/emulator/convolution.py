"""Convolutions (``nnet_conv1d*.h``, ``nnet_conv2d*.h``, ``nnet_conv_stream.h``, ``nnet_sepconv*.h``): im2col,
then per output pixel the dense kernel of ``dense`` (exact products cast to ``accum_t``, bias first, the
accumulator's overflow at every addition in the C++ order), vectorised over events and pixels.

Every conv form hls4ml 1.3 writes for these layers adds, per output pixel and filter, the inputs of the
window in the order kernel row, kernel column, channel (io_parallel: the generated ``fill_buffer`` feeds
``conv_*_latency_cl`` / ``conv_*_resource_cl`` / ``pointwise_conv_1d_latency_cl``; io_stream: the line
buffer or encoded window feeds the Dense kernels ``DenseLatency`` / ``DenseResource_*``). So a layer is one
gather of its windows and one ``DenseKernel``; Resource replays the reuse loops, which are those of
``dense_resource`` in both io types. io_parallel pads inside (the generated ``fill_buffer`` writes zeros,
whose products add nothing); io_stream gets a ZeroPadding layer in front and convolves 'valid'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import (_channels_last, _common, _is_stream, _Step, _Unsupported, _weight_ints,
                                           register)
from edgeml.firmware.emulator.dense import DenseKernel, dense_kernel
from edgeml.fixed import Fixed

# Gathered window entries per block of events: keeps the im2col block (and its products) in cache-sized
# pieces however many events a chunk has.
_BLOCK_ENTRIES = 1 << 21


@dataclass
class _ConvStep(_Step):
    in_t: Fixed = None
    kernel: DenseKernel = None
    windows: np.ndarray = None  # (pixels, n_in): input index of every window entry; in_size for a zero

    def __call__(self, x):
        return _convolve(x, self.windows, self.kernel)


def _convolve(x, windows: np.ndarray, kernel: DenseKernel):
    """(n, in_size) ints -> (n, pixels * n_out): the kernel applied to every window of every event.

    When the kernel is one exact float product (``exact_float``), the windows are gathered as floats and
    multiplied row-major, which leaves the sums in the output's (event, pixel, filter) order."""
    n, in_size = x.shape
    pixels, n_in = windows.shape
    n_out = kernel.w.shape[1]
    exact = kernel.exact_float
    padded = np.zeros((n, in_size + 1), dtype=exact or np.int64)
    padded[:, :in_size] = x
    out = np.empty((n, pixels * n_out), dtype=np.int64)
    step = max(1, _BLOCK_ENTRIES // (pixels * n_in))
    for start in range(0, n, step):
        rows = padded[start:start + step][:, windows].reshape(-1, n_in)
        block = out[start:start + step].reshape(-1, n_out)
        if exact:
            np.copyto(block, rows @ kernel.product.wf.T, casting="unsafe")
            block += kernel.b_acc
            result = kernel.finish(block)
        else:
            result = kernel(rows)
        if result is not block:
            block[...] = result
    return out


# --------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class _Geometry:
    in_h: int
    in_w: int
    n_chan: int
    filt_h: int
    filt_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int

    @classmethod
    def of(cls, layer) -> "_Geometry":
        two_d = "2D" in layer.class_name
        get = layer.get_attr
        return cls(int(get("in_height", 1)) if two_d else 1, int(get("in_width")), int(get("n_chan")),
                   int(get("filt_height", 1)) if two_d else 1, int(get("filt_width")),
                   int(get("stride_height", 1)) if two_d else 1, int(get("stride_width")),
                   int(get("pad_top", 0)) if two_d else 0, int(get("pad_left", 0)),
                   int(get("out_height", 1)) if two_d else 1, int(get("out_width")))

    @property
    def n_in(self) -> int:
        """Inputs of one window."""
        return self.filt_h * self.filt_w * self.n_chan

    def windows(self) -> np.ndarray:
        """(out pixels, filt_h * filt_w * n_chan) flat input indices in (kernel row, kernel column, channel)
        order, ``in_h * in_w * n_chan`` where the window reaches into the padding (as hls4ml's
        ``_compute_conv2d_im2col``)."""
        zero = self.in_h * self.in_w * self.n_chan
        rows = (np.arange(self.out_h) * self.stride_h - self.pad_top)[:, None] + np.arange(self.filt_h)
        cols = (np.arange(self.out_w) * self.stride_w - self.pad_left)[:, None] + np.arange(self.filt_w)
        r = rows[:, None, :, None, None]
        c = cols[None, :, None, :, None]
        ch = np.arange(self.n_chan)[None, None, None, None, :]
        index = (r * self.in_w + c) * self.n_chan + ch
        inside = (r >= 0) & (r < self.in_h) & (c >= 0) & (c < self.in_w) & (ch >= 0)
        index = np.where(inside, index, zero)
        return index.reshape(self.out_h * self.out_w, -1)


_FILL = re.compile(r"buffer\[(\d+)\]\[(\d+)\]\s*=\s*(?:data\[(\d+)\]|0)\s*;")
_PARTITION = re.compile(r"if \(partition ==\s*(\d+)\)")


def _generated_windows(source: str, pixels: int, n_in: int, zero: int) -> np.ndarray | None:
    """The windows the generated C++ ``fill_buffer`` (io_parallel) fills, or None if it cannot be read."""
    starts = [(m.start(), int(m.group(1))) for m in _PARTITION.finditer(source)]
    if not starts:
        return None
    windows = np.full((pixels, n_in), -1, dtype=np.int64)
    per_partition = pixels // len(starts)
    bounds = [s for s, _ in starts] + [len(source)]
    for (begin, partition), end in zip(starts, bounds[1:]):
        for m in _FILL.finditer(source, begin, end):
            pixel, entry = partition * per_partition + int(m.group(1)), int(m.group(2))
            if pixel >= pixels or entry >= n_in:
                return None
            windows[pixel, entry] = zero if m.group(3) is None else int(m.group(3))
    return None if (windows < 0).any() else windows


def _layer_windows(layer, geometry: _Geometry) -> np.ndarray:
    """The conv's windows, checked against what the generated C++ gathers where it gathers in a fill_buffer."""
    windows = geometry.windows()
    source = layer.get_attr("line_buffer_codegen")
    if source is not None and not _batched_pointwise(layer):
        zero = geometry.in_h * geometry.in_w * geometry.n_chan
        generated = _generated_windows(str(source), len(windows), windows.shape[1], zero)
        if generated is None or not np.array_equal(generated, windows):
            raise _Unsupported("a generated fill_buffer that is not the im2col of the layer's geometry")
    return windows


def _batched_pointwise(layer) -> bool:
    """io_parallel Latency 1D 1x1 conv in one partition: BatchedDenseForConv1D (no fill_buffer; output pixel
    i reads input pixel i * stride)."""
    return ("1D" in layer.class_name and int(layer.get_attr("filt_width")) == 1 and not _is_stream(layer)
            and _strategy(layer) == "latency" and int(layer.get_attr("n_partitions", 0)) == 1)


def _strategy(layer) -> str:
    return str(layer.get_attr("strategy", "latency")).lower()


def _check_form(layer, geometry: _Geometry):
    _channels_last(layer)
    if _is_stream(layer):
        if geometry.pad_top or geometry.pad_left or layer.get_attr("pad_bottom", 0) or layer.get_attr("pad_right", 0):
            raise _Unsupported("padding inside an io_stream conv")
        implementation = str(layer.get_attr("implementation", "linebuffer")).lower()
        if implementation not in ("linebuffer", "encoded"):
            raise _Unsupported(f"ConvImplementation {implementation}")
        one_row = "2D" in layer.class_name and "Pointwise" not in layer.class_name and geometry.filt_h == 1
        if one_row and geometry.stride_h > 1 and implementation == "linebuffer":
            # conv_2d_buffer_cl runs the 1D line buffer then, which never skips rows (a 1x1 conv is a
            # PointwiseConv2D, whose stream loop does)
            raise _Unsupported("io_stream line buffer with a one-row kernel and a vertical stride")
        if implementation == "encoded" and "2D" in layer.class_name and (
                geometry.filt_h != geometry.filt_w or geometry.stride_h != geometry.stride_w):
            raise _Unsupported("encoded conv with a non-square kernel or stride")
    elif _strategy(layer) == "resource" and int(layer.get_attr("reuse_factor", 1)) > geometry.n_in:
        # conv_*_resource_cl asserts RF <= filt * n_chan: the C-simulation aborts
        raise _Unsupported(f"io_parallel Resource conv with reuse factor {layer.get_attr('reuse_factor')} "
                           f"> kernel inputs {geometry.n_in}")
    if "Depthwise" in layer.class_name:
        if int(layer.get_attr("n_filt")) != geometry.n_chan:
            raise _Unsupported("depth_multiplier > 1 (hls4ml asserts a multiplier of 1)")
        if not _is_stream(layer) and _strategy(layer) != "latency":
            raise _Unsupported("io_parallel Resource DepthwiseConv (hls4ml asserts Latency)")


def _kernel_weights(layer, name: str, n_in: int, n_out: int) -> tuple[np.ndarray, Fixed]:
    """(n_in, n_out) weight ints as the C++ indexes the flat array: Latency w[i * n_out + o],
    Resource (weights transposed by hls4ml) w[o * n_in + i]."""
    w, w_t = _weight_ints(layer, name)
    flat = w.reshape(-1)
    if flat.size != n_in * n_out:
        raise _Unsupported(f"{name} of {flat.size} values for a {n_in}x{n_out} kernel")
    if _strategy(layer) == "resource":
        return flat.reshape(n_out, n_in).T, w_t
    return flat.reshape(n_in, n_out), w_t


@register("Conv1D", "Conv2D", "Conv2DBatchnorm", "PointwiseConv1D", "PointwiseConv2D")
def _conv_step(layer) -> _ConvStep:
    info = _common(layer)
    geometry = _Geometry.of(layer)
    _check_form(layer, geometry)
    n_in, n_filt = geometry.n_in, int(layer.get_attr("n_filt"))
    if _strategy(layer) == "distributed_arithmetic":  # da4ml's adder graph replaces the kernel and its weights
        from edgeml.firmware.emulator.distributed import da_conv_step

        return da_conv_step(layer, _layer_windows(layer, geometry), n_filt)
    w, w_t = _kernel_weights(layer, "weight", n_in, n_filt)
    b, b_t = _weight_ints(layer, "bias")
    kernel = dense_kernel(layer, info["in_t"], info["out_t"], w, w_t, b.reshape(-1), b_t)
    return _ConvStep(**info, kernel=kernel, windows=_layer_windows(layer, geometry))


@register("DepthwiseConv1D", "DepthwiseConv2D")
def _depthwise_step(layer) -> _ConvStep:
    """Channel c of a window sums its kernel positions k: as a dense kernel, a block-diagonal weight matrix
    (zero weights add exact zeros), inputs in the order of ``depthwise_product_latency`` or of the replayed
    ``depthwise_product_resource_*`` loops."""
    info = _common(layer)
    geometry = _Geometry.of(layer)
    _check_form(layer, geometry)
    n_chan, n_in = geometry.n_chan, geometry.n_in
    w, w_t = _weight_ints(layer, "weight")
    if w.size != n_in:
        raise _Unsupported(f"depthwise weight of {w.size} values for {n_in} window entries")
    full = np.zeros((n_in, n_chan), dtype=np.int64)
    full[np.arange(n_in), np.arange(n_in) % n_chan] = w.reshape(-1)
    b, b_t = _weight_ints(layer, "bias")
    kernel = dense_kernel(layer, info["in_t"], info["out_t"], full, w_t, b.reshape(-1), b_t, reuse_order=False)
    if _strategy(layer) == "resource":
        kernel.order = _depthwise_order(n_in, n_chan, int(layer.get_attr("reuse_factor", 1)))
    return _ConvStep(**info, kernel=kernel, windows=_layer_windows(layer, geometry))


def _depthwise_order(n_in: int, n_out: int, reuse: int) -> np.ndarray | None:
    """Per channel, the window entries in the order the depthwise_product_resource_* function hls4ml picks adds
    them (then the other entries, whose zero weights add nothing); None when that is the natural order.
    Refuses a reuse factor for which the C++ would pair an entry with another channel or miss one."""
    visits = []  # (out_index, in_index) in C++ order
    if reuse <= n_out:  # _rf_leq_nout
        for ir in range(reuse):
            in_index, out_index = ir, ir
            for _ in range(-(-n_in // reuse)):
                visits.append((out_index, in_index))
                in_index += reuse
                out_index += reuse
                if out_index >= n_out:
                    out_index -= n_out
    else:  # _rf_gt_nout_rem0 (RF % n_out == 0) and _rf_gt_nout
        rufactor = min(reuse, n_in)
        step = 0 if reuse % n_out == 0 else reuse % n_out
        for ir in range(rufactor):
            in_index, out_index = ir, ir % n_out
            for _ in range(-(-n_in // rufactor)):
                visits.append((out_index, in_index))
                in_index += rufactor
                out_index += step
                if out_index >= n_out:
                    out_index -= n_out
    if sorted(i for _, i in visits) != list(range(n_in)) or any(i % n_out != o for o, i in visits):
        raise _Unsupported(f"depthwise Resource strategy with reuse factor {reuse} for {n_in} entries")
    order = []
    for channel in range(n_out):
        mine = [i for o, i in visits if o == channel]
        order.append(mine + [i for i in range(n_in) if i % n_out != channel])
    order = np.array(order)
    natural = [[i for i in range(n_in) if i % n_out == c] for c in range(n_out)]
    return None if all(list(row[:len(nat)]) == nat for row, nat in zip(order, natural)) else order
