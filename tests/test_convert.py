"""edgeml convert with g++: real hls4ml projects, C-simulation and its cross-check with the emulator.

The g++ tests of the firmware package live here; tests/test_stage.py covers the emulator engine without g++.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from edgeml import config
from edgeml.cli import main
from edgeml.convert import build_hls_model, convert
from edgeml.errors import ConfigError, InputError
from edgeml.modelio import save_model

FIXTURES = Path(__file__).parent / "fixtures"
QKERAS = FIXTURES / "keras224_qkeras_pruned.json"
N = 300


@pytest.fixture(scope="module")
def qkeras_project(tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "qkeras"
    return out, convert(QKERAS, output_dir=out, n=N, engine="csim")


def float_model(n_inputs=16, kernel_scale=1.0, extra=None, name_input="input"):
    """The edgeml tagger shape (InputLayer named 'input', separate softmax), random weights."""
    tf.keras.utils.set_random_seed(3)
    layers = [tf.keras.layers.InputLayer(input_shape=(n_inputs,), name=name_input),
              tf.keras.layers.Dense(16, name="fc1"), tf.keras.layers.Activation("relu", name="relu1")]
    if extra is not None:
        layers.append(extra)
    layers += [tf.keras.layers.Dense(5, name="output"), tf.keras.layers.Activation("softmax", name="softmax")]
    model = tf.keras.Sequential(layers)
    kernel, bias = model.get_layer("fc1").get_weights()
    model.get_layer("fc1").set_weights([kernel * kernel_scale, bias])
    return model


def test_qkeras_model_is_bit_exact_before_the_softmax(qkeras_project):
    out, report = qkeras_project
    c = report["csim"]
    assert c["n"] == N
    assert c["bit_exact_logits"] and c["max_abs_diff_logits"] == 0.0
    assert c["argmax_agreement_logits"] == 1.0
    assert c["logits_layer"] == "output"
    by_name = {row["name"]: row for row in report["layers"]}
    for name in ("fc1", "relu1", "fc2", "relu2", "output"):
        assert by_name[name]["max_abs_diff"] == 0.0 and by_name[name]["status"] == "ok"
        assert by_name[name]["quantizer_derived"]
    # precisions come from the quantizers, not from the model-wide ap_fixed<16,6>
    assert by_name["fc1"]["weight_precision"] == "ap_fixed<6,1>"
    assert by_name["relu1"]["precision"] == "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>"
    assert set(c["auc_keras"]) == set(c["auc_csim"]) == {"g", "q", "w", "z", "t"}
    for key in ("accuracy_keras", "accuracy_csim", "argmax_agreement", "max_abs_diff", "mean_abs_diff"):
        assert 0 <= c[key] <= 1


def test_project_holds_reports_and_predictions(qkeras_project):
    out, report = qkeras_project
    assert (out / "firmware" / "myproject.cpp").is_file()
    saved = json.loads((out / "convert_report.json").read_text())
    assert saved["csim"] == json.loads(json.dumps(report["csim"]))
    for row in saved["layers"]:
        assert {"name", "precision", "max_abs_diff", "overflow_fraction", "range", "output_range",
                "weight_range"} <= set(row)
    md = (out / "convert_report.md").read_text()
    assert "| fc1 | Dense |" in md and "decision agreement" in md
    with np.load(out / "predictions.npz") as z:
        assert z["y_true"].shape == (N,) and z["y_true"].dtype.kind == "i"
        for key in ("keras", "csim", "keras_logits", "csim_logits"):
            assert z[key].shape == (N, 5), key


def test_same_conversion_again_is_a_cache_hit_and_new_data_reuses_the_library(qkeras_project):
    out, report = qkeras_project
    library = out / report["library"]
    mtime = library.stat().st_mtime
    again = convert(QKERAS, output_dir=out, n=N, engine="csim")
    assert again["cache"]["hit"]  # the stored report, no conversion, no compile
    assert again["csim"] == json.loads(json.dumps(report["csim"]))
    other = convert(QKERAS, output_dir=out, n=N // 2, engine="csim")
    assert other["cache"] == {"hit": False, "library_reused": True}
    assert other["timing"]["compile"] == 0.0 and library.stat().st_mtime == mtime
    assert other["csim"]["n"] == N // 2 and other["csim"]["bit_exact_logits"]


def test_other_settings_into_an_existing_project_need_force(qkeras_project):
    out, _ = qkeras_project
    cfg = config.validate({"hls": {"ReuseFactor": 2}})
    before = (out / "convert_report.json").read_text()
    with pytest.raises(InputError, match="--force"):
        convert(QKERAS, cfg, output_dir=out, n=N)
    assert (out / "convert_report.json").read_text() == before


def test_overflowing_float_layer_is_named_and_auto_precision_fixes_it(tmp_path):
    model = float_model(kernel_scale=60.0)  # fc1 outputs reach hundreds: far outside ap_fixed<16,6>
    save_model(model, tmp_path / "big.h5")
    report = convert(tmp_path / "big.h5", output_dir=tmp_path / "prj", n=N, auto_precision=True)
    auto = report["auto_precision"]
    assert auto["before"]["first_broken_layer"] == "fc1"
    assert auto["before"]["argmax_agreement"] < 0.9
    assert int(auto["applied"]["fc1"]["result"].split(",")[1].rstrip(">")) > 6
    assert report["csim"]["argmax_agreement"] >= 0.999
    fc1 = next(row for row in report["layers"] if row["name"] == "fc1")
    assert fc1["overflow_fraction"] == 0.0 and fc1["range"][1] > fc1["output_range"][1]
    assert report["layers"][0]["name"] == "input_1"  # hls4ml reserves 'input': renamed, weights kept


def test_cli_converts_a_keras21_json_model(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(FIXTURES / "keras21_dense.json"), "--output",
                                       str(tmp_path / "old"), "--n", "200", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["csim"]["n"] == 200
    assert report["csim"]["logits_layer"] == "dense_2"  # fused softmax split off by hls4ml
    assert [row["name"] for row in report["layers"]][1:3] == ["dense_1", "dense_1_relu"]

    # the same conversion again is served from the cache; the text output carries layers and estimate
    result = CliRunner().invoke(main, ["convert", str(FIXTURES / "keras21_dense.json"), "--output",
                                       str(tmp_path / "old"), "--n", "200"])
    assert result.exit_code == 0, result.output
    assert "(cached)" in result.output and "dense_1_relu" in result.output
    assert "estimate for xcu250-figd2104-2L-e" in result.output and "fits: yes" in result.output


def test_existing_directory_is_never_overwritten_without_force(tmp_path):
    (tmp_path / "prj").mkdir()
    (tmp_path / "prj" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(main, ["convert", str(QKERAS), "--output", str(tmp_path / "prj")])
    assert result.exit_code == 2 and "--force" in result.output
    assert (tmp_path / "prj" / "mine.txt").read_text() == "keep"


def test_bad_inputs_are_one_line_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2 and result.output.startswith("error: model file") and result.output.count("\n") == 1
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF\r\n garbage")
    result = runner.invoke(main, ["convert", str(tmp_path / "corrupt.h5")])
    assert result.exit_code == 2 and "corrupt" in result.output
    save_model(float_model(n_inputs=10), tmp_path / "ten.h5")
    with pytest.raises(InputError, match=r"ten.h5 takes input 'input_1' of shape \(10\), not the 16 jet features: "
                                         r"pass its inputs with --data .* or --data synthetic"):
        convert(tmp_path / "ten.h5", output_dir=tmp_path / "ten", n=N)
    assert not (tmp_path / "ten").exists()
    with pytest.raises(ConfigError, match="hls.Precision"):
        config.validate({"hls": {"Precision": "ap_fixed<16;6>"}})
    with pytest.raises(ConfigError, match="LayerName.fc1.Precision.weight"):
        config.validate({"hls": {"LayerName": {"fc1": {"Precision": {"weight": "fixed16"}}}}})


def test_layer_hls4ml_cannot_convert_is_listed(tmp_path):
    model = float_model(extra=tf.keras.layers.GaussianNoise(0.1, name="noise"))
    with pytest.raises(InputError, match=r"hls4ml cannot convert layer\(s\) noise \(GaussianNoise\)"):
        build_hls_model(model, config.defaults()["hls"], tmp_path / "x")


def test_a_dilated_convolution_hls4ml_would_build_undilated_is_refused(tmp_path):
    inp = tf.keras.Input((16, 2))
    out = tf.keras.layers.Conv1D(3, 3, dilation_rate=2, name="dilated")(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Flatten()(out))
    with pytest.raises(InputError, match=r"dilated \(Conv1D with dilation_rate \(2,\), which hls4ml 1.3 ignores\)"):
        build_hls_model(model, config.defaults()["hls"], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unknown_layer_override_and_changed_reuse_factor_are_reported(tmp_path):
    model = float_model()
    hls = config.validate({"hls": {"LayerName": {"fc9": {"ReuseFactor": 2}}}})["hls"]
    with pytest.raises(InputError, match="no layer 'fc9'"):
        build_hls_model(model, hls, tmp_path / "a")
    hls = config.validate({"hls": {"Strategy": "Resource", "ReuseFactor": 3}})["hls"]
    hls_model = build_hls_model(model, hls, tmp_path / "b")
    warnings = " ".join(hls_model.edgeml_warnings)
    # fc1 is 16x16: 3 does not divide 256, hls4ml takes the closest valid value, 2 (the smaller on a tie with 4)
    assert "layer fc1: ReuseFactor 3 is invalid for n_in=16, n_out=16" in warnings and "hls4ml uses 2" in warnings
    assert hls_model.graph["fc1"].get_attr("reuse_factor") == 2


@pytest.mark.slow
def test_tutorial_qkeras_ground_truth_model_is_bit_exact(shared_dir, tmp_path):
    model = shared_dir / "ground-truth" / "D" / "hls4ml_prj" / "keras_model.h5"
    report = convert(model, output_dir=tmp_path / "D", n=10000)
    assert report["csim"]["bit_exact_logits"] and report["csim"]["argmax_agreement_logits"] == 1.0
    assert all(row["max_abs_diff"] == 0 for row in report["layers"] if row["quantizer_derived"])


def test_force_replaces_projects_only(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not an hls4ml project directory"):
        convert(QKERAS, output_dir=tmp_path / "docs", n=N, force=True)
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "years of work"


def test_force_replaces_a_project_built_with_other_settings(qkeras_project, tmp_path):
    out, _ = qkeras_project
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    report = convert(QKERAS, config.validate({"hls": {"ReuseFactor": 2}}), output_dir=copy, n=N, force=True)
    assert report["cache"] == {"hit": False, "library_reused": False}
    assert report["hls"]["ReuseFactor"] == 2 and report["csim"]["bit_exact_logits"]


def test_engine_both_cross_checks_emulator_and_csim_in_json(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(QKERAS), "--output", str(tmp_path / "both"), "--n", str(N),
                                       "--engine", "both", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["engines"]) == {"csim", "emulate"}
    for engine in report["engines"].values():
        assert set(engine) == {"seconds", "jets_per_second"} and engine["seconds"] > 0
    assert report["engines"]["csim"]["seconds"] >= report["timing"]["compile"] > 0  # compile included
    cross = report["emulate_vs_csim"]
    assert {k: cross[k] for k in ("n", "identical_fraction", "max_abs_diff")} == \
        {"n": N, "identical_fraction": 1.0, "max_abs_diff": 0.0}
    assert set(cross["layers"]) >= {"fc1", "relu1", "fc2", "relu2", "output"}  # per layer, as traced by both
    assert set(cross["layers"].values()) == {1.0}
    assert report["csim"]["engine"] == "emulate" and report["engine_note"] is None
    assert report["library"] and (tmp_path / "both" / report["library"]).is_file()


def test_engine_csim_after_emulate_compiles_into_the_same_project(tmp_path):
    first = convert(QKERAS, output_dir=tmp_path / "p", n=N, engine="emulate")
    assert first["library"] is None and "compile" not in first["timing"]
    second = convert(QKERAS, output_dir=tmp_path / "p", n=N, engine="csim")
    assert second["cache"] == {"hit": False, "library_reused": False} and second["timing"]["compile"] > 0
    assert set(second["engines"]) == {"csim"} and second["csim"]["engine"] == "csim"
    np.testing.assert_array_equal([r["max_abs_diff"] for r in first["layers"]],
                                  [r["max_abs_diff"] for r in second["layers"]])


def test_layer_the_emulator_does_not_cover_falls_back_to_csim_with_a_note(tmp_path):
    from qkeras import QActivation

    save_model(float_model(extra=QActivation("ternary", name="tern")), tmp_path / "tern.h5")
    report = convert(tmp_path / "tern.h5", output_dir=tmp_path / "p", n=N, engine="emulate")
    assert report["csim"]["engine"] == "csim" and set(report["engines"]) == {"csim"}
    assert "tern" in report["engine_note"] and "C-simulation" in report["engine_note"]
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "tern.h5"), "--output", str(tmp_path / "p"),
                                       "--n", str(N), "--engine", "emulate"])
    note = [line for line in result.output.splitlines() if line.startswith("note: the emulator does not cover")]
    assert result.exit_code == 0 and len(note) == 1 and "tern" in note[0], result.output  # hls4ml's bnbt_tern_scale
