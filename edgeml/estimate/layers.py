"""What the estimator needs to know about each hls4ml layer, from a ModelGraph or a written project.

A ``LayerSpec`` is the hardware-relevant description of one layer: kind, sizes, fixed-point widths,
ReuseFactor, Strategy and, for layers with weights, the weights as the integers HLS will see
(quantised to ``weight_t`` the way ap_fixed does it). Two sources produce the same specs:
``from_model_graph`` (an hls4ml ModelGraph in memory) and ``from_firmware`` (the ``firmware/``
folder hls4ml writes: ``parameters.h`` structs, ``defines.h`` typedefs and ``weights/*.txt``), so a
project synthesised elsewhere is estimated from exactly what was synthesised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeml.errors import InputError


@dataclass(frozen=True)
class Fixed:
    """An ap_fixed/ap_int type: total width, integer bits, signedness, rounding (True = AP_RND*)."""

    width: int = 16
    integer: int = 6
    signed: bool = True
    rounding: bool = False
    saturate: bool = False

    @property
    def frac(self) -> int:
        return self.width - self.integer


_TYPE = re.compile(r"ap_(u?)(fixed|int)\s*<\s*(\d+)\s*(?:,\s*(-?\d+))?\s*(?:,\s*(\w+))?\s*(?:,\s*(\w+))?[^>]*>")


def parse_type(text: str) -> Fixed | None:
    """'ap_fixed<16,6,AP_RND,AP_SAT>' -> Fixed; also nnet::array<ap_fixed<..>, N> (element type)."""
    m = _TYPE.search(text or "")
    if not m:
        return None
    unsigned, kind, width = m.group(1) == "u", m.group(2), int(m.group(3))
    integer = width if kind == "int" else int(m.group(4) if m.group(4) is not None else width)
    rounding = bool(m.group(5) and m.group(5).startswith("AP_RND"))
    saturate = bool(m.group(6) and m.group(6).startswith("AP_SAT"))
    return Fixed(width, integer, not unsigned, rounding, saturate)


def quantize(values: np.ndarray, t: Fixed) -> np.ndarray:
    """Float weights -> the integers (value * 2^frac) that the C++ constant holds after ap_fixed conversion."""
    scaled = np.asarray(values, dtype=np.float64) * (2.0 ** t.frac)
    q = np.round(scaled) if t.rounding else np.floor(scaled + 1e-9)  # AP_TRN (default) floors
    lo, hi = (-(2 ** (t.width - 1)), 2 ** (t.width - 1) - 1) if t.signed else (0, 2 ** t.width - 1)
    return np.clip(q, lo, hi).astype(np.int64)  # saturate: enough for counting bits


@dataclass
class LayerSpec:
    """One hls4ml layer as the estimator sees it."""

    name: str
    kind: str  # dense | conv1d | conv2d | activation | softmax | pooling | other
    io_type: str = "io_parallel"
    strategy: str = "latency"  # latency | resource | distributed_arithmetic
    reuse_factor: int = 1
    n_in: int = 0  # inputs of one multiply-accumulate block (conv: kernel * channels)
    n_out: int = 0  # outputs of that block (conv: filters)
    n_positions: int = 1  # how many times the block runs per inference (conv: output pixels)
    in_positions: int = 1  # input pixels streamed in (conv/pool)
    n_chan: int = 0
    in_type: Fixed = field(default_factory=Fixed)
    result_type: Fixed = field(default_factory=Fixed)
    accum_type: Fixed = field(default_factory=Fixed)
    weight_type: Fixed | None = None
    weights: np.ndarray | None = None  # quantised integers, shape (n_in, n_out); None = unknown
    activation: str = ""
    table_size: int = 1024
    pool_size: int = 1
    declared_zeros: int | None = None  # zeros hls4ml counted (n_zeros -> multiplier_limit) before dead-code removal
    line_buffer: int = 0  # io_stream 2D pooling: input pixels held until a window is complete, (pool_height-1)*in_width
    # hls4ml <= 0.6 (its parameters.h declares `product<x_T, y_T, res_T>`, three type arguments): the io_stream conv
    # wraps its dense kernel call in `#pragma HLS INLINE region`; from 0.7 on `INLINE recursive` / `INLINE OFF`
    inline_kernel: bool = False
    # distributed arithmetic after hls4ml's DA pass: (generated C++ of the adder graph, da_kernel_cost)
    da_source: tuple | None = None

    @property
    def n_weights(self) -> int:
        return self.n_in * self.n_out if self.kind in ("dense", "conv1d", "conv2d") else 0


# ----------------------------------------------------------------------------- ModelGraph

_DENSE_CLASSES = {"Dense", "QDense", "BinaryDense", "TernaryDense", "PointwiseConv1D", "PointwiseConv2D"}
_CONV1D = {"Conv1D", "QConv1D", "PointwiseConv1D"}
_CONV2D = {"Conv2D", "QConv2D", "PointwiseConv2D"}
MERGE_CLASSES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"}
_ACT = {"Activation", "ReLU", "LeakyReLU", "ThresholdedReLU", "ELU", "PReLU", "HardActivation",
        "ParametrizedActivation", "TernaryTanh"}


def _precision(obj) -> Fixed:
    """hls4ml type/precision object -> Fixed (falls back to ap_fixed<16,6>)."""
    p = getattr(obj, "precision", obj)
    width = getattr(p, "width", None)
    if width is None:
        return parse_type(str(p)) or Fixed()
    integer = getattr(p, "integer", width)
    rnd = str(getattr(p, "rounding_mode", "")).upper()
    sat = str(getattr(p, "saturation_mode", "")).upper()
    return Fixed(int(width), int(integer), bool(getattr(p, "signed", True)), rnd.startswith("RND"), sat.startswith("SAT"))


def _strategy(layer) -> str:
    s = str(layer.get_attr("strategy") or "latency").lower()
    if s.startswith("distributed"):
        return "distributed_arithmetic"
    return "resource" if s.startswith("resource") or s.startswith("resource_unrolled") else "latency"


def from_model_graph(hls_model) -> list[LayerSpec]:
    """Specs for every layer of an hls4ml ModelGraph, input layer excluded."""
    io_type = str(hls_model.config.get_config_value("IOType") or "io_parallel")
    specs: list[LayerSpec] = []
    prev_type = None
    pending_bits = None
    for layer in hls_model.get_layers():
        out = layer.get_output_variable()
        result_type = _precision(out.type)
        cls = layer.class_name
        if cls == "Input":
            prev_type = result_type
            continue
        if cls in ("Reshape", "Flatten", "Transpose") and not layer.get_attr("function_cpp"):
            continue  # hls4ml writes no code for these: only the array's shape changes
        if cls == "FixedPointQuantizer" and layer.get_attr("mask_kbi") is not None:
            pending_bits = kbi_bits(*layer.get_attr("mask_kbi"))  # HGQ: per-element widths of the next layer's input
        spec = LayerSpec(name=layer.name, kind="other", io_type=io_type, strategy=_strategy(layer),
                         reuse_factor=int(layer.get_attr("reuse_factor") or 1), in_type=prev_type or Fixed(),
                         result_type=result_type)
        accum = layer.get_attr("accum_t")
        if accum is not None:
            spec.accum_type = _precision(accum)
        if spec.strategy == "distributed_arithmetic" and layer.get_attr("da_codegen") is not None:
            # hls4ml's DA pass replaced the weights by the generated adder graph: priced from that source
            spec.kind = "conv2d" if cls in _CONV2D else "conv1d" if cls in _CONV1D else "dense"
            spec.n_in, spec.n_out = int(layer.get_attr("n_in") or 0), int(layer.get_attr("n_out") or 0)
            spec.da_source = (str(layer.get_attr("da_codegen")), layer.get_attr("da_kernel_cost"))
            if spec.kind != "dense":
                spec.n_positions = int(np.prod(out.shape[:-1])) if len(out.shape) > 1 else 1
        elif "weight" in layer.weights:
            w = layer.weights["weight"]
            spec.weight_type = _precision(w.type)
            data = np.asarray(w.data)
            if cls in _CONV1D or cls in _CONV2D or data.ndim > 2:
                spec.kind = "conv2d" if (cls in _CONV2D or data.ndim == 4) else "conv1d"
                spec.n_out = int(data.shape[-1])
                spec.n_in = int(np.prod(data.shape[:-1]))
                spec.n_chan = int(data.shape[-2])
                spec.n_positions = int(np.prod(out.shape[:-1])) if len(out.shape) > 1 else 1
                in_shape = layer.get_input_variable().shape
                spec.in_positions = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
            else:
                spec.kind = "dense"
                spec.n_in = int(layer.get_attr("n_in") or data.shape[0])
                spec.n_out = int(layer.get_attr("n_out") or data.shape[-1])
                if len(out.shape) > 1:  # Dense on a sequence runs once per position
                    spec.n_positions = int(np.prod(out.shape[:-1]))
            spec.weights = quantize(data.reshape(spec.n_in, spec.n_out), spec.weight_type)
            if spec.kind == "dense" and pending_bits is not None and pending_bits[0].size == spec.n_in:
                apply_input_bits(spec, pending_bits)
        elif "scale" in layer.weights:  # BatchNormalization: x * scale + bias, a constant multiplier per value
            w = layer.weights["scale"]
            spec.weight_type = _precision(w.type)
            scale = np.asarray(w.data, dtype=np.float64).reshape(-1)
            if io_type != "io_stream":  # io_parallel unrolls every value; io_stream one pixel of channels
                scale = np.resize(scale, int(np.prod(out.shape)))
            spec.kind, spec.n_in, spec.n_out = "dense", 1, int(scale.size)
            spec.weights = quantize(scale.reshape(1, -1), spec.weight_type)
        elif cls in MERGE_CLASSES or cls in ("Merge", "Concatenate"):
            spec.kind, spec.activation = "activation", str(layer.get_attr("op") or cls).lower()
            spec.n_in = int(np.prod(out.shape))
            spec.n_chan = int(out.shape[-1]) if len(out.shape) > 1 else 0
        elif cls in ("Softmax",) or str(layer.get_attr("activation")).lower() == "softmax":
            spec.kind, spec.activation = "softmax", "softmax"
            spec.n_in = int(layer.get_attr("n_in") or np.prod(out.shape))
            spec.n_chan = int(out.shape[-1]) if len(out.shape) > 1 else 0
        elif cls in _ACT or "activation" in layer.attributes:
            spec.kind = "activation"
            spec.activation = str(layer.get_attr("activation") or cls).lower()
            spec.n_in = int(layer.get_attr("n_in") or np.prod(out.shape))
            spec.table_size = int(layer.get_attr("table_size") or 1024)
            spec.n_chan = int(out.shape[-1]) if len(out.shape) > 1 else 0
        elif "Pooling" in cls:
            spec.kind = "pooling"
            spec.n_chan = int(out.shape[-1])
            spec.n_positions = int(np.prod(out.shape[:-1]))
            in_shape = layer.get_input_variable().shape
            spec.in_positions = int(np.prod(in_shape[:-1]))
            spec.pool_size = max(1, spec.in_positions // max(1, spec.n_positions))
            if len(in_shape) == 3:
                spec.line_buffer = (int(layer.get_attr("pool_height") or 1) - 1) * int(in_shape[1])
            spec.n_in = int(np.prod(in_shape))
            spec.n_out = int(np.prod(out.shape))
        else:
            spec.n_in = int(np.prod(out.shape))
        spec.n_out = spec.n_out or spec.n_in
        specs.append(spec)
        prev_type = result_type
        if cls != "FixedPointQuantizer":
            pending_bits = None
    return specs


def kbi_bits(k, b, i) -> tuple[np.ndarray, np.ndarray]:
    """HGQ's per-element (keep_negative, bits, integer bits) -> (integer bits incl. sign, fraction bits); a width of 0
    marks an input HGQ pruned away (always zero)."""
    k, b, i = (np.asarray(a, dtype=np.int64).ravel() for a in (k, b, i))
    zero = b <= 0
    return np.where(zero, 0, i), np.where(zero, -64, b - i)


def apply_input_bits(spec: LayerSpec, bits: tuple[np.ndarray, np.ndarray]) -> None:
    """The products of inputs HGQ quantised to zero width (always zero) are dead code: their weights count as zeros.
    The live inputs keep the layer's declared input type: the quantizer masks values but the C++ datapath stays as
    wide as the type, and csynth prices it so (HGQ_L53: 17.4k LUT estimated this way, 16.5k reported; with the
    per-element widths 7.8k)."""
    dead = bits[1] <= -64
    if dead.any() and spec.weights is not None:
        spec.weights = np.where(dead[:, None], 0, spec.weights)


def hgq_input_bits(project_dir: Path) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per dense layer of an HGQ project (in order): the per-element widths of its input, from the FixedPointQuantizer
    just before it in ``keras_model.keras`` (a zip: config.json and model.weights.h5, read with h5py, no TensorFlow);
    None where no per-element quantizer feeds it; [] for a project without such a model."""
    import json
    import zipfile

    path = Path(project_dir) / "keras_model.keras"
    if not path.is_file() or not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            if "FixedPointQuantizer" not in json.dumps(config):
                return []
            import io

            import h5py

            with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                root = h5.get("_layer_checkpoint_dependencies") or h5
                out, pending, n_quant = [], None, 0
                for layer in config.get("config", {}).get("layers", []):
                    cls = layer.get("class_name")
                    if cls == "FixedPointQuantizer":
                        name = "fixed_point_quantizer" + (f"_{n_quant}" if n_quant else "")
                        n_quant += 1
                        group = root.get(f"{name}/vars")
                        if group is not None and len(group) >= 3 and group["0"].shape:
                            pending = kbi_bits(group["0"][()], group["1"][()], group["2"][()])
                    elif cls == "Dense":
                        out.append(pending)
                        pending = None
                return out
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []  # an unreadable model: the layer types alone


# ----------------------------------------------------------------------------- firmware/

_STRUCT = re.compile(r"(?:^|\n)(?://\s*(?P<comment>[^\n]*)\n)?\s*struct\s+(?P<name>\w+)\s*:\s*(?P<base>[\w:]+)\s*\{"
                     r"(?P<body>.*?)\n\s*\};", re.S)
_CONST = re.compile(r"static\s+const\s+(?:unsigned|int|bool|unsigned\s+int)\s+(\w+)\s*=\s*([^;]+);")
_TYPEDEF = re.compile(r"typedef\s+(.+?)\s+(\w+)\s*;")
_THREE_ARG_PRODUCT = re.compile(r"using\s+product\s*=\s*nnet::product::\w+\s*<\s*\w+\s*,\s*\w+\s*,\s*\w+\s*>")
_ENUM = re.compile(r"static\s+const\s+nnet::\w+\s+(\w+)\s*=\s*([^;]+);")


_NOT_OUTPUT = re.compile(r"(_accum_t|_weight_t|_bias_t|_scale_t|_table_t|_index|_default_t|accum_t|_exp_table_t|"
                         r"_inv_table_t|_mult_t)$")


def _output_typedefs(defines: str) -> list[str]:
    """Names of layer output types in defines.h, in the order hls4ml wrote them (the layers' order)."""
    return [name for _, name in _TYPEDEF.findall(defines) if name.endswith("_t") and not _NOT_OUTPUT.search(name)]


def _typedefs(text: str) -> dict[str, str]:
    return {name: target.strip() for target, name in _TYPEDEF.findall(text)}


def _resolve(name: str, typedefs: dict[str, str]) -> Fixed | None:
    for _ in range(5):  # typedef chains such as accum_t -> model_default_t -> ap_fixed<16,6>
        t = parse_type(name)
        if t is not None:
            return t
        if name not in typedefs:
            return None
        name = typedefs[name]
    return None


def _eval_int(expr: str, consts: dict[str, int]) -> int | None:
    expr = expr.strip()
    if re.fullmatch(r"-?\d+", expr):
        return int(expr)
    if expr in consts:
        return consts[expr]
    if re.fullmatch(r"[\w\s*+]+", expr):  # e.g. filt_height * filt_width
        try:
            return int(eval(expr, {"__builtins__": {}}, dict(consts)))  # noqa: S307 - only names/ints/*/+
        except Exception:
            return None
    return None


def _struct_fields(body: str, macros: dict[str, int] | None = None) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    consts: dict[str, int] = dict(macros or {})
    for key, expr in _CONST.findall(body):
        value = _eval_int(expr, consts)
        if value is not None:
            consts[key] = value
    enums = {k: v.strip() for k, v in _ENUM.findall(body)}
    for key, expr in _CONST.findall(body):  # strategy = nnet::latency is 'unsigned' in older hls4ml
        if "nnet::" in expr:
            enums[key] = expr.strip()
    local_types = {name: target.strip() for target, name in _TYPEDEF.findall(body)}
    return consts, enums, local_types


def _index(struct_name: str) -> str | None:
    m = re.search(r"(\d+)(?:_mult)?$", struct_name)
    return m.group(1) if m else None


def _read_weights(weights_dir: Path, idx: str) -> np.ndarray | None:
    return _read_array(weights_dir, f"w{idx}")


def _read_array(weights_dir: Path, stem: str) -> np.ndarray | None:
    """Values of weights/<stem>.txt (comma separated) or, failing that, the initializer in <stem>.h."""
    path = weights_dir / f"{stem}.txt"
    if not path.is_file():
        path = weights_dir / f"{stem}.h"
        if not path.is_file():
            return None
        text = path.read_text()
        text = text[text.find("{") + 1: text.rfind("}")] if "{" in text else ""
    else:
        text = path.read_text()
    values = np.array([float(v) for v in re.split(r"[,\s]+", text.strip()) if v], dtype=np.float64)
    return values if values.size else None


def _firmware_strategy(enum: str) -> str:
    """``nnet::resource`` / ``nnet::distributed_arithmetic`` / ``nnet::latency`` -> the spec's strategy."""
    if "distributed_arithmetic" in enum:
        return "distributed_arithmetic"
    return "resource" if "resource" in enum else "latency"


def from_firmware(project_dir: Path, io_type: str = "io_parallel") -> list[LayerSpec]:
    """Specs from an hls4ml project's firmware/ (what was actually synthesised)."""
    firmware = Path(project_dir) / "firmware"
    params_path = firmware / "parameters.h"
    if not params_path.is_file():
        raise InputError(f"{project_dir}: no firmware/parameters.h; point at the folder hls4ml wrote (hls_model.write())")
    params = params_path.read_text(errors="replace")
    defines = (firmware / "defines.h").read_text(errors="replace") if (firmware / "defines.h").is_file() else ""
    typedefs = {**_typedefs(defines), **_typedefs(re.sub(r"struct\s+\w+\s*:[^{]*\{.*?\n\s*\};", "", params, flags=re.S))}
    macros = {k: int(v) for k, v in re.findall(r"#define\s+(\w+)\s+(\d+)\s*$", defines, flags=re.M)}
    structs = list(_STRUCT.finditer(params))
    mults = {m.group("name"): m for m in structs if m.group("name").endswith("_mult")}
    specs: list[LayerSpec] = []
    outputs = _output_typedefs(defines)
    prev_type = _resolve("input_t", typedefs) or (_resolve(outputs[0], typedefs) if outputs else None) or Fixed()
    for m in structs:
        name, base = m.group("name"), m.group("base")
        if name.endswith("_mult") or "config" not in base:
            continue
        consts, enums, local = _struct_fields(m.group("body"), macros)
        types = {**typedefs, **local}
        idx = _index(name)
        result = _resolve(f"layer{idx}_t", typedefs) or (_resolve("result_t", typedefs) if m is structs[-1] else None)
        mult = mults.get(f"{name}_mult")
        comment = m.group("comment") or (mult.group("comment") if mult else None)
        named = f"{(comment or '').strip()}_t"
        if result is None and named in outputs:
            # hls4ml 1.x names types after the layer (h_dense_t); layers without a struct (HGQ's FixedPointQuantizer)
            # sit between, so the input is the output type written just before this layer's own (defines.h order)
            result = _resolve(named, typedefs)
            at = outputs.index(named)
            prev_type = (_resolve(outputs[at - 1], typedefs) if at > 0 else None) or prev_type
        spec = LayerSpec(name=(comment or name).strip(), kind="other",
                         io_type="io_stream" if "io_stream" in enums.get("io_type", io_type) else io_type,
                         strategy=_firmware_strategy(enums.get("strategy", "latency")),
                         reuse_factor=consts.get("reuse_factor", 1), in_type=prev_type,
                         result_type=result or prev_type)
        spec.accum_type = _resolve(local.get("accum_t", "accum_t"), types) or spec.accum_type
        kind = base.split("::")[-1]
        if kind in ("dense_config", "conv1d_config", "conv2d_config"):
            mconsts = _struct_fields(mult.group("body"))[0] if mult else {}
            spec.weight_type = _resolve(local.get("weight_t", "weight_t"), types) or Fixed()
            if kind == "dense_config":
                spec.kind = "dense"
                spec.n_in, spec.n_out = consts.get("n_in", 0), consts.get("n_out", 0)
            else:
                spec.kind = "conv2d" if kind == "conv2d_config" else "conv1d"
                spec.n_chan = consts.get("n_chan", 1)
                spec.n_out = consts.get("n_filt", mconsts.get("n_out", 0))
                spec.n_in = mconsts.get("n_in") or consts.get("filt_width", 1) * consts.get("filt_height", 1) * spec.n_chan
                spec.n_positions = consts.get("out_width", 1) * consts.get("out_height", 1)
                spec.in_positions = consts.get("in_width", 1) * consts.get("in_height", 1)
            spec.inline_kernel = bool(_THREE_ARG_PRODUCT.search(mult.group("body") if mult else m.group("body")))
            raw = _read_weights(firmware / "weights", idx) if idx else None
            if raw is not None and raw.size == spec.n_in * spec.n_out:
                spec.weights = quantize(raw.reshape(spec.n_in, spec.n_out), spec.weight_type)
        elif kind in ("pooling1d_config", "pooling2d_config"):
            spec.kind = "pooling"
            spec.n_chan = consts.get("n_filt", consts.get("n_chan", 1))
            spec.in_positions = consts.get("in_width", 1) * consts.get("in_height", 1)
            spec.n_positions = consts.get("out_width", 1) * consts.get("out_height", 1)
            spec.pool_size = consts.get("pool_width", 1) * consts.get("pool_height", 1)
            if kind == "pooling2d_config":
                spec.line_buffer = (consts.get("pool_height", 1) - 1) * consts.get("in_width", 1)
            spec.n_in = spec.in_positions * spec.n_chan
            spec.n_out = spec.n_positions * spec.n_chan
        elif kind == "batchnorm_config":
            spec.kind = "dense"
            raw = _read_array(firmware / "weights", f"s{idx}") if idx else None
            spec.weight_type = _resolve(local.get("scale_t", "scale_t"), types) or Fixed()
            n = consts.get("n_in", 0)
            if raw is not None:
                scale = raw if spec.io_type == "io_stream" else np.resize(raw, n)
                spec.n_in, spec.n_out = 1, int(scale.size)
                spec.weights = quantize(scale.reshape(1, -1), spec.weight_type)
            else:
                spec.n_in, spec.n_out = 1, n
        elif kind in ("merge_config", "concat_config"):
            spec.kind, spec.activation = "activation", re.sub(r"_?config\d*$", "", name).lower() or "merge"
            spec.n_in = spec.n_out = consts.get("n_elem", consts.get("n_elem1_0", 0))
        elif kind == "activ_config":
            act = re.sub(r"_?config\d*$", "", name).lower() or "linear"
            spec.kind = "softmax" if "softmax" in act else "activation"
            spec.activation = act
            spec.n_chan = specs[-1].n_out if specs and specs[-1].kind in ("conv1d", "conv2d") else \
                (specs[-1].n_chan if specs and specs[-1].kind == "pooling" else 0)
            spec.n_in = spec.n_out = consts.get("n_in", 0)
            spec.table_size = consts.get("table_size", 1024)
        else:
            spec.n_in = spec.n_out = consts.get("n_in", consts.get("n_elem", 0))
        specs.append(spec)
        prev_type = spec.result_type
    if not specs:
        raise InputError(f"{params_path}: no hls4ml layer structs found; is this an hls4ml parameters.h?")
    per_dense = hgq_input_bits(project_dir)
    dense = [s for s in specs if s.kind == "dense" and s.weights is not None and s.n_in > 1]
    if per_dense and len(per_dense) == len(dense):
        for spec, bits in zip(dense, per_dense):
            if bits is not None and bits[0].size == spec.n_in:
                apply_input_bits(spec, bits)
    return specs
