"""The step interface every layer family builds on: an hls4ml layer becomes a ``Step`` that maps the
integers of its input(s) (units of the input type's lsb, one row per event) to those of its output(s).
``register`` maps hls4ml layer class names to the function that builds their step.

The interface (stable; other modules build on it):

- ``@register("ClassName", ..., io_stream=True)`` on ``build(layer) -> _Step``. ``build`` raises
  ``_Unsupported(reason)`` for what it does not reproduce bit-exactly; ``unsupported_layers`` then lists
  ``"<layer> (<reason>)"``. ``io_stream=False``: the class is refused in io_stream models.
- ``_Step`` (a dataclass; subclasses add fields and ``__call__``): ``name`` (the layer, the trace's key),
  ``input`` (a graph name from ``layer.inputs``; a tuple of names for several inputs, then ``__call__``
  gets one array per name; None for an Input layer, which gets the raw doubles), ``output`` (a name from
  ``layer.outputs``, or a tuple of names for which ``__call__`` returns a tuple of arrays), ``variable``
  (the output variable's C++ name), ``out_t`` (the output type, a ``Fixed``), ``size`` (values per event
  of one output), ``traced``. ``_common(layer)`` fills these (and ``in_t``) for one input and one output.
- Arrays are int64 (events, size), flattened in hls4ml's channels-last order, in units of the type's lsb;
  steps run in ``hls_model.get_layers()`` order, which is topological.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edgeml.errors import EdgemlError
from edgeml.fixed import Fixed

# Jets per pass. NumPy copies a broadcast operand through its 8192-element buffer when a row
# is shorter than that, which halves the speed of the per-input loops; much longer rows fall
# out of cache.
MIN_CHUNK = np.getbufsize()
# A model with a layer of more than WIDE_LAYER values per event (an image) runs in chunks of few events,
# whose (events, size) int64 arrays take at most WIDE_CHUNK_BYTES: they stay in cache and are recycled from
# the heap instead of being mapped and faulted in afresh by every NumPy operation (28x28 CNN: a third less
# CPU than 8 MB arrays). Narrower models keep MIN_CHUNK jets (smaller chunks slow their per-input loops).
WIDE_LAYER = 256
WIDE_CHUNK_BYTES = 2 << 20


class Traces(Mapping):
    """Layer name -> that layer's output values, (n, size) float64, like a traced C-simulation.

    Stored as what the emulator computes, the integers of each layer's type (units of its lsb), in the
    narrowest integer dtype that holds every value of the type: a 28x28 CNN's traces of 10,000 images take
    0.9 GB instead of 3.3 GB of doubles, and writing them costs little more than not tracing. A layer is
    decoded (an exact power-of-two scaling) when it is read; ``block(name, rows)`` decodes only some rows, for
    a comparison that goes block by block; ``ints(name)`` gives the stored integers and their lsb exponent."""

    def __init__(self, ints: dict[str, np.ndarray], fracs: dict[str, int]):
        self._ints, self._fracs = ints, fracs

    def __getitem__(self, name: str) -> np.ndarray:
        return self.block(name, slice(None))

    def __iter__(self):
        return iter(self._ints)

    def __len__(self) -> int:
        return len(self._ints)

    def block(self, name: str, rows) -> np.ndarray:
        ints = self._ints[name][rows]
        return np.multiply(ints, np.ldexp(1.0, -self._fracs[name]), out=_trace_array(ints.shape, np.float64))

    def ints(self, name: str) -> tuple[np.ndarray, int]:
        """The stored (n, size) integers of layer ``name`` and F: the values are the integers times 2**-F."""
        return self._ints[name], self._fracs[name]


@dataclass
class EmulationResult:
    """``outputs``: the model output as the float values of its fixed-point numbers: (n, n_out) for a model
    with one output, else a list of (n, size) arrays in ``get_output_variables()`` order (as hls4ml's
    ``ModelGraph.predict``). ``traces``: layer name -> that layer's output values, (n, size), like a
    traced C-simulation (a ``Traces``; empty when run untraced)."""

    outputs: np.ndarray | list[np.ndarray]
    traces: Mapping[str, np.ndarray] = field(default_factory=dict)


def emulate(hls_model, X, trace: bool = True) -> EmulationResult:
    """Run the firmware of ``hls_model`` (an hls4ml ModelGraph) on the rows of ``X``: one array (n, ...) for
    a single-input model, else a list of arrays in ``get_input_variables()`` order."""
    return Emulator(hls_model).run(X, trace=trace)


def unsupported_layers(hls_model) -> list[str]:
    """'<layer> (<reason>)' for every layer the emulator cannot reproduce bit-exactly; empty if none."""
    return _plan(hls_model)[1]


def _plan(hls_model) -> tuple[list, list[str]]:
    backend = getattr(hls_model.config.backend, "name", "")
    if backend not in ("Vivado", "Vitis", "VivadoAccelerator"):
        return [], [f"model (backend {backend}; only the Vivado/Vitis ap_fixed templates are emulated)"]
    io_type = str(hls_model.config.get_config_value("IOType", "io_parallel")).lower()
    if io_type not in ("io_parallel", "io_stream"):
        return [], [f"model (IOType {io_type}; only io_parallel and io_stream are emulated)"]
    steps, bad = [], []
    for layer in hls_model.get_layers():
        try:
            steps.append(_step_for(layer))
        except _Unsupported as e:
            bad.append(f"{layer.name} ({e})")
    return steps, bad


class _Unsupported(Exception):
    pass


def output_names(hls_model, variables) -> list[str]:
    """The graph output names (what steps store their values under) of these hls4ml variables."""
    by_variable = {layer.get_output_variable(name).name: name for layer in hls_model.get_layers()
                   for name in layer.outputs if name in layer.variables}
    return [by_variable[v.name] for v in variables]


class Emulator:
    """The model's layers turned into integer steps once; ``run`` may be called many times."""

    def __init__(self, hls_model):
        self.steps, bad = _plan(hls_model)
        if bad:
            raise EdgemlError(f"the emulator does not cover {', '.join(bad)}; use the C-simulation for this model")
        self.inputs = output_names(hls_model, hls_model.get_input_variables())
        self.input_sizes = [int(np.prod(v.shape)) for v in hls_model.get_input_variables()]
        self.outputs = output_names(hls_model, hls_model.get_output_variables())
        self.types = {name: step.out_t for step in self.steps for name in _names(step.output)}
        self.sizes = {name: step.size for step in self.steps for name in _names(step.output)}

    def run(self, X, trace: bool = True) -> EmulationResult:
        from threadpoolctl import threadpool_limits

        several = isinstance(X, (list, tuple)) and (len(self.inputs) > 1 or (len(X) == 1 and np.ndim(X[0]) > 1))
        arrays = list(X) if several else [X]  # one input: X itself (rows, even as nested lists), or [X]
        if len(arrays) != len(self.inputs):
            raise EdgemlError(f"the model has {len(self.inputs)} input(s) but {len(arrays)} array(s) were given; "
                              "pass one array per input, in the order of get_input_variables()")
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise EdgemlError(f"the input arrays have different numbers of rows: {[len(a) for a in arrays]}")
        # The matrices are small (a chunk of jets by a layer): a second BLAS thread only waits,
        # and on a shared machine it stalls the first. Cores are used by chunks of jets instead.
        arrays = [a.reshape(n, -1) for a in arrays]
        for k, (a, size) in enumerate(zip(arrays, self.input_sizes)):
            if a.shape[1] != size:
                raise EdgemlError(f"input {k} ({self.inputs[k]}) has {a.shape[1]} values per row; the model takes "
                                  f"{size}")
        _chunk_arrays_from_the_heap()
        with threadpool_limits(limits=1, user_api="blas"):
            return self._run(arrays, n, trace)

    def _run(self, arrays: list[np.ndarray], n: int, trace: bool) -> EmulationResult:
        cores = os.cpu_count() or 1
        chunks = _split(n, cores, max(self.sizes.values(), default=1))
        workers = min(len(chunks), cores)
        # Each chunk writes its trace integers into these (a CNN's traces are large: one copy, no concatenation)
        traces = {s.name: _trace_array((n, s.size), _int_dtype(s.out_t)) for s in self.steps if s.traced} \
            if trace else {}

        def one(k):
            c = chunks[k]
            return self._chunk([a[c] for a in arrays], {name: v[c] for name, v in traces.items()})

        if workers > 1:  # NumPy releases the GIL inside its integer kernels
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(one, range(len(chunks))))
        else:
            parts = [one(k) for k in range(len(chunks))]
        outputs = [np.concatenate([o[k] for o in parts]) if parts else np.zeros((0, self.sizes[name]))
                   for k, name in enumerate(self.outputs)]
        fracs = {s.name: s.out_t.frac for s in self.steps if s.name in traces}
        return EmulationResult(outputs[0] if len(outputs) == 1 else outputs, Traces(traces, fracs) if trace else {})

    def _chunk(self, xs: list[np.ndarray], traces: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs of one chunk of events; the traced layers' integers go into ``traces`` (views of its rows)."""
        values = dict(zip(self.inputs, xs))  # raw doubles until the Input step quantizes them
        for step in self.steps:
            if step.input is None:
                result = step(values[step.output])
            elif isinstance(step.input, tuple):
                result = step(*(values[name] for name in step.input))
            else:
                result = step(values[step.input])
            if isinstance(step.output, tuple):
                values.update(zip(step.output, result))
                last = result[-1]
            else:
                values[step.output] = last = result
            if step.name in traces:
                traces[step.name][...] = last  # in the type's range, so the narrower integer is exact
        return [self.types[name].to_float(values[name]) for name in self.outputs]


# glibc's malloc options (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def _chunk_arrays_from_the_heap() -> None:
    """Keep the chunks' arrays (a few MB each) in the malloc heap instead of fresh mappings, once per process.

    glibc maps every block above its mmap threshold (128 kB, raised only as large blocks are freed) fresh
    from the kernel and trims the heap once twice that lies free on top, so an image model's chunks fault
    their arrays in page by page again and again: ~1M page faults per 10,000 MNIST images, 1.6-2 of 5 CPU
    seconds (and more wall time) on this VM. The thresholds set here are glibc's own ceiling for its dynamic
    threshold (32 MB) and a 128 MB trim. Process-wide; nothing happens without glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 128 << 20)


# NumPy asks the kernel for transparent huge pages for any array of 4 MB or more; where a hypervisor lends the
# memory, faulting those in costs several times the CPU of 4 kB pages (this VM: 900 MB in 1.5-2.5 CPU s and
# 8-11 s of wall time, against 0.4 s and 1.5-3 s). A trace that large is anonymous mapped memory instead.
HUGE_PAGE_ARRAY = 4 << 20


def _trace_array(shape: tuple[int, int], dtype: type) -> np.ndarray:
    """``np.empty(shape, dtype)``, in 4 kB pages when it is large."""
    nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
    if nbytes < HUGE_PAGE_ARRAY or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _int_dtype(t: Fixed) -> type:
    """The narrowest integer dtype that holds every value of ``t`` in units of its lsb."""
    kinds = (np.int8, np.int16, np.int32) if t.signed else (np.uint8, np.uint16, np.uint32)
    return next((d for d in kinds if t.width <= np.iinfo(d).bits), np.int64)


def _names(output) -> tuple[str, ...]:
    return output if isinstance(output, tuple) else (output,)


def _split(n: int, cores: int, width: int = 1) -> list[slice]:
    """Equal chunks of at least MIN_CHUNK jets where possible (fewer when the widest layer has ``width`` >
    WIDE_LAYER values per jet), a multiple of ``cores`` of them so that no core waits for the last one."""
    least = MIN_CHUNK if width <= WIDE_LAYER else max(1, WIDE_CHUNK_BYTES // (8 * width))
    count = cores * max(1, n // (cores * least))
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


# --------------------------------------------------------------------------- layer steps

@dataclass
class _Step:
    """One layer. ``input``: the graph name of the value it reads (``layer.inputs[0]``), a tuple of names
    for a layer of several inputs (``__call__`` then gets one array per name, in that order), or None for
    an Input layer (``__call__`` gets the raw doubles of its model input, (n, size)). ``output``: the name
    it stores its result under (``layer.outputs[0]``), or a tuple of names (``__call__`` then returns a
    tuple of arrays, one per name; the trace is the last one). Arrays are int64 (n, size) in units of the
    lsb of the value's type, flattened in hls4ml's channels-last order; ``out_t`` is the type of every
    output, ``size`` the length of one. ``traced``: whether the step's result is reported in the traces
    under ``name`` (the C-simulation traces every layer that has a function call)."""

    name: str
    input: str | tuple[str, ...] | None
    output: str | tuple[str, ...]
    variable: str  # the output variable's C++ name
    out_t: Fixed
    size: int
    traced: bool = True

    def __call__(self, *x):
        raise NotImplementedError


_BUILDERS = {}


def register(*class_names: str, io_stream: bool = True):
    """Decorator: the decorated function builds the step of hls4ml layers of these classes (a function of the
    layer; it raises ``_Unsupported(reason)`` for a configuration it does not reproduce). ``io_stream``:
    whether the step is also right for io_stream models (the builder may check ``_is_stream(layer)``)."""
    def add(build):
        for name in class_names:
            _BUILDERS[name] = (build, io_stream)
        return build
    return add


def _step_for(layer) -> _Step:
    build, io_stream = _BUILDERS.get(layer.class_name, (None, False))
    if build is None:
        raise _Unsupported(f"layer class {layer.class_name}")
    if _is_stream(layer) and not io_stream:
        raise _Unsupported(f"layer class {layer.class_name} in io_stream")
    step = build(layer)
    if not layer.get_attr("function_cpp", None):  # no C++ call (an in-place reshape): the C-sim traces none
        step.traced = False
    return step


def _is_stream(layer) -> bool:
    return str(layer.model.config.get_config_value("IOType", "io_parallel")).lower() == "io_stream"


def _pack_size(variable) -> int:
    """Values per word of an io_stream variable (``nnet::array<T, n>``'s n)."""
    t = variable.type
    n_elem, n_pack = int(getattr(t, "n_elem", 0)), int(getattr(t, "n_pack", 1))
    return n_elem // n_pack if getattr(t, "unpack", False) else n_elem * n_pack


def _common(layer, source: bool = True) -> dict:
    out = layer.get_output_variable()
    info = dict(name=layer.name, input=layer.inputs[0] if source else None, output=layer.outputs[0], variable=out.name,
                out_t=_fixed(out.type.precision, "result"), size=int(np.prod(out.shape)))
    if source:
        info["in_t"] = _fixed(layer.get_input_variable().type.precision, "input")
    return info


def _channels_last(layer) -> None:
    """Refuse a channels_first layer: the steps index pixels channels-last, as hls4ml's io_parallel data is."""
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise _Unsupported("channels_first data format")


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


@register("Input")
def _input_step(layer) -> _InputStep:
    _from_double(layer.get_output_variable().type.precision, "input")
    return _InputStep(**_common(layer, source=False), traced=False)


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


def _trunc_div(a, d: int):
    """C integer division (towards zero) of int64 arrays by a positive int."""
    q = np.abs(a) // d
    return np.where(a < 0, -q, q)


def _ceillog2(x: int) -> int:
    return 0 if x <= 1 else int(x - 1).bit_length()
