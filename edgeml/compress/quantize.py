"""Quantization-aware training: the QKeras twin of the float jet tagger.

Only quantizers that hls4ml converts bit-exactly are used: ``quantized_bits(bits,
integer, alpha=1)`` for kernels and biases (-> ``ap_fixed<bits, integer+1>``) and
``quantized_relu(bits, integer)`` for activations (-> ``ap_ufixed<bits, integer>``).
``alpha='auto'`` or ``'auto_po2'`` would rescale weights by a learned factor that
hls4ml folds in differently, so they are never produced here.
"""

from __future__ import annotations

from edgeml.errors import InputError

# AutoGraph rewrites every user-defined layer's Python source before tracing it. QKeras's layers and quantizers
# and tfmot's pruning wrapper branch only on Python attributes, never on tensors, so the rewrite changes
# nothing in the graph (trained models are byte-identical) yet costs ~2 s the first time in every process and
# ~10% of a short fit, since each fresh model is traced again. Tensor-dependent Python control flow would fail
# loudly at trace time without it, not silently.
NO_AUTOGRAPH_PACKAGES = ("qkeras", "tensorflow_model_optimization")


def trace_layer_libraries_without_autograph() -> None:
    """Tell AutoGraph to trace QKeras and tfmot code as written (idempotent, for this process)."""
    from tensorflow.python.autograph.core import config, config_lib  # private: TensorFlow is pinned to 2.14

    present = {str(rule) for rule in config.CONVERSION_RULES}
    rules = tuple(r for r in map(config_lib.DoNotConvert, NO_AUTOGRAPH_PACKAGES) if str(r) not in present)
    config.CONVERSION_RULES = rules + config.CONVERSION_RULES


def layer_bits(quant_cfg: dict, layer: str) -> dict:
    """Resolved {bits, integer, activation_bits, activation_integer} of one Dense layer."""
    over = quant_cfg["per_layer"].get(layer, {})

    def pick(key: str, fallback):
        value = over.get(key)
        return fallback if value is None else value

    bits = pick("bits", quant_cfg["bits"])
    integer = pick("integer", quant_cfg["integer"])
    act_bits = pick("activation_bits", quant_cfg["activation_bits"] if quant_cfg["activation_bits"] is not None
                    else bits)
    act_integer = pick("activation_integer", quant_cfg["activation_integer"]
                       if quant_cfg["activation_integer"] is not None else integer)
    if integer >= bits:
        raise InputError(f"compression.quantize: layer {layer} has {integer} integer bits of {bits}; "
                         "integer bits (sign excluded) must be fewer than the total")
    if act_integer > act_bits:
        raise InputError(f"compression.quantize: ReLU after {layer} has {act_integer} integer bits of {act_bits}; "
                         "lower activation_integer")
    return {"bits": bits, "integer": integer, "activation_bits": act_bits, "activation_integer": act_integer}


def build_qkeras_model(model_cfg: dict, quant_cfg: dict, n_features: int = 16, n_classes: int = 5, seed: int = 42):
    """QDense/QActivation tagger named like ``edgeml.train.build_model`` (fc1, relu1, ..., output, softmax).

    The softmax stays a float Activation: hls4ml implements it with its own tables, and
    'output' then gives the quantized logits to compare bit for bit.
    """
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow.keras import layers, regularizers

    if model_cfg["activation"] != "relu":
        raise InputError(f"compression.quantize needs model.activation relu (got {model_cfg['activation']!r}); "
                         "QKeras models use quantized_relu")
    if model_cfg["batch_norm"]:
        raise InputError("compression.quantize does not support model.batch_norm; set it to false")
    names = [f"fc{i}" for i in range(1, len(model_cfg["hidden"]) + 1)] + ["output"]
    unknown = sorted(set(quant_cfg["per_layer"]) - set(names))
    if unknown:
        raise InputError(f"compression.quantize.per_layer names unknown layer(s) {', '.join(unknown)}; "
                         f"layers: {', '.join(names)}")
    tf.keras.utils.set_random_seed(seed)
    reg = regularizers.l1(model_cfg["l1"]) if model_cfg["l1"] > 0 else None
    model = tf.keras.Sequential(name="jet_tagger_qkeras")
    # not "input": hls4ml reserves that node name
    model.add(layers.InputLayer(input_shape=(n_features,), name="fc1_input"))
    widths = list(model_cfg["hidden"]) + [n_classes]
    for i, (name, width) in enumerate(zip(names, widths), start=1):
        b = layer_bits(quant_cfg, name)
        weight_q = quantized_bits(b["bits"], b["integer"], alpha=1)
        model.add(QDense(width, kernel_quantizer=weight_q, bias_quantizer=quantized_bits(b["bits"], b["integer"],
                                                                                         alpha=1),
                         kernel_initializer=model_cfg["kernel_initializer"], kernel_regularizer=reg, name=name))
        if name != "output":
            model.add(QActivation(quantized_relu(b["activation_bits"], b["activation_integer"]), name=f"relu{i}"))
            if model_cfg["dropout"] > 0:
                model.add(layers.Dropout(model_cfg["dropout"], name=f"dropout{i}"))
    model.add(layers.Activation("softmax", name="softmax"))
    return model


def copy_weights(source, target) -> list[str]:
    """Copy weights layer by layer by name (float -> QKeras works: same kernel/bias layout); return the names.

    Raises InputError when a layer exists in both but with different shapes (other widths).
    """
    copied = []
    by_name = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        src = by_name.get(layer.name)
        if src is None or not layer.get_weights():
            continue
        weights = src.get_weights()
        if [w.shape for w in weights] != [w.shape for w in layer.get_weights()]:
            raise InputError(f"cannot start from the baseline: layer {layer.name} has another shape; use "
                             "compression.start: scratch for a student with other widths")
        layer.set_weights(weights)
        copied.append(layer.name)
    return copied


def quantized_weights(layer) -> list:
    """A Dense/QDense layer's (kernel, bias) as the firmware sees them: through the quantizers if any."""
    import numpy as np

    kernel, *rest = layer.get_weights()
    bias = rest[0] if rest else np.zeros(kernel.shape[-1], dtype=kernel.dtype)
    kq = getattr(layer, "kernel_quantizer_internal", None)
    bq = getattr(layer, "bias_quantizer_internal", None)
    if kq is not None:
        kernel = np.asarray(kq(kernel))
    if bq is not None:
        bias = np.asarray(bq(bias))
    return [kernel, bias]
