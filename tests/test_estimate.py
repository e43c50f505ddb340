"""Estimator: report parsing on real csynth/Vivado files, and physically monotonic behaviour on small
Keras models converted with hls4ml (no C++ compile)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeml.estimate import compare, devices, estimate
from edgeml.estimate.model import COEFFICIENTS_PATH, csd_digits
from edgeml.estimate.reports import parse_csynth_rpt, parse_csynth_xml, parse_vivado_utilization, read_project_reports


@pytest.fixture(autouse=True)
def _private_config_dir(tmp_path, monkeypatch):
    """A user's calibration must never leak into (or out of) the tests."""
    monkeypatch.setenv("EDGEML_CONFIG_DIR", str(tmp_path / "edgeml-config"))


# ----------------------------------------------------------------------------- real reports

def _gt(shared_dir, case):
    return shared_dir / "ground-truth" / case


def test_csynth_xml_matches_manifest(shared_dir):
    for case in ("A", "I", "O6_cnn_res_rf8_z020"):
        manifest = json.loads((_gt(shared_dir, case) / "manifest.json").read_text())["summary"]["csynth"]
        report = read_project_reports(_gt(shared_dir, case) / "hls4ml_prj")["csynth"]
        assert (report["dsp"], report["lut"], report["ff"], report["bram_18k"]) == (
            manifest["DSP48E"], manifest["LUT"], manifest["FF"], manifest["BRAM_18K"])
        assert (report["latency_min"], report["latency_max"], report["ii"]) == (
            manifest["latency_min"], manifest["latency_max"], manifest["II_max"])


def test_csynth_rpt_and_xml_agree(shared_dir):
    prj = _gt(shared_dir, "K") / "hls4ml_prj"
    xml, rpt = parse_csynth_xml(prj / "myproject_csynth.xml"), parse_csynth_rpt(prj / "myproject_csynth.rpt")
    for key in ("dsp", "lut", "ff", "bram_18k", "latency_min", "latency_max", "ii", "clock_period_ns"):
        assert xml[key] == rpt[key], key
    assert rpt["part"] == "xc7z020-clg400-1" and xml["dsp"] == 73


def test_vitis_report_and_rpt_only_project(shared_dir):
    q = read_project_reports(_gt(shared_dir, "Q_conv1d_vitis2024") / "hls4ml_prj")["csynth"]
    assert q["dsp"] == 467 and q["tool_version"].startswith("2024")
    t1 = read_project_reports(_gt(shared_dir, "T1_tutorial_pruned_cnn") / "hls4ml_prj")  # only a .rpt kept
    assert t1["csynth"]["dsp"] == 5414 and t1["csynth"]["latency_max"] == 1044


def test_vivado_utilization(shared_dir):
    util = parse_vivado_utilization(_gt(shared_dir, "H") / "hls4ml_prj" / "vivado_synth.rpt")
    assert (util["lut"], util["ff"], util["dsp"], util["bram_18k"]) == (47682, 2455, 220, 3)


def test_project_estimate_compares_with_report(shared_dir):
    result = estimate(_gt(shared_dir, "A") / "hls4ml_prj")
    comp = result["comparison"]
    assert comp["dsp"]["report"] == 1450
    assert abs(comp["dsp"]["rel_error"]) < 0.15  # trained weights decide which products use DSPs
    assert abs(comp["latency_max"]["abs_error"]) <= 2
    assert result["report"]["csynth"]["part"].startswith("xcu250")
    assert [layer["name"] for layer in result["layers"]][:2] == ["fc1", "relu1"]


def test_cli_on_project(shared_dir):
    from edgeml.cli import main

    prj = _gt(shared_dir, "J") / "hls4ml_prj"
    out = CliRunner().invoke(main, ["estimate", str(prj), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["comparison"]["dsp"]["report"] == 31 and data["total"]["fits"] is True
    text = CliRunner().invoke(main, ["estimate", str(prj)])
    assert text.exit_code == 0 and "report" in text.output and "xc7z020" in text.output


# ----------------------------------------------------------------------------- offline pieces

def test_csd_digits():
    assert csd_digits(np.array([0, 1, 2, 3, 5, 7, -7, 11, 1024])).tolist() == [0, 1, 1, 2, 2, 2, 2, 3, 1]


def test_coefficients_ship_with_package():
    co = json.loads(COEFFICIENTS_PATH.read_text())
    assert {"lut", "ff", "timing", "dsp", "ranges", "tools"} <= set(co)
    assert co["ranges"]["coverage"] == 0.8 and {"dense", "conv"} <= set(co["ranges"])


def test_device_table():
    for part in ("xcu250-figd2104-2L-e", "xcu200-fsgd2104-2-e", "xcu50-fsvh2104-2-e", "xcvu9p-flga2104-2L-e",
                 "xcvu13p-flga2577-2-e", "xczu9eg-ffvb1156-2-e", "xc7z020clg400-1", "xc7z100-ffg900-2",
                 "xcku115-flvb2104-2-e"):
        info = devices.lookup(part)
        assert info["known"] and info["dsp"] > 0 and info["lut"] > 0, part
    assert devices.lookup("xc7z020clg400-1")["dsp_a_bits"] == 25
    # the trigger boards' parts: Virtex-7 690T (Phase-1 processors), KU15P / VU9P / VU13P (Phase-2 ATCA boards)
    for part, family in (("xc7vx690tffg1927-2", "7series"), ("xcku15p-ffva1760-2-e", "ultrascale+"),
                         ("xcvu7p-flvb2104-2-e", "ultrascale+"), ("xcku060-ffva1156-2-e", "ultrascale")):
        info = devices.lookup(part)
        assert info["known"] and info["family"] == family, part
    # a part the table lacks still gets its family's DSP slice: a Virtex-7 is 7-series, not UltraScale+
    unknown = devices.lookup("xc7vx1140tflg1930-2")
    assert not unknown["known"] and unknown["family"] == "7series" and unknown["dsp_a_bits"] == 25
    assert devices.lookup("xcvu35p-fsvh2892-2-e")["family"] == devices.lookup("xcku11p-ffva1156-2-e")["family"] == \
        "ultrascale+"
    assert devices.lookup("xcvu125-flvc2104-2-e")["family"] == "ultrascale"


def test_cli_rejects_non_model(tmp_path):
    from edgeml.cli import main

    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    out = CliRunner().invoke(main, ["estimate", str(tmp_path)])
    assert out.exit_code == 2 and "hls4ml_config.yml" in out.output


# ----------------------------------------------------------------------------- monotonic behaviour

@pytest.fixture(scope="module")
def tiny_model():
    from tensorflow import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.layers.Dense(16, input_shape=(8,), name="fc1"),
        keras.layers.Activation("relu", name="relu1"),
        keras.layers.Dense(4, name="output"),
        keras.layers.Activation("softmax", name="softmax"),
    ])
    # weights of a trained-like magnitude so most products are real multipliers
    model.set_weights([w * 4 for w in model.get_weights()])
    return model



def test_cli_on_keras_model_leaves_no_project_behind(tiny_model, tmp_path, monkeypatch):
    from edgeml.cli import main

    path = tmp_path / "tiny.h5"
    tiny_model.save(path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    out = CliRunner().invoke(main, ["estimate", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["total"]["dsp"] > 0
    assert list(scratch.iterdir()) == []

def _estimate(model, tmp_path_factory, **hls):
    from edgeml import config as cfgmod
    from edgeml.convert import build_hls_model

    section = cfgmod.validate({"hls": {"Backend": "Vivado", **hls}})["hls"]
    hls_model = build_hls_model(model, section, tmp_path_factory.mktemp("prj"))
    return estimate(hls_model)


def test_reuse_factor_trades_dsp_for_ii(tiny_model, tmp_path_factory):
    rf1 = _estimate(tiny_model, tmp_path_factory, ReuseFactor=1)
    rf8 = _estimate(tiny_model, tmp_path_factory, ReuseFactor=8)
    assert rf8["total"]["dsp"] < rf1["total"]["dsp"]
    assert rf8["total"]["ii"] > rf1["total"]["ii"]
    assert rf8["total"]["latency_max"] > rf1["total"]["latency_max"]
    fc1 = {layer["name"]: layer for layer in rf8["layers"]}["fc1"]
    assert fc1["details"]["multipliers"] == 16  # 128 products / RF 8


def test_more_bits_cost_more(tiny_model, tmp_path_factory):
    narrow = _estimate(tiny_model, tmp_path_factory, Precision="ap_fixed<8,3>")
    wide = _estimate(tiny_model, tmp_path_factory, Precision="ap_fixed<18,8>")
    assert wide["total"]["lut"] > narrow["total"]["lut"]
    assert wide["total"]["ff"] >= narrow["total"]["ff"]
    assert wide["total"]["dsp"] > narrow["total"]["dsp"]


def test_zero_weights_remove_multipliers(tiny_model, tmp_path_factory):
    from tensorflow import keras

    pruned = keras.models.clone_model(tiny_model)
    weights = tiny_model.get_weights()
    kernel = weights[0].copy()
    kernel[:, ::2] = 0.0  # half of fc1's products are by zero
    pruned.set_weights([kernel] + weights[1:])
    dense = _estimate(tiny_model, tmp_path_factory)
    sparse = _estimate(pruned, tmp_path_factory)
    layer = {x["name"]: x for x in sparse["layers"]}["fc1"]
    assert layer["details"]["zero_weights"] >= 64
    assert sparse["total"]["dsp"] < dense["total"]["dsp"]
    assert sparse["total"]["lut"] < dense["total"]["lut"]


def test_output_layout_and_part_capacity(tiny_model, tmp_path_factory):
    result = _estimate(tiny_model, tmp_path_factory, Part="xc7z020clg400-1", ClockPeriod=10)
    total = result["total"]
    for key in ("dsp", "lut", "ff", "bram_18k", "latency_ns", "ii", "latency_max"):
        assert isinstance(total[key], (int, float)), key
    lo, hi = total["dsp_range"]
    assert lo <= total["dsp"] <= hi
    assert total["dsp_pct"] == pytest.approx(100 * total["dsp"] / 220, abs=0.01)
    assert total["fits"] is True and result["part"]["device"] == "xc7z020"
    assert result["layers"][0]["name"] == "fc1" and "latency_max_range" in result["layers"][0]
    assert compare(total, {"dsp": total["dsp"]})["dsp"]["rel_error"] == 0


def test_oversized_design_warns(tiny_model, tmp_path_factory):
    from tensorflow import keras

    keras.utils.set_random_seed(4)
    big = keras.Sequential([keras.layers.Dense(64, input_shape=(64,), name="fc1")])
    big.set_weights([w * 4 for w in big.get_weights()])
    result = _estimate(big, tmp_path_factory, Part="xc7z020clg400-1")
    assert result["total"]["fits"] is False
    assert any("exceeds" in w for w in result["warnings"])


def test_model_graph_and_written_project_agree(tmp_path):
    """The same design read from memory (ModelGraph) and from the firmware hls4ml writes."""
    from tensorflow import keras

    from edgeml import config as cfgmod
    from edgeml.convert import build_hls_model

    keras.utils.set_random_seed(5)
    inp = keras.Input((8,), name="x")
    a = keras.layers.BatchNormalization(name="bn1")(keras.layers.Dense(8, name="fc1")(inp))
    b = keras.layers.Dense(8, name="fc2")(inp)
    out = keras.layers.Activation("relu", name="relu")(keras.layers.Add(name="add")([a, b]))
    model = keras.Model(inp, out)
    model.get_layer("bn1").set_weights([np.linspace(0.5, 2, 8), np.zeros(8), np.zeros(8), np.ones(8)])
    hls_model = build_hls_model(model, cfgmod.defaults()["hls"], tmp_path / "prj")
    in_memory = estimate(hls_model)
    hls_model.write()
    on_disk = estimate(tmp_path / "prj")
    assert [x["kind"] for x in in_memory["layers"]] == ["dense", "dense", "dense", "activation", "activation"]
    for key in ("dsp", "lut", "ff", "bram_18k", "latency_max", "ii"):
        assert in_memory["total"][key] == on_disk["total"][key], key
    assert "comparison" not in on_disk  # no reports in a fresh project
