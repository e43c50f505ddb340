"""Magnitude pruning with tensorflow-model-optimization: wrap, fine-tune, strip, report.

Every Dense/QDense layer (QKeras layers implement tfmot's PrunableLayer) gets its own
schedule, so one layer can be left dense while another is pruned to 90%.
"""

from __future__ import annotations

import math

import numpy as np

from edgeml.errors import InputError

_DENSE = ("Dense", "QDense")


def dense_layers(model) -> list:
    """The Dense/QDense layers of a model, seen through pruning wrappers."""
    return [unwrap(layer) for layer in model.layers if type(unwrap(layer)).__name__ in _DENSE]


def unwrap(layer):
    return getattr(layer, "layer", layer) if type(layer).__name__ == "PruneLowMagnitude" else layer


def layer_targets(model, prune_cfg: dict) -> dict[str, float]:
    """Target sparsity of each Dense layer: prune.per_layer, else prune.sparsity."""
    names = [layer.name for layer in dense_layers(model)]
    unknown = sorted(set(prune_cfg["per_layer"]) - set(names))
    if unknown:
        raise InputError(f"compression.prune.per_layer names unknown layer(s) {', '.join(unknown)}; "
                         f"Dense layers: {', '.join(names)}")
    return {name: float(prune_cfg["per_layer"].get(name, prune_cfg["sparsity"])) for name in names}


def schedule_steps(prune_cfg: dict, epochs: int, steps_per_epoch: int) -> dict:
    """begin/end step and update frequency of the schedule, in optimizer steps, and the first epoch at target.

    tfmot only updates masks every ``frequency`` steps from ``begin_step``, so the polynomial ramp's end
    is rounded up to a whole number of updates: the last update then lands exactly on the target.
    """
    begin_epoch = prune_cfg["begin_epoch"]
    end_epoch = prune_cfg["end_epoch"] if prune_cfg["end_epoch"] is not None else max(1, epochs // 2)
    polynomial = prune_cfg["schedule"] == "polynomial"
    if begin_epoch >= epochs or (polynomial and not begin_epoch < end_epoch <= epochs):
        raise InputError(f"compression.prune: need begin_epoch ({begin_epoch}) < end_epoch ({end_epoch}) <= "
                         f"epochs ({epochs}), and begin_epoch before the last epoch")
    frequency = max(1, min(prune_cfg["frequency"], steps_per_epoch))
    begin_step = begin_epoch * steps_per_epoch
    updates = math.ceil((end_epoch - begin_epoch) * steps_per_epoch / frequency)
    end_step = begin_step + updates * frequency
    settled = math.ceil(end_step / steps_per_epoch) if polynomial else begin_epoch
    return {"begin_step": begin_step, "end_step": end_step, "frequency": frequency,
            "settled_epoch": min(settled, epochs - 1)}


def _schedule(kind: str, target: float, steps: dict):
    import tensorflow_model_optimization as tfmot

    if kind == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(target, begin_step=steps["begin_step"],
                                                     frequency=steps["frequency"])
    return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target,
                                                begin_step=steps["begin_step"], end_step=steps["end_step"],
                                                frequency=steps["frequency"])


def apply_pruning(model, prune_cfg: dict, epochs: int, steps_per_epoch: int):
    """Return (a copy of ``model`` with each targeted Dense layer wrapped for pruning, the schedule steps).

    Weights are kept; layers with target 0 stay unwrapped.
    """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    targets = layer_targets(model, prune_cfg)
    steps = schedule_steps(prune_cfg, epochs, steps_per_epoch)

    def wrap(layer):
        fresh = layer.__class__.from_config(layer.get_config())  # never share variables with ``model``
        if targets.get(layer.name, 0.0) > 0 and type(layer).__name__ in _DENSE:
            return tfmot.sparsity.keras.prune_low_magnitude(
                fresh, pruning_schedule=_schedule(prune_cfg["schedule"], targets[layer.name], steps))
        return fresh

    from edgeml.modelio import custom_objects

    with tf.keras.utils.custom_object_scope(custom_objects()):
        pruned = tf.keras.models.clone_model(model, clone_function=wrap)
    pruned.set_weights(_weights_for(pruned, model))
    return pruned, steps


def _weights_for(pruned, model) -> list:
    """The original weights in the wrapped model's order (wrappers add mask/threshold/step variables)."""
    source = {layer.name: layer for layer in model.layers}
    out = []
    for layer in pruned.layers:
        inner = unwrap(layer)
        original = source[inner.name].get_weights()
        if inner is layer:
            out.extend(original)
            continue
        values = dict(zip((w.name for w in inner.weights), original))
        for w in layer.weights:  # kernel/bias from the source, pruning bookkeeping as initialised
            out.append(values.get(w.name, w.numpy()))
    return out


def pruning_callbacks() -> list:
    """The callback tfmot needs to advance the pruning step during ``fit``."""
    import tensorflow_model_optimization as tfmot

    return [tfmot.sparsity.keras.UpdatePruningStep()]


def strip(model):
    """Remove the pruning wrappers; the zeros stay in the kernels."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def sparsity_report(model) -> dict[str, float]:
    """Fraction of exactly-zero kernel weights per Dense layer (of a stripped model)."""
    return {layer.name: float(np.mean(layer.get_weights()[0] == 0)) for layer in dense_layers(model)}
