"""C-simulation of an hls4ml project: compile with g++, run it, trace every layer, compare with Keras.

hls4ml's own ``trace()`` recompiles the project every call; here the library is
compiled once with tracing enabled and one pass over the data returns both the
firmware outputs and every layer's fixed-point output.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.errors import EdgemlError


@dataclass(frozen=True)
class Fixed:
    """An ap_fixed/ap_ufixed type: total ``width``, ``integer`` bits (sign included when signed)."""

    signed: bool
    width: int
    integer: int
    rounding: str = "TRN"
    saturation: str = "WRAP"

    @property
    def lsb(self) -> float:
        return 2.0 ** (self.integer - self.width)

    @property
    def range(self) -> tuple[float, float]:
        """Smallest and largest representable value."""
        if self.signed:
            return -(2.0 ** (self.integer - 1)), 2.0 ** (self.integer - 1) - self.lsb
        return 0.0, 2.0 ** self.integer - self.lsb

    def __str__(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        modes = "" if (self.rounding, self.saturation) == ("TRN", "WRAP") else f",AP_{self.rounding},AP_{self.saturation}"
        return f"{kind}<{self.width},{self.integer}{modes}>"


def fixed_of(precision) -> Fixed | None:
    """hls4ml precision type -> Fixed (None for float or exotic types)."""
    width, integer = getattr(precision, "width", None), getattr(precision, "integer", None)
    if width is None or integer is None:
        return None
    rounding = getattr(precision, "rounding_mode", None)
    saturation = getattr(precision, "saturation_mode", None)
    return Fixed(bool(getattr(precision, "signed", True)), int(width), int(integer),
                 getattr(rounding, "name", "TRN") if rounding is not None else "TRN",
                 getattr(saturation, "name", "WRAP") if saturation is not None else "WRAP")


def quantize(x: np.ndarray, t: Fixed) -> np.ndarray:
    """What assigning ``x`` to an ap_fixed of type ``t`` yields (rounding and overflow modes honoured)."""
    scaled = np.asarray(x, dtype=np.float64) / t.lsb
    if t.rounding.startswith("RND"):
        q = np.floor(scaled + 0.5)
        if t.rounding == "RND_CONV":  # ties to even
            tie = (scaled + 0.5) == q
            q = np.where(tie & (q % 2 != 0), q - 1, q)
    else:
        q = np.floor(scaled)
    lo, hi = (round(v / t.lsb) for v in t.range)
    if t.saturation.startswith("SAT"):
        q = np.clip(q, lo, hi)
    else:
        span = hi - lo + 1
        q = (q - lo) % span + lo
    return q * t.lsb


def overflow_fraction(values: np.ndarray, t: Fixed) -> float:
    """Fraction of ``values`` that do not fit in ``t`` after its rounding (they wrap or saturate)."""
    lo, hi = t.range
    slack = t.lsb / 2 if t.rounding.startswith("RND") else t.lsb
    v = np.asarray(values, dtype=np.float64)
    return float(np.mean((v < lo) | (v >= hi + slack))) if v.size else 0.0


@contextlib.contextmanager
def quiet():
    """Silence hls4ml's prints and g++'s output (Python and file-descriptor level): --json needs clean stdout."""
    buffer = io.StringIO()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            with contextlib.redirect_stdout(buffer):
                yield buffer
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def enable_tracing(hls_model) -> None:
    """Compile-time switch so that one C-sim pass also records every layer's output."""
    hls_model.config.trace_output = True
    for layer in hls_model.get_layers():
        if layer.get_attr("function_cpp", None):
            layer.set_attr("trace", True)


def compile_model(hls_model) -> Path:
    """Write the project and build the C-simulation library with g++; return the .so path."""
    enable_tracing(hls_model)
    try:
        with quiet() as log:
            hls_model.compile()
    except Exception as e:
        tail = " ".join(log.getvalue().strip().splitlines()[-3:])[:300]
        raise EdgemlError(f"g++ could not compile the hls4ml project in {hls_model.config.get_output_dir()}: "
                          f"{e} {tail}".strip()) from None
    return Path(hls_model._top_function_lib._name)


def attach_library(hls_model, library: Path) -> None:
    """Reuse an already compiled C-simulation library instead of recompiling (the convert cache)."""
    enable_tracing(hls_model)
    hls_model._top_function_lib = ctypes.cdll.LoadLibrary(str(library))


def run(hls_model, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Firmware outputs and per-layer traced outputs for every row of ``X`` (one pass, no recompile)."""
    lib = hls_model._top_function_lib
    if lib is None:
        raise EdgemlError("the hls4ml model is not compiled; call compile_model first")
    X = np.ascontiguousarray(X, dtype=np.float64)
    top = getattr(lib, hls_model.config.get_project_name() + "_double")
    top.argtypes = [np.ctypeslib.ndpointer(ctypes.c_double, flags="C_CONTIGUOUS")] * 2
    top.restype = None
    ctype = ctypes.c_double
    outputs = hls_model.get_output_variables()
    if len(hls_model.get_input_variables()) != 1 or len(outputs) != 1:
        raise EdgemlError("C-simulation supports models with exactly one input and one output")
    traced = {layer.name: layer.get_output_variable().shape for layer in hls_model.get_layers()
              if layer.get_attr("function_cpp", None) and layer.get_attr("trace", False)}

    class TraceData(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p)]

    n_traced = sum(len(hls_model.graph[name].get_variables()) for name in traced)
    trace_data = (TraceData * n_traced)()
    lib.collect_trace_output.argtypes = [ctypes.POINTER(TraceData)]
    lib.allocate_trace_storage.argtypes = [ctypes.c_size_t]
    n_out = outputs[0].size()
    y = np.zeros((len(X), n_out))
    layers = {name: np.zeros((len(X), int(np.prod(shape)))) for name, shape in traced.items()}
    lib.allocate_trace_storage(ctypes.sizeof(ctype))
    try:
        for i in range(len(X)):
            out = np.zeros(n_out, dtype=np.float64)
            top(X[i], out)
            y[i] = out
            lib.collect_trace_output(trace_data)
            for t in trace_data:
                name = t.name.decode()
                size = layers[name].shape[1]
                layers[name][i] = np.ctypeslib.as_array(ctypes.cast(t.data, ctypes.POINTER(ctype)), shape=(size,))
    finally:
        lib.free_trace_storage()
    return y, layers


def simulate(hls_model, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """``run``, also returning its wall time in seconds."""
    start = time.perf_counter()
    y, layers = run(hls_model, X)
    return y, layers, time.perf_counter() - start


def keras_layer_outputs(model, X: np.ndarray) -> dict[str, np.ndarray]:
    """Every Keras layer's output, keyed like hls4ml's layers.

    A fused activation (Dense(..., activation=...)) becomes two hls4ml layers, '<layer>' and
    '<layer>_<activation>'; the pre-activation output is taken with the activation switched off,
    as hls4ml.model.profiling.get_ymodel_keras does (which fails on QKeras quantizer activations).
    """
    import tensorflow as tf

    outputs: dict[str, np.ndarray] = {}
    layers, names = [], []
    for layer in model.layers:
        if isinstance(layer, (tf.keras.layers.InputLayer, tf.keras.layers.Dropout)):
            continue
        activation = _fused_activation_name(layer)
        if activation is not None:
            saved, layer.activation = layer.activation, None
            try:
                outputs[layer.name] = _predict(model, [layer], X)[0]
            finally:
                layer.activation = saved
        layers.append(layer)
        names.append(f"{layer.name}_{activation}" if activation else layer.name)
    for name, value in zip(names, _predict(model, layers, X)):
        outputs[name] = value
    return outputs


def _fused_activation_name(layer) -> str | None:
    """Name hls4ml gives an activation fused into a Dense/Conv layer (None when there is none)."""
    if type(layer).__name__ in ("Activation", "QActivation"):
        return None
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    name = getattr(activation, "__name__", None) or type(activation).__name__
    return None if name == "linear" else name


def _predict(model, layers: list, X: np.ndarray) -> list[np.ndarray]:
    import tensorflow as tf

    probe = tf.keras.Model(inputs=model.inputs, outputs=[layer.output for layer in layers])
    result = probe.predict(X, batch_size=4096, verbose=0)
    result = result if isinstance(result, list) else [result]
    return [np.asarray(r).reshape(len(X), -1) for r in result]


def bits_for(max_abs: float, margin: float = 1.25) -> int:
    """Integer bits (sign included) a signed fixed-point type needs to hold ±max_abs with a safety margin."""
    if max_abs <= 0:
        return 1
    return max(1, math.ceil(math.log2(max_abs * margin)) + 1)
