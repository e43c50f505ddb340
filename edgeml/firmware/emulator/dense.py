"""Dense (``nnet_dense_latency.h``, ``nnet_dense_resource.h``): exact products cast to ``accum_t``,
summed with the accumulator's overflow at every step, as one integer matrix product when order cannot matter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import _common, _Step, _type_attr, _Unsupported, _weight_ints, register
from edgeml.fixed import Fixed


@dataclass
class DenseKernel:
    """One dense product ``res = cast<out_t>(bias + sum_i cast<accum_t>(x_i * w_i))`` over the rows of ``x``
    (n_rows, n_in) -> (n_rows, n_out) ints at ``out_t``: a Dense layer's, or a convolution's per output pixel."""

    in_t: Fixed
    out_t: Fixed
    w: np.ndarray  # (n_in, n_out) ints at w_t
    w_t: Fixed
    b_acc: np.ndarray  # bias already cast to accum_t
    acc_t: Fixed
    order: np.ndarray | None = None  # (n_out, n_in): per output, the inputs in the order the C++ adds them

    def __post_init__(self):
        self.shift = self.in_t.frac + self.w_t.frac - self.acc_t.frac
        x_lo, x_hi = self.in_t.int_range
        self.static_free = self._no_overflow(np.full(self.w.shape[0], x_lo), np.full(self.w.shape[0], x_hi))
        lo, hi = self.acc_t.int_range
        self.same_result = self.out_t.frac == self.acc_t.frac and self.out_t.holds(lo, hi, self.acc_t.frac)
        if self.shift <= 0:
            self.product = _IntMatmul(self.w << -self.shift, x_hi)
        else:
            self.product = _rounded_products(self)
        # The float type in which the whole sum is one exact matrix product for any input (no product rounds,
        # and the accumulator wraps or cannot overflow), or None.
        free = self.static_free or self.acc_t.saturation == "WRAP"
        self.exact_float = self.product.float if self.shift <= 0 and free else None

    def __call__(self, x):
        if self.static_free:  # no input of this type can overflow the accumulator
            acc = self.product(x)
            acc += self.b_acc
        elif self.acc_t.saturation == "WRAP" or self._no_overflow(x.min(axis=0), x.max(axis=0)):
            acc = self.product(x)
            acc += self.b_acc
            acc = self.acc_t.fold(acc)  # modular, or never saturating: order is free
        else:
            acc = self._sum_in_order(x)
        return acc if self.same_result else self.out_t.requantize(acc, self.acc_t.frac)

    def finish(self, acc):
        """The exact sum ``acc`` of bias and products (``exact_float``) folded into accum_t and cast to out_t."""
        if not self.static_free:
            acc = self.acc_t.fold(acc)
        return acc if self.same_result else self.out_t.requantize(acc, self.acc_t.frac)

    def _no_overflow(self, x_lo, x_hi) -> bool:
        """Whether no product and no partial sum (bias + any subset of products) can leave accum_t."""
        a, b = x_hi[:, None] * self.w, x_lo[:, None] * self.w
        hi, lo = np.maximum(a, b), np.minimum(a, b)
        s = self.shift
        hi, lo = ((hi >> s) + 1, lo >> s) if s > 0 else (hi << -s, lo << -s)
        t_lo, t_hi = self.acc_t.int_range
        top = self.b_acc + hi.clip(min=0).sum(axis=0)
        bottom = self.b_acc + lo.clip(max=0).sum(axis=0)
        return bool(top.max() <= t_hi and bottom.min() >= t_lo and hi.max() <= t_hi and lo.min() >= t_lo)

    def _cast_products(self, p):
        return self.acc_t.requantize(p, self.in_t.frac + self.w_t.frac)

    def _sum_in_order(self, x):
        acc = np.broadcast_to(self.b_acc, (len(x), self.w.shape[1])).copy()
        if self.order is None:
            for i in range(self.w.shape[0]):
                acc = self.acc_t.fold(acc + self._cast_products(x[:, i:i + 1] * self.w[i]))
            return acc
        for j, inputs in enumerate(self.order):
            for i in inputs:
                acc[:, j] = self.acc_t.fold(acc[:, j] + self._cast_products(x[:, i] * self.w[i, j]))
        return acc


class _IntMatmul:
    """x @ w on integers. A float32 or float64 BLAS product when every partial sum provably stays
    below 2**24 or 2**53 (then each step is exact), else NumPy's int64 product.

    The result is (jets, outputs) laid out jets-last in memory (a transposed view): the next
    layer then reads each input as one contiguous row, and elementwise steps keep that layout."""

    def __init__(self, w: np.ndarray, x_max: int):
        self.wT = np.ascontiguousarray(w.T)
        bound = float(np.abs(w).astype(np.float64).sum(axis=0).max(initial=0)) * max(abs(x_max) + 1, 1) * 2
        self.float = np.float32 if bound < 2 ** 24 else np.float64 if bound < 2 ** 53 else None
        self.wf = self.wT.astype(self.float) if self.float else None

    def __call__(self, x):
        return self.jets_last(x).T

    def jets_last(self, x):
        """(outputs, jets), C-contiguous."""
        if self.wf is None:
            return self.wT @ x.T
        return (self.wf @ x.T.astype(self.float)).astype(np.int64)


@dataclass
class _DenseStep(_Step):
    in_t: Fixed = None
    kernel: DenseKernel = None

    def __call__(self, x):
        return self.kernel(x)


def _rounded_products(step: DenseKernel):
    """sum_i cast<accum_t>(x_i * w_ij) when the cast drops ``s`` fraction bits.

    For the modes that are floor((p + c) / 2**s):
    floor((p + c) / 2**s) = (p + c - ((p + c) mod 2**s)) / 2**s, and (p + c) mod 2**s depends
    only on the low s bits of x and w. So the sum is one matrix product of x and w, corrected by
    the sum of those remainders, which 16-bit unsigned products give exactly while s <= 16
    (they wrap modulo 2**16, a multiple of 2**s). Other modes round each product in int64.
    """
    s, mode, w = step.shift, step.acc_t.rounding, step.w
    c = {"TRN": 0, "RND": 1 << (s - 1), "RND_MIN_INF": (1 << (s - 1)) - 1}.get(mode)
    if c is None or s > 16:
        def each(x):
            total = np.zeros((len(x), w.shape[1]), dtype=np.int64)
            for i in range(w.shape[0]):
                total += step._cast_products(x[:, i:i + 1] * w[i])
            return total
        return each
    mask = (1 << s) - 1
    exact = _IntMatmul(w, max(abs(v) for v in step.in_t.int_range))
    wl = (w & mask).astype(np.uint16)
    live = [i for i in range(w.shape[0]) if wl[i].any()]  # a zero weight leaves remainder c
    offset = len(live) * c
    wide = len(live) * mask >= 1 << 16

    def remainders(xT):
        xl = (xT & mask).astype(np.uint16, order="C")  # jets last: every NumPy call runs over all jets
        part = np.zeros((w.shape[1], xT.shape[1]), dtype=np.uint32 if wide else np.uint16)
        term = np.empty_like(part, dtype=np.uint16)
        for i in live:
            np.multiply(wl[i][:, None], xl[i], out=term)
            if c:
                term += c
            term &= mask
            part += term
        return part

    def total(x):
        out = exact.jets_last(x)
        if live:
            if offset:
                out += offset
            out -= remainders(x.T)
        out >>= s
        return out.T

    return total


@register("Dense")
def _dense_step(layer) -> _DenseStep:
    info = _common(layer)
    n_in, n_out = int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))
    if int(np.prod(layer.get_input_variable().shape)) != n_in:
        raise _Unsupported("Dense on a multi-dimensional input")
    w, w_t = _weight_ints(layer, "weight")
    if layer.get_attr("_weights_transposed", False):
        w = w.T
    b, b_t = _weight_ints(layer, "bias")
    return _DenseStep(**info, kernel=dense_kernel(layer, info["in_t"], info["out_t"], w.reshape(n_in, n_out), w_t,
                                                  b.reshape(-1), b_t))


def dense_kernel(layer, in_t: Fixed, out_t: Fixed, w: np.ndarray, w_t: Fixed, b: np.ndarray, b_t: Fixed,
                 accum: str = "accum_t", reuse_order: bool = True) -> DenseKernel:
    """The kernel of ``layer``'s Strategy (Latency: inputs in order; Resource: the reuse loops' order, when
    ``reuse_order``) with weights ``w`` (n_in, n_out) and bias ``b`` (n_out) and the accumulator type ``accum``."""
    strategy = str(layer.get_attr("strategy", "latency")).lower()
    if strategy not in ("latency", "resource"):
        raise _Unsupported(f"strategy {strategy}")
    acc_t = _type_attr(layer, accum)
    if in_t.width + w_t.width > 62 or acc_t.width > 62 or b_t.width > 62:
        raise _Unsupported(f"products of {in_t} and {w_t} into {acc_t} pass the 64-bit integers emulated")
    n_in, n_out = w.shape
    order = None
    if strategy == "resource" and reuse_order:
        order = _resource_order(n_in, n_out, int(layer.get_attr("reuse_factor", 1)))
    return DenseKernel(in_t=in_t, out_t=out_t, w=np.ascontiguousarray(w), w_t=w_t,
                       b_acc=acc_t.requantize(b, b_t.frac), acc_t=acc_t, order=order)


def _resource_order(n_in: int, n_out: int, reuse: int) -> np.ndarray | None:
    """Per output, the inputs in the order dense_resource adds them (None when it is 0..n_in-1 for all).

    Replays the index arithmetic of dense_resource_rf_leq_nin / _rf_gt_nin_rem0 and refuses a
    reuse factor for which it would not pair each input with its own weight.
    """
    block = -(-n_in * n_out // reuse)
    visits = []  # (out_index, in_index, w_index) in C++ order
    if reuse <= n_in:
        multscale = -(-n_in * n_out // min(n_in, reuse)) // n_out
        for ir in range(reuse):
            w_index, in_index, out_index, step = ir, ir, 0, 0
            for _ in range(block):
                visits.append((out_index, in_index, w_index))
                w_index += reuse
                in_index += reuse
                if in_index >= n_in:
                    in_index = ir
                if step + 1 >= multscale:
                    step, out_index = 0, out_index + 1
                else:
                    step += 1
    else:
        rufactor = min(reuse, n_in * n_out)
        outscale = rufactor // n_in
        in_index = 0
        for ir in range(rufactor):
            w_index, out_index = ir, ir // n_in
            for _ in range(block):
                visits.append((out_index, in_index, w_index))
                w_index += rufactor
                if w_index >= n_in * n_out:
                    break
                out_index += outscale
            in_index = (in_index + 1) % n_in
    per_out: list[list[int]] = [[] for _ in range(n_out)]
    for out_index, in_index, w_index in visits:
        if w_index >= n_in * n_out:
            continue
        if w_index != out_index * n_in + in_index:
            raise _Unsupported(f"Resource strategy with reuse factor {reuse} for {n_in}x{n_out}")
        per_out[out_index].append(in_index)
    if any(sorted(inputs) != list(range(n_in)) for inputs in per_out):
        raise _Unsupported(f"Resource strategy with reuse factor {reuse} for {n_in}x{n_out}")
    order = np.array(per_out)
    return None if (order == np.arange(n_in)).all() else order
