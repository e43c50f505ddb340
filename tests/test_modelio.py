"""Loading models in every format edgeml accepts, and refusing what cannot become firmware."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from edgeml.errors import InputError
from edgeml.modelio import load_model, save_model

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_model(extra=None):
    layers = [tf.keras.layers.Dense(4, name="fc1", input_shape=(16,)), tf.keras.layers.Activation("relu", name="relu1")]
    if extra is not None:
        layers.append(extra)
    layers.append(tf.keras.layers.Dense(5, activation="softmax", name="output"))
    return tf.keras.Sequential(layers)


def test_keras21_json_list_config_and_weights_load():
    model = load_model(FIXTURES / "keras21_dense.json")  # weights default: <stem>_weights.h5
    assert [layer.name for layer in model.layers] == ["dense_1", "dense_2"]
    import h5py

    with h5py.File(FIXTURES / "keras21_dense_weights.h5") as f:
        kernel = f["dense_1"]["dense_1"]["kernel:0"][()]
    np.testing.assert_array_equal(model.get_layer("dense_1").get_weights()[0], kernel)


def test_keras224_qkeras_pruned_json_loads_with_quantizers():
    model = load_model(FIXTURES / "keras224_qkeras_pruned.json",
                       weights=FIXTURES / "keras224_qkeras_pruned_weights.h5")
    assert type(model.get_layer("fc1")).__name__ == "QDense"
    assert type(model.get_layer("relu1")).__name__ == "QActivation"
    kernel = model.get_layer("fc1").get_weights()[0]
    assert 0.3 < np.mean(kernel == 0) < 0.7  # the pruned zeros survived
    np.testing.assert_array_equal(kernel * 32, np.round(kernel * 32))  # on the 6-bit grid


def test_full_h5_and_savedmodel_round_trip(tmp_path):
    model = tiny_model()
    save_model(model, tmp_path / "m.h5")
    model.save(tmp_path / "saved")
    x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    for path in (tmp_path / "m.h5", tmp_path / "saved"):
        np.testing.assert_allclose(load_model(path).predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_full_hgq_models_round_trip_in_both_keras_formats(suffix, tmp_path):
    """A Signature input (HGQ's layer for inputs already in fixed point) and the `.keras` format, whose rebuild of
    HGQ's MonoL1 regulariser needs a from_config HGQ does not define: both as HGQ users save them."""
    import HGQ
    from HGQ.layers import PDropout, PFlatten, PPermute, Signature

    tf.keras.utils.set_random_seed(0)
    i = tf.keras.Input((6, 4))
    x = Signature(keep_negative=1, bits=6, int_bits=2, name="sig")(i)
    x = PPermute((2, 1))(x)
    x = HGQ.HConv1D(3, 2, activation="relu", beta=1e-5, name="conv")(x)
    x = PDropout(0.1)(PFlatten()(x))
    model = tf.keras.Model(i, HGQ.HDense(3, beta=1e-5, name="out")(x))
    events = np.round(np.random.default_rng(0).normal(size=(8, 6, 4)) * 16).astype(np.float32) / 16
    path = tmp_path / f"hgq{suffix}"
    if suffix == ".h5":
        save_model(model, path)
    else:
        model.save(path)
    loaded = load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers][1] == "Signature"
    np.testing.assert_array_equal(loaded.predict(events, verbose=0), model.predict(events, verbose=0))


def test_missing_corrupt_and_weights_only_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nope.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="not an HDF5 file or corrupt"):
        load_model(tmp_path / "bad.h5")
    with pytest.raises(InputError, match="weights only"):
        load_model(FIXTURES / "keras21_dense_weights.h5")
    shutil.copy(FIXTURES / "keras21_dense.json", tmp_path / "arch.json")
    with pytest.raises(InputError, match="--weights"):
        load_model(tmp_path / "arch.json")
    (tmp_path / "broken.json").write_text("{not json")
    shutil.copy(FIXTURES / "keras21_dense_weights.h5", tmp_path / "broken_weights.h5")
    with pytest.raises(InputError, match="not a Keras model JSON"):
        load_model(tmp_path / "broken.json")


def test_lambda_layer_is_refused_by_name(tmp_path):
    model = tiny_model(tf.keras.layers.Lambda(lambda x: x * 2, name="double_it"))
    model.save(tmp_path / "lam.h5")
    with pytest.raises(InputError, match="Lambda layer\\(s\\) double_it"):
        load_model(tmp_path / "lam.h5")


def test_unknown_custom_layer_is_refused_by_name(tmp_path):
    config = json.loads((FIXTURES / "keras21_dense.json").read_text())
    config["config"].insert(1, {"class_name": "MyMagicLayer", "config": {"name": "magic"}})
    (tmp_path / "custom.json").write_text(json.dumps(config))
    shutil.copy(FIXTURES / "keras21_dense_weights.h5", tmp_path / "custom_weights.h5")
    with pytest.raises(InputError, match=r"unknown custom layer\(s\) magic \(MyMagicLayer\)"):
        load_model(tmp_path / "custom.json")


def test_keras224_full_h5_matches_json_plus_weights():
    full = load_model(FIXTURES / "keras224_dense_full.h5")
    split = load_model(FIXTURES / "keras21_dense.json")
    x = np.random.default_rng(2).normal(size=(4, 16)).astype(np.float32)
    np.testing.assert_array_equal(full.predict(x, verbose=0), split.predict(x, verbose=0))
