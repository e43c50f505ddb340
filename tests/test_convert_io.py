"""edgeml convert on models that are not jet taggers: their own inputs (.npy/.npz/.h5, synthetic), several
inputs and outputs, and the fidelity report of each task. Tiny real Keras models and real hls4ml."""

import json

import h5py
import numpy as np
import pytest
import tensorflow as tf
import yaml
from click.testing import CliRunner

from edgeml.cli import main
from edgeml.convert import convert
from edgeml.errors import InputError
from edgeml.firmware.inputs import read_arrays, split_data_argument
from edgeml.modelio import save_model

N = 400


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An autoencoder (20 -> 8 -> 20), a two-input two-output model, and a small io_stream CNN."""
    d = tmp_path_factory.mktemp("models")
    tf.keras.utils.set_random_seed(4)
    ae = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(20,), name="x"),
                              tf.keras.layers.Dense(8, activation="relu", name="enc"),
                              tf.keras.layers.Dense(20, name="dec")])
    a, b = tf.keras.Input((6,), name="tracks"), tf.keras.Input((3,), name="met")
    joined = tf.keras.layers.Concatenate(name="cat")([tf.keras.layers.Dense(4, activation="relu", name="da")(a),
                                                      tf.keras.layers.Dense(4, activation="relu", name="db")(b)])
    multi = tf.keras.Model([a, b], [tf.keras.layers.Dense(3, activation="softmax", name="cls")(joined),
                                    tf.keras.layers.Dense(1, name="anomaly")(joined)])
    cnn = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(8, 8, 1), name="img"),
                               tf.keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
                               tf.keras.layers.MaxPooling2D(2, name="pool"), tf.keras.layers.Flatten(name="flat"),
                               tf.keras.layers.Dense(4, name="logits"),
                               tf.keras.layers.Activation("softmax", name="sm")])
    return {name: save_model(model, d / f"{name}.h5") for name, model in
            (("ae", ae), ("multi", multi), ("cnn", cnn))}


def one_line_error(args):
    result = CliRunner().invoke(main, ["convert", *map(str, args)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    return result.output


def test_arrays_from_npy_npz_and_hdf5_dataset_paths(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    got = read_arrays(tmp_path / "x.npy", ["in"], [(4, 3)])
    np.testing.assert_array_equal(got.arrays[0], X)
    assert got.y is None
    np.savez(tmp_path / "named.npz", a=X, b=X[:, 0], y=np.arange(50) % 2)
    got = read_arrays(tmp_path / "named.npz", ["b", "a"], [(3,), (4, 3)])
    np.testing.assert_array_equal(got.arrays[1], X)
    assert got.y.tolist() == (np.arange(50) % 2).tolist()
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_group("run1/events")["images"] = X
        f["run1/events/y"] = np.ones(50)
        f["X"] = X
    assert split_data_argument(f"{tmp_path}/d.h5:/run1/events/images") == (tmp_path / "d.h5", "/run1/events/images")
    got = read_arrays(f"{tmp_path}/d.h5:/run1/events/images", ["in"], [(4, 3)])
    np.testing.assert_array_equal(got.arrays[0], X)
    assert got.y.tolist() == [1.0] * 50  # labels: 'y' beside it
    got = read_arrays(tmp_path / "d.h5", ["in"], [(4, 3)])  # top level: 'X'
    assert got.arrays[0].shape == (50, 4, 3) and got.y is None
    got = read_arrays(f"{tmp_path}/d.h5:/run1/events", ["images"], [(4, 3)])  # a group: arrays by input name
    assert got.arrays[0].shape == (50, 4, 3) and len(got.y) == 50
    bad = X.copy()
    bad[3, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputError, match="1 NaN/inf"):
        read_arrays(tmp_path / "nan.npy", ["in"], [(4, 3)])


def test_bad_inputs_are_one_line_errors(models, tmp_path):
    rng = np.random.default_rng(1)
    out = tmp_path / "p"
    text = one_line_error([models["ae"], "--output", out])  # no data for a model that is not a jet tagger
    assert "takes input 'x' of shape (20)" in text and "--data synthetic" in text
    np.save(tmp_path / "flat.npy", rng.normal(size=(10, 64)))
    text = one_line_error([models["cnn"], "--data", tmp_path / "flat.npy", "--output", out])
    assert "input 'img' expects arrays of shape (n, 8, 8, 1), found (10, 64)" in text
    np.savez(tmp_path / "half.npz", tracks=rng.normal(size=(10, 6)))
    text = one_line_error([models["multi"], "--data", tmp_path / "half.npz", "--output", out])
    assert "no array for model input 'met'" in text and "tracks, met" in text
    np.savez(tmp_path / "soft.npz", X=rng.normal(size=(10, 8, 8, 1)), y=rng.random(10))
    text = one_line_error([models["cnn"], "--data", tmp_path / "soft.npz", "--output", out])
    assert "labels 'y' do not fit the classification task of output 'sm'" in text and "0..3" in text
    (tmp_path / "jets.csv").write_text("a,b\n1,2\n")
    assert "holds jet features" in one_line_error([models["cnn"], "--data", tmp_path / "jets.csv", "--output", out])
    assert "--input-range" in one_line_error([models["ae"], "--data", "synthetic", "--input-range", "1,0",
                                              "--output", out])
    assert "--score-output nope" in one_line_error([models["ae"], "--data", "synthetic", "--score-output", "nope",
                                                    "--output", out])
    assert "--task autoencoder" in one_line_error([models["cnn"], "--data", tmp_path / "soft.npz", "--task",
                                                   "autoencoder", "--output", out])
    assert not out.exists()


def test_autoencoder_from_an_hdf5_dataset_with_signal_labels(models, tmp_path):
    rng = np.random.default_rng(2)
    with h5py.File(tmp_path / "events.h5", "w") as f:
        f["events/X"] = rng.normal(size=(N, 20))
        f["events/y"] = (rng.random(N) < 0.2).astype(np.int8)
    result = CliRunner().invoke(main, ["convert", str(models["ae"]), "--data", f"{tmp_path}/events.h5:/events/X",
                                       "--output", str(tmp_path / "ae"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    c = report["csim"]
    assert c["task"] == "autoencoder" and c["task_reason"] == "output has the input's shape"
    assert c["engine"] == "emulate" and "accuracy_keras" not in c
    score = c["score"]
    assert score["score"] == "mean squared error between input and output" and score["spearman"] > 0.99
    assert [r["quantile"] for r in score["thresholds"]] == [0.999, 0.9999]
    assert all("signal_efficiency_firmware" in r for r in score["thresholds"])
    (dec,) = report["outputs"]
    assert dec["name"] == "dec" and dec["size"] == 20 and len(dec["max_abs_diff"]) == 20
    assert max(dec["max_abs_diff"]) == dec["max_abs_diff_all"] < 0.1
    with np.load(tmp_path / "ae" / "predictions.npz") as z:
        assert z["keras_score"].shape == z["csim_score"].shape == (N,) and z["y_true"].sum() > 0
    md = (tmp_path / "ae" / "convert_report.md").read_text()
    assert "task autoencoder" in md and "### Anomaly score" in md


def test_synthetic_inputs_take_the_input_type_range_or_input_range(models, tmp_path):
    report = convert(models["ae"], output_dir=tmp_path / "s", data="synthetic", n=N)
    assert report["synthetic"]["ranges"] == {"x": [-32.0, 32.0]}  # ap_fixed<16,6>
    assert report["data"].startswith("synthetic: uniform values") and report["csim"]["n"] == N
    assert any("synthetic" in note and "precision advice" in note for note in report["csim"]["notes"])
    narrow = convert(models["ae"], output_dir=tmp_path / "s", data="synthetic", n=N, input_range="0,1")
    assert not narrow["cache"]["hit"] and narrow["synthetic"]["ranges"] == {"x": [0.0, 1.0]}
    assert narrow["layers"][0]["output_range"][0] >= 0 and narrow["layers"][0]["output_range"][1] < 1


def test_two_inputs_two_outputs_with_a_score_output(models, tmp_path):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "d.npz", met=rng.normal(size=(N, 3)), tracks=rng.normal(size=(N, 6)),
             y=rng.integers(0, 3, N))
    report = convert(models["multi"], output_dir=tmp_path / "m", data=tmp_path / "d.npz", n=N, engine="both",
                     score_output="anomaly")
    assert [t["task"] for t in report["tasks"]] == ["classification", "regression"]
    assert [o["name"] for o in report["outputs"]] == ["cls_softmax", "anomaly"]
    c = report["csim"]
    assert c["accuracy_keras"] is not None and c["argmax_agreement_logits"] > 0.9
    assert set(c["working_points"]) == {"0", "1", "2"} and c["score"]["score"] == "output anomaly"
    names = [row["name"] for row in report["layers"]]
    assert names[:2] == ["tracks", "met"] and "cat" in names
    assert report["engine_note"] is None and set(report["engines"]) == {"emulate", "csim"}
    cross = report["emulate_vs_csim"]  # the emulator is cross-checked layer by layer, both inputs and outputs
    assert cross["identical_fraction"] == 1.0 and {"da", "db", "cat", "cls", "anomaly"} <= set(cross["layers"])
    assert report["layers"][names.index("anomaly")]["max_abs_diff"] < 0.05
    with np.load(tmp_path / "m" / "predictions.npz") as z:
        assert z["csim"].shape == (N, 3) and z["csim_anomaly"].shape == (N, 1)


def test_one_sigmoid_output_is_a_binary_classifier(tmp_path):
    tf.keras.utils.set_random_seed(6)
    model = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(10,), name="x"),
                                 tf.keras.layers.Dense(8, activation="relu", name="fc"),
                                 tf.keras.layers.Dense(1, activation="sigmoid", name="p")])
    save_model(model, tmp_path / "bin.h5")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N, 10))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int))
    report = convert(tmp_path / "bin.h5", output_dir=tmp_path / "b", data=tmp_path / "d.npz", n=N)
    c = report["csim"]
    assert c["task"] == "classification" and c["task_reason"] == "one sigmoid output"
    assert c["argmax_agreement"] > 0.95 and set(c["auc_keras"]) == {"0", "1"}
    assert list(c["working_points"]) == ["1"]  # the score of class 1 against class 0
    np.savez(tmp_path / "text.npz", X=X, y=np.array(["sig", "bkg"] * (N // 2)))
    with pytest.raises(InputError, match=r"expected integer classes 0..1 .* values 'bkg', 'sig'"):
        convert(tmp_path / "bin.h5", output_dir=tmp_path / "c", data=tmp_path / "text.npz", n=N)


def test_io_stream_cnn_on_its_images(models, tmp_path):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "img.npz", X=rng.uniform(0, 1, size=(N, 8, 8, 1)), y=rng.integers(0, 4, N))
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"hls": {"IOType": "io_stream"}}))
    result = CliRunner().invoke(main, ["convert", str(models["cnn"]), "--data", str(tmp_path / "img.npz"), "--config",
                                       str(cfg), "--output", str(tmp_path / "cnn"), "--engine", "both", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    c = report["csim"]
    assert c["task"] == "classification" and c["argmax_agreement_logits"] > 0.95
    assert [report["layers"][i]["name"] for i in (0, 1)] == ["img", "conv"]
    assert report["inputs"] == [{"name": "img", "shape": [8, 8, 1]}]
    assert report["emulate_vs_csim"]["identical_fraction"] == 1.0 and "conv" in report["emulate_vs_csim"]["layers"]
    assert report["estimate"] is not None

