"""Keras-level fix-ups applied before hls4ml sees a model.

Each fix-up is a pass with qonnx's contract, ``apply(model) -> (model, changed)``, and
leaves the weights as they are. ``KERAS_PASSES`` is the order they run in;
``prepare_for_hls`` reruns them until none changes anything.
"""

from __future__ import annotations

RESERVED_NAMES = {"input"}  # hls4ml reserves this node name


class StripPruning:
    """tfmot's ``PruneLowMagnitude`` wrappers have no hls4ml converter: strip them (the pruned zeros stay)."""

    def apply(self, model):
        if not any(type(layer).__name__ == "PruneLowMagnitude" for layer in model.layers):
            return model, False
        from tensorflow_model_optimization.sparsity.keras import strip_pruning

        return strip_pruning(model), True


class RenameReservedNames:
    """hls4ml 1.3 names its own input node 'input': a Keras layer of that name becomes 'input_1'."""

    def apply(self, model):
        import tensorflow as tf

        from edgeml.modelio import custom_objects

        config = model.get_config()
        # Sequential models keep their InputLayer out of model.layers: read names from the config.
        taken = {layer.get("config", {}).get("name") for layer in config.get("layers", [])} | \
            {layer.name for layer in model.layers}
        clashes = RESERVED_NAMES & taken
        if not clashes:
            return model, False
        renames = {old: _free_name(old, taken) for old in clashes}
        # Layer names appear as plain strings in 'name' fields and inbound-node references only.
        config = _rename_strings(config, renames)
        cls = tf.keras.Sequential if isinstance(model, tf.keras.Sequential) else tf.keras.Model
        clone = cls.from_config(config, custom_objects=custom_objects())
        clone.set_weights(model.get_weights())
        return clone, True


KERAS_PASSES = (StripPruning(), RenameReservedNames())


def prepare_for_hls(model, passes=KERAS_PASSES, max_rounds: int = 10):
    """Run ``passes`` in order until a whole round changes nothing; idempotent."""
    for _ in range(max_rounds):
        changed = False
        for p in passes:
            model, did = p.apply(model)
            changed |= did
        if not changed:
            return model
    raise RuntimeError(f"the Keras fix-up passes did not settle after {max_rounds} rounds")


def unconvertible_layers(model) -> list[str]:
    """Layers hls4ml 1.3 has no converter for, as 'name (Class)'."""
    from hls4ml.converters import get_supported_keras_layers

    supported = set(get_supported_keras_layers()) | {"Dropout"}
    out = []
    for layer in model.layers:
        setting = _unconvertible_setting(layer)
        if type(layer).__name__ not in supported or setting:
            out.append(f"{layer.name} ({type(layer).__name__}{setting})")
    return out


def _unconvertible_setting(layer) -> str:
    """A setting of a supported layer that hls4ml 1.3 would drop without a word, building other firmware."""
    dilation = getattr(layer, "dilation_rate", None)
    if dilation is not None and any(d != 1 for d in dilation):
        # hls4ml's Keras converter never reads dilation_rate: the firmware would be an undilated convolution
        return f" with dilation_rate {tuple(dilation)}, which hls4ml 1.3 ignores"
    return ""


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
