"""Precision advice from hand-made per-layer rows and logits: no model, no g++."""

import numpy as np

from edgeml import config
from edgeml.firmware.advice import apply_precisions, extra_fraction_bits, suggest_precisions, table_size_needed


def dense_row(**extra):
    row = {"name": "fc1", "class": "Dense", "precision": "ap_fixed<16,6>", "range": [-32.0, 32.0],
           "output_range": [-100.0, 90.0], "weight_range": [-0.5, 2.5], "weight_precision": "ap_fixed<16,6>",
           "bias_precision": "ap_fixed<16,6>", "accum_precision": "ap_fixed<16,6>", "accum_bound": 300.0,
           "quantizer_derived": False, "status": "overflow"}
    return {**row, **extra}


def test_dense_gets_integer_bits_from_its_range_and_keeps_fraction_bits():
    advice = suggest_precisions([dense_row()])["fc1"]
    assert advice["result"] == "ap_fixed<18,8>"  # |100| * 1.25 needs 7 integer bits plus the sign
    assert advice["weight"] == "ap_fixed<13,3>" and advice["accum"] == "ap_fixed<20,10>"
    assert advice["bias"] == "ap_fixed<16,6>"  # the bias fits: unchanged


def test_extra_fraction_bits_and_an_erring_layer_add_fraction_bits():
    plain = suggest_precisions([dense_row(status="ok")], extra_frac=0)["fc1"]["result"]
    more = suggest_precisions([dense_row(status="error")], extra_frac=2)["fc1"]["result"]
    assert plain == "ap_fixed<18,8>" and more == "ap_fixed<24,8>"  # 10 + 2 + 4 fraction bits


def test_quantized_layers_are_left_alone_and_softmax_tables_are_refined():
    rows = [dense_row(quantizer_derived=True),
            {"name": "softmax", "class": "Softmax", "status": "ok", "ties": 0.01, "n_out": 5,
             "table_size_needed": 8192},
            {"name": "sm_argmax", "class": "Softmax", "status": "error", "implementation": "argmax", "n_out": 5}]
    advice = suggest_precisions(rows)
    assert set(advice) == {"softmax"}
    assert advice["softmax"]["TableSize"] == 8192 and advice["softmax"]["inv_inp"] == "ap_ufixed<18,3,AP_RND,AP_SAT>"


def test_table_size_separates_close_logits():
    logits = np.array([[0.0, 1.0]] * 2999 + [[0.0, 0.001]])
    assert table_size_needed(logits) == 1024  # 1 jet in 3000 closer than a step is within the 0.05% budget
    assert table_size_needed(logits[-1000:]) == 16384  # 1 in 1000 is not: 16/16384 < 0.001
    assert table_size_needed(np.array([[0.0, 0.01]] * 10)) == 2048  # 16/2048 < 0.01


def test_extra_fraction_bits_only_when_the_decision_suffers():
    keras = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.5]])
    assert extra_fraction_bits(keras.copy(), keras) == 0
    worse = keras + np.array([[0.6, 0.0], [0.0, 0.6], [0.6, 0.0]])
    assert 1 <= extra_fraction_bits(worse, keras) <= 8


def test_applied_advice_merges_into_layer_overrides_and_validates():
    hls = config.validate({"hls": {"LayerName": {"fc1": {"ReuseFactor": 2}}}})["hls"]
    out = apply_precisions(hls, {"fc1": {"result": "ap_fixed<19,9>"}, "softmax": {"TableSize": 4096,
                                                                              "inv_inp": "ap_ufixed<18,3>"}})
    assert out["LayerName"]["fc1"]["ReuseFactor"] == 2 and out["LayerName"]["fc1"]["Precision"] == {
        "result": "ap_fixed<19,9>"}
    assert out["LayerName"]["softmax"]["TableSize"] == 4096
    assert hls["LayerName"]["fc1"]["Precision"] is None  # the input is not modified
