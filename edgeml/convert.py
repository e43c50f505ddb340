"""The convert stage: Keras/QKeras model -> hls4ml project -> g++ C-simulation -> bit-accuracy report.

The report says, with numbers, how faithfully the fixed-point firmware reproduces the
model: accuracy, argmax agreement, output and logit differences, and for every layer
its error, overflow fraction and a suggested precision. Keras reference values are
computed on the inputs quantized to the firmware's input type, so that a difference
is the firmware's own arithmetic, never the (reported separately) input rounding.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeml import config as cfgmod
from edgeml import integrity, locks  # reliability: locked project dirs, sealed cache
from edgeml.errors import EdgemlError, InputError
from edgeml.io import content_hash, read_json, write_json, write_text
from edgeml.simulate import Fixed, bits_for, fixed_of, overflow_fraction, quantize, quiet

PROJECT_NAME = "myproject"
REPORT_FILE = "convert_report.json"
REPORT_MD = "convert_report.md"
PREDICTIONS_FILE = "predictions.npz"
CACHE_FILE = "edgeml_convert_cache.json"
CACHE_VERSION = 1  # bump when the report layout or the build recipe changes
RESERVED_NAMES = {"input"}  # hls4ml reserves this node name
DEFAULT_PROJECTS_DIR = Path("hls_projects")


# --------------------------------------------------------------------------- model preparation

def prepare_for_hls(model):
    """Strip tfmot pruning wrappers and rename layers hls4ml reserves; idempotent, weights unchanged."""
    import tensorflow as tf

    if any(type(layer).__name__ == "PruneLowMagnitude" for layer in model.layers):
        from tensorflow_model_optimization.sparsity.keras import strip_pruning

        model = strip_pruning(model)
    config = model.get_config()
    # Sequential models keep their InputLayer out of model.layers: read names from the config.
    taken = {layer.get("config", {}).get("name") for layer in config.get("layers", [])} | \
        {layer.name for layer in model.layers}
    if not RESERVED_NAMES & taken:
        return model
    from edgeml.modelio import custom_objects

    renames = {old: _free_name(old, taken) for old in RESERVED_NAMES & taken}
    # Layer names appear as plain strings in 'name' fields and inbound-node references only.
    config = _rename_strings(config, renames)
    cls = tf.keras.Sequential if isinstance(model, tf.keras.Sequential) else tf.keras.Model
    clone = cls.from_config(config, custom_objects=custom_objects())
    clone.set_weights(model.get_weights())
    return clone


def _free_name(old: str, taken: set[str]) -> str:
    i = 1
    while f"{old}_{i}" in taken:
        i += 1
    return f"{old}_{i}"


def _rename_strings(obj, renames: dict):
    if isinstance(obj, str):
        return renames.get(obj, obj)
    if isinstance(obj, dict):
        return {k: _rename_strings(v, renames) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_rename_strings(v, renames) for v in obj)
    return obj


def unconvertible_layers(model) -> list[str]:
    """Layers hls4ml 1.3 has no converter for, as 'name (Class)'."""
    from hls4ml.converters import get_supported_keras_layers

    supported = set(get_supported_keras_layers()) | {"Dropout"}
    return [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
            if type(layer).__name__ not in supported]


def _is_quantized(layer) -> bool:
    """QKeras layers: their precisions come from the quantizers and are kept."""
    return type(layer).__module__.startswith("qkeras")


# --------------------------------------------------------------------------- hls4ml configuration

def _kind_precisions(precision) -> dict[str, str]:
    """Model-wide Precision (string or per-kind dict) -> a full {weight, bias, result, accum} dict."""
    if isinstance(precision, str):
        return {kind: precision for kind in cfgmod.PRECISION_KINDS}
    fallback = precision.get("result") or next(iter(precision.values()), "ap_fixed<16,6>")
    return {kind: precision.get(kind, fallback) for kind in cfgmod.PRECISION_KINDS}


def _keras_layer_of(entry_name: str, keras_names: set[str]) -> str:
    """hls4ml config entries like 'fc1_relu' or 'fc1_linear' belong to Keras layer 'fc1'."""
    if entry_name in keras_names:
        return entry_name
    base = entry_name.rsplit("_", 1)[0]
    return base if base in keras_names else entry_name


def hls4ml_config(model, hls: dict) -> tuple[dict, list[str]]:
    """The hls4ml configuration (granularity 'name') for ``model`` under edgeml's ``hls`` section.

    Float layers get the configured precision for every kind; QKeras layers keep what
    hls4ml derived from their quantizers unless LayerName overrides them explicitly
    (which is reported as a warning).
    """
    import hls4ml

    warnings: list[str] = []
    defaults = _kind_precisions(hls["Precision"])
    with quiet():
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=hls["Backend"],
                                                   default_precision=defaults["result"])
    cfg["Model"]["ReuseFactor"] = hls["ReuseFactor"]
    cfg["Model"]["Strategy"] = hls["Strategy"]
    keras_layers = {layer.name: layer for layer in model.layers}
    quantized = {name for name, layer in keras_layers.items() if _is_quantized(layer)}
    for name, entry in cfg["LayerName"].items():
        if "ReuseFactor" in entry:
            entry["ReuseFactor"] = hls["ReuseFactor"]
        precision = entry.get("Precision")
        if _keras_layer_of(name, set(keras_layers)) in quantized:
            continue
        if isinstance(precision, dict) and "exp_table" in precision:
            precision["result"] = defaults["result"]  # softmax: its tables and sum keep hls4ml's own types
        elif isinstance(precision, dict):
            for kind in cfgmod.PRECISION_KINDS:
                if kind in precision:
                    precision[kind] = defaults[kind]
        elif precision is not None:
            entry["Precision"] = defaults["result"]
    for name, override in hls.get("LayerName", {}).items():
        if name not in cfg["LayerName"]:
            raise InputError(f"hls.LayerName.{name}: the model has no layer '{name}' "
                             f"(layers: {', '.join(cfg['LayerName'])})")
        entry = cfg["LayerName"][name]
        if override.get("Precision") is not None:
            _apply_precision_override(name, entry, override["Precision"],
                                      _keras_layer_of(name, set(keras_layers)) in quantized, warnings)
        if override.get("ReuseFactor") is not None:
            entry["ReuseFactor"] = override["ReuseFactor"]
        if override.get("Strategy") is not None:
            entry["Strategy"] = override["Strategy"]
        if override.get("TableSize") is not None:
            entry["TableSize"] = override["TableSize"]
    _align_linear_activations(cfg)
    return cfg, warnings


def _align_linear_activations(cfg: dict) -> None:
    """hls4ml adds '<layer>_linear' after each Dense and drops it only when its result type matches the
    layer's; give it the layer's type so that a per-layer precision does not leave a re-quantizing node behind."""
    layers = cfg["LayerName"]
    for name, entry in layers.items():
        base = layers.get(name.removesuffix("_linear")) if name.endswith("_linear") else None
        if base is None or not isinstance(entry.get("Precision"), dict):
            continue
        result = base["Precision"].get("result") if isinstance(base.get("Precision"), dict) else base.get("Precision")
        if result is not None:
            entry["Precision"]["result"] = result


def _apply_precision_override(name: str, entry: dict, value, quantized: bool, warnings: list[str]) -> None:
    current = entry.get("Precision")
    kinds = [k for k in cfgmod.PRECISION_KINDS if isinstance(current, dict) and k in current] or ["result"]
    wanted = {k: value for k in kinds} if isinstance(value, str) else dict(value)
    if not isinstance(current, dict):
        current = entry["Precision"] = {"result": current} if current else {}
    for kind, text in wanted.items():
        if quantized and current.get(kind) not in (None, "auto") and current[kind] != text:
            warnings.append(f"layer {name}: hls.LayerName precision {kind}={text} overrides "
                            f"{current[kind]} derived from its QKeras quantizer")
        current[kind] = text


def build_hls_model(model, hls: dict, output_dir):
    """Convert a Keras/QKeras model into an hls4ml ModelGraph writing to ``output_dir`` (nothing written yet).

    ``hls`` is the validated ``hls`` config section. Warnings (e.g. a ReuseFactor that
    hls4ml changed) are in ``hls_model.edgeml_warnings``.
    """
    import hls4ml

    model = prepare_for_hls(model)
    bad = unconvertible_layers(model)
    if bad:
        raise InputError(f"hls4ml cannot convert layer(s) {', '.join(bad)}; replace them with supported layers")
    cfg, warnings = hls4ml_config(model, hls)
    try:
        with quiet():
            hls_model = hls4ml.converters.convert_from_keras_model(
                model, hls_config=cfg, output_dir=str(output_dir), project_name=PROJECT_NAME,
                backend=hls["Backend"], part=hls["Part"], clock_period=hls["ClockPeriod"], io_type=hls["IOType"])
    except (InputError, EdgemlError):
        raise
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgemlError(f"hls4ml could not convert the model: {text}") from None
    _apply_table_types(hls_model, cfg)
    hls_model.edgeml_warnings = warnings + reuse_factor_warnings(hls_model, cfg)
    return hls_model


def _apply_table_types(hls_model, cfg: dict) -> None:
    """Softmax table types from LayerName.<softmax>.Precision.

    hls4ml 1.3 reads exp_table/inv_table/inv_inp from the config but never applies them (and inp_norm
    is always derived from the input type)
    to a Keras softmax (it keeps its 18-bit defaults), so they are set on the layer here,
    before anything is written.
    """
    from hls4ml.model.optimizer import get_optimizer

    backend = hls_model.config.backend
    for layer in hls_model.get_layers():
        precision = cfg["LayerName"].get(layer.name, {}).get("Precision")
        if layer.class_name != "Softmax" or not isinstance(precision, dict):
            continue
        _set_table_types(layer, precision, backend)
        # The layer's C++ config struct was rendered during conversion: render it again with the new types.
        get_optimizer(f"{backend.name.lower()}:softmax_config_template").transform(hls_model, layer)


def _set_table_types(layer, precision: dict, backend) -> None:
    from copy import copy

    for kind in cfgmod.TABLE_KINDS:
        if kind not in precision:
            continue
        if layer.get_attr(f"{kind}_t") is None:  # inp_norm_t is otherwise derived from the input type
            named = copy(layer.get_attr("inv_inp_t"))
            named.name = f"{layer.name}_{kind}_t"
            layer.set_attr(f"{kind}_t", named)
        named = layer.get_attr(f"{kind}_t")
        wanted = backend.convert_precision_string(precision[kind])
        new = copy(named.precision)  # keeps the backend's C++ definition mixin
        for field in ("width", "integer", "signed", "rounding_mode", "saturation_mode"):
            setattr(new, field, getattr(wanted, field))
        named.precision = new


def reuse_factor_warnings(hls_model, cfg: dict) -> list[str]:
    """Layers whose requested ReuseFactor hls4ml replaced.

    hls4ml 1.3 (FPGABackend.set_closest_reuse_factor, Resource strategy) accepts RF only
    if n_in*n_out % RF == 0 and, for RF < n_in, ceil(n_in*n_out/RF) % n_out == 0, or for
    RF >= n_in, RF % n_in == 0; otherwise it takes the closest valid value (the smaller on a tie).
    """
    warnings = []
    backend = hls_model.config.backend
    for layer in hls_model.get_layers():
        actual = layer.get_attr("reuse_factor")
        entry = cfg["LayerName"].get(layer.name, {})
        requested = entry.get("ReuseFactor", cfg["Model"]["ReuseFactor"])
        if actual is None or requested == actual or "Dense" not in layer.class_name and "Conv" not in layer.class_name:
            continue
        n_in, n_out = backend.get_layer_mult_size(layer)
        valid = backend.get_valid_reuse_factors(n_in, n_out)
        shown = ",".join(map(str, valid[:12])) + (",..." if len(valid) > 12 else "")
        warnings.append(f"layer {layer.name}: ReuseFactor {requested} is invalid for n_in={n_in}, n_out={n_out} "
                        f"with the {layer.get_attr('strategy', 'resource')} strategy; hls4ml uses {actual}, "
                        f"the closest valid value (valid: {shown})")
    return warnings


# --------------------------------------------------------------------------- data

def comparison_data(model_path: Path, model, data, n: int, cfg: dict) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The jets to compare on, scaled like the model's training data: (X, y, description, warnings)."""
    from edgeml.data import Scaler, load_jets, make_splits, split_indices

    warnings: list[str] = []
    scaler_path = _scaler_path(model_path)
    scaler = Scaler.load(scaler_path) if scaler_path.is_file() else None
    if data is None:
        jets = load_jets(cfg["data"]["source"])
        if scaler is None:
            splits = make_splits(jets, cfg["data"]["test_fraction"], cfg["data"]["val_fraction"], cfg["seed"])
            X, y = splits.X_test, splits.y_test
        else:
            _, _, test = split_indices(jets.y, cfg["data"]["test_fraction"], cfg["data"]["val_fraction"], cfg["seed"])
            X, y = scaler.transform(jets.X[test]), jets.y[test]
        source = f"test split of {jets.source}"
    else:
        jets = load_jets(data)
        X, y = jets.X, jets.y
        if scaler is not None:
            X = scaler.transform(X)
        else:
            warnings.append(f"no scaler {scaler_path.name} beside the model: feeding {data} as it is")
        source = str(data)
    n_inputs = int(np.prod(model.input_shape[1:]))
    if X.shape[1] != n_inputs:
        raise InputError(f"the data has {X.shape[1]} features but the model expects {n_inputs} inputs")
    if n < len(y):  # a seeded random subset: files and splits are often ordered by class
        keep = np.sort(np.random.default_rng(cfg["seed"]).permutation(len(y))[:n])
        X, y = X[keep], y[keep]
    return X.astype(np.float32), y, source, warnings


def _scaler_path(model_path: Path) -> Path:
    stem = model_path.name if model_path.is_dir() else model_path.stem
    return model_path.with_name(f"{stem}_scaler.json")


# --------------------------------------------------------------------------- comparison

AGREEMENT_TARGET = 0.999


def _extra_fraction_bits(csim_logits: np.ndarray, keras_logits: np.ndarray) -> int:
    """Fractional bits to add everywhere so that the logit error drops below the gap between the two
    largest Keras logits of all but 0.1% of jets (each bit halves the rounding error)."""
    if keras_logits.shape[1] < 2 or _argmax_agree(csim_logits, keras_logits) >= AGREEMENT_TARGET:
        return 0
    top = np.sort(keras_logits, axis=1)
    gap = float(np.quantile(top[:, -1] - top[:, -2], 1 - AGREEMENT_TARGET))
    error = float(np.max(np.abs(csim_logits - keras_logits)))
    if error <= 0:
        return 0
    return int(min(8, max(1, math.ceil(math.log2(2 * error / max(gap, error / 256))))))


def _top_ties(proba: np.ndarray) -> float:
    """Fraction of jets whose two largest outputs are equal (a softmax lookup table can merge close logits)."""
    if proba.shape[1] < 2:
        return 0.0
    top = np.sort(proba, axis=1)
    return float(np.mean(top[:, -1] == top[:, -2]))


def _argmax_agree(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def _logits_layer(hls_model) -> str:
    """The hls layer whose output is the pre-softmax value (the output layer itself without a softmax)."""
    last = hls_model.get_output_variables()[0]
    for layer in hls_model.get_layers():
        if layer.get_output_variable() is last and layer.class_name == "Softmax":
            return layer.inputs[0]
        if layer.get_output_variable() is last:
            return layer.name
    raise EdgemlError("cannot find the output layer of the hls4ml model")


def input_type(hls_model) -> Fixed:
    t = fixed_of(hls_model.get_input_variables()[0].type.precision)
    if t is None:
        raise InputError("the model input type is not fixed point; set hls.Precision to an ap_fixed type")
    return t


def fidelity(model, hls_model, X: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    """Run Keras and the C-simulation on ``X`` and compare outputs, logits and every layer."""
    from edgeml.metrics import classification_metrics
    from edgeml.simulate import keras_layer_outputs, simulate

    t0 = time.perf_counter()
    keras_float = model.predict(X, batch_size=4096, verbose=0).reshape(len(X), -1)
    t_in = input_type(hls_model)
    Xq = quantize(X, t_in).astype(np.float32)
    keras_layers = keras_layer_outputs(model, Xq)
    t_keras = time.perf_counter() - t0
    csim, traces, t_csim = simulate(hls_model, X)
    logits_name = _logits_layer(hls_model)
    output_name = list(hls_model.get_layers())[-1].name
    keras_q, keras_q_logits = keras_layers[output_name], keras_layers[logits_name]
    csim_logits = traces[logits_name]
    float_logits = _float_logits(model, X, logits_name, keras_float)
    n_classes = csim.shape[1]
    labels = [classes[i] if i < len(classes) else str(i) for i in range(n_classes)]
    m_keras = classification_metrics(y, keras_float, labels)
    m_csim = classification_metrics(y, csim, labels)
    csim_report = {
        "n": int(len(X)),
        "accuracy_keras": m_keras["accuracy"],
        "accuracy_keras_quantized_input": float(np.mean(keras_q.argmax(axis=1) == y)),
        "accuracy_csim": m_csim["accuracy"],
        "argmax_agreement": _argmax_agree(csim, keras_q),
        "argmax_agreement_logits": _argmax_agree(csim_logits, keras_q_logits),
        "argmax_agreement_float_input": _argmax_agree(csim, keras_float),
        "max_abs_diff": float(np.max(np.abs(csim - keras_q))),
        "mean_abs_diff": float(np.mean(np.abs(csim - keras_q))),
        "max_abs_diff_logits": float(np.max(np.abs(csim_logits - keras_q_logits))),
        "mean_abs_diff_logits": float(np.mean(np.abs(csim_logits - keras_q_logits))),
        "softmax_ties": _top_ties(csim),
        "extra_fraction_bits_needed": _extra_fraction_bits(csim_logits, keras_q_logits),
        "bit_exact_logits": bool(np.array_equal(csim_logits, keras_q_logits.astype(np.float64))),
        "logits_layer": logits_name,
        "input_type": str(t_in),
        "input_quantization_max_abs_diff": float(np.max(np.abs(Xq - X))),
        "input_overflow_fraction": overflow_fraction(X, t_in),
        "auc_keras": m_keras["auc"],
        "auc_csim": m_csim["auc"],
        "reference": "Keras on the inputs quantized to the firmware input type (accuracy_keras: float inputs)",
        "jets_per_second": len(X) / t_csim if t_csim > 0 else None,
    }
    csim_report["notes"] = _notes(csim_report)
    layers = layer_fidelity(hls_model, traces, keras_layers, keras_layer_outputs(model, X), X, Xq, t_in)
    arrays = {"y_true": y.astype(np.int64), "keras": keras_float, "csim": csim, "keras_logits": float_logits,
              "csim_logits": csim_logits, "keras_quantized_input": keras_q,
              "keras_quantized_input_logits": keras_q_logits}
    return {"csim": csim_report, "layers": layers, "arrays": arrays,
            "seconds": {"keras": t_keras, "csim": t_csim}}


def _notes(c: dict) -> list[str]:
    """Plain-language reasons behind the numbers a user would otherwise puzzle over."""
    notes = []
    if c["argmax_agreement"] < c["argmax_agreement_logits"] and c["softmax_ties"] > 0:
        notes.append(f"the firmware softmax gives {c['softmax_ties']:.2%} of jets two equal top outputs (its lookup "
                     f"tables merge logits closer than one table step), so argmax of the outputs agrees "
                     f"{c['argmax_agreement']:.2%} while the pre-softmax decision agrees "
                     f"{c['argmax_agreement_logits']:.2%}; finer tables (suggested) reduce but cannot remove this")
    if c["bit_exact_logits"]:
        notes.append("the pre-softmax outputs are bit-exact with Keras on the quantized inputs")
    if c["input_overflow_fraction"] > 0:
        notes.append(f"{c['input_overflow_fraction']:.2%} of input values overflow the input type {c['input_type']}")
    return notes


def _float_logits(model, X, logits_name: str, keras_float: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    names = {layer.name for layer in model.layers}
    if logits_name not in names:
        return keras_float
    sub = tf.keras.Model(model.inputs, model.get_layer(logits_name).output)
    return sub.predict(X, batch_size=4096, verbose=0).reshape(len(X), -1)


def layer_fidelity(hls_model, traces: dict, keras_q: dict, keras_float: dict, X, Xq, t_in: Fixed) -> list[dict]:
    """Per-layer error, overflow and ranges, in firmware order; the first broken layer is marked.

    Errors compare with Keras on the quantized inputs (``keras_q``); ranges, overflow and partial-sum
    bounds come from Keras on the float inputs (``keras_float``): after an overflowing input wrapped,
    the quantized-input values would understate what the later layers must hold.
    """
    layers = list(hls_model.get_layers())
    input_layer = layers[0]
    rows = [{"name": input_layer.name, "class": "Input", "precision": str(t_in),
             "max_abs_diff": float(np.max(np.abs(Xq - X))), "mean_abs_diff": float(np.mean(np.abs(Xq - X))),
             "overflow_fraction": overflow_fraction(X, t_in), "range": list(t_in.range),
             "output_range": [float(X.min()), float(X.max())], "weight_range": None,
             "quantizer_derived": False}]
    outputs = {input_layer.name: X}
    for layer in layers[1:]:
        if layer.name not in traces or layer.name not in keras_q:
            continue
        ref, got = keras_q[layer.name], traces[layer.name]
        true = keras_float.get(layer.name, ref)
        outputs[layer.name] = true
        t = fixed_of(layer.get_output_variable().type.precision)
        row = {"name": layer.name, "class": layer.class_name, "precision": str(t) if t else
               str(layer.get_output_variable().type.precision),
               "max_abs_diff": float(np.max(np.abs(got - ref))), "mean_abs_diff": float(np.mean(np.abs(got - ref))),
               "overflow_fraction": overflow_fraction(true, t) if t else 0.0,
               "range": list(t.range) if t else None,
               "output_range": [float(true.min()), float(true.max())], "weight_range": None,
               "reuse_factor": layer.get_attr("reuse_factor"), "n_out": int(got.shape[1]),
               "quantizer_derived": _quantizer_derived(layer)}
        row.update(_weight_info(layer))
        if layer.class_name == "Softmax" and layer.inputs[0] in outputs:
            row["ties"] = _top_ties(got)
            row.update(_softmax_input_checks(layer, outputs[layer.inputs[0]]))
        accum = layer.get_attr("accum_t")
        if accum is not None and fixed_of(accum.precision) is not None:
            row["accum_precision"] = str(fixed_of(accum.precision))
            x_in = outputs.get(layer.inputs[0])
            if x_in is not None and "weight" in layer.weights:
                row["accum_bound"] = _accum_bound(layer, x_in)
                row["accum_overflow"] = row["accum_bound"] > fixed_of(accum.precision).range[1]
        rows.append(row)
    _mark_status(rows)
    return rows


INP_NORM = "ap_ufixed<18,4,AP_TRN,AP_SAT>"  # x_max - x_i saturating at 16: exp(-16) is 0 at 18 bits anyway
TABLE_SIZES = [1024 * 2 ** k for k in range(7)]
TIE_BUDGET = (1 - 0.999) / 2  # half of the 0.1% disagreement budget may go to softmax ties


def _softmax_input_checks(layer, logits: np.ndarray) -> dict:
    """Does x_max - x_i fit the softmax's normalised-input type, and how big a table separates the top two?

    hls4ml derives that type from the input type without saturation (ap_ufixed<W-1,I-1>): a spread
    of logits beyond its range wraps around and picks a wrong exp. The exp table is indexed by the top
    bits of that type, so logits closer than range/TableSize share an entry and tie.
    """
    named = layer.get_attr("inp_norm_t")
    if named is not None:
        norm = fixed_of(named.precision)
    else:
        t = fixed_of(layer.get_input_variable().type.precision)
        norm = Fixed(False, t.width - int(t.signed), t.integer - int(t.signed)) if t else None
    if norm is None or logits.shape[1] < 2:
        return {}
    spread = logits.max(axis=1) - logits.min(axis=1)
    top = np.sort(logits, axis=1)
    gap = top[:, -1] - top[:, -2]
    needed = next((size for size in TABLE_SIZES if np.mean(gap < 16 / size) <= TIE_BUDGET), TABLE_SIZES[-1])
    wraps = norm.saturation == "WRAP"
    return {"inp_norm_precision": str(norm), "input_spread_max": float(spread.max()),
            "inp_norm_overflow_fraction": float(np.mean(spread >= norm.range[1] + norm.lsb)) if wraps else 0.0,
            "table_size_needed": needed}


def _quantizer_derived(layer) -> bool:
    """hls4ml records QKeras quantizers on the layer's weights/activation: their types are not ours to change."""
    return any(layer.get_attr(f"{kind}_quantizer") is not None for kind in ("weight", "bias", "activation"))


def _weight_info(layer) -> dict:
    info = {}
    for kind in ("weight", "bias"):
        var = layer.weights.get(kind)
        if var is None:
            continue
        data = np.asarray(var.data, dtype=np.float64)
        t = fixed_of(var.type.precision)
        info[f"{kind}_precision"] = str(t) if t else str(var.type.precision)
        if kind == "weight":
            info["weight_range"] = [float(data.min()), float(data.max())]
            info["weight_nonzero_fraction"] = float(np.count_nonzero(data) / max(data.size, 1))
        info[f"{kind}_overflow_fraction"] = overflow_fraction(data, t) if t else 0.0
    return info


def _accum_bound(layer, x_in: np.ndarray) -> float:
    """Largest |partial sum| a Dense accumulator meets: max over jets and outputs of sum|x*w| + |b|."""
    w = np.asarray(layer.weights["weight"].data, dtype=np.float64).reshape(x_in.shape[1], -1)
    b = np.abs(np.asarray(layer.weights["bias"].data, dtype=np.float64)) if "bias" in layer.weights else 0.0
    return float(np.max(np.abs(x_in) @ np.abs(w) + b))


RELATIVE_ERROR_LIMIT = 0.05  # a layer whose error exceeds 5% of its output span is not explained by rounding


def _mark_status(rows: list[dict]) -> None:
    """status: 'overflow' (values outside the type: wrap/saturate), 'error' (too coarse), or 'ok'."""
    for row in rows:
        lo, hi = row["output_range"]
        span = max(hi - lo, 1e-12)
        if row["overflow_fraction"] > 0 or row.get("weight_overflow_fraction", 0) > 0 \
                or row.get("bias_overflow_fraction", 0) > 0 or row.get("accum_overflow") \
                or row.get("inp_norm_overflow_fraction", 0) > 0:
            row["status"] = "overflow"
        elif row["max_abs_diff"] > RELATIVE_ERROR_LIMIT * span:
            row["status"] = "error"
        else:
            row["status"] = "ok"


def first_broken_layer(rows: list[dict]) -> dict | None:
    return next((r for r in rows if r["status"] != "ok"), None)


def suggest_precisions(rows: list[dict], extra_frac: int = 0) -> dict:
    """Per-layer precisions: integer bits from the observed range (25% margin); fractional bits kept,
    plus ``extra_frac`` where the logit error decides classes (see ``_extra_fraction_bits``) and 4 more
    on a layer whose own error is too large. QKeras layers are left alone: their types come from the
    quantizers. A softmax that merges outputs or errs gets finer tables.
    """
    suggested = {}
    for row in rows:
        if row["class"] == "Softmax":
            if row["status"] != "ok" or row.get("ties", 0) > 0:
                suggested[row["name"]] = _softmax_fix(row)
            continue
        if row["quantizer_derived"] or row["range"] is None:
            continue
        current = _parse_fixed(row["precision"])
        if current is None:
            continue
        frac = current.width - current.integer + extra_frac + (4 if row["status"] == "error" else 0)
        kinds = {"result": _fixed_string(bits_for(max(map(abs, row["output_range"]))), frac)}
        if row["class"] == "Input":
            suggested[row["name"]] = kinds
            continue
        for kind, key in (("weight", "weight_range"),):
            if row.get(key) is not None:
                w = _parse_fixed(row[f"{kind}_precision"])
                wfrac = (w.width - w.integer + extra_frac) if w else frac
                kinds[kind] = _fixed_string(bits_for(max(map(abs, row[key]))), wfrac)
        if "bias_precision" in row:
            b = _parse_fixed(row["bias_precision"])
            kinds["bias"] = row["bias_precision"] if b is None or not row.get("bias_overflow_fraction") \
                else _fixed_string(b.integer + 2, b.width - b.integer)
        if "accum_bound" in row:
            a = _parse_fixed(row["accum_precision"])
            afrac = a.width - a.integer + extra_frac if a else frac
            kinds["accum"] = _fixed_string(bits_for(row["accum_bound"]), max(afrac, frac))
        suggested[row["name"]] = kinds
    return suggested


SOFTMAX_TABLE_SIZE = 4096


def _softmax_fix(row: dict) -> dict:
    """A softmax that keeps the order of close logits and its sum accurate.

    - inp_norm (x_max - x_i) saturating at 16 instead of wrapping at the input type's range;
    - TableSize: the smallest power of two whose exp-table step (16/size) separates the two largest
      logits of all but 0.05% of jets;
    - inv_inp sized to the exp sum (1..n_classes): hls4ml's default ap_fixed<18,8> indexes the 1/sum
      table in steps of 0.25.
    """
    integer = max(1, math.ceil(math.log2(row["n_out"] + 1)))
    return {"inp_norm": INP_NORM, "inv_inp": f"ap_ufixed<18,{integer},AP_RND,AP_SAT>",
            "TableSize": max(row.get("table_size_needed", SOFTMAX_TABLE_SIZE), 1024)}


def _parse_fixed(text: str) -> Fixed | None:
    try:
        signed, width, integer = cfgmod.parse_precision(text)
    except ValueError:
        return None
    return Fixed(signed, width, integer)


def _fixed_string(integer: int, frac: int) -> str:
    return f"ap_fixed<{integer + frac},{integer}>"


# --------------------------------------------------------------------------- the stage

def convert(model_path, config: dict | None = None, output_dir=None, data=None, n: int = 10000,
            force: bool = False, auto_precision: bool = False, weights=None, wait: bool = False) -> dict:
    """Convert ``model_path`` with hls4ml, compile the C-simulation and return the fidelity report.

    The project lands in ``output_dir`` (default ``hls_projects/<model name>``) with
    ``convert_report.json``/``.md`` and ``predictions.npz``. An identical conversion
    (same model files, hls settings, hls4ml version) reuses the compiled library.
    The project directory is locked meanwhile: another process on it fails at once
    (``locks.DirectoryBusy``), or queues with ``wait``.
    """
    model_path = Path(model_path)
    name = model_path.name if model_path.is_dir() else model_path.stem
    out = Path(output_dir) if output_dir is not None else DEFAULT_PROJECTS_DIR / name
    with locks.hold(out, locks.OUTPUT_DIR, wait) as held:
        if held.interrupted:
            integrity.recover_project(out, CACHE_FILE, held.interrupted)
        with integrity.refused_writes(out, "--output"):
            return _convert(model_path, config, out, data, n, force, auto_precision, weights)


def _convert(model_path, config: dict | None, output_dir, data, n: int, force: bool, auto_precision: bool,
             weights) -> dict:
    import hls4ml

    from edgeml.modelio import load_model

    t_start = time.perf_counter()
    cfg = cfgmod.validate(config) if config is not None else cfgmod.validate({})
    hls = cfg["hls"]
    model_path = Path(model_path)
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if not model_path.exists():
        raise InputError(f"model file {model_path} does not exist")
    name = model_path.name if model_path.is_dir() else model_path.stem
    out = Path(output_dir) if output_dir is not None else DEFAULT_PROJECTS_DIR / name
    model_files = [model_path]
    if model_path.suffix.lower() == ".json":
        model_files.append(Path(weights) if weights else model_path.with_name(f"{model_path.stem}_weights.h5"))
    # The recipe is part of the key: edgeml's own conversion code as well as the inputs and hls4ml.
    recipe = [Path(__file__), Path(__file__).with_name("simulate.py")]
    build_key = content_hash(*[f for f in model_files if f.exists()], hls, hls4ml.__version__,
                             bool(auto_precision), CACHE_VERSION, *recipe)
    data_key = content_hash(_data_identity(data, cfg), n, *[p for p in [_scaler_path(model_path)] if p.is_file()])
    cache = _read_cache(out)
    force = force or (cache is None and (out / CACHE_FILE).is_file())  # reliability: our project, damaged: rebuild
    if out.exists() and cache is None and not force:
        raise InputError(f"{out} already exists; pass --force to overwrite it or --output to choose another directory")
    if out.exists() and force and not _replaceable(out):
        raise InputError(f"{out} is not an hls4ml project directory; --force only replaces projects, "
                         "choose another --output")
    if cache and cache["build_key"] == build_key and cache["data_key"] == data_key:
        report = read_json(out / REPORT_FILE)
        report["cache"] = {"hit": True, "seconds": time.perf_counter() - t_start}
        return report
    if out.exists() and cache and cache["build_key"] != build_key and not force:
        raise InputError(f"{out} holds a conversion with other settings; pass --force to overwrite it "
                         "or --output to choose another directory")

    timing: dict[str, float] = {}
    t = time.perf_counter()
    model = prepare_for_hls(load_model(model_path, weights=weights))
    X, y, source, warnings = comparison_data(model_path, model, data, n, cfg)
    timing["load"] = time.perf_counter() - t
    reuse = cache is not None and cache["build_key"] == build_key
    if reuse:  # same firmware, other data: rebuild the graph in memory, load the compiled library
        report, hls_model = _reuse_build(model, cache, out, X, y, timing)
    else:
        report, hls_model = _fresh_build(model, hls, out, X, y, auto_precision, timing)
    report["warnings"] = warnings + report.pop("warnings", [])
    report.update({"model": str(model_path), "name": name, "data": source, "project_dir": str(out),
                   "hls4ml_version": hls4ml.__version__, "hls": hls})
    t = time.perf_counter()
    arrays = report.pop("arrays")
    report["estimate"] = _estimate(hls_model)
    report["timing"] = timing
    _write_outputs(out, report, arrays)
    timing["report"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - t_start
    write_json(out / REPORT_FILE, report)
    integrity.write_sealed_json(out / CACHE_FILE, {"build_key": build_key, "data_key": data_key,  # reliability
                                                   "library": report["library"],
                                                   "hls_effective": report["hls_effective"]},
                                [report["library"], REPORT_FILE, PREDICTIONS_FILE])
    report["cache"] = {"hit": False, "library_reused": reuse}
    return report


def _replaceable(out: Path) -> bool:
    """--force replaces an empty directory or a project (edgeml's or hls4ml's), never other user data."""
    return out.is_dir() and (not any(out.iterdir()) or (out / CACHE_FILE).is_file()
                             or (out / "hls4ml_config.yml").is_file())


def _data_identity(data, cfg: dict):
    if data is not None:
        return ["file", Path(data)] if Path(data).is_file() else ["file", str(data)]
    from edgeml.data import default_sample_path

    source = cfg["data"]["source"]
    ident = Path(default_sample_path()) if source == "default" else (Path(source) if Path(source).is_file() else source)
    return ["split", ident, cfg["data"]["test_fraction"], cfg["data"]["val_fraction"], cfg["seed"]]


def _read_cache(out: Path) -> dict | None:
    path = out / CACHE_FILE
    cache = integrity.read_sealed_json(path, ("build_key", "data_key", "library", "hls_effective"),
                                       "converting again")  # reliability: garbled or damaged files: rebuild
    if cache is None:
        return None
    library = out / cache.get("library", "")
    if not library.is_file() or not (out / REPORT_FILE).is_file():
        return None
    return cache


def _compile_and_compare(model, hls: dict, project_dir: Path, X, y, timing: dict) -> tuple[dict, object]:
    from edgeml.data import CLASSES
    from edgeml.simulate import compile_model

    t = time.perf_counter()
    hls_model = build_hls_model(model, hls, project_dir)
    timing["convert"] = timing.get("convert", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    library = compile_model(hls_model)
    timing["compile"] = timing.get("compile", 0.0) + time.perf_counter() - t
    result = fidelity(model, hls_model, X, y, CLASSES)
    timing["csim"] = timing.get("csim", 0.0) + result["seconds"]["csim"]
    timing["keras"] = timing.get("keras", 0.0) + result["seconds"]["keras"]
    result["library"] = library
    result["warnings"] = list(hls_model.edgeml_warnings)
    return result, hls_model


def _fresh_build(model, hls: dict, out: Path, X, y, auto_precision: bool, timing: dict):
    """Build into ``out``; an existing directory (only with --force) is restored if anything fails."""
    backup = None
    if out.exists():
        backup = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        out.rename(backup)
    try:
        before = None
        effective = hls
        if auto_precision:
            with tempfile.TemporaryDirectory(prefix="edgeml-convert-") as tmp:
                before, _ = _compile_and_compare(model, hls, Path(tmp) / "before", X, y, timing)
            effective = apply_precisions(hls, _suggest(before))
        result, hls_model = _compile_and_compare(model, effective, out, X, y, timing)
    except BaseException:
        if out.exists():
            shutil.rmtree(out)
        if backup is not None:
            backup.rename(out)
        raise
    if backup is not None:
        shutil.rmtree(backup)
    report = _report(result, effective, out)
    if before is not None:
        report["auto_precision"] = {"applied": _suggest(before),
                                    "before": _summary(before), "after": _summary(result)}
        report["warnings"] = before["warnings"] + report["warnings"]
    return report, hls_model


def _reuse_build(model, cache: dict, out: Path, X, y, timing: dict):
    from edgeml.data import CLASSES
    from edgeml.simulate import attach_library

    t = time.perf_counter()
    hls_model = build_hls_model(model, cache["hls_effective"], out)
    attach_library(hls_model, out / cache["library"])
    timing["convert"] = time.perf_counter() - t
    timing["compile"] = 0.0
    result = fidelity(model, hls_model, X, y, CLASSES)
    timing["csim"] = result["seconds"]["csim"]
    result["library"] = out / cache["library"]
    result["warnings"] = list(hls_model.edgeml_warnings)
    report = _report(result, cache["hls_effective"], out)
    old = read_json(out / REPORT_FILE)
    if "auto_precision" in old:
        report["auto_precision"] = old["auto_precision"]
    return report, hls_model


def _report(result: dict, effective_hls: dict, out: Path) -> dict:
    broken = first_broken_layer(result["layers"])
    return {"csim": result["csim"], "layers": result["layers"],
            "first_broken_layer": None if broken is None else {"name": broken["name"], "status": broken["status"]},
            "suggested_precision": _suggest(result),
            "hls_effective": effective_hls,
            "library": os.path.relpath(Path(result["library"]).resolve(), out.resolve()),
            "warnings": result["warnings"], "arrays": result["arrays"]}


def _suggest(result: dict) -> dict:
    return suggest_precisions(result["layers"], result["csim"]["extra_fraction_bits_needed"])


def _summary(result: dict) -> dict:
    c = result["csim"]
    summary = {k: c[k] for k in ("accuracy_csim", "argmax_agreement", "argmax_agreement_logits",
                                 "max_abs_diff", "max_abs_diff_logits")}
    broken = first_broken_layer(result["layers"])
    summary["first_broken_layer"] = None if broken is None else broken["name"]
    return summary


def apply_precisions(hls: dict, suggested: dict) -> dict:
    """A copy of the ``hls`` section with ``suggested`` per-layer precisions as LayerName overrides."""
    out = copy.deepcopy(hls)
    layers = out.setdefault("LayerName", {})
    for name, kinds in suggested.items():
        entry = layers.setdefault(name, {"Precision": None, "ReuseFactor": None, "Strategy": None})
        kinds = dict(kinds)
        if "TableSize" in kinds:
            entry["TableSize"] = kinds.pop("TableSize")
        entry["Precision"] = kinds
    return cfgmod.validate({"hls": out})["hls"]


def _estimate(hls_model):
    """Hook for the resource/latency estimator (edgeml.estimate), never fatal to the conversion."""
    try:
        from edgeml import estimate as estimator
    except ImportError:
        return None
    if not hasattr(estimator, "estimate"):
        return None
    try:
        return estimator.estimate(hls_model)
    except Exception as e:  # the estimator's failure must not cost the user the conversion
        return {"error": f"{type(e).__name__}: {e}"}


def _write_outputs(out: Path, report: dict, arrays: dict) -> None:
    from edgeml.io import atomic_path

    with atomic_path(out / PREDICTIONS_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    write_text(out / REPORT_MD, render_markdown(report))


# --------------------------------------------------------------------------- presentation

def render_markdown(report: dict) -> str:
    c = report["csim"]
    lines = [f"# hls4ml conversion of {report['name']}", "",
             f"Model `{report['model']}`, hls4ml {report['hls4ml_version']}, backend {report['hls']['Backend']}, "
             f"part {report['hls']['Part']}, {report['hls']['ClockPeriod']} ns, {report['hls']['IOType']}, "
             f"strategy {report['hls']['Strategy']}, RF {report['hls']['ReuseFactor']}.",
             f"Compared on {c['n']} jets ({report['data']}).", "",
             "## C-simulation vs Keras", "",
             "| quantity | value |", "|---|---|",
             f"| accuracy Keras (float input) | {c['accuracy_keras']:.4f} |",
             f"| accuracy C-sim | {c['accuracy_csim']:.4f} |",
             f"| argmax agreement (outputs) | {c['argmax_agreement']:.4%} |",
             f"| argmax agreement (logits) | {c['argmax_agreement_logits']:.4%} |",
             f"| max / mean abs diff (outputs) | {c['max_abs_diff']:.3g} / {c['mean_abs_diff']:.3g} |",
             f"| max abs diff (logits, layer {c['logits_layer']}) | {c['max_abs_diff_logits']:.3g} |",
             f"| logits bit-exact | {'yes' if c['bit_exact_logits'] else 'no'} |",
             f"| input type / input overflow | {c['input_type']} / {c['input_overflow_fraction']:.3%} |", "",
             "| class | AUC Keras | AUC C-sim |", "|---|---|---|",
             *[f"| {k} | {v:.4f} | {c['auc_csim'].get(k, float('nan')):.4f} |" for k, v in c["auc_keras"].items()],
             "", "## Layers", "",
             "| layer | type | precision | range | Keras output range | max abs diff | overflow | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["layers"]:
        rng = "-" if r["range"] is None else f"[{r['range'][0]:.4g}, {r['range'][1]:.4g}]"
        lines.append(f"| {r['name']} | {r['class']} | `{r['precision']}` | {rng} | "
                     f"[{r['output_range'][0]:.4g}, {r['output_range'][1]:.4g}] | {r['max_abs_diff']:.3g} | "
                     f"{r['overflow_fraction']:.2%} | {r['status']} |")
    broken = report.get("first_broken_layer")
    lines += ["", "First broken layer: " + ("none" if not broken else f"**{broken['name']}** ({broken['status']})"), ""]
    if report["suggested_precision"]:
        lines += ["## Suggested precisions", "", "| layer | suggestion |", "|---|---|",
                  *[f"| {k} | " + ", ".join(f"{kind} `{v}`" for kind, v in kinds.items()) + " |"
                    for k, kinds in report["suggested_precision"].items()], ""]
    if "auto_precision" in report:
        a = report["auto_precision"]
        lines += ["## --auto-precision", "", "| | before | after |", "|---|---|---|",
                  *[f"| {k} | {a['before'][k]} | {a['after'][k]} |" for k in a["before"]], ""]
    if c.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in c["notes"]], ""]
    if report.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in report["warnings"]], ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def summary_lines(report: dict) -> list[str]:
    """The few lines the CLI prints."""
    c = report["csim"]
    lines = [f"project {report['project_dir']}" + (" (cached)" if report.get("cache", {}).get("hit") else ""),
             f"C-sim on {c['n']} jets: accuracy Keras {c['accuracy_keras']:.4f}, C-sim {c['accuracy_csim']:.4f}; "
             f"argmax agreement {c['argmax_agreement']:.4%}; max |diff| {c['max_abs_diff']:.3g}, "
             f"logits {c['max_abs_diff_logits']:.3g}" + (" (bit-exact)" if c["bit_exact_logits"] else "")]
    broken = report.get("first_broken_layer")
    if broken:
        fix = report["suggested_precision"].get(broken["name"])
        lines.append(f"first broken layer: {broken['name']} ({broken['status']})"
                     + (f"; suggested {fix}" if fix else "") + "; rerun with --auto-precision to apply")
    if "auto_precision" in report:
        a = report["auto_precision"]
        lines.append(f"auto-precision: argmax agreement {a['before']['argmax_agreement']:.4%} -> "
                     f"{a['after']['argmax_agreement']:.4%}")
    lines += _layer_lines(report["layers"]) + _estimate_lines(report.get("estimate"))
    lines.append(f"full report: {Path(report['project_dir']) / 'convert_report.md'}")
    return lines


def _layer_lines(layers: list[dict]) -> list[str]:
    lines = [f"{'layer':<14}{'result type':<35}{'max |diff|':>11}{'overflow':>10}  status"]
    for layer in layers:
        lines.append(f"{layer['name']:<14}{str(layer.get('precision', '')):<35}{layer.get('max_abs_diff', 0):>11.3g}"
                     f"{layer.get('overflow_fraction', 0):>10.2%}  {layer.get('status', '')}")
    return lines


def _estimate_lines(estimate: dict | None) -> list[str]:
    """Totals of the resource/latency estimate, the numbers users read before synthesis."""
    if not estimate:
        return []
    if "error" in estimate:
        return [f"estimate: not available ({estimate['error']})"]
    t = estimate["total"]
    part = estimate.get("part", {}).get("part", "?")
    lines = [f"estimate for {part} at {t.get('clock_ns', '?')} ns (HLS csynth-equivalent):"
             f" DSP {t['dsp']:,} ({t.get('dsp_pct', 0):.1f}%), LUT {t['lut']:,} ({t.get('lut_pct', 0):.1f}%),"
             f" FF {t['ff']:,}, BRAM18K {t['bram_18k']:g}, latency {t['latency_max']} cycles"
             f" = {t['latency_ns']:g} ns, II {t['ii']}, fits: {'yes' if t.get('fits') else 'NO'}"]
    lines += [f"warning: {w}" for w in estimate.get("warnings", [])]
    return lines
