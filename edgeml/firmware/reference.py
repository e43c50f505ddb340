"""Keras reference values, keyed like hls4ml's layers (what the firmware is compared against)."""

from __future__ import annotations

import numpy as np


def keras_layer_outputs(model, X) -> dict[str, np.ndarray]:
    """Every Keras layer's output, keyed like hls4ml's layers, flattened to (n, size).

    ``X``: one array per model input (a list), or the array of a single-input model.

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


def _predict(model, layers: list, X) -> list[np.ndarray]:
    import tensorflow as tf

    probe = tf.keras.Model(inputs=model.inputs, outputs=[layer.output for layer in layers])
    result = probe.predict(X, batch_size=_batch(X), verbose=0)
    result = result if isinstance(result, list) else [result]
    n = _events(X)
    return [np.asarray(r).reshape(n, -1) for r in result]


def _events(X) -> int:
    return len(X[0]) if isinstance(X, list) else len(X)


def _batch(X) -> int:
    """Large batches for small events, fewer for images (a 4096-event batch of 28x28 activations is big)."""
    arrays = X if isinstance(X, list) else [X]
    size = sum(int(np.prod(a.shape[1:])) for a in arrays)
    return int(max(64, min(4096, 2 ** 20 // max(size, 1))))


def model_outputs(model, X) -> list[np.ndarray]:
    """Every model output, (n, size) each, in ``model.outputs`` order."""
    result = model.predict(X, batch_size=_batch(X), verbose=0)
    result = result if isinstance(result, list) else [result]
    return [np.asarray(r).reshape(_events(X), -1) for r in result]


def logits_outputs(model, X, logits_name: str, outputs: np.ndarray) -> np.ndarray:
    """Keras's pre-softmax values of layer ``logits_name`` (``outputs`` when Keras has no such layer)."""
    import tensorflow as tf

    if logits_name not in {layer.name for layer in model.layers}:
        return outputs
    sub = tf.keras.Model(model.inputs, model.get_layer(logits_name).output)
    return sub.predict(X, batch_size=_batch(X), verbose=0).reshape(_events(X), -1)


def keras_reference(model, X: list[np.ndarray], input_types: list, logits_name: str) -> dict:
    """What the firmware is compared with: Keras on the float inputs (the model as trained) and, layer by
    layer, on the inputs quantized to the firmware input types (so a difference is the firmware's own
    arithmetic). ``X`` has one array per model input, ``input_types`` one Fixed each."""
    feed = X if len(X) > 1 else X[0]
    outputs = model_outputs(model, feed)
    Xq = [t.quantize_to_floats(x).astype(np.float32) for t, x in zip(input_types, X)]
    feed_q = Xq if len(Xq) > 1 else Xq[0]
    return {"outputs": outputs, "outputs_quantized_input": model_outputs(model, feed_q),
            "logits": logits_outputs(model, feed, logits_name, outputs[0]), "X_quantized": Xq,
            "layers_quantized_input": keras_layer_outputs(model, feed_q), "layers": keras_layer_outputs(model, feed)}
