"""Fidelity analysis: how faithfully the fixed-point firmware reproduces Keras (NumPy only, no g++).

Inputs are arrays: the firmware's outputs and per-layer traces (from the C-simulation or
the emulator, whichever ran) and the Keras reference of ``reference.keras_reference``.
Nothing here runs a model.
"""

from __future__ import annotations

import numpy as np

from edgeml.errors import EdgemlError, InputError
from edgeml.firmware.advice import argmax_agreement, extra_fraction_bits, table_size_needed
from edgeml.firmware.emulator.core import Traces
from edgeml.firmware.tasks import tie_gaps
from edgeml.simulate import Fixed, fixed_of, overflow_fraction

RELATIVE_ERROR_LIMIT = 0.05  # a layer whose error exceeds 5% of its output span is not explained by rounding


def top_ties(proba: np.ndarray) -> float:
    """Fraction of jets whose two largest outputs are equal (a softmax lookup table can merge close logits)."""
    if proba.shape[1] < 2:
        return 0.0
    top = np.sort(proba, axis=1)
    return float(np.mean(top[:, -1] == top[:, -2]))


def one_hot_argmax(values: np.ndarray) -> np.ndarray:
    """What hls4ml's ``argmax`` softmax outputs: 1 at the first maximum, 0 elsewhere."""
    out = np.zeros_like(values, dtype=np.float64)
    out[np.arange(len(values)), values.argmax(axis=1)] = 1.0
    return out


def logits_layer(hls_model) -> str:
    """The hls layer whose output is the pre-softmax value (the output layer itself without a softmax)."""
    last = hls_model.get_output_variables()[0]
    for layer in hls_model.get_layers():
        if layer.get_output_variable() is last and layer.class_name == "Softmax":
            return layer.inputs[0]
        if layer.get_output_variable() is last:
            return layer.name
    raise EdgemlError("cannot find the output layer of the hls4ml model")


def output_softmax(hls_model):
    """The softmax layer producing the model output, or None (no softmax, or hls4ml skipped it)."""
    last = list(hls_model.get_layers())[-1]
    return last if last.class_name == "Softmax" else None


def input_type(hls_model) -> Fixed:
    return input_types(hls_model)[0]


def input_types(hls_model) -> list[Fixed]:
    """The fixed-point type of every firmware input, in ``get_input_variables()`` order."""
    types = [fixed_of(v.type.precision) for v in hls_model.get_input_variables()]
    if any(t is None for t in types):
        raise InputError("the model input type is not fixed point; set hls.Precision to an ap_fixed type")
    return types


def output_layers(hls_model) -> list[str]:
    """The hls layer producing each model output, in ``get_output_variables()`` order."""
    layers = list(hls_model.get_layers())
    return [next(layer.name for layer in layers if layer.get_output_variable() is var)
            for var in hls_model.get_output_variables()]


def keras_name(hls_model, name: str) -> str:
    """The Keras layer whose output hls layer ``name`` computes.

    hls4ml splits a QKeras layer with a power-of-two ``alpha`` into '<layer>' (integer weights) and
    '<layer>_alpha' (the scale): Keras's '<layer>' is the scaled output."""
    layer = hls_model.graph.get(name)
    if layer is not None and layer.class_name == "ApplyAlpha" and name == f"{layer.inputs[0]}_alpha":
        return layer.inputs[0]
    return name


def reference_outputs(hls_model, keras_layers: dict) -> dict[str, np.ndarray]:
    """Keras values for every hls layer; an ``argmax`` softmax is compared with Keras's one-hot decision.
    An unscaled '<layer>' split off by hls4ml has no Keras counterpart and gets no reference."""
    layers = dict(keras_layers)
    for layer in hls_model.get_layers():
        source = keras_name(hls_model, layer.name)
        if source != layer.name and source in layers:
            layers[layer.name] = layers.pop(source)
    for layer in hls_model.get_layers():
        if layer.class_name == "Softmax" and layer.get_attr("implementation") == "argmax" \
                and layer.inputs[0] in layers:
            layers[layer.name] = one_hot_argmax(layers[layer.inputs[0]])
    return layers


def compare(hls_model, X: list[np.ndarray], labels: np.ndarray | None, classes: list[str], ref: dict,
            outputs: list[np.ndarray], traces: dict[str, np.ndarray], tasks: list, score_output: str | None = None
            ) -> dict:
    """Compare firmware ``outputs`` (one (n, size) array per model output) and ``traces`` with the Keras
    reference ``ref``: the report's ``csim`` section (the first output, measured for its task), one row
    per output, the per-layer rows and the arrays saved to predictions.npz. ``X`` has one array per
    model input; ``labels`` (checked for the first output's task) may be None."""
    t_in = input_types(hls_model)
    keras_q_layers = reference_outputs(hls_model, ref["layers_quantized_input"])
    keras_layers = reference_outputs(hls_model, ref["layers"])
    names = output_layers(hls_model)
    keras_q = [keras_q_layers.get(name, ref["outputs_quantized_input"][i]) for i, name in enumerate(names)]
    keras_float = [keras_layers.get(name, ref["outputs"][i]) for i, name in enumerate(names)]
    Xq = ref["X_quantized"]
    flat = [x.reshape(len(x), -1) for x in X]
    flat_q = [x.reshape(len(x), -1) for x in Xq]
    task = tasks[0]
    report = {
        "n": int(len(X[0])), "task": task.task, "task_reason": task.reason,
        "max_abs_diff": float(np.max(np.abs(outputs[0] - keras_q[0]))),
        "mean_abs_diff": float(np.mean(np.abs(outputs[0] - keras_q[0]))),
        "input_type": str(t_in[0]), "input_types": [str(t) for t in t_in],
        "input_quantization_max_abs_diff": max(float(np.max(np.abs(q - x))) for q, x in zip(flat_q, flat)),
        "input_overflow_fraction": float(np.mean(np.concatenate(
            [np.full(x.size, overflow_fraction(x, t)) for x, t in zip(flat, t_in)]))),
        "reference": "Keras on the inputs quantized to the firmware input type (accuracy_keras: float inputs)",
    }
    arrays = {"keras": ref["outputs"][0], "csim": outputs[0], "keras_quantized_input": keras_q[0]}
    if task.task == "classification":
        report.update(_classification(hls_model, labels, classes, ref, keras_q_layers, keras_q[0], keras_float[0],
                                      outputs[0], traces))
        arrays.update({"keras_logits": ref["logits"], "csim_logits": traces.get(report["logits_layer"], outputs[0]),
                       "keras_quantized_input_logits": keras_q_layers.get(report["logits_layer"], keras_q[0])})
    elif labels is not None and task.task == "regression":
        report["target"] = {"mae_keras": float(np.mean(np.abs(ref["outputs"][0] - labels))),
                            "mae_firmware": float(np.mean(np.abs(outputs[0] - labels)))}
    score = _score(tasks, names, flat, ref["outputs"], outputs, score_output, labels)
    if score is not None:
        arrays.update(score["arrays"])
        report["score"] = {"score": score["score"], **score["values"]}
    if labels is not None:
        arrays["y_true"] = labels.astype(np.int64) if labels.dtype.kind in "iub" else labels
    for i, name in enumerate(names[1:], start=1):
        arrays[f"keras_{name}"], arrays[f"csim_{name}"] = ref["outputs"][i], outputs[i]
    report["notes"] = notes(report)
    per_output = [{"name": name, "keras_name": t.name, "task": t.task, "task_reason": t.reason,
                   "size": int(outputs[i].shape[1]), **_output_errors(keras_q[i], outputs[i], keras_float[i])}
                  for i, (name, t) in enumerate(zip(names, tasks))]
    rows = layer_fidelity(hls_model, traces, keras_q_layers, keras_layers, flat, flat_q, t_in)
    return {"csim": report, "outputs": per_output, "layers": rows, "arrays": arrays}


def _classification(hls_model, labels, classes, ref, keras_q_layers, keras_q, keras_float, outputs, traces) -> dict:
    """Decision agreement, accuracy/AUC (with labels) and trigger working points of a classifying output.
    Keras's values are those of the firmware's output layer on the float inputs (``keras_float``: the
    logits when hls4ml skips the softmax). One sigmoid output is read as two classes, [1 - p, p], decided
    at 0.5."""
    from edgeml.metrics import classification_metrics
    from edgeml.firmware.tasks import working_points

    logits_name = logits_layer(hls_model)
    keras_q_logits = keras_q_layers.get(logits_name, keras_q)
    fw_logits = traces.get(logits_name, outputs)
    softmax = output_softmax(hls_model)
    binary = outputs.shape[1] == 1
    two = (lambda a: np.hstack([1 - a, a])) if binary else (lambda a: a)
    fw, kq, kf = two(outputs), two(keras_q), two(keras_float)
    fw_l, kq_l = (fw, kq) if binary else (fw_logits, keras_q_logits)
    n_classes = fw.shape[1]
    names = [classes[i] if i < len(classes) else str(i) for i in range(n_classes)]
    out = {
        "argmax_agreement": argmax_agreement(fw, kq),
        "argmax_agreement_logits": argmax_agreement(fw_l, kq_l),
        "argmax_agreement_float_input": argmax_agreement(fw, kf),
        "max_abs_diff_logits": float(np.max(np.abs(fw_logits - keras_q_logits))),
        "mean_abs_diff_logits": float(np.mean(np.abs(fw_logits - keras_q_logits))),
        "softmax": None if softmax is None else softmax.get_attr("implementation"),
        "softmax_ties": top_ties(outputs) if softmax is not None and softmax.get_attr("implementation") != "argmax"
        else 0.0,
        "extra_fraction_bits_needed": extra_fraction_bits(fw_l, kq_l),
        "bit_exact_logits": bool(np.array_equal(fw_logits, keras_q_logits.astype(np.float64))),
        "logits_layer": logits_name,
        "accuracy_keras": None, "accuracy_keras_quantized_input": None, "accuracy_csim": None,
        "auc_keras": {}, "auc_csim": {}, "working_points": None,
    }
    if labels is not None:
        m_keras, m_fw = classification_metrics(labels, kf, names), classification_metrics(labels, fw, names)
        out.update({"accuracy_keras": m_keras["accuracy"], "accuracy_csim": m_fw["accuracy"],
                    "accuracy_keras_quantized_input": float(np.mean(kq.argmax(axis=1) == labels)),
                    "auc_keras": m_keras["auc"], "auc_csim": m_fw["auc"],
                    "working_points": working_points(labels, keras_float, outputs, names)})
    return out


def _score(tasks, names, flat, keras_outputs, outputs, score_output, labels) -> dict | None:
    """The anomaly score, Keras (float inputs) vs firmware: a named output, or an autoencoder's
    reconstruction error; None when the model has neither."""
    from edgeml.firmware.tasks import reconstruction_score, score_fidelity

    if score_output is not None:
        i = [t.name for t in tasks].index(score_output)
        keras, firmware, what = keras_outputs[i][:, 0], outputs[i][:, 0], f"output {score_output}"
    elif tasks[0].task == "autoencoder" and len(flat) == 1 and keras_outputs[0].shape[1] == flat[0].shape[1]:
        keras = reconstruction_score(flat[0], keras_outputs[0])
        firmware = reconstruction_score(flat[0], outputs[0])
        what = "mean squared error between input and output"
    else:
        return None
    signal = labels if labels is not None and labels.dtype == bool else None
    values = score_fidelity(keras, firmware, signal)
    return {"values": values, "score": what, "arrays": {"keras_score": keras, "csim_score": firmware}}


def _output_errors(keras_q: np.ndarray, firmware: np.ndarray, keras_float: np.ndarray) -> dict:
    from edgeml.firmware.tasks import regression_fidelity

    return regression_fidelity(keras_q, firmware, keras_float)


def notes(c: dict) -> list[str]:
    """Plain-language reasons behind the numbers a user would otherwise puzzle over."""
    out = []
    if c["task"] == "classification":
        if c["argmax_agreement"] < c["argmax_agreement_logits"] and c["softmax_ties"] > 0:
            out.append(f"the firmware softmax gives {c['softmax_ties']:.2%} of events two equal top outputs (its "
                       f"lookup tables merge logits closer than one table step), so argmax of the outputs agrees "
                       f"{c['argmax_agreement']:.2%} while the pre-softmax decision agrees "
                       f"{c['argmax_agreement_logits']:.2%}; finer tables (suggested), the argmax softmax or "
                       f"dropping the softmax (docs/convert.md) keep the pre-softmax decision")
        if c.get("softmax") == "argmax":
            out.append("the softmax is hls4ml's argmax implementation: the outputs are the one-hot decision, "
                       "compared with Keras's one-hot decision")
        if c["bit_exact_logits"]:
            out.append("the pre-softmax outputs are bit-exact with Keras on the quantized inputs")
        if c["accuracy_keras"] is None:
            out.append("the data has no labels 'y': accuracy, AUC and working points need them")
        gaps = tie_gaps(c.get("working_points") or {})
        if gaps:
            out.append("the firmware outputs tie at some working points, so their background rate jumps over the "
                       "target (" + "; ".join(gaps) + "); a threshold on the logits (softmax Skip: true or "
                       "finer softmax types) gives the firmware distinct values there")
    if c["input_overflow_fraction"] > 0:
        out.append(f"{c['input_overflow_fraction']:.2%} of input values overflow the input type {c['input_type']}")
    return out


def engine_agreement(a_outputs: list[np.ndarray], a_traces: dict, b_outputs: list[np.ndarray], b_traces: dict) -> dict:
    """How many events two firmware evaluations (emulator, C-sim) give identical values in the outputs and
    in every layer both traced: ``{n, identical_fraction, max_abs_diff, layers: {name: identical_fraction}}``.
    Traces are compared block by block of events (the emulator's are decoded one block at a time)."""
    a_outputs = [np.asarray(a).reshape(len(a), -1) for a in a_outputs]
    b_outputs = [np.asarray(b).reshape(len(b), -1) for b in b_outputs]
    n = len(a_outputs[0])
    same = np.ones(n, dtype=bool)
    worst = 0.0
    for a, b in zip(a_outputs, b_outputs):
        same &= np.all(a == b, axis=1)
        worst = max(worst, float(np.max(np.abs(a - b))) if a.size else 0.0)
    layers = {}
    for name in sorted(set(a_traces) & set(b_traces)):
        equal = np.ones(n, dtype=bool)
        for rows in _blocks(n, _trace_block(b_traces, name, slice(0, 1)).size):
            a, b = _trace_block(a_traces, name, rows), _trace_block(b_traces, name, rows)
            equal[rows] = np.all(a == b, axis=1)
            worst = max(worst, float(np.max(np.abs(a - b))) if a.size else 0.0)
        layers[name] = float(np.mean(equal)) if n else 1.0
        same &= equal
    return {"n": int(n), "identical_fraction": float(np.mean(same)) if n else 1.0,
            "max_abs_diff": worst, "layers": layers}


def _trace_block(traces, name: str, rows: slice) -> np.ndarray:
    """Rows of a layer's trace as (rows, size) values: decoded from the emulator's ``Traces``, else a view
    (C-sim traces are plain arrays)."""
    block = traces.block(name, rows) if isinstance(traces, Traces) else np.asarray(traces[name])[rows]
    return block.reshape(len(block), -1)


def _blocks(n: int, width: int, values: int = 1 << 18) -> list[slice]:
    """Row slices of about ``values`` values each (2 MB of doubles: the temporaries stay in cache)."""
    step = max(1, values // max(width, 1))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def layer_fidelity(hls_model, traces: dict, keras_q: dict, keras_float: dict, X: list[np.ndarray],
                   Xq: list[np.ndarray], t_in: list[Fixed]) -> list[dict]:
    """Per-layer error, overflow and ranges, in firmware order; the first broken layer is marked.

    ``X``/``Xq``: one (n, size) array per firmware input, float and quantized to its type ``t_in``.
    Errors compare with Keras on the quantized inputs (``keras_q``); ranges, overflow and partial-sum
    bounds come from Keras on the float inputs (``keras_float``): after an overflowing input wrapped,
    the quantized-input values would understate what the later layers must hold.
    """
    inputs = {name: i for i, name in enumerate(hls_model.inputs)}
    rows = []
    outputs = {}
    for layer in hls_model.get_layers():
        if layer.class_name == "Input" and layer.name in inputs:
            i = inputs[layer.name]
            x, xq, t = X[i], Xq[i], t_in[i]
            rows.append({"name": layer.name, "class": "Input", "precision": str(t),
                         "max_abs_diff": float(np.max(np.abs(xq - x))), "mean_abs_diff": float(np.mean(np.abs(xq - x))),
                         "overflow_fraction": overflow_fraction(x, t), "range": list(t.range),
                         "output_range": [float(x.min()), float(x.max())], "weight_range": None,
                         "quantizer_derived": False})
            outputs[layer.name] = x
            continue
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
               "quantizer_derived": quantizer_derived(layer)}
        row.update(weight_info(layer))
        if layer.class_name == "Softmax" and layer.inputs[0] in outputs:
            row["implementation"] = layer.get_attr("implementation")
            if row["implementation"] != "argmax":
                row["ties"] = top_ties(got)
                row.update(softmax_input_checks(layer, outputs[layer.inputs[0]]))
        accum = layer.get_attr("accum_t")
        if accum is not None and fixed_of(accum.precision) is not None:
            row["accum_precision"] = str(fixed_of(accum.precision))
            x_in = outputs.get(layer.inputs[0])
            if x_in is not None and layer.class_name == "Dense" and "weight" in layer.weights \
                    and layer.weights["weight"].data.size == x_in.shape[1] * got.shape[1]:
                row["accum_bound"] = accum_bound(layer, x_in)
                row["accum_overflow"] = row["accum_bound"] > fixed_of(accum.precision).range[1]
        rows.append(row)
    mark_status(rows)
    return rows


def softmax_input_checks(layer, logits: np.ndarray) -> dict:
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
    wraps = norm.saturation == "WRAP"
    return {"inp_norm_precision": str(norm), "input_spread_max": float(spread.max()),
            "inp_norm_overflow_fraction": float(np.mean(spread >= norm.range[1] + norm.lsb)) if wraps else 0.0,
            "table_size_needed": table_size_needed(logits)}


def quantizer_derived(layer) -> bool:
    """hls4ml records QKeras quantizers on the layer's weights/activation: their types are not ours to change."""
    return any(layer.get_attr(f"{kind}_quantizer") is not None for kind in ("weight", "bias", "activation"))


def weight_info(layer) -> dict:
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


def accum_bound(layer, x_in: np.ndarray) -> float:
    """Largest |partial sum| a Dense accumulator meets: max over jets and outputs of sum|x*w| + |b|."""
    w = np.asarray(layer.weights["weight"].data, dtype=np.float64).reshape(x_in.shape[1], -1)
    b = np.abs(np.asarray(layer.weights["bias"].data, dtype=np.float64)) if "bias" in layer.weights else 0.0
    return float(np.max(np.abs(x_in) @ np.abs(w) + b))


def mark_status(rows: list[dict]) -> None:
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
