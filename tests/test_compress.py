"""Compression passes on tiny models and data: real tfmot, QKeras and TensorFlow, seconds each."""

import math
from pathlib import Path

import numpy as np
import pytest

from edgeml import config as cfgmod
from edgeml.data import JetData
from tiny_data import separable_jet_splits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def splits():
    return separable_jet_splits(800)


def recipe_cfg(**compression):
    return cfgmod.validate({"model": {"hidden": [16, 8]}, "train": {"epochs": 2, "batch_size": 64},
                            "compression": compression})


def test_pruning_reaches_target_sparsity_after_strip(splits):
    from edgeml.compress.prune import sparsity_report
    from edgeml.compress.recipes import Recipe, run_recipe
    from edgeml.io import read_json
    from edgeml.modelio import load_model

    cfg = recipe_cfg(start="scratch", epochs=4, prune={"sparsity": 0.5, "per_layer": {"fc1": 0.8, "output": 0.0},
                                                      "end_epoch": 2, "frequency": 1})
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        paths = run_recipe(Recipe("pruned", cfg["compression"]), cfg, splits, None, tmp, progress=False)
        model = load_model(paths.model)
        metrics = read_json(paths.metrics)
    assert all(type(layer).__name__ != "PruneLowMagnitude" for layer in model.layers)
    achieved = sparsity_report(model)
    assert achieved["fc1"] == pytest.approx(0.8, abs=0.01)
    assert achieved["fc2"] == pytest.approx(0.5, abs=0.01)
    assert achieved["output"] < 0.1
    kernel = model.get_layer("fc1").get_weights()[0]
    assert np.count_nonzero(kernel) == round(kernel.size * 0.2)
    assert metrics["nonzero_weights"] < metrics["parameters"]
    assert metrics["achieved_sparsity"] == pytest.approx(achieved)


def test_qkeras_weights_lie_on_their_grid(splits):
    from edgeml.compress.quantize import build_qkeras_model, quantized_weights
    from edgeml.train import fit

    cfg = recipe_cfg(quantize={"enabled": True, "bits": 6, "integer": 0, "per_layer": {"fc2": {"bits": 4}}})
    model = build_qkeras_model(cfg["model"], cfg["compression"]["quantize"], 16, 5, seed=1)
    assert [layer.name for layer in model.layers] == ["fc1", "relu1", "fc2", "relu2", "output", "softmax"]
    fit(model, splits, cfg["train"], progress=False)
    for name, bits in (("fc1", 6), ("fc2", 4), ("output", 6)):
        layer = model.get_layer(name)
        assert layer.kernel_quantizer_internal.alpha == 1
        for values in quantized_weights(layer):
            steps = values * 2 ** (bits - 1)  # integer 0: one sign bit, bits-1 fraction bits
            assert np.array_equal(steps, np.round(steps))
            assert steps.min() >= -(2 ** (bits - 1)) and steps.max() <= 2 ** (bits - 1) - 1
    relu = model.get_layer("relu1").quantizer
    assert (relu.bits, relu.integer) == (6, 0)


def test_distillation_loss_matches_hand_computation():
    import tensorflow as tf

    from edgeml.compress.distill import distillation_loss, pack_targets

    labels = np.array([0, 2])
    z_t = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    z_s = np.array([[1.0, 1.0, 0.0], [-0.5, 0.0, 1.5]])
    alpha, temp = 0.3, 2.0

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    ce = -np.log(softmax(z_s)[np.arange(2), labels])
    p_t, p_s = softmax(z_t / temp), softmax(z_s / temp)
    kl = np.sum(p_t * np.log(p_t / p_s), axis=1)
    expected = np.mean(alpha * ce + (1 - alpha) * temp ** 2 * kl)

    loss = distillation_loss(alpha, temp)
    got = tf.reduce_mean(loss(tf.constant(pack_targets(labels, z_t)), tf.constant(z_s, tf.float32)))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_bops_count_nonzero_weights_and_bits():
    from edgeml.compress.cost import model_cost
    from edgeml.compress.quantize import build_qkeras_model

    cfg = recipe_cfg(quantize={"enabled": True, "bits": 4, "integer": 0, "activation_bits": 5})
    model = build_qkeras_model(cfg["model"], cfg["compression"]["quantize"], 16, 5, seed=0)
    kernel, bias = model.get_layer("fc2").get_weights()
    kernel[:] = 0.25
    kernel[0, :] = 0.0  # 8 of 128 weights pruned
    model.get_layer("fc2").set_weights([kernel, bias])
    cost = model_cost(model)
    fc2 = cost["cost_per_layer"]["fc2"]
    assert (fc2["weight_bits"], fc2["input_bits"], fc2["nonzero"]) == (4, 5, 120)
    assert fc2["bops"] == 120 * (4 * 5 + 4 + 5 + math.ceil(math.log2(16)))
    assert cost["cost_per_layer"]["fc1"]["input_bits"] == 16  # the float network input
    assert cost["bops"] == sum(v["bops"] for v in cost["cost_per_layer"].values())
    assert cost["parameters"] == 16 * 16 + 16 + 16 * 8 + 8 + 8 * 5 + 5


def test_distilled_quantized_student_from_scratch_saves_and_loads(splits, tmp_path):
    from edgeml.compress.recipes import Recipe, run_recipe
    from edgeml.io import read_json
    from edgeml.modelio import load_model
    from edgeml.train import build_model, fit

    cfg = recipe_cfg(start="scratch", epochs=2, student={"hidden": [8]}, quantize={"enabled": True, "bits": 5},
                     prune={"sparsity": 0.5, "schedule": "constant"}, distill={"enabled": True, "alpha": 0.5})
    teacher = build_model(cfg["model"], 16, 5, 0)
    fit(teacher, splits, cfg["train"], progress=False)
    paths = run_recipe(Recipe("student", cfg["compression"]), cfg, splits, teacher, tmp_path, progress=False)
    model = load_model(paths.model)
    assert [layer.name for layer in model.layers] == ["fc1", "relu1", "output", "softmax"]
    metrics = read_json(paths.metrics)
    assert {"bops", "nonzero_weights", "sparsity", "parameters", "accuracy", "auc"} <= set(metrics)
    assert metrics["distilled"] and metrics["hidden"] == [8]
    assert "accuracy" in read_json(paths.history)
    assert Path(paths.scaler).is_file()


def test_start_from_baseline_copies_float_weights(splits):
    from edgeml.compress.quantize import build_qkeras_model, copy_weights
    from edgeml.errors import InputError
    from edgeml.train import build_model

    cfg = recipe_cfg(quantize={"enabled": True})
    float_model = build_model(cfg["model"], 16, 5, 3)
    q = build_qkeras_model(cfg["model"], cfg["compression"]["quantize"], 16, 5, seed=4)
    assert copy_weights(float_model, q) == ["fc1", "fc2", "output"]
    assert np.array_equal(q.get_layer("fc1").get_weights()[0], float_model.get_layer("fc1").get_weights()[0])
    other = build_model({**cfg["model"], "hidden": [4, 4]}, 16, 5, 3)
    with pytest.raises(InputError, match="start: scratch"):
        copy_weights(other, q)


def test_shipped_recipes_load_and_default_lists_them(monkeypatch):
    from edgeml.compress.recipes import load_recipes

    monkeypatch.chdir(ROOT)
    recipes = load_recipes(cfgmod.load(ROOT / "configs" / "default.yaml"))
    assert [r.name for r in recipes] == ["tutorial_pruned", "tutorial_qkeras", "edgeml_compact", "hgq"]
    qkeras = recipes[1].settings
    assert qkeras["quantize"]["enabled"] and qkeras["quantize"]["bits"] == 6 and qkeras["prune"]["sparsity"] == 0.75
    assert load_recipes(cfgmod.validate({})) == []  # no compression section: no recipe


def test_unknown_recipe_and_layer_names_are_refused(splits, monkeypatch, tmp_path):
    from edgeml.compress.prune import layer_targets
    from edgeml.compress.recipes import load_recipes
    from edgeml.errors import InputError
    from edgeml.train import build_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_recipes(cfgmod.validate({"compression": {"recipes": ["nope"]}}))
    cfg = recipe_cfg(prune={"sparsity": 0.5, "per_layer": {"fc9": 0.5}})
    with pytest.raises(InputError, match="fc9"):
        layer_targets(build_model(cfg["model"], 16, 5, 0), cfg["compression"]["prune"])


def test_cli_compress_runs_a_recipe_from_a_saved_baseline(tmp_path):
    import yaml
    from click.testing import CliRunner

    from edgeml.cli import main
    from edgeml.data import write_npz
    from edgeml.io import read_json

    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 600)
    X = np.abs(rng.normal(size=(600, 16))).astype(np.float32) + y[:, None]
    write_npz(JetData(X, y, "tiny"), tmp_path / "jets.npz")
    base = {"data": {"source": str(tmp_path / "jets.npz")}, "model": {"hidden": [8]},
            "train": {"epochs": 1, "batch_size": 64}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    recipe = {**base, "compression": {"name": "q4", "epochs": 1, "quantize": {"enabled": True, "bits": 4},
                                      "prune": {"sparsity": 0.5, "schedule": "constant"}}}
    (tmp_path / "q4.yaml").write_text(yaml.safe_dump(recipe))
    runner = CliRunner()
    trained = runner.invoke(main, ["train", str(tmp_path / "base.yaml"), "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    args = ["compress", str(tmp_path / "q4.yaml"), "--from", str(tmp_path / "m" / "baseline.h5"),
            "--out", str(tmp_path / "c")]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    metrics = read_json(tmp_path / "c" / "q4_metrics.json")
    assert metrics["sparsity"] >= 0.5 and metrics["quantized"]
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.output
    fresh = runner.invoke(main, ["compress", str(tmp_path / "q4.yaml"), "--out", str(tmp_path / "c2"), "--json"])
    assert fresh.exit_code == 0, fresh.output  # no --from: the baseline is trained first, with cost metrics
    assert "bops" in read_json(tmp_path / "c2" / "baseline_metrics.json")
    nothing = runner.invoke(main, ["compress", str(tmp_path / "base.yaml")])
    assert nothing.exit_code == 2 and "no compression recipe" in nothing.output


def test_pipeline_compress_stage_runs_listed_recipes(tmp_path):
    import yaml

    from edgeml.data import write_npz
    from edgeml.io import content_hash, read_json
    from edgeml.modelio import load_model
    from edgeml.pipeline import STAGES, RunContext

    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 500)
    write_npz(JetData(np.abs(rng.normal(size=(500, 16))).astype(np.float32) + y[:, None], y, "tiny"),
              tmp_path / "jets.npz")
    recipe = tmp_path / "tiny_q.yaml"
    recipe.write_text(yaml.safe_dump({"compression": {"epochs": 1, "quantize": {"enabled": True},
                                                      "prune": {"sparsity": 0.5, "schedule": "constant"}}}))
    cfg = cfgmod.validate({"data": {"source": str(tmp_path / "jets.npz")}, "model": {"hidden": [8]},
                           "train": {"epochs": 1, "batch_size": 64}, "compression": {"recipes": [str(recipe)]}})
    ctx = RunContext(cfg, tmp_path / "run", progress=False)
    stages = {st.name: st for st in STAGES}
    for name in ("data", "baseline", "compress"):
        ctx.outputs[name] = stages[name].fn(ctx)
    files = ctx.outputs["compress"]["models"]["tiny_q"]
    assert set(files) == {"model", "scaler", "metrics", "history"}
    assert type(load_model(ctx.run_dir / files["model"]).get_layer("fc1")).__name__ == "QDense"
    assert read_json(ctx.run_dir / files["metrics"])["sparsity"] >= 0.5
    assert "bops" in read_json(ctx.run_dir / ctx.outputs["baseline"]["models"]["baseline"]["metrics"])
    before = content_hash(*stages["compress"].inputs(cfg))
    recipe.write_text(recipe.read_text().replace("sparsity: 0.5", "sparsity: 0.6"))
    assert content_hash(*stages["compress"].inputs(cfg)) != before  # editing a recipe file reruns the stage


def test_qkeras_and_tfmot_traced_without_autograph_train_the_same_weights(splits, tmp_path, monkeypatch):
    import qkeras
    from tensorflow.python.autograph.core import config as autograph_config
    from tensorflow.python.autograph.impl import conversion

    from edgeml.compress import quantize
    from edgeml.compress.recipes import Recipe, run_recipe
    from edgeml.modelio import load_model

    cfg = recipe_cfg(start="scratch", epochs=2, quantize={"enabled": True, "bits": 6},
                     prune={"sparsity": 0.5, "schedule": "constant"})
    recipe = Recipe("qat", cfg["compression"])

    def trained_weights(out):
        paths = run_recipe(recipe, cfg, splits, None, tmp_path / out, progress=False)
        return load_model(paths.model).get_weights()

    ours = {str(r) for r in map(autograph_config.config_lib.DoNotConvert, quantize.NO_AUTOGRAPH_PACKAGES)}
    with monkeypatch.context() as m:
        m.setattr(autograph_config, "CONVERSION_RULES",
                  tuple(r for r in autograph_config.CONVERSION_RULES if str(r) not in ours))
        m.setattr(quantize, "trace_layer_libraries_without_autograph", lambda: None)
        assert not conversion.is_allowlisted(qkeras.QDense.call)
        converted = trained_weights("autograph")
    quantize.trace_layer_libraries_without_autograph()
    quantize.trace_layer_libraries_without_autograph()
    assert conversion.is_allowlisted(qkeras.QDense.call)
    assert sum(str(r) in ours for r in autograph_config.CONVERSION_RULES) == len(ours)  # idempotent
    as_written = trained_weights("as_written")
    assert len(converted) == len(as_written)
    assert all(np.array_equal(a, b) for a, b in zip(converted, as_written))
