"""Layers with ``Strategy: distributed_arithmetic`` (hls4ml 1.3 + da4ml): priced from da4ml's own solution.

hls4ml's ``DistributedArithmeticCodegen`` pass solves each Dense/Conv kernel as a constant-matrix-vector
multiplication (CMVM) with da4ml: ``FixedVariableArray.from_kif(k, i, f, HWConfig(1, -1, -1),
solver_options={'hard_dc': 2, 'search_all_decompose_dc': True}) @ kernel`` traced by ``comb_trace``, and writes
the resulting adder graph as C++ (no multiplications at all). ``da_cost`` runs the same solve:

* **LUT**: the solution's ``cost``; with ``adder_size`` 1 every adder costs its width in bits, about one LUT
  (a carry-chain bit) per bit, and shifts/negations are free;
* **DSP**: none;
* **adder depth**: the solution's latency, counted in adders (``carry_size`` -1: one unit per add);
* **FF**: the registers HLS puts between pipeline stages: ``to_pipeline`` cuts the adder graph every
  ``adders_per_cycle`` levels, and the values live across each cut (their widths) are the registers.

The first solve in a process compiles da4ml's numba kernels (about a minute); results are cached per kernel and
input type in the process (a sha1 of the kernel and the input bits), so repeated estimates of one design are
immediate. After conversion hls4ml drops a DA layer's weights and keeps ``da_kernel_cost`` and the generated
C++ (``da_codegen``: one ``ap_fixed<W,I> vN = vA +- bit_shift<s>(vB); // latency`` line per adder); ``source_cost``
reads the same cost, depth and cut registers from that source.
"""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np

HARD_DC = 2  # hls4ml's default (env DA_HARD_DC): extra adder depth allowed beyond the minimal one


def input_kif(signed: bool, width: int, integer: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """hls4ml's k, i, f of an ap_fixed<width, integer> input: sign bit, integer bits without it, fraction bits."""
    k = int(bool(signed))
    return (np.full(n_in, k, dtype=np.int16), np.full(n_in, integer - k, dtype=np.int16),
            np.full(n_in, width - integer, dtype=np.int16))


def da_cost(kernel: np.ndarray, k: np.ndarray, i: np.ndarray, f: np.ndarray, adders_per_cycle: float = 0.0) -> dict:
    """da4ml's price of ``x @ kernel`` for inputs of per-element signs/integer/fraction bits ``k, i, f``.

    ``kernel``: the weights as real numbers (already quantised), shape (n_in, n_out). Returns ``lut`` (adder bits),
    ``depth`` (adder levels), ``ff`` (register bits at cuts every ``adders_per_cycle`` levels; 0: combinational),
    ``adders`` (operations).
    """
    kernel = np.ascontiguousarray(np.asarray(kernel, dtype=np.float64).reshape(len(k), -1))
    kif = np.stack([np.asarray(k), np.asarray(i), np.asarray(f)]).astype(np.int16)
    key = (hashlib.sha1(kernel.tobytes() + kif.tobytes()).hexdigest(), kernel.shape, round(float(adders_per_cycle), 3))
    if key not in _CACHE:
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _solve(kernel, kif, float(adders_per_cycle))
    return dict(_CACHE[key])


CACHE_SIZE = 256  # solved kernels kept per process (a search re-estimates the same layers many times)
_CACHE: dict = {}


def _solve(kernel: np.ndarray, kif: np.ndarray, adders_per_cycle: float) -> dict:
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace
    from da4ml.trace.pipeline import to_pipeline

    options = {"hard_dc": HARD_DC, "search_all_decompose_dc": True}
    inp = FixedVariableArray.from_kif(kif[0], kif[1], kif[2], HWConfig(1, -1, -1), solver_options=options)
    comb = comb_trace(inp, inp @ kernel)
    depth = float(comb.latency[1]) if comb.ops else 0.0
    ff = 0.0
    if adders_per_cycle > 0 and depth > adders_per_cycle:
        pipe = to_pipeline(comb, adders_per_cycle, retiming=True, verbose=False)
        for stage in pipe.solutions[1:]:  # every stage after the first starts from registers
            ff += sum(_bits(q) for q in stage.inp_qint)
    return {"lut": float(comb.cost), "depth": depth, "ff": ff,
            "adders": float(sum(1 for op in comb.ops if op.opcode in (0, 1)))}


def _bits(q) -> int:
    """Width of a quantised interval (min, max, step): the register it needs."""
    low, high, step = float(q.min), float(q.max), float(q.step)
    if step <= 0 or (low == 0 and high == 0):
        return 0
    span = max(abs(low), abs(high) + step) / step
    return int(math.ceil(math.log2(span + 1))) + (1 if low < 0 else 0)


def layer_cost(weights_real: np.ndarray, in_type, adders_per_cycle: float = 0.0) -> dict:
    """da_cost of one hls4ml layer from its (quantised) real weights and its input ap_fixed type (``layers.Fixed``)."""
    n_in = weights_real.shape[0]
    k, i, f = input_kif(in_type.signed, in_type.width, in_type.integer, n_in)
    return da_cost(weights_real, k, i, f, adders_per_cycle)


def keras_cost(kernel: np.ndarray, quantizer=None, input_bits: int = 16, input_integer: int = 6) -> dict:
    """da_cost of a Keras kernel: ``quantizer`` (a QKeras quantizer, callable on the kernel) applied first; the input
    as ap_fixed<input_bits, input_integer>."""
    values = np.asarray(quantizer(kernel) if quantizer is not None else kernel, dtype=np.float64)
    values = values.reshape(-1, values.shape[-1])
    k, i, f = input_kif(True, input_bits, input_integer, values.shape[0])
    return da_cost(values, k, i, f)


_OP = re.compile(r"^\s*ap_u?fixed<\s*(\d+)[^>]*>\s+(v\d+)\s*=\s*(.*?);\s*//\s*([\d.]+)", re.M)
_OUT = re.compile(r"^\s*\w+\[\d+\]\s*=\s*(.*?);", re.M)
_VAR = re.compile(r"\bv\d+\b")


def source_cost(source: str, da_kernel_cost: float | None, adders_per_cycle: float = 0.0) -> dict:
    """Cost, depth and pipeline-cut registers of a DA kernel from hls4ml's generated C++ (``da_codegen``).

    LUT: ``da_kernel_cost`` (what hls4ml stored from the solve), else the adders' widths. A value crosses the cut at
    level c (registers: its width) when it is produced before c and used at or after c (outputs are used at the end).
    """
    values = {}  # name -> (width, latency)
    last_use: dict = {}
    adder_bits = 0.0
    for width, name, expr, lat in _OP.findall(source):
        values[name] = (int(width), float(lat))
        used = _VAR.findall(expr)
        if len(used) == 2:
            adder_bits += int(width)
        for u in used:
            last_use[u] = max(last_use.get(u, 0.0), float(lat))
    depth = max((lat for _, lat in values.values()), default=0.0)
    for expr in _OUT.findall(source):
        for u in _VAR.findall(expr):
            last_use[u] = depth
    ff = 0.0
    if adders_per_cycle > 0 and depth > adders_per_cycle:
        cuts = [adders_per_cycle * k for k in range(1, int(math.ceil(depth / adders_per_cycle)))]
        for name, (width, lat) in values.items():
            end = last_use.get(name)
            if end is not None:
                ff += width * sum(1 for c in cuts if lat < c <= end)
    return {"lut": float(da_kernel_cost) if da_kernel_cost is not None else adder_bits, "depth": depth, "ff": ff,
            "adders": float(sum(1 for _, _, e, _ in _OP.findall(source) if len(_VAR.findall(e)) == 2))}
