"""The step interface every layer family builds on: an hls4ml layer becomes a ``Step`` that maps the
integers of its input (units of the input type's lsb, one row per event) to those of its output.
``register`` maps hls4ml layer class names to the function that builds their step."""

from __future__ import annotations

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


_BUILDERS = {}


def register(*class_names: str):
    """Decorator: the decorated function builds the step of hls4ml layers of these classes."""
    def add(build):
        for name in class_names:
            _BUILDERS[name] = build
        return build
    return add


def _step_for(layer) -> _Step:
    build = _BUILDERS.get(layer.class_name)
    if build is None:
        raise _Unsupported(f"layer class {layer.class_name}")
    return build(layer)


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
