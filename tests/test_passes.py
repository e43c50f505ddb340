"""Keras-level fix-up passes: apply(model) -> (model, changed), on tiny models in memory."""

import numpy as np
import tensorflow as tf

from edgeml.firmware.passes import RenameReservedNames, StripPruning, prepare_for_hls


def tiny(input_name="input"):
    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(4,), name=input_name),
                                tf.keras.layers.Dense(3, name="fc1")])


def test_rename_reserved_input_keeps_weights_and_reports_the_change():
    model = tiny()
    renamed, changed = RenameReservedNames().apply(model)
    assert changed and "input" not in {layer["config"]["name"] for layer in renamed.get_config()["layers"]}
    for a, b in zip(model.get_weights(), renamed.get_weights()):
        np.testing.assert_array_equal(a, b)
    again, changed_again = RenameReservedNames().apply(renamed)
    assert again is renamed and not changed_again


def test_strip_pruning_removes_wrappers_only_when_present():
    import tensorflow_model_optimization as tfmot

    model = tiny("x")
    same, changed = StripPruning().apply(model)
    assert same is model and not changed
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model)
    stripped, changed = StripPruning().apply(pruned)
    assert changed and not any(type(layer).__name__ == "PruneLowMagnitude" for layer in stripped.layers)


def test_prepare_for_hls_runs_until_nothing_changes():
    model = prepare_for_hls(tiny())
    for p in (StripPruning(), RenameReservedNames()):
        assert p.apply(model) == (model, False)
