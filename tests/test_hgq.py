"""HGQ recipes, HGQ models in convert, and distributed arithmetic: real HGQ, hls4ml, da4ml and g++, small models."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgeml import config as cfgmod
from edgeml.errors import ConfigError, InputError
from tiny_data import separable_jet_splits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def splits():
    return separable_jet_splits(1000)


def hgq_section(**hgq):
    return {"kind": "hgq", "start": "scratch", "epochs": 6, "learning_rate": 0.01, "student": {"hidden": [8]},
            "hgq": {"batch_size": 128, **hgq}}


# ----------------------------------------------------------------------------- configuration


def test_the_shipped_recipe_validates_and_is_in_the_default_run():
    cfg = cfgmod.load(ROOT / "configs" / "hgq.yaml")
    c = cfg["compression"]
    assert c["kind"] == "hgq" and c["hgq"]["beta"] == {"start": 5e-7, "end": 1e-4, "interpolation": "log",
                                                        "epochs": None}
    assert "hgq" in cfgmod.load(ROOT / "configs" / "default.yaml")["compression"]["recipes"]


@pytest.mark.parametrize("raw, fragment", [
    ({"compression": {"kind": "hgq", "hgq": {"bogus": 1}}}, "unknown key 'compression.hgq.bogus'"),
    ({"compression": {"kind": "hgq", "hgq": {"beta": {"start": 1e-4, "end": 1e-6}}}},
     "compression.hgq.beta.end = 1e-06 is below compression.hgq.beta.start"),
    ({"compression": {"kind": "hgq", "hgq": {"beta": {"interpolation": "cubic"}}}},
     "compression.hgq.beta.interpolation = 'cubic' is not allowed"),
    ({"compression": {"kind": "qkeras"}}, "compression.kind = 'qkeras' is not allowed (allowed: keras, hgq)"),
    ({"compression": {"kind": "hgq", "quantize": {"enabled": True}}}, "compression.quantize.enabled is true"),
    ({"compression": {"kind": "hgq", "prune": {"sparsity": 0.5}}}, "compression.prune is set"),
    ({"hls": {"Strategy": "distributed_arithmetic", "ReuseFactor": 2}},
     "hls.ReuseFactor = 2 with hls.Strategy = 'distributed_arithmetic'"),
    ({"hls": {"Strategy": "distributed_arithmetic", "IOType": "io_stream"}}, "hls.IOType = 'io_stream'"),
    ({"hls": {"LayerName": {"fc1": {"Strategy": "distributed_arithmetic", "ReuseFactor": 4}}}},
     "hls.LayerName.fc1.ReuseFactor = 4 with hls.LayerName.fc1.Strategy"),
    ({"hls": {"Strategy": "distributed"}}, "hls.Strategy = 'distributed' is not allowed"),
])
def test_bad_hgq_and_strategy_settings_are_refused_in_one_line(raw, fragment):
    with pytest.raises(ConfigError) as e:
        cfgmod.validate(raw)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_distributed_arithmetic_at_reuse_factor_one_is_accepted():
    hls = cfgmod.validate({"hls": {"Strategy": "distributed_arithmetic", "LayerName": {"fc1": {"ReuseFactor": 1}}}})
    assert hls["hls"]["Strategy"] == "distributed_arithmetic"
    mixed = cfgmod.validate({"hls": {"ReuseFactor": 4, "LayerName": {"fc1": {"Strategy": "distributed_arithmetic",
                                                                              "ReuseFactor": 1}}}})
    assert mixed["hls"]["LayerName"]["fc1"]["Strategy"] == "distributed_arithmetic"


def test_beta_ramps_log_or_linear_and_then_holds():
    from edgeml.compress.hgq import beta_schedule

    log = beta_schedule({"start": 1e-6, "end": 1e-4, "interpolation": "log", "epochs": 3}, 5)
    assert log == pytest.approx([1e-6, 1e-5, 1e-4, 1e-4, 1e-4])
    linear = beta_schedule({"start": 0.0, "end": 1.0, "interpolation": "linear", "epochs": None}, 5)
    assert linear == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def front(splits):
    from edgeml.compress.hgq import train_hgq

    settings = cfgmod.validate({"compression": hgq_section(beta={"start": 1e-6, "end": 1e-3})})["compression"]
    return train_hgq(settings, splits, progress=False)


def test_one_training_gives_a_calibrated_front_and_a_chosen_model(front, splits):
    snaps = front.snapshots
    assert snaps and all(1 <= s.epoch <= 6 for s in snaps)
    costs, accuracies = [s.ebops for s in snaps], [s.val_accuracy for s in snaps]
    assert costs == sorted(costs) and accuracies == sorted(accuracies)  # fewest EBOPs first, each one more accurate
    assert len(set(costs)) == len(costs)
    best = max(accuracies)
    eligible = [s for s in snaps if s.val_accuracy >= best - 0.005]
    assert front.chosen is min(eligible, key=lambda s: s.ebops)
    assert front.history["beta"][0] == pytest.approx(1e-6) and front.history["beta"][-1] == pytest.approx(1e-3)
    for s in snaps:  # the proxy is what was measured
        logits = s.proxy.predict(splits.X_val, verbose=0)
        assert np.mean(logits.argmax(axis=1) == splits.y_val) == pytest.approx(s.val_accuracy)
        assert {type(layer).__name__ for layer in s.proxy.layers} >= {"FixedPointQuantizer", "Dense"}


def test_a_recipe_run_saves_the_chosen_proxy_and_its_front(splits, tmp_path):
    from edgeml.compress.recipes import Recipe, run_recipe
    from edgeml.io import read_json
    from edgeml.modelio import load_model

    cfg = cfgmod.validate({"compression": hgq_section(beta={"start": 1e-6, "end": 1e-3})})
    paths = run_recipe(Recipe("hgq", cfg["compression"]), cfg, splits, None, tmp_path, progress=False)
    metrics, listed = read_json(paths.metrics), read_json(tmp_path / "hgq_front.json")
    assert metrics["kind"] == "hgq" and metrics["ebops"] == metrics["bops"] > 0
    chosen = [s for s in listed["snapshots"] if s["chosen"]]
    assert len(chosen) == 1 and chosen[0]["epoch"] == metrics["epoch"]
    for snap in listed["snapshots"]:
        model = load_model(tmp_path / snap["model"])
        assert (tmp_path / snap["model"].replace(".h5", "_scaler.json")).is_file()
        assert any(type(layer).__name__ == "FixedPointQuantizer" for layer in model.layers)
    proxy = load_model(paths.model)
    logits = proxy.predict(splits.X_test, verbose=0)
    assert metrics["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == splits.y_test))


def test_restarts_train_from_new_seeds_and_share_one_front(splits, tmp_path):
    from edgeml.compress.hgq import save_front, train_hgq
    from edgeml.io import read_json

    settings = cfgmod.validate({"compression": hgq_section(restarts=2, beta={"start": 1e-6, "end": 1e-3})})
    front = train_hgq(settings["compression"], splits, seed=5, progress=False)
    snaps = front.snapshots
    assert {s.restart for s in snaps} <= {0, 1} and len({s.tag for s in snaps}) == len(snaps)
    for s in snaps:  # one front across both trainings: nothing on it is beaten on both axes
        assert not any(o.val_accuracy >= s.val_accuracy and o.ebops < s.ebops for o in snaps)
    assert front.history["seed"] == 5 + front.chosen.restart
    assert [h["seed"] for h in front.histories] == [5, 6]
    assert front.histories[0]["loss"][0] != front.histories[1]["loss"][0]  # another seed, another training
    save_front(front, splits, tmp_path, "hgq")
    listed = read_json(tmp_path / "hgq_front.json")["snapshots"]
    assert len({s["model"] for s in listed}) == len(snaps)
    assert all((tmp_path / s["model"]).is_file() for s in listed)
    assert read_json(tmp_path / "hgq_metrics.json")["restarts"] == 2


def test_restarts_in_worker_processes_train_what_one_process_trains(splits):
    from edgeml.compress.hgq import train_hgq_recipes

    settings = cfgmod.validate({"compression": hgq_section(restarts=2, beta={"start": 1e-6, "end": 1e-3})})
    recipe = settings["compression"]
    (alone,) = train_hgq_recipes([recipe], splits, seed=5, progress=False, workers=1, autotune_input=False)
    (pooled,) = train_hgq_recipes([recipe], splits, seed=5, progress=False, workers=2)
    assert [h["seed"] for h in pooled.histories] == [5, 6]
    for a, b in zip(alone.histories, pooled.histories):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    assert [(s.restart, s.epoch) for s in alone.snapshots] == [(s.restart, s.epoch) for s in pooled.snapshots]
    logits = pooled.chosen.proxy.predict(splits.X_val, verbose=0)  # rebuilt here from the worker's weights
    assert np.mean(logits.argmax(axis=1) == splits.y_val) == pytest.approx(pooled.chosen.val_accuracy)


def test_fine_tuning_trains_the_weights_of_front_snapshots_at_their_frozen_bits(splits):
    import tensorflow as tf

    from edgeml.compress import hgq

    settings = cfgmod.validate({"compression": hgq_section(beta={"start": 1e-6, "end": 1e-3})})["compression"]
    job = hgq._plan(settings, splits, None, None, None, 5, None).jobs[0]
    kept, _, model = hgq._fit(job, progress=False, autotune_input=False)
    job.h = {**job.h, "fine_tune": {"epochs": 3, "snapshots": 1, "min_val_accuracy": 0.0, "learning_rate": 0.01,
                                    "select": "cheapest"}}
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    bits = [i for i, w in enumerate(model.weights) if w.name.endswith("_bw:0")]
    kernels = [i for i, w in enumerate(model.weights) if w.name.endswith("kernel:0")]
    parent = min(kept, key=lambda k: k["bops"])  # snapshots: 1 fine-tunes the cheapest
    tuned = hgq._fine_tune(model, kept, job, loss, progress=False, autotune_input=False)
    assert tuned and all(p["epoch"] == parent["epoch"] and 1 <= p["fine_tune_epoch"] <= 3 for p in tuned)
    for p in tuned:
        for i in bits:
            np.testing.assert_array_equal(p["weights"][i], parent["weights"][i])
        assert any(not np.array_equal(p["weights"][i], parent["weights"][i]) for i in kernels)
    snap = hgq.calibrate(model, tuned[0], splits, job.h)
    assert snap.tag == f"e{parent['epoch']:04d}_ft{tuned[0]['fine_tune_epoch']:02d}"


def test_a_failed_worker_training_is_one_line_naming_the_restart(splits):
    from edgeml.compress.hgq import train_hgq_recipes

    bad = cfgmod.validate({"compression": hgq_section(restarts=2)})["compression"]
    bad["hgq"]["batch_size"] = "not a size"  # passes nowhere but inside the worker's fit
    with pytest.raises(RuntimeError, match=r"HGQ training of restart 0 \(seed 5\) failed in its worker process"):
        train_hgq_recipes([bad], splits, seed=5, progress=False, workers=2)


def test_start_from_the_baseline_copies_its_dense_weights(splits):
    from edgeml.compress.hgq import build_hgq_model, copy_baseline_weights
    from edgeml.train import build_model

    h = cfgmod.validate({})["compression"]["hgq"]
    baseline = build_model({**cfgmod.validate({})["model"], "hidden": [8]}, 16, 5, seed=3)
    model = build_hgq_model(h, [8], 16, 5, seed=1)
    copy_baseline_weights(baseline, model, h)
    np.testing.assert_array_equal(model.get_layer("fc1").kernel.numpy(), baseline.get_layer("fc1").kernel.numpy())
    wrong = build_hgq_model(h, [4], 16, 5, seed=1)
    with pytest.raises(InputError, match="layer fc1 has no float twin"):
        copy_baseline_weights(baseline, wrong, h)


# ----------------------------------------------------------------------------- models in convert


@pytest.fixture(scope="module")
def tanh_proxy(splits):
    """A small HGQ model with a tanh HActivation, exported with a UnaryLUT, calibrated on the training split."""
    import tensorflow as tf
    from HGQ import HDense, HQuantize, to_proxy_model, trace_minmax
    from HGQ.layers import HActivation

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(16,)), HQuantize(beta=1e-6, name="inp_q"),
        HDense(8, beta=1e-6, name="fc1"), HActivation("tanh", beta=1e-6, name="tanh1"),
        HDense(5, beta=1e-6, name="output")])
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(splits.X_train, splits.y_train, epochs=2, batch_size=128, verbose=0)
    trace_minmax(model, splits.X_train, verbose=False)
    proxy = to_proxy_model(model, unary_lut_max_table_size=1024)
    assert "UnaryLUT" in {type(layer).__name__ for layer in proxy.layers}
    return proxy


def _lut_name(proxy) -> str:
    return next(layer.name for layer in proxy.layers if type(layer).__name__ == "UnaryLUT")


def _convert(model, tmp_path, name, strategy="Latency", engine="both"):
    from edgeml.firmware.stage import convert
    from edgeml.modelio import save_model

    path = save_model(model, tmp_path / f"{name}.h5")
    return convert(path, config={"hls": {"Strategy": strategy}}, output_dir=tmp_path / f"{name}_prj", n=2000,
                   engine=engine)


@pytest.mark.slow
def test_emulator_csim_and_proxy_agree_bit_for_bit_with_a_unary_lut(tanh_proxy, tmp_path):
    report = _convert(tanh_proxy, tmp_path, "tanh")
    assert report["engine_note"] is None  # the emulator covered every layer
    assert report["emulate_vs_csim"]["identical_fraction"] == 1.0
    for engine in ("proxy_vs_emulate", "proxy_vs_csim"):
        agreement = report[engine]
        assert agreement["identical_fraction"] == 1.0 and agreement["n"] == 2000
        assert _lut_name(tanh_proxy) in agreement["layers"] and set(agreement["layers"].values()) == {1.0}


def test_emulator_and_proxy_agree_bit_for_bit_with_a_unary_lut(tanh_proxy, tmp_path):
    report = _convert(tanh_proxy, tmp_path, "tanh", engine="emulate")
    assert report["csim"]["engine"] == "emulate"
    agreement = report["proxy_vs_emulate"]
    assert agreement["identical_fraction"] == 1.0 and set(agreement["layers"].values()) == {1.0}
    assert {_lut_name(tanh_proxy), "fc1", "output"} <= set(agreement["layers"])


def test_a_full_hgq_model_is_calibrated_and_converted_as_its_proxy(front, splits, tmp_path):
    from edgeml.modelio import save_model

    path = save_model(front.hgq_model, tmp_path / "full.h5")
    with pytest.raises(InputError, match="full HGQ model.*scaler"):
        _convert(front.hgq_model, tmp_path, "full", engine="emulate")
    splits.scaler.save(tmp_path / "full_scaler.json")
    from edgeml.firmware.stage import convert

    report = convert(path, output_dir=tmp_path / "full_prj2", n=1000, engine="emulate")
    assert any("full HGQ model: calibrated" in w for w in report["warnings"])
    assert report["proxy_vs_emulate"]["identical_fraction"] == 1.0


def test_an_hgq_model_file_whose_custom_layers_cannot_be_loaded_is_refused(front, tmp_path):
    import h5py

    from edgeml.modelio import load_model, save_model

    path = save_model(front.chosen.proxy, tmp_path / "proxy.h5")
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "HGQ>FixedPointQuantizer":  # as Keras 2.14 stores a registered class
                layer["class_name"] = "HGQ>FixedPointQuantizer2"  # a class hgq 0.2.6 does not have
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(InputError) as e:
        load_model(path)
    text = str(e.value)
    assert "HGQ custom layer(s)" in text and "FixedPointQuantizer2" in text and "\n" not in text


# ----------------------------------------------------------------------------- distributed arithmetic


def test_distributed_arithmetic_emulated_like_its_proxy_with_da4ml_cost(front, tmp_path):
    from edgeml.firmware.emulator import emulate
    from edgeml.firmware.hls import build

    hls = cfgmod.validate({"hls": {"Strategy": "distributed_arithmetic"}})["hls"]
    hls_model, _ = build(front.chosen.proxy, hls, tmp_path / "da")
    dense = [layer for layer in hls_model.get_layers() if layer.class_name == "Dense"]
    assert dense and all(layer.get_attr("strategy") == "distributed_arithmetic" for layer in dense)
    costs = [layer.get_attr("da_kernel_cost") for layer in dense]
    assert all(c is not None and c >= 0 for c in costs)  # da4ml's adder-graph cost, read back per layer
    X = np.random.default_rng(1).normal(size=(3000, 16)).astype(np.float32)
    proxy = front.chosen.proxy.predict(X, verbose=0)
    np.testing.assert_array_equal(emulate(hls_model, X, trace=False).outputs, proxy)


@pytest.mark.slow
def test_distributed_arithmetic_firmware_is_bit_identical_to_latency_in_csim(front, tmp_path):
    da = _convert(front.chosen.proxy, tmp_path, "da", strategy="distributed_arithmetic")
    latency = _convert(front.chosen.proxy, tmp_path, "lat", strategy="Latency")
    assert da["emulate_vs_csim"]["identical_fraction"] == 1.0
    assert da["proxy_vs_csim"]["identical_fraction"] == 1.0
    assert latency["emulate_vs_csim"]["identical_fraction"] == 1.0
    a = np.load(tmp_path / "da_prj" / "predictions.npz")
    b = np.load(tmp_path / "lat_prj" / "predictions.npz")
    key = "csim"
    np.testing.assert_array_equal(a[key], b[key])


def test_fine_tune_parents_cheapest_or_spread_above_the_floor():
    from edgeml.compress.hgq import fine_tune_parents

    kept = [{"acc": 0.70 + 0.005 * i, "bops": 5000 - 100 * i} for i in range(12)]  # more accurate, fewer EBOPs
    kept = list(reversed(kept))[::2] + list(reversed(kept))[1::2]  # any order
    above = sorted((k for k in kept if k["acc"] >= 0.72), key=lambda k: k["bops"])  # 8 snapshots, 0.72..0.755
    ft = {"snapshots": 3, "min_val_accuracy": 0.72}
    assert fine_tune_parents(kept, {**ft, "select": "cheapest"}) == above[:3]
    spread = fine_tune_parents(kept, {**ft, "select": "spread"})
    assert spread == [above[0], above[4], above[7]]  # both ends and the middle
    assert fine_tune_parents(kept, {**ft, "snapshots": 20, "select": "spread"}) == above
    assert fine_tune_parents(kept, {**ft, "min_val_accuracy": 0.99, "select": "spread"}) == []
