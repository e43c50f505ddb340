"""float32 / double lookup tables built with the same libm calls and float/double mix as the C++ table inits."""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np


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
