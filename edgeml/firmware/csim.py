"""C-simulation of an hls4ml project: compile with g++, run it, trace every layer.

hls4ml's own ``trace()`` recompiles the project every call; here the library is
compiled once with tracing enabled and one pass over the data returns both the
firmware outputs and every layer's fixed-point output.
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

import numpy as np

from edgeml.errors import EdgemlError
from edgeml.firmware.hls import quiet


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


def run(hls_model, X) -> tuple[np.ndarray | list[np.ndarray], dict[str, np.ndarray]]:
    """Firmware outputs ((n, size); a list of them for several model outputs, as hls4ml's ``predict``)
    and per-layer traced outputs for every event of ``X`` (an array, or one array per model input in
    ``get_input_variables()`` order), in one pass without recompiling."""
    lib = hls_model._top_function_lib
    if lib is None:
        raise EdgemlError("the hls4ml model is not compiled; call compile_model first")
    inputs = X if isinstance(X, (list, tuple)) else [X]
    n = len(inputs[0])
    inputs = [np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(n, -1)) for x in inputs]
    outputs = hls_model.get_output_variables()
    if len(inputs) != len(hls_model.get_input_variables()):
        raise EdgemlError(f"the model has {len(hls_model.get_input_variables())} inputs, got {len(inputs)} arrays")
    top = getattr(lib, hls_model.config.get_project_name() + "_double")
    top.argtypes = [np.ctypeslib.ndpointer(ctypes.c_double, flags="C_CONTIGUOUS")] * (len(inputs) + len(outputs))
    top.restype = None
    ctype = ctypes.c_double
    traced = {layer.name: layer.get_output_variable().shape for layer in hls_model.get_layers()
              if layer.get_attr("function_cpp", None) and layer.get_attr("trace", False)}

    class TraceData(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p)]

    # the C++ keeps one trace per layer name (a std::map): an io_stream Clone's copies share one entry
    trace_data = (TraceData * len(traced))()
    lib.collect_trace_output.argtypes = [ctypes.POINTER(TraceData)]
    lib.allocate_trace_storage.argtypes = [ctypes.c_size_t]
    ys = [np.zeros((n, out.size())) for out in outputs]
    layers = {name: np.zeros((n, int(np.prod(shape)))) for name, shape in traced.items()}
    lib.allocate_trace_storage(ctypes.sizeof(ctype))
    try:
        for i in range(n):
            rows = [np.zeros(y.shape[1], dtype=np.float64) for y in ys]
            top(*[x[i] for x in inputs], *rows)
            for y, row in zip(ys, rows):
                y[i] = row
            lib.collect_trace_output(trace_data)
            for t in trace_data:
                name = t.name.decode()
                size = layers[name].shape[1]
                layers[name][i] = np.ctypeslib.as_array(ctypes.cast(t.data, ctypes.POINTER(ctype)), shape=(size,))
    finally:
        lib.free_trace_storage()
    return (ys[0] if len(ys) == 1 else ys), layers


def simulate(hls_model, X) -> tuple[np.ndarray | list[np.ndarray], dict[str, np.ndarray], float]:
    """``run``, also returning its wall time in seconds."""
    start = time.perf_counter()
    y, layers = run(hls_model, X)
    return y, layers, time.perf_counter() - start
