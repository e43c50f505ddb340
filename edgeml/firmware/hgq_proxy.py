"""HGQ models in ``edgeml convert``: full HGQ models become proxy models; the proxy is a third engine.

- A full HGQ model (HQuantize/HDense... layers) has no fixed-point ranges until they are traced:
  ``as_proxy`` calibrates it on the training split of the config's data (scaled with the model's
  scaler), HGQ's ``trace_minmax``, and exports ``to_proxy_model``, what hls4ml 1.3 converts.
- A proxy model (``FixedPointQuantizer``/``UnaryLUT`` layers) computes in float32 exactly what the
  firmware computes in ap_fixed. ``proxy_agreement`` compares its outputs and every layer's values
  with the firmware's (emulator or C-sim traces): the fraction of jets identical in all of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeml.errors import InputError

PROXY_LAYERS = ("FixedPointQuantizer", "UnaryLUT")


def is_hgq_model(model) -> bool:
    from HGQ.layers import HLayerBase, PLayerBase

    return any(isinstance(layer, (HLayerBase, PLayerBase)) for layer in model.layers)


def is_proxy_model(model) -> bool:
    return any(type(layer).__name__ in PROXY_LAYERS for layer in model.layers)


def as_proxy(model, model_path: Path, cfg: dict, data=None) -> tuple[object, list[str]]:
    """``model`` itself, or for a full HGQ model its proxy calibrated on data (with a note): a jet tagger on the
    config's training jets, any other model on the ``data`` the user gives (its inputs)."""
    if not is_hgq_model(model):
        return model, []
    from HGQ import to_proxy_model, trace_minmax

    X, note = _calibration_inputs(model, model_path, cfg, data)
    trace_minmax(model, X, bsz=16384, verbose=False)
    # Exported as HGQ does for a bit-exact table: a sigmoid/tanh HActivation whose input has at most
    # UNARY_LUT_ENTRIES values becomes a UnaryLUT (hls4ml's own table approximates the function).
    proxy = to_proxy_model(model, unary_lut_max_table_size=UNARY_LUT_ENTRIES)
    return proxy, [f"{model_path.name} is a full HGQ model: calibrated (trace_minmax) on {note} and converted as "
                   "its proxy model"]


UNARY_LUT_ENTRIES = 1024  # the size of hls4ml's own sigmoid/tanh tables (HGQ refuses 4096 and more)


def _calibration_inputs(model, model_path: Path, cfg: dict, data):
    """(inputs to trace the ranges on, what they are): a full HGQ model file holds no traced ranges."""
    from edgeml.data import Scaler, load_jets, split_indices
    from edgeml.firmware import inputs as inputs_mod

    stem = model_path.name if model_path.is_dir() else model_path.stem
    jet_data = data is None or (str(data) != inputs_mod.SYNTHETIC
                                and inputs_mod.jet_layout(*inputs_mod.split_data_argument(data)))
    if inputs_mod.is_jet_model(model) and jet_data:
        scaler_path = model_path.with_name(f"{stem}_scaler.json")
        if not scaler_path.is_file():
            raise InputError(f"{model_path} is a full HGQ model: its fixed-point ranges are traced on the training "
                             f"jets, scaled like its training; put its scaler {scaler_path.name} beside it or convert "
                             "its proxy model (HGQ.to_proxy_model)")
        jets = load_jets(cfg["data"]["source"])
        train, _, _ = split_indices(jets.y, cfg["data"]["test_fraction"], cfg["data"]["val_fraction"], cfg["seed"])
        X = Scaler.load(scaler_path).transform(jets.X[train]).astype(np.float32)
        return X, f"the {len(X)} training jets of {jets.source}"
    if data is None or str(data) == inputs_mod.SYNTHETIC:
        raise InputError(f"{model_path} is a full HGQ model: its fixed-point ranges are traced on its inputs; pass "
                         "--data with its training inputs (.npy/.npz/.h5) or convert its proxy model "
                         "(HGQ.trace_minmax then HGQ.to_proxy_model)")
    arrays = inputs_mod.read_arrays(data, list(model.input_names), inputs_mod.input_shapes(model)).arrays
    return (arrays[0] if len(arrays) == 1 else arrays), (
        f"the {len(arrays[0])} events of {data}, the events it is compared on: in-sample ranges, which those "
        "events cannot overflow")


EXACT_ACTIVATIONS = ("relu", "linear")


def table_activations(model) -> list[tuple[str, str]]:
    """(layer, activation) of the proxy-model Activation layers hls4ml computes with its own lookup table (sigmoid,
    tanh, softmax, ...), where HGQ's proxy computes the function in float32: the firmware differs from it there."""
    if not is_proxy_model(model):
        return []
    return [(layer.name, layer.get_config()["activation"]) for layer in model.layers
            if type(layer).__name__ == "Activation" and layer.get_config()["activation"] not in EXACT_ACTIVATIONS]


def inexact_notes(model) -> list[str]:
    """One-line warnings for a proxy model with table activations (empty if it has none). A softmax reads every
    output at once, which no element-wise UnaryLUT can hold, so only the element-wise ones get the export advice."""
    layers = table_activations(model)
    softmax = [f"{name} ({act})" for name, act in layers if act == "softmax"]
    elementwise = [f"{name} ({act})" for name, act in layers if act != "softmax"]
    notes = []
    if elementwise:
        notes.append(f"HGQ proxy: activation(s) {', '.join(elementwise)} are hls4ml lookup tables in the firmware "
                     "while the proxy computes them in float, so firmware and proxy can differ from there on "
                     "(proxy_vs_*); export the proxy with HGQ.to_proxy_model(model, "
                     f"unary_lut_max_table_size={UNARY_LUT_ENTRIES}) for bit-exact tables")
    if softmax:
        notes.append(f"HGQ proxy: {', '.join(softmax)} is hls4ml's table softmax in the firmware while the proxy "
                     "computes it in float, so firmware and proxy differ in that layer's outputs (proxy_vs_* holds "
                     "up to the layer before it; the emulator reproduces the firmware's softmax)")
    return notes


def stream_refusal(model, io_type: str) -> str | None:
    """Why hls4ml 1.3 cannot build this proxy model in ``io_type`` (None if it can): it keeps a heterogeneous
    FixedPointQuantizer as a mask function, written for io_parallel only (``ProcessFixedPointQuantizerLayer``)."""
    if io_type != "io_stream" or not is_proxy_model(model):
        return None
    mixed = [layer.name for layer in model.layers if type(layer).__name__ == "FixedPointQuantizer"
             and _heterogeneous(layer)]
    if not mixed:
        return None
    return (f"hls4ml 1.3 builds heterogeneous HGQ quantizers only with IOType io_parallel: {', '.join(mixed)} "
            "have per-element bit widths; set hls.IOType: io_parallel, or train with one bit width per layer "
            "(HGQ paq_conf skip_dims 'all') for io_stream")


def layer_sources(model, hls_model) -> dict[str, tuple[str, bool]]:
    """hls4ml layer -> (the proxy layer whose output it holds, whether in the hls4ml layer's own result type).

    hls4ml removes a homogeneous FixedPointQuantizer that is its input layer's only consumer and gives
    its type to that layer, which then holds the quantizer's output. A layer feeding a heterogeneous one
    (kept as a mask function, or fused into a distributed-arithmetic layer's code) gets a result type
    hls4ml derived to hold what that quantizer reads: it holds its proxy value cast to that type. The
    quantizers are followed along the graph (a branch's quantizer need not come next in ``model.layers``)."""
    in_hls = {layer.name for layer in hls_model.get_layers()}
    members = {id(layer) for layer in model.layers}
    sources = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer" or layer.name not in in_hls:
            continue
        source, cast, current = layer.name, False, layer
        while True:
            consumers = [node.outbound_layer for node in current._outbound_nodes if id(node.outbound_layer) in members]
            if len(consumers) != 1 or type(consumers[0]).__name__ != "FixedPointQuantizer":
                break
            quantizer = consumers[0]
            if quantizer.name in in_hls or _heterogeneous(quantizer):
                cast = True
                break
            source, current = quantizer.name, quantizer
        sources[layer.name] = (source, cast)
    return sources


def _heterogeneous(layer) -> bool:
    return any(np.unique(np.asarray(v)).size > 1 for v in (layer.keep_negative, layer.bits, layer.integers))


def proxy_agreement(model, hls_model, X: list[np.ndarray], outputs: list[np.ndarray], traces: dict) -> dict | None:
    """The proxy model against the firmware (``outputs``/``traces`` of the emulator or C-sim), or None for
    other models: ``{n, identical_fraction, max_abs_diff, layers: {name: identical_fraction}}``, where
    ``identical_fraction`` counts events identical in every output and every compared layer. ``X``: one array
    per Keras input (``model.inputs`` order); ``outputs``: (n, size) per firmware output, in the order of
    ``model.outputs``."""
    import tensorflow as tf

    if not is_proxy_model(model):
        return None
    from edgeml.fixed import Fixed

    n = len(X[0])
    sources = {k: v for k, v in layer_sources(model, hls_model).items() if k in traces}
    names = sorted({source for source, _ in sources.values()})
    hls_layers = {layer.name: layer for layer in hls_model.get_layers()}
    probe = tf.keras.Model(model.inputs, [model.get_layer(name).output for name in names] + list(model.outputs))
    values = probe.predict(X[0] if len(X) == 1 else list(X), batch_size=16384, verbose=0)
    values = [np.asarray(v, dtype=np.float64).reshape(n, -1) for v in values]
    by_name = dict(zip(names, values))
    same, worst = np.ones(n, dtype=bool), 0.0
    for proxy_out, fw_out in zip(values[len(names):], outputs):
        same &= np.all(proxy_out == fw_out, axis=1)
        worst = max(worst, float(np.max(np.abs(proxy_out - fw_out))) if fw_out.size else 0.0)
    layers, cast_layers = {}, []
    for hls_name, (source, cast) in sources.items():
        fw = np.asarray(traces[hls_name], dtype=np.float64).reshape(n, -1)
        expected = by_name[source]
        if cast:
            precision = hls_layers[hls_name].get_output_variable().type.precision
            expected = Fixed.from_hls(precision).quantize_to_floats(expected)
            cast_layers.append(hls_name)
        equal = np.all(fw == expected, axis=1)
        layers[hls_name] = float(np.mean(equal)) if len(equal) else 1.0
        same &= equal
        worst = max(worst, float(np.max(np.abs(fw - expected))) if fw.size else 0.0)
    return {"n": int(n), "identical_fraction": float(np.mean(same)) if len(same) else 1.0,
            "max_abs_diff": worst, "layers": layers, "compared_in_result_type": cast_layers}
