"""hls4ml configuration from edgeml's hls section, checked on the configuration alone (no g++)."""

import tensorflow as tf

from edgeml import config
from edgeml.firmware.hls import build, hls4ml_config


def tagger():
    tf.keras.utils.set_random_seed(1)
    return tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(8,), name="x"),
                                tf.keras.layers.Dense(4, activation="relu", name="fc1"),
                                tf.keras.layers.Dense(3, name="output"),
                                tf.keras.layers.Activation("softmax", name="softmax")])


def test_model_wide_and_layer_settings_merge_into_hls4ml_names():
    hls = config.validate({"hls": {"Precision": "ap_fixed<12,4>", "ReuseFactor": 2, "LayerName": {
        "fc1": {"Precision": {"weight": "ap_fixed<8,2>"}, "ReuseFactor": 4},
        "softmax": {"Implementation": "argmax", "TableSize": 2048}}}})["hls"]
    cfg, warnings = hls4ml_config(tagger(), hls)
    layers = cfg["LayerName"]
    assert warnings == [] and cfg["Model"]["ReuseFactor"] == 2
    assert layers["fc1"]["Precision"]["weight"] == "ap_fixed<8,2>" and layers["fc1"]["Precision"]["bias"] == \
        "ap_fixed<12,4>" and layers["fc1"]["ReuseFactor"] == 4
    assert layers["output"]["ReuseFactor"] == 2
    assert layers["softmax"]["Implementation"] == "argmax" and layers["softmax"]["TableSize"] == 2048


def test_softmax_settings_reach_the_hls4ml_graph(tmp_path):
    argmax = config.validate({"hls": {"LayerName": {"softmax": {"Implementation": "argmax"}}}})["hls"]
    hls_model, _ = build(tagger(), argmax, tmp_path / "a")
    assert hls_model.graph["softmax"].get_attr("implementation") == "argmax"
    skip = config.validate({"hls": {"LayerName": {"softmax": {"Skip": True}}}})["hls"]
    hls_model, _ = build(tagger(), skip, tmp_path / "b")
    assert "softmax" not in hls_model.graph and list(hls_model.graph)[-1].startswith("output")
