"""Softmax (``nnet_activation.h``): latency / stable / legacy lookup tables of exp and 1/x, and argmax."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import (_ceillog2, _common, _config, _is_stream, _named_type, _pack_size, _Step, _trunc_div,
                                           _Unsupported, register)
from edgeml.firmware.emulator.tables import _expf, _legacy_exp_table, _legacy_inv_table
from edgeml.fixed import Fixed


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


def _tree_sum(terms: list, t: Fixed):
    """nnet::reduce with Op_add<accum_t>: a balanced tree, each addition cast back to accum_t."""
    n = len(terms)
    if n == 1:
        return terms[0]
    if n == 2:
        return t.fold(terms[0] + terms[1])
    left = 1 << ((n - 1).bit_length() - 1)  # pow2(floorlog2(n - 1))
    return t.fold(_tree_sum(terms[:left], t) + _tree_sum(terms[left:], t))


@register("Softmax")
def _softmax_step(layer) -> _SoftmaxStep:
    info = _common(layer)
    config = _config(layer)
    impl = config.get("implementation", str(layer.get_attr("implementation", "stable"))).lower()
    if impl not in ("latency", "stable", "legacy", "argmax"):
        raise _Unsupported(f"softmax implementation {impl}")
    if int(config.get("n_inner", 1)) != 1 or int(config.get("n_outer", 1)) != 1:
        raise _Unsupported("multi-dimensional softmax")
    stream = _is_stream(layer)
    if stream and _pack_size(layer.get_input_variable()) != info["size"]:
        raise _Unsupported("io_stream softmax over a stream of several words (one softmax per word)")
    if impl == "argmax":
        return _SoftmaxStep(**info, implementation=impl)
    default_size = int(layer.get_attr("table_size", 1024))
    n_exp = int(config.get("exp_table_size", layer.get_attr("exp_table_size", default_size)))
    n_inv = int(config.get("inv_table_size", layer.get_attr("inv_table_size", default_size)))
    if impl == "legacy":
        if stream:  # the stream legacy softmax sizes both tables with table_size
            n_exp = n_inv = int(config.get("table_size", default_size))
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
