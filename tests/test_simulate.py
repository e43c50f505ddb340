"""Fixed-point emulation and the traced C-simulation (one real g++ compile)."""

from pathlib import Path

import numpy as np
import pytest

from edgeml import config
from edgeml.simulate import Fixed, bits_for, compile_model, keras_layer_outputs, overflow_fraction, simulate

FIXTURES = Path(__file__).parent / "fixtures"


def test_fixed_range_and_lsb():
    t = Fixed(True, 16, 6)
    assert t.lsb == 2 ** -10
    assert t.range == (-32.0, 32 - 2 ** -10)
    assert Fixed(False, 6, 0).range == (0.0, 1 - 2 ** -6)
    assert str(Fixed(False, 6, 0, "RND_CONV", "SAT")) == "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>"


def test_quantize_truncates_wraps_rounds_and_saturates_like_ap_fixed():
    trn_wrap = Fixed(True, 8, 4)  # lsb 1/16, range [-8, 8)
    np.testing.assert_array_equal(trn_wrap.quantize_to_floats(np.array([0.07, -0.07, 8.0, -8.5])),
                                  [0.0625, -0.125, -8.0, 7.5])  # floor; 8 wraps to -8; -8.5 wraps to 7.5
    rnd_sat = Fixed(False, 6, 0, "RND_CONV", "SAT")  # lsb 1/64, range [0, 63/64]
    np.testing.assert_array_equal(rnd_sat.quantize_to_floats(np.array([1.5 / 64, 2.5 / 64, 2.0, -1.0])),
                                  [2 / 64, 2 / 64, 63 / 64, 0.0])  # ties to even, saturation


def test_overflow_fraction_counts_values_that_do_not_fit():
    t = Fixed(True, 8, 4)
    assert overflow_fraction(np.array([0.0, 7.9, 8.0, -8.0, -9.0]), t) == pytest.approx(2 / 5)


def test_bits_for_keeps_a_margin():
    assert bits_for(0.9) == 1 + 1  # 0.9 * 1.25 > 1: one integer bit plus sign
    assert bits_for(5.0) == 4
    assert bits_for(0.0) == 1


def test_traced_csim_is_bit_exact_for_a_qkeras_model(tmp_path):
    from edgeml.convert import build_hls_model, input_type
    from edgeml.modelio import load_model

    model = load_model(FIXTURES / "keras224_qkeras_pruned.json")
    hls_model = build_hls_model(model, config.defaults()["hls"], tmp_path / "prj")
    library = compile_model(hls_model)
    assert library.is_file() and library.suffix == ".so"
    X = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    y, traces, seconds = simulate(hls_model, X)
    Xq = input_type(hls_model).quantize_to_floats(X).astype(np.float32)
    keras = keras_layer_outputs(model, Xq)
    for name in ("fc1", "relu1", "fc2", "relu2", "output"):
        np.testing.assert_array_equal(traces[name], keras[name], err_msg=name)
    assert y.shape == (300, 5) and np.all(y >= 0)
    assert np.mean(y.argmax(1) == keras["output"].argmax(1)) > 0.9  # the softmax tables may merge near ties


def test_keras_outputs_split_fused_activations_like_hls4ml():
    import tensorflow as tf
    from qkeras import QDense
    from qkeras.quantizers import quantized_bits, quantized_relu

    model = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(4,), name="x"),
        QDense(6, kernel_quantizer=quantized_bits(6, 0, alpha=1), activation=quantized_relu(6), name="fc1"),
        tf.keras.layers.Dense(3, activation="softmax", name="out")])
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    outputs = keras_layer_outputs(model, X)
    assert set(outputs) == {"fc1", "fc1_quantized_relu", "out", "out_softmax"}  # hls4ml's layer names
    assert outputs["fc1"].min() < 0 <= outputs["fc1_quantized_relu"].min()
    np.testing.assert_allclose(outputs["out_softmax"].sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(outputs["out_softmax"], model.predict(X, verbose=0), rtol=1e-6)
