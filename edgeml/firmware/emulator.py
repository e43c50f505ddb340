"""Bit-exact NumPy emulation of hls4ml 1.3 io_parallel firmware, without g++.

Every value is an int64 fixed-point integer (units of its type's lsb), vectorized over jets.
Each layer follows the C++ in hls4ml's ``templates/vivado/nnet_utils`` and the ``ap_fixed``
semantics of ``ap_types/ap_fixed_base.h``:

- Dense (``nnet_dense_latency.h``, ``nnet_dense_resource.h``): each product ``data * weight``
  is exact, is cast to ``accum_t`` (rounding and overflow of that type), then added to the
  accumulator (initialised with the bias cast to ``accum_t``) with the accumulator's overflow
  mode at every step. When the accumulator wraps, or provably cannot overflow, the order of
  additions does not matter and a matrix product gives the same integers; otherwise the
  additions run in the C++ order (Latency: inputs in order; Resource: replayed reuse loops).
  Integer matrix products run in float32/float64 BLAS only when a bound on the weights and the
  input type proves every partial sum an exact integer (below 2**24 / 2**53).
- Weights and biases are the decimal strings hls4ml writes (``WeightVariable.__iter__``), read
  back as doubles and converted like ``ap_fixed(double)``, as the C-simulation loads them.
- Lookup tables (softmax exp/invert, sigmoid, tanh, softplus, softsign, elu, selu) are built with
  the same float32/double libm calls as the C++ table init, and indexed the same way (C integer
  conversion of the ap_fixed quotient, a truncation towards zero).
- Parametrized and hard activations (leaky_relu, prelu, thresholded_relu, elu's alpha,
  hard_sigmoid, hard_tanh) take their constant as the C++ does: the literal hls4ml writes,
  converted like ap_fixed(double) to the parameter type; products and sums are exact, as
  ap_fixed's widening operators make them, and only the assignment to the result rounds.

A layer or type the emulator does not cover is listed by ``unsupported_layers``; ``emulate``
refuses such a model instead of approximating it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edgeml.errors import EdgemlError
from edgeml.fixed import Fixed

# Jets per pass. NumPy copies a broadcast operand through its 8192-element buffer when a row
# is shorter than that, which halves the speed of the per-input loops; much longer rows fall
# out of cache.
MIN_CHUNK = np.getbufsize()


@dataclass
class EmulationResult:
    """``outputs``: the model output as the float values of its fixed-point numbers, (n, n_out).
    ``traces``: layer name -> that layer's output values, (n, size), like a traced C-simulation."""

    outputs: np.ndarray
    traces: dict[str, np.ndarray] = field(default_factory=dict)


def emulate(hls_model, X, trace: bool = True) -> EmulationResult:
    """Run the firmware of ``hls_model`` (an hls4ml io_parallel ModelGraph) on the rows of ``X``."""
    return Emulator(hls_model).run(X, trace=trace)


def unsupported_layers(hls_model) -> list[str]:
    """'<layer> (<reason>)' for every layer the emulator cannot reproduce bit-exactly; empty if none."""
    return _plan(hls_model)[1]


def _plan(hls_model) -> tuple[list, list[str]]:
    backend = getattr(hls_model.config.backend, "name", "")
    if backend not in ("Vivado", "Vitis", "VivadoAccelerator"):
        return [], [f"model (backend {backend}; only the Vivado/Vitis ap_fixed templates are emulated)"]
    io_type = str(hls_model.config.get_config_value("IOType", "io_parallel")).lower()
    if io_type != "io_parallel":
        return [], [f"model (IOType {io_type}; only io_parallel is emulated)"]
    if len(hls_model.get_input_variables()) != 1 or len(hls_model.get_output_variables()) != 1:
        return [], ["model (only one input and one output are emulated)"]
    steps, bad = [], []
    for layer in hls_model.get_layers():
        try:
            steps.append(_step_for(layer))
        except _Unsupported as e:
            bad.append(f"{layer.name} ({e})")
    return steps, bad


class _Unsupported(Exception):
    pass


class Emulator:
    """The model's layers turned into integer steps once; ``run`` may be called many times."""

    def __init__(self, hls_model):
        self.steps, bad = _plan(hls_model)
        if bad:
            raise EdgemlError(f"the emulator does not cover {', '.join(bad)}; use the C-simulation for this model")
        variable = hls_model.get_output_variables()[0].name
        self.final = next(s for s in self.steps if s.variable == variable)

    def run(self, X, trace: bool = True) -> EmulationResult:
        from threadpoolctl import threadpool_limits

        # The matrices are small (a chunk of jets by a layer): a second BLAS thread only waits,
        # and on a shared machine it stalls the first. Cores are used by chunks of jets instead.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._run(np.asarray(X, dtype=np.float64).reshape(len(X), -1), trace)

    def _run(self, X, trace: bool) -> EmulationResult:
        cores = os.cpu_count() or 1
        chunks = _split(len(X), cores)
        workers = min(len(chunks), cores)
        if workers > 1:  # NumPy releases the GIL inside its integer kernels
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(lambda c: self._chunk(X[c], trace), chunks))
        else:
            parts = [self._chunk(X[c], trace) for c in chunks]
        outputs = np.concatenate([o for o, _ in parts]) if parts else np.zeros((0, self.final.size))
        names = [s.name for s in self.steps if s.traced] if trace else []
        traces = {k: np.concatenate([t[k] for _, t in parts]) if parts else np.zeros((0, 0)) for k in names}
        return EmulationResult(outputs, traces)

    def _chunk(self, x, trace: bool) -> tuple[np.ndarray, dict]:
        values, traces = {}, {}
        for step in self.steps:
            values[step.output] = step(x if step.input is None else values[step.input])
            if trace and step.traced:
                traces[step.name] = step.out_t.to_float(values[step.output])
        return self.final.out_t.to_float(values[self.final.output]), traces


def _split(n: int, cores: int) -> list[slice]:
    """Equal chunks of at least MIN_CHUNK jets where possible, a multiple of ``cores`` of them so
    that no core waits for the last one."""
    count = cores * max(1, n // (cores * MIN_CHUNK))
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


# --------------------------------------------------------------------------- layer steps

@dataclass
class _Step:
    name: str
    input: str | None
    output: str
    variable: str  # the output variable's C++ name
    out_t: Fixed
    size: int
    traced: bool = True

    def __call__(self, x):
        raise NotImplementedError


def _step_for(layer) -> _Step:
    kind = layer.class_name
    if kind == "Input":
        _from_double(layer.get_output_variable().type.precision, "input")
        return _InputStep(**_common(layer, source=False), traced=False)
    if kind == "Dense":
        return _dense_step(layer)
    if kind in ("BatchNormalization", "ApplyAlpha"):
        return _batchnorm_step(layer)
    if kind == "Softmax":
        return _softmax_step(layer)
    if kind == "Activation":
        return _activation_step(layer)
    if kind == "ParametrizedActivation":
        return _parametrized_step(layer)
    if kind == "PReLU":
        return _prelu_step(layer)
    if kind == "HardActivation":
        return _hard_step(layer)
    raise _Unsupported(f"layer class {kind}")


def _common(layer, source: bool = True) -> dict:
    out = layer.get_output_variable()
    info = dict(name=layer.name, input=layer.inputs[0] if source else None, output=layer.outputs[0], variable=out.name,
                out_t=_fixed(out.type.precision, "result"), size=int(np.prod(out.shape)))
    if source:
        info["in_t"] = _fixed(layer.get_input_variable().type.precision, "input")
    return info


def _is_integer(precision) -> bool:
    from hls4ml.model.types import IntegerPrecisionType

    return isinstance(precision, IntegerPrecisionType)


def _fixed(precision, what: str) -> Fixed:
    """hls4ml precision -> Fixed. ``ap_int<W>`` takes an ap_fixed by C truncation towards zero
    (``to_ap_int_base``) and wraps: that is ap_fixed<W,W,AP_TRN_ZERO,AP_WRAP>."""
    if _is_integer(precision):
        return Fixed(bool(precision.signed), int(precision.width), int(precision.width), "TRN_ZERO", "WRAP")
    try:
        return Fixed.from_hls(precision)
    except ValueError as e:
        raise _Unsupported(f"{what} type: {e}") from None


def _from_double(precision, what: str) -> Fixed:
    """A type that doubles are converted to: ap_int's double constructor has quirks of its own, so refused."""
    if _is_integer(precision):
        raise _Unsupported(f"{what} type {precision} converted from double")
    return _fixed(precision, what)


def _type_attr(layer, name: str) -> Fixed:
    named = layer.get_attr(name)
    if named is None:
        raise _Unsupported(f"no {name}")
    return _fixed(named.precision, name)


def _weight_ints(layer, name: str) -> tuple[np.ndarray, Fixed]:
    """The integers the C-simulation loads: hls4ml's decimal text of each weight, converted like ap_fixed(double)."""
    var = layer.weights[name]
    try:
        values = np.array([float(text) for text in var], dtype=np.float64).reshape(var.data.shape)
    except ValueError:
        raise _Unsupported(f"{name} type {var.type.precision}") from None
    if _is_integer(var.type.precision) and (values == np.round(values)).all():
        t = _fixed(var.type.precision, name)  # whole numbers: ap_int(double) is exact
        return t.fold(values.astype(np.int64)), t
    t = _from_double(var.type.precision, name)
    return t.quantize_to_ints(values), t


@dataclass
class _InputStep(_Step):
    def __call__(self, x):
        return self.out_t.quantize_to_ints(x)


# --------------------------------------------------------------------------- Dense

@dataclass
class _DenseStep(_Step):
    in_t: Fixed = None
    w: np.ndarray = None  # (n_in, n_out) ints at w_t
    w_t: Fixed = None
    b_acc: np.ndarray = None  # bias already cast to accum_t
    acc_t: Fixed = None
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


def _rounded_products(step: _DenseStep):
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


def _dense_step(layer) -> _DenseStep:
    info = _common(layer)
    if info["in_t"] is None:
        raise _Unsupported("input type")
    strategy = str(layer.get_attr("strategy", "latency")).lower()
    if strategy not in ("latency", "resource"):
        raise _Unsupported(f"strategy {strategy}")
    w, w_t = _weight_ints(layer, "weight")
    b, b_t = _weight_ints(layer, "bias")
    acc_t = _type_attr(layer, "accum_t")
    n_in, n_out = int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))
    if int(np.prod(layer.get_input_variable().shape)) != n_in:
        raise _Unsupported("Dense on a multi-dimensional input")
    if layer.get_attr("_weights_transposed", False):
        w = w.T
    w = w.reshape(n_in, n_out)
    order = None
    if strategy == "resource":
        order = _resource_order(n_in, n_out, int(layer.get_attr("reuse_factor", 1)))
    return _DenseStep(**info, w=np.ascontiguousarray(w), w_t=w_t, b_acc=acc_t.requantize(b.reshape(-1), b_t.frac),
                      acc_t=acc_t, order=order)


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


# --------------------------------------------------------------------------- BatchNormalization

@dataclass
class _BatchNormStep(_Step):
    in_t: Fixed = None
    scale: np.ndarray = None
    bias: np.ndarray = None  # at frac in_t.frac + scale_t.frac
    frac: int = 0

    def __call__(self, x):
        return self.out_t.requantize(x * self.scale + self.bias, self.frac)


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


# --------------------------------------------------------------------------- activations

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


def _trunc_div(a, d: int):
    """C integer division (towards zero) of int64 arrays by a positive int."""
    q = np.abs(a) // d
    return np.where(a < 0, -q, q)


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
        lam, lam_frac = _constant(_SELU_CONST_T, 1.0507009873554805)  # nnet::selu's lambda
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


# --------------------------------------------------------------------------- parametrized and hard activations

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
    if _magnitude(in_t) * max(pos, size) >= 2 ** 62 or largest_entry >= 2 ** 62:
        raise _Unsupported(f"input type {in_t} too wide for the table index and products")
    return _EluStep(**info, pos_scale=pos, table=table << (frac - table_frac), frac=frac)


_SELU_CONST_T = Fixed(False, 16, 1)  # nnet::selu's selu_const_t (ap_ufixed<16, 1>) for lambda


def _prelu_step(layer) -> _LeakyStep:
    info = _common(layer)
    alpha, alpha_t = _weight_ints(layer, "param")
    alpha, alpha_frac = _exact_ints(alpha.reshape(-1), alpha_t.frac)
    if alpha.size != info["size"]:
        raise _Unsupported("PReLU with shared axes")
    return _leaky_step(info, alpha, alpha_frac)


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


def _config(layer) -> dict[str, str]:
    """The values and typedefs of the C++ config struct hls4ml rendered for the layer (what the C-sim uses)."""
    text = layer.get_attr("config_cpp") or ""
    found = dict(re.findall(r"static (?:const|constexpr) [\w:]+ (\w+) = ([^;]+);", text))
    found.update({alias: name for name, alias in re.findall(r"typedef ([^;]+?) (\w+);", text)})
    for key, value in list(found.items()):
        found[key] = value.strip().removeprefix("nnet::softmax_implementation::")
    return found


def _named_type(layer, name: str | None, attr: str, table: bool = False) -> Fixed:
    """A typedef name from the config struct resolved to its precision (a literal ap_fixed<> is parsed).
    ``table``: the type of a table filled from floats."""
    if name is not None and name.lstrip().startswith("ap_"):
        try:
            return Fixed.parse(name)
        except ValueError as e:
            raise _Unsupported(f"{attr}: {e}") from None
    convert = _from_double if table else _fixed
    for value in layer.attributes.values():
        if getattr(value, "name", None) == name and hasattr(value, "precision"):
            return convert(value.precision, attr)
    named = layer.get_attr(attr)
    if named is None:
        raise _Unsupported(f"no {attr}")
    return convert(named.precision, attr)


# --------------------------------------------------------------------------- softmax

@dataclass
class _SoftmaxStep(_Step):
    in_t: Fixed = None
    implementation: str = "stable"
    exp_table: np.ndarray = None
    inv_table: np.ndarray = None
    exp_t: Fixed = None
    inv_t: Fixed = None
    acc_t: Fixed = None
    inv_inp_t: Fixed = None
    norm_t: Fixed = None

    def __call__(self, x):
        impl = self.implementation
        if impl == "argmax":
            one, zero = self.out_t.quantize_to_ints(np.array([1.0, 0.0]))
            out = np.full(x.shape, zero, dtype=np.int64)
            out[np.arange(len(x)), np.argmax(x, axis=1)] = one
            return out
        if impl == "legacy":
            return self._legacy(x)
        if impl == "stable":
            diff = x.max(axis=1, keepdims=True) - x
            index = _top_bits(self.norm_t.requantize(diff, self.in_t.frac), self.norm_t, len(self.exp_table))
        else:
            index = _top_bits(x, self.in_t, len(self.exp_table))
        exp_res = self.acc_t.requantize(self.exp_table[index], self.exp_t.frac)
        total = _tree_sum([exp_res[:, i] for i in range(exp_res.shape[1])], self.acc_t)
        inv = self.inv_table[_top_bits(self.inv_inp_t.requantize(total, self.acc_t.frac), self.inv_inp_t,
                                       len(self.inv_table))]
        return self.out_t.requantize(exp_res * inv[:, None], self.acc_t.frac + self.inv_t.frac)

    def _legacy(self, x):
        n_exp, n_inv, t = len(self.exp_table), len(self.inv_table), self.exp_t
        one = t.quantize_to_ints(np.array(1.0))
        f = self.in_t.frac
        out = []
        for i in range(x.shape[1]):
            acc = np.zeros(len(x), dtype=np.int64)
            for j in range(x.shape[1]):
                if i == j:
                    term = one
                else:
                    index = _trunc_div(_trunc_div((x[:, j] - x[:, i]) * n_exp, 16), 1 << f) + 8 * n_exp // 16
                    term = self.exp_table[np.clip(index, 0, n_exp - 1)]
                acc = t.fold(acc + term)
            index = _trunc_div(_trunc_div(acc * n_inv, 64), 1 << t.frac)
            out.append(self.out_t.requantize(self.inv_table[np.clip(index, 0, n_inv - 1)], t.frac))
        return np.stack(out, axis=1)


def _top_bits(v, t: Fixed, size: int):
    """softmax_idx_from_real_val: the top ceil(log2(size)) bits of the two's-complement pattern."""
    n = _ceillog2(size)
    return (v & ((1 << t.width) - 1)) >> (t.width - n)


def _ceillog2(x: int) -> int:
    return 0 if x <= 1 else int(x - 1).bit_length()


def _tree_sum(terms: list, t: Fixed):
    """nnet::reduce with Op_add<accum_t>: a balanced tree, each addition cast back to accum_t."""
    n = len(terms)
    if n == 1:
        return terms[0]
    if n == 2:
        return t.fold(terms[0] + terms[1])
    left = 1 << ((n - 1).bit_length() - 1)  # pow2(floorlog2(n - 1))
    return t.fold(_tree_sum(terms[:left], t) + _tree_sum(terms[left:], t))


def _softmax_step(layer) -> _SoftmaxStep:
    info = _common(layer)
    config = _config(layer)
    impl = config.get("implementation", str(layer.get_attr("implementation", "stable"))).lower()
    if impl not in ("latency", "stable", "legacy", "argmax"):
        raise _Unsupported(f"softmax implementation {impl}")
    if int(config.get("n_inner", 1)) != 1 or int(config.get("n_outer", 1)) != 1:
        raise _Unsupported("multi-dimensional softmax")
    if impl == "argmax":
        return _SoftmaxStep(**info, implementation=impl)
    default_size = int(layer.get_attr("table_size", 1024))
    n_exp = int(config.get("exp_table_size", layer.get_attr("exp_table_size", default_size)))
    n_inv = int(config.get("inv_table_size", layer.get_attr("inv_table_size", default_size)))
    if impl == "legacy":
        table_t = _named_type(layer, config.get("table_t"), "table_t", table=True)
        if info["in_t"].frac < 0:
            raise _Unsupported("input type with negative fraction bits")
        return _SoftmaxStep(**info, implementation=impl, exp_t=table_t, inv_t=table_t,
                            exp_table=table_t.quantize_to_ints(_legacy_exp_table(n_exp)),
                            inv_table=table_t.quantize_to_ints(_legacy_inv_table(n_inv)))
    exp_t = _named_type(layer, config.get("exp_table_t"), "exp_table_t", table=True)
    inv_t = _named_type(layer, config.get("inv_table_t"), "inv_table_t", table=True)
    acc_t = _named_type(layer, config.get("accum_t"), "accum_t")
    inv_inp_t = _named_type(layer, config.get("inv_inp_t"), "inv_inp_t")
    scale = np.float32(float(config.get("exp_scale", layer.get_attr("exp_scale", 1.0))))
    address_t = info["in_t"]
    norm_t = None
    if impl == "stable":
        norm_t = address_t = _named_type(layer, config.get("inp_norm_t"), "inp_norm_t")
    for t, size in ((address_t, n_exp), (inv_inp_t, n_inv)):
        if _ceillog2(size) > t.width:
            raise _Unsupported(f"table of {size} entries addressed by {t}")
    exp_x = _float_of_top_bits(address_t, n_exp) * scale
    if impl == "stable":
        exp_x = -exp_x
    inv_x = _float_of_top_bits(inv_inp_t, n_inv)
    with np.errstate(divide="ignore"):
        inv = np.float32(1) / inv_x
    return _SoftmaxStep(**info, implementation=impl, exp_t=exp_t, inv_t=inv_t, acc_t=acc_t, inv_inp_t=inv_inp_t,
                        norm_t=norm_t, exp_table=exp_t.quantize_to_ints(_expf(exp_x)),
                        inv_table=inv_t.quantize_to_ints(inv))


def _float_of_top_bits(t: Fixed, size: int) -> np.ndarray:
    """softmax_real_val_from_idx: the float value of a t whose top bits are the index, the rest 0."""
    n = _ceillog2(size)
    pattern = np.arange(size, dtype=np.int64) << (t.width - n)
    if t.signed:
        pattern = np.where(pattern >= 1 << (t.width - 1), pattern - (1 << t.width), pattern)
    return t.to_float(pattern).astype(np.float32)


# --------------------------------------------------------------------------- float32 tables as the C++ builds them

_LIBM = None


def _libm():
    """The C library the C-simulation links (None without one)."""
    global _LIBM
    if _LIBM is None:
        path = ctypes.util.find_library("m")
        _LIBM = ctypes.CDLL(path) if path else False
    return _LIBM or None


_CTYPE = {np.float32: ctypes.c_float, np.float64: ctypes.c_double}


def _libm_function(name: str, dtype):
    """The C library's function ``name`` on ``dtype`` (expf, tanhf: float; log: double)."""
    lib = _libm()
    if lib is None:
        return None
    fn = lib[name]  # a function object of its own: getattr's is shared by every signature set on it
    fn.restype, fn.argtypes = _CTYPE[dtype], [_CTYPE[dtype]]
    return fn


def _map_libm(name: str, numpy_fn, x, dtype=np.float32) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    fn = _libm_function(name, dtype)
    if fn is None:  # no C library to call: the correctly rounded value, which glibc returns too
        return numpy_fn(x.astype(np.float64)).astype(dtype)
    return np.array([fn(float(v)) for v in x.ravel()], dtype=dtype).reshape(x.shape)


def _expf(x) -> np.ndarray:
    return _map_libm("expf", np.exp, x)


def _legacy_index_values(size: int, span: float) -> np.ndarray:
    """float in_val = 2 * (span/2) * (ii - float(N) / 2.0) / float(N): computed in double, stored as float."""
    ii = np.arange(size, dtype=np.float64)
    return (span * (ii - size / 2.0) / size).astype(np.float32)


def _sigmoid_table(size: int) -> np.ndarray:
    """init_sigmoid_table: 1.0 / (1 + expf(-x)) with the sum in float and the division in double, stored as float."""
    x = _legacy_index_values(size, 16.0)
    denominator = (np.float32(1) + _expf(-x)).astype(np.float32)
    return (1.0 / denominator.astype(np.float64)).astype(np.float32)


def _tanh_table(size: int) -> np.ndarray:
    """init_tanh_table: tanh of the float in_val (the float overload, tanhf)."""
    return _map_libm("tanhf", np.tanh, _legacy_index_values(size, 8.0))


def _softplus_table(size: int) -> np.ndarray:
    """init_softplus_table: log(double(expf(x)) + 1.) with the double log, stored as float."""
    e = _expf(_legacy_index_values(size, 16.0)).astype(np.float64)
    return _map_libm("log", np.log, e + 1.0, np.float64).astype(np.float32)


def _softsign_table(size: int) -> np.ndarray:
    """init_softsign_table: x / (double(fabsf(x)) + 1.) in double, stored as float."""
    x = _legacy_index_values(size, 16.0).astype(np.float64)
    return (x / (np.abs(x) + 1.0)).astype(np.float32)


def _negative_index_values(size: int) -> np.ndarray:
    """ELU / SELU tables: float in_val = -8.0 * ii / float(N), computed in double."""
    return (-8.0 * np.arange(size, dtype=np.float64) / float(size)).astype(np.float32)


def _elu_table(size: int) -> np.ndarray:
    """init_elu_table: double(expf(x)) - 1., stored as float."""
    return (_expf(_negative_index_values(size)).astype(np.float64) - 1.0).astype(np.float32)


def _selu_table(size: int) -> np.ndarray:
    """init_selu_table: lambda * (alpha * (double(expf(x)) - 1.)) in double, stored as float."""
    e = _expf(_negative_index_values(size)).astype(np.float64) - 1.0
    return (1.0507009873554804934193349852946 * (1.6732632423543772848170429916717 * e)).astype(np.float32)


_INDEXED_TABLES = {"sigmoid": (_sigmoid_table, 16), "tanh": (_tanh_table, 8), "softplus": (_softplus_table, 16),
                   "softsign": (_softsign_table, 16)}  # table, span of int(x * N / span) + N/2


def _legacy_exp_table(size: int) -> np.ndarray:
    return _expf(_legacy_index_values(size, 16.0))


def _legacy_inv_table(size: int) -> np.ndarray:
    """init_invert_table_legacy: 1.0 / in_val in double (in_val = float(64.0 * ii / N)), 0 at ii = 0."""
    x = (64.0 * np.arange(size, dtype=np.float64) / size).astype(np.float32).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), 0.0)
