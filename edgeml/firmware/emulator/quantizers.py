"""HGQ proxy-model layers as hls4ml 1.3 writes them (io_parallel, Vivado/Vitis).

- ``FixedPointQuantizer`` (hls4ml ``backends/fpga/passes/hgq_proxy_model.py``): a quantizer left in
  the graph (a heterogeneous one; homogeneous ones are fused into their input layer's result type
  by ``FuseFixedPointQuantizer``) becomes a generated mask function, one line per element:
  ``out[i] = ap_[u]fixed<b_i, i_i, AP_<RND>, AP_<SAT>>(inp[i]);`` (``out[i] = 0;`` where b_i is 0),
  then the assignment to the layer's result type.
- ``UnaryLUT`` (``nnet_activation.h: unary_lut``): the input's raw bits, read as an unsigned
  integer, index the table, whose entries (of ``table_t``) are assigned to the result type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import _common, _Step, _Unsupported, _weight_ints, register
from edgeml.fixed import Fixed


@dataclass
class _MaskStep(_Step):
    in_t: Fixed = None
    groups: list = None  # [(element indices, Fixed or None for b = 0)]

    def __call__(self, x):
        out = np.zeros((len(x), self.size), dtype=np.int64)
        for index, t in self.groups:
            if t is None:
                continue
            out[:, index] = self.out_t.requantize(t.requantize(x[:, index], self.in_t.frac), t.frac)
        return out


@register("FixedPointQuantizer")
def _fixed_point_quantizer_step(layer) -> _MaskStep:
    info = _common(layer)
    k, b, i = (np.asarray(a) for a in layer.get_attr("mask_kbi"))
    shape = tuple(layer.get_input_variable().shape)
    if k.shape[0] != 1 or b.shape[0] != 1 or i.shape[0] != 1:
        raise _Unsupported("FixedPointQuantizer mask with a batch dimension other than 1")
    rounding, saturation = str(layer.get_attr("RND")), str(layer.get_attr("SAT"))
    ks, bs, is_ = (np.broadcast_to(a[0], shape).ravel() for a in (k, b, i))
    groups: dict[tuple, list[int]] = {}
    for idx, key in enumerate(zip(ks.tolist(), bs.tolist(), is_.tolist())):
        groups.setdefault(key, []).append(idx)
    built = []
    for (kk, bb, ii), index in groups.items():
        if bb == 0:
            built.append((np.array(index), None))
            continue
        try:
            t = Fixed(bool(kk), int(bb), int(ii), rounding, saturation)
        except ValueError as e:
            raise _Unsupported(f"FixedPointQuantizer type: {e}") from None
        built.append((np.array(index), t))
    return _MaskStep(**info, groups=built)


@dataclass
class _UnaryLUTStep(_Step):
    in_t: Fixed = None
    table: np.ndarray = None  # ints at table_t
    table_t: Fixed = None

    def __call__(self, x):
        index = x & ((1 << self.in_t.width) - 1)  # x(x.width - 1, 0) as unsigned: two's complement bits
        return self.out_t.requantize(self.table[index], self.table_t.frac)


@register("UnaryLUT")
def _unary_lut_step(layer) -> _UnaryLUTStep:
    info = _common(layer)
    table, table_t = _weight_ints(layer, "table")
    table = table.reshape(-1)
    if len(table) != 1 << info["in_t"].width:
        # the C++ would index past the table (or leave entries unused): nothing to reproduce faithfully
        raise _Unsupported(f"UnaryLUT of {len(table)} entries on a {info['in_t'].width}-bit input")
    return _UnaryLUTStep(**info, table=table, table_t=table_t)
