"""Estimator mechanics against real csynth reports (latency and II per strategy and IOType), the HLS tool
setting, local calibration, bad report files, and the import boundary with the converter.

The latency/II checks use the shipped coefficients, which were fitted on these same ground-truth designs:
they pin the mechanics (II from hls4ml's multiplier allocation, dataflow stream latency), not the
out-of-sample accuracy (that is benchmarks/estimator.py, leave-one-family-out).
"""

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeml.errors import InputError
from edgeml.estimate import calibration, estimate
from edgeml.estimate.reports import parse_csynth_xml, read_project_reports
from edgeml.estimate.tools import parse_tool


@pytest.fixture(autouse=True)
def _private_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEML_CONFIG_DIR", str(tmp_path / "edgeml-config"))


def _prj(shared_dir, case):
    return shared_dir / "ground-truth" / case / "hls4ml_prj"


def _total_and_report(shared_dir, case):
    result = estimate(_prj(shared_dir, case), calibration=False)
    return result["total"], result["report"]["csynth"], result


# ----------------------------------------------------------------------------- latency and II

@pytest.mark.parametrize("case", ["A", "D", "H"])
def test_io_parallel_latency_rf1(shared_dir, case):
    total, report, result = _total_and_report(shared_dir, case)
    assert result["settings"]["strategies"] == ["latency"] and result["settings"]["reuse_factors"] == [1]
    assert total["ii"] == report["ii"] == 1
    assert abs(total["latency_max"] - report["latency_max"]) <= 2


@pytest.mark.parametrize("case", ["I", "J"])
def test_io_parallel_latency_rf_gt_1(shared_dir, case):
    """dense_latency at RF > 1: II = ceil(multiplications left / multiplier_limit), well below RF. The products on
    inputs that pruning made constant, and on outputs nothing uses, are dead code (shipped rule, not fitted)."""
    total, report, result = _total_and_report(shared_dir, case)
    rf = result["settings"]["reuse_factors"][0]
    assert rf > 1 and total["ii"] < rf
    assert total["ii"] == report["ii"]
    assert total["dsp"] == report["dsp"]  # multiplier_limit from the zeros hls4ml declared, not the dead ones
    assert abs(total["latency_max"] - report["latency_max"]) <= 2
    dense = [layer for layer in result["layers"] if layer["kind"] == "dense"]
    assert all(layer["details"]["mul_ops"] <= layer["details"]["nonzero_weights"] for layer in dense)


@pytest.mark.parametrize("case", ["I", "J"])
@pytest.mark.parametrize("digits", [3, 4])
def test_rf_gt_1_ranges_cover_both_multiplier_readings(shared_dir, case, digits):
    """Whichever CSD threshold the coefficients carry, the II/latency ranges cover the csynth values."""
    from edgeml.estimate.model import load_coefficients

    co = load_coefficients()
    co = dict(co, dsp=dict(co["dsp"], rf_mul_digits=digits))
    result = estimate(_prj(shared_dir, case), coefficients=co, calibration=False)
    report = result["report"]["csynth"]
    for k in ("ii", "latency_max"):
        lo, hi = result["total"][f"{k}_range"]
        assert lo <= report[k] <= hi, (k, report[k], lo, hi)


def test_vitis_dense_per_kind_factors_and_extra_cycle(shared_dir):
    """A dense design on Vitis HLS gets the dense Vitis factors and one more cycle (top-level port registers), and
    its ranges hold the published Vitis HLS 2024.1 totals of the tutorial jet tagger (a similar, not identical,
    trained model). Vitis dense designs are in the fitted span now (AK_*, HGQ, KH, IRIS): no widening for the tool."""
    from edgeml.estimate.fit import PUBLISHED_VITIS_DENSE
    from edgeml.estimate.model import load_coefficients

    co = load_coefficients()
    assert set(co["tools"]["vitis"]) >= {"dense", "conv"}
    misses = []
    for point in PUBLISHED_VITIS_DENSE:
        vivado = estimate(_prj(shared_dir, point["like"]), tool="vivado-2019.2", calibration=False)
        vitis = estimate(_prj(shared_dir, point["like"]), tool=point["tool"], calibration=False)
        assert vitis["settings"]["clock_uncertainty"] == 0.27  # hls4ml Vitis default, the published setting
        assert vitis["total"]["latency_max"] >= vivado["total"]["latency_max"] + 1
        assert not any("HLS tool" in r for r in vitis["extrapolation"]["reasons"])
        assert vitis["total"]["lut"] > vivado["total"]["lut"]  # the dense Vitis LUT factor (> 1)
        for k in ("lut", "ff", "latency_max"):
            lo, hi = vitis["total"][f"{k}_range"]
            if not lo <= point[k] <= hi:
                misses.append((point["like"], k, point[k], lo, hi))
    # 80% ranges: at most two of the six published (design, metric) pairs outside (about one expected). A's FF has
    # been out since round 6 (9.4k published against a band from 9.7k: the tree registers cut A's fc2 twice at
    # Vitis's 27% uncertainty); round 11's narrower dense FF band (out-of-family FF error 19.8% -> 11.9%) leaves D's
    # published 3.2k FF 0.4% below its lower edge. Similar, not identical, trained models.
    assert len(misses) <= 2, misses


@pytest.mark.parametrize("case,tolerance", [("O1_cnn_rf1_u50", 0.05), ("Q_conv1d_vitis2024", 0.05),
                                            ("O2_cnn_rf16_u50", 0.2)])
def test_io_stream_latency_strategy(shared_dir, case, tolerance):
    total, report, _ = _total_and_report(shared_dir, case)
    assert abs(total["latency_max"] - report["latency_max"]) <= tolerance * report["latency_max"]
    assert abs(total["ii"] - report["ii"]) <= tolerance * report["ii"]


@pytest.mark.parametrize("case", ["O6_cnn_res_rf8_z020", "O8_cnn_res_rf72_z020"])
def test_io_stream_resource_strategy(shared_dir, case):
    """Resource strategy: the RF loop (PIPELINE II=1 over RF iterations) makes every pixel take ~RF cycles."""
    total, report, result = _total_and_report(shared_dir, case)
    assert result["settings"]["strategies"] == ["resource"]
    assert 0.5 * report["latency_max"] <= total["latency_max"] <= 1.5 * report["latency_max"]


def test_old_hls4ml_resource_conv_has_no_window_copy(shared_dir):
    """hls4ml <= 0.6 (three-argument `product` in parameters.h) inlines the conv kernel as a region: each pixel takes
    RF + the kernel's pipeline depth (csynth U: RF + 11), not RF + n_in as from hls4ml 0.7 on (O6, O8)."""
    from edgeml.estimate.layers import from_firmware

    old = [s for s in from_firmware(_prj(shared_dir, "U_conv_ae_res_rf64")) if s.kind == "conv2d"]
    new = [s for s in from_firmware(_prj(shared_dir, "O6_cnn_res_rf8_z020")) if s.kind == "conv2d"]
    assert old and all(s.inline_kernel for s in old) and not any(s.inline_kernel for s in new)
    total, report, _ = _total_and_report(shared_dir, "U_conv_ae_res_rf64")
    assert abs(total["latency_max"] - report["latency_max"]) <= 0.1 * report["latency_max"]


@pytest.mark.parametrize("rf,n_in,n_out,expected", [
    (1, 32, 10, 0),  # rf 1: the loop runs once, every index is a constant
    (8, 32, 10, 40 * 16),  # rf < n_in: one input multiplexer per multiplier (csynth O6 dense: 40 mux instances)
    (36, 36, 4, 16),  # rf == n_in: every index wraps to the loop counter, one shared multiplexer
    (64, 32, 10, 16 + 10 * 24),  # rf > n_in, a multiple: one input mux, every accumulator selects its product
    (48, 32, 10, 7 * 16 + 10 * 24),  # rf > n_in otherwise: both
])
def test_resource_multiplexers_follow_the_kernel_variant(rf, n_in, n_out, expected):
    import math

    from edgeml.estimate.model import resource_mux_bits

    units = math.ceil(n_in * n_out / rf)
    assert resource_mux_bits(n_in, n_out, rf, units, in_bits=16, acc_bits=24) == expected


@pytest.mark.parametrize("case", ["AK_arrythmia_dsp_rf2", "AK_har_lut_rf2", "AK_mnist_dsp_rf2"])
def test_latency_rf_gt_1_interval_is_never_below_the_layer_depth(shared_dir, case):
    """Few multiplications left for the shared multipliers does not make a dense layer restart every cycle: a layer
    not overlapped restarts after its last cycle, so at RF 2 the interval is 2 (csynth: every module of these)."""
    total, report, result = _total_and_report(shared_dir, case)
    assert result["settings"]["reuse_factors"] == [2]
    assert total["ii"] == report["ii"] == 2
    dense = [layer for layer in result["layers"] if layer["kind"] == "dense"]
    assert any(layer["details"]["mul_ops"] <= layer["details"]["multipliers"] for layer in dense)


def test_resource_registers_do_not_grow_with_reuse_factor():
    """The rewind pipeline holds inputs, outputs and a few values per multiplier: fewer multipliers, fewer registers
    (csynth O6 vs O8 dense: 3848 FF at RF 8, 2253 at RF 64)."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import _mac_layer, load_coefficients

    weights = np.random.default_rng(0).integers(-300, 300, size=(32, 10))
    ff = []
    for rf in (8, 64):
        spec = LayerSpec("fc", "dense", strategy="resource", reuse_factor=rf, n_in=32, n_out=10, weights=weights,
                         weight_type=Fixed(16, 6))
        ff.append(_mac_layer(spec, devices.lookup("xc7z020clg400-1"), 10.0, 8.75, load_coefficients()).features)
    assert ff[1]["ff_rmul"] < ff[0]["ff_rmul"] and ff[1]["ff_rsel"] == ff[0]["ff_rsel"]
    assert ff[0]["ff_rf"] == ff[1]["ff_rf"] == 0
    # the first layer of an io_parallel design reads the top function's input port: no input copies
    first = _mac_layer(spec, devices.lookup("xc7z020clg400-1"), 10.0, 8.75, load_coefficients(), top_input=True)
    assert first.features["ff_rsel"] == ff[1]["ff_rsel"] - 3 * 32 * 16


def test_latency_rf_gt_1_holds_each_product_of_the_shared_multipliers():
    """At RF > 1 a product that goes through the shared multipliers comes out in its own cycle and waits in a register
    for the adder tree; constants with few signed digits are shift-adds, ready at once, and wait nowhere."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import _mac_layer, load_coefficients

    rng = np.random.default_rng(0)
    many_digits = rng.choice([21845, -27307, 13653, -9557], size=(4, 64))  # 6-8 signed digits each
    powers_of_two = rng.choice([-64, 32, 128, -256], size=(4, 64))
    held = {}
    for name, weights in (("many_digits", many_digits), ("powers_of_two", powers_of_two)):
        spec = LayerSpec("fc", "dense", strategy="latency", reuse_factor=16, n_in=4, n_out=64, weights=weights,
                         weight_type=Fixed(16, 6))
        est = _mac_layer(spec, devices.lookup("xc7z020clg400-1"), 10.0, 8.75, load_coefficients())
        held[name] = est.features["ff_hold"]
        assert est.features["ff_rf"] == 0  # a dense layer's waiting products are counted once, here
    assert held["powers_of_two"] == 0 < held["many_digits"]


def test_latency_rf_gt_1_keeps_the_rf1_adders_and_multiplexes_only_shared_units():
    """dense_latency at RF > 1 is the RF 1 circuit with its multiplications shared: where they fit in
    multiplier_limit nothing is multiplexed and the LUT features are RF 1's; where they do not, each shared unit has
    one operand multiplexer, whatever the number of products it serves."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import _mac_layer, load_coefficients

    rng = np.random.default_rng(1)
    # a third dense random 14-bit constants (multiplications), the rest powers of two (shifts): at RF 2 the
    # multiplications fit in multiplier_limit (256), at RF 64 (8) they do not
    weights = np.where(rng.random((16, 32)) < 1 / 3, rng.integers(-2 ** 13, 2 ** 13, size=(16, 32)),
                       2 ** rng.integers(0, 12, size=(16, 32)))
    device, co = devices.lookup("xcu250-figd2104-2L-e"), load_coefficients()
    layers = {}
    for rf in (1, 2, 64):
        spec = LayerSpec("fc", "dense", strategy="latency", reuse_factor=rf, n_in=16, n_out=32, weights=weights,
                         in_type=Fixed(16, 6), weight_type=Fixed(16, 6))
        layers[rf] = _mac_layer(spec, device, 5.0, 4.375, co)
    assert layers[2].features["lut_add"] == layers[64].features["lut_add"] == layers[1].features["lut_add"]
    assert layers[2].features["lut_mux"] == 0 and layers[2].dsp == layers[1].dsp
    units = layers[64].info["multipliers"]
    assert layers[64].dsp == units < layers[1].dsp
    assert layers[64].features["lut_mux"] == units * (16 + 16)


def test_rf2_twin_of_a_design_costs_its_rf1_lut(shared_dir):
    """AK_har at RF 1 and RF 2 (Vitis HLS 2021.1): csynth's Expression LUT is the same in every layer (127,512 and
    127,514 in the first); so is the estimate of every dense layer."""
    rf1 = estimate(_prj(shared_dir, "AK_har_dsp_rf1"), calibration=False)
    rf2 = estimate(_prj(shared_dir, "AK_har_dsp_rf2"), calibration=False)
    assert rf2["settings"]["reuse_factors"] == [2]
    dense = [(a["lut"], b["lut"]) for a, b in zip(rf1["layers"], rf2["layers"]) if a["kind"] == "dense"]
    assert len(dense) == 4 and all(a == b for a, b in dense)


def test_a_repeated_input_constant_pair_is_one_multiplier():
    """HLS computes x * c once for every output that uses it: a layer whose outputs repeat their inputs' constants
    needs the DSPs and shift-add logic of its distinct (input, constant) pairs; the sign makes a pair distinct."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import _mac_layer, load_coefficients

    dsp_constants = np.array([21845, -27307, 13653, -9557, 11051, -18725, 7413, 25941])  # >= 3 signed digits
    distinct = np.stack([np.roll(dsp_constants, i) for i in range(4)])  # 8 different constants per input
    repeated = np.repeat(distinct[:, :2], 4, axis=1)  # 2 per input, each used by 4 outputs
    flipped = repeated * np.where(np.arange(8) % 2, 1, -1)  # the same magnitudes, both signs
    device, co = devices.lookup("xcu250-figd2104-2L-e"), load_coefficients()
    est = {}
    for name, weights in (("distinct", distinct), ("repeated", repeated), ("flipped", flipped)):
        spec = LayerSpec("fc", "dense", n_in=4, n_out=8, weights=weights, in_type=Fixed(16, 6),
                         weight_type=Fixed(16, 6))
        est[name] = _mac_layer(spec, device, 5.0, 4.375, co)
    assert est["distinct"].dsp == 32 and est["repeated"].dsp == 8 and est["flipped"].dsp == 16
    two_digits = np.array([2 ** a + 2 ** b for a in range(1, 9) for b in range(a)][:32]).reshape(4, 8)  # shift-adds
    lut = {}
    for name, weights in (("distinct", two_digits), ("repeated", np.repeat(two_digits[:, :1], 8, axis=1))):
        spec = LayerSpec("fc", "dense", n_in=4, n_out=8, weights=weights, in_type=Fixed(16, 6),
                         weight_type=Fixed(16, 6))
        layer = _mac_layer(spec, device, 5.0, 4.375, co)
        assert layer.dsp == 0
        lut[name] = layer.features["lut_add"]
    assert lut["repeated"] < lut["distinct"]


def test_csynth_dsp_per_layer_is_the_distinct_input_constant_pairs(shared_dir, tmp_path):
    """csynth's DSP count of every RF 1 layer of AK_*_dsp_rf1 (`config_op mul -impl dsp`) and KH_fnn_u55c (Vitis 2022.1,
    no binding) is what the estimate gives: one slice per distinct (input, constant) pair with >= 3 signed digits
    (AK_har_dsp_rf1 fc2: 156, where 227 products have such constants)."""
    from edgeml.estimate import devices
    from edgeml.estimate.fit import load_cases
    from edgeml.estimate.model import estimate_layers, load_coefficients

    names = ["AK_har_dsp_rf1", "AK_jet_tagging_dsp_rf1", "AK_mnist_dsp_rf1", "KH_fnn_u55c"]
    for name in names:
        (tmp_path / name).symlink_to(shared_dir / "ground-truth" / name)
    co = load_coefficients()
    for case in load_cases(tmp_path, quick=True):
        manifest = json.loads((tmp_path / case.id / "manifest.json").read_text())
        reported = {m["layer_guess"]: m["resources"].get("DSP", 0)
                    for m in manifest["reports"]["per_module"] if m["module"].startswith("dense_latency")}
        layers = estimate_layers(case.specs, devices.lookup(case.part), case.clock_ns, case.uncertainty, co, case.tool,
                                 case.mul_impl)
        estimated = {e.name: e.dsp for e in layers if e.name in reported}
        assert estimated == {name: float(dsp) for name, dsp in reported.items()}, case.id


def test_forced_fabric_multipliers_keep_the_registers_of_dsp_ones(shared_dir, tmp_path):
    """`config_op mul -impl fabric` changes where the products are built, not how the pipeline registers them: csynth
    FF of AK_*_lut equals AK_*_dsp within 10% at RF 2 and 100; the estimates agree as closely, and on the FF-heavy
    RF > 1 designs I and J (fewer than half their csynth FF before products were held) within 20%."""
    from edgeml.estimate.fit import load_cases, predict
    from edgeml.estimate.model import load_coefficients

    names = ["AK_arrythmia_dsp_rf2", "AK_arrythmia_lut_rf2", "AK_cardio_dsp_rf100", "AK_cardio_lut_rf100", "I", "J"]
    for name in names:
        (tmp_path / name).symlink_to(shared_dir / "ground-truth" / name)
    cases = {c.id: c for c in load_cases(tmp_path, quick=True)}
    co = load_coefficients()
    ff = {name: predict(cases[name], co)[0]["ff"] for name in names}
    for dataset, rf in (("arrythmia", 2), ("cardio", 100)):
        dsp, lut = ff[f"AK_{dataset}_dsp_rf{rf}"], ff[f"AK_{dataset}_lut_rf{rf}"]
        assert abs(lut - dsp) <= 0.1 * dsp, (dataset, lut, dsp)
    for name in ("I", "J"):
        assert abs(ff[name] - cases[name].report["ff"]) <= 0.2 * cases[name].report["ff"], (name, ff[name])


def test_forced_fabric_softmax_costs_its_lut_multipliers(shared_dir, tmp_path):
    """Under `config_op mul -impl fabric` the softmax's exp x 1/sum products are 18 x 18 LUT multipliers: csynth's
    softmax module of AK_*_lut costs 366 LUT per class more than its AK_*_dsp twin's; so does the estimate."""
    from edgeml.estimate.model import load_coefficients

    co = load_coefficients()
    names = ["AK_cardio_dsp_rf1", "AK_cardio_lut_rf1", "AK_har_dsp_rf1", "AK_har_lut_rf1"]
    softmax = {case.id: (sum(co["lut"].get(k, 0) * v for k, v in est.features.items()), module["lut"], est.dsp)
               for case, est, module in _estimated_modules(shared_dir, tmp_path, names) if est.kind == "softmax"}
    for dataset in ("cardio", "har"):
        (dsp_est, dsp_csynth, dsp_slices), (lut_est, lut_csynth, lut_slices) = (
            softmax[f"AK_{dataset}_{binding}_rf1"] for binding in ("dsp", "lut"))
        assert lut_slices == 0 < dsp_slices
        assert abs((lut_est - dsp_est) - (lut_csynth - dsp_csynth)) <= 0.05 * (lut_csynth - dsp_csynth)


def test_softmax_registers_follow_classes_and_stages(shared_dir, tmp_path):
    """A softmax holds about one table word per class and pipeline stage: csynth's softmax module FF of A (5 classes,
    4 cycles: 236) and of AK_* (3-16 classes, 12-20 cycles: 608-3,798) within 35%; before round 15 the estimate had
    no softmax registers (54 and 36-195)."""
    from edgeml.estimate.model import load_coefficients

    co = load_coefficients()
    names = ["A", "AK_arrythmia_dsp_rf1", "AK_cardio_dsp_rf1", "AK_har_dsp_rf1"]
    softmaxes = [(case, est, module) for case, est, module in _estimated_modules(shared_dir, tmp_path, names)
                 if est.kind == "softmax"]
    assert len(softmaxes) == len(names)
    for case, est, module in softmaxes:
        ff = sum(co["ff"].get(k, 0) * v for k, v in est.features.items())
        assert abs(ff - module["ff"]) <= 0.35 * module["ff"], (case.id, ff)


def test_vitis_conv_is_not_pipelined_per_pixel(shared_dir):
    """The same design estimated for Vivado HLS (pixel loop pipelined) and Vitis HLS (pragma in an if: ignored)."""
    prj = _prj(shared_dir, "Q_conv1d_vitis2024")
    vitis = estimate(prj, calibration=False)
    vivado = estimate(prj, tool="vivado-2020.1", calibration=False)
    assert vitis["settings"]["tool"] == "vitis-2024.1" and vivado["settings"]["tool"] == "vivado-2020.1"
    assert vitis["total"]["latency_max"] > 2 * vivado["total"]["latency_max"]
    assert "vitis-2024.1" in vitis["predicts"]


# ----------------------------------------------------------------------------- tool setting

def test_parse_tool():
    assert parse_tool(None)["kind"] == "vitis"
    assert parse_tool("Vitis HLS 2022.2") == {"kind": "vitis", "version": "2022.2", "name": "vitis-2022.2"}
    assert parse_tool("2019.2.1")["name"] == "vivado-2019.2"
    assert parse_tool("vivado-2020.1")["kind"] == "vivado"
    for bad in ("quartus-21.1", "vivado-2022.2", "hls"):
        with pytest.raises(InputError):
            parse_tool(bad)


def test_cli_rejects_unknown_tool(shared_dir):
    from edgeml.cli import main

    out = CliRunner().invoke(main, ["estimate", str(_prj(shared_dir, "J")), "--tool", "quartus-21"])
    assert out.exit_code == 2 and "unknown HLS tool" in out.output and "Traceback" not in out.output


# ----------------------------------------------------------------------------- local calibration

def test_calibration_round_trip(shared_dir):
    from edgeml.cli import main

    prj = _prj(shared_dir, "J")
    before = estimate(prj)
    assert before["calibration"] is None
    runner = CliRunner()
    out = runner.invoke(main, ["estimate", "--calibrate", str(prj)])
    assert out.exit_code == 0, out.output
    assert calibration.calibration_path().is_file()
    after = estimate(prj)
    assert after["calibration"]["designs"] == 1
    for k in ("lut", "ff", "latency_max", "ii"):
        rep = after["report"]["csynth"][k]
        assert abs(after["total"][k] - rep) <= abs(before["total"][k] - rep), k
    assert abs(after["total"]["lut"] - after["report"]["csynth"]["lut"]) < abs(before["total"]["lut"] - after["report"]["csynth"]["lut"])
    text = runner.invoke(main, ["estimate", str(prj)])
    assert "calibrated from 1 designs" in text.output
    ignored = runner.invoke(main, ["estimate", str(prj), "--no-calibration", "--json"])
    assert json.loads(ignored.output)["total"]["lut"] == before["total"]["lut"]
    # a conv design is not corrected by a dense calibration
    assert estimate(_prj(shared_dir, "O1_cnn_rf1_u50"))["calibration"] is None
    reset = runner.invoke(main, ["estimate", "--calibrate", "--reset"])
    assert reset.exit_code == 0 and "removed" in reset.output
    restored = estimate(prj)
    assert restored["calibration"] is None and restored["total"] == before["total"]


def test_garbled_calibration_file_is_ignored_with_a_warning(shared_dir):
    path = calibration.calibration_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"designs": {"x": ')  # truncated by a crash
    result = estimate(_prj(shared_dir, "J"))
    assert result["calibration"] is None and any("calibration ignored" in w for w in result["warnings"])


# ----------------------------------------------------------------------------- bad report files

def _copy_project(shared_dir, case, dest):
    src = _prj(shared_dir, case)
    shutil.copytree(src / "firmware", dest / "firmware")
    shutil.copy(src / "hls4ml_config.yml", dest / "hls4ml_config.yml")
    report = next(src.glob("*_prj/solution1/syn/report/myproject_csynth.xml"))
    target = dest / "myproject_prj" / "solution1" / "syn" / "report" / "myproject_csynth.xml"
    target.parent.mkdir(parents=True)
    shutil.copy(report, target)
    return target


def _cli_error(args):
    from edgeml.cli import main

    out = CliRunner().invoke(main, args)
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in out.output
    return lines[0]


def test_truncated_report(shared_dir, tmp_path):
    xml = _copy_project(shared_dir, "J", tmp_path / "prj")
    xml.write_text(xml.read_text()[:500])
    assert "not a readable csynth XML" in _cli_error(["estimate", "--calibrate", str(tmp_path / "prj")])
    assert "not a readable csynth XML" in _cli_error(["estimate", str(tmp_path / "prj")])


def test_report_from_unknown_tool(shared_dir, tmp_path):
    xml = _copy_project(shared_dir, "J", tmp_path / "prj")
    xml.write_text(xml.read_text().replace("<Version>2020.1</Version>", "<Version>21.3 Quartus</Version>"))
    assert "unknown tool" in _cli_error(["estimate", "--calibrate", str(tmp_path / "prj")])
    other = tmp_path / "other.xml"
    other.write_text("<report><ReportVersion><Version>2020.1</Version></ReportVersion></report>")
    with pytest.raises(InputError, match="unknown tool"):
        parse_csynth_xml(other)


def test_folder_without_reports(shared_dir, tmp_path):
    xml = _copy_project(shared_dir, "J", tmp_path / "prj")
    xml.unlink()
    assert read_project_reports(tmp_path / "prj") is None
    assert "no csynth report" in _cli_error(["estimate", "--calibrate", str(tmp_path / "prj")])
    assert "--calibrate needs" in _cli_error(["estimate", "--calibrate"])


# ----------------------------------------------------------------------------- import boundary and speed

def test_estimator_imports_nothing_from_the_converter(shared_dir):
    code = ("import sys; from edgeml.estimate import estimate; "
            f"estimate({str(_prj(shared_dir, 'A'))!r}, calibration=False); "
            "bad = [m for m in sys.modules if m.startswith(('edgeml.convert', 'edgeml.firmware', 'tensorflow', 'hls4ml'))]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_keras_model_needs_a_builder(tmp_path):
    with pytest.raises(InputError, match="converted first"):
        estimate(_FakeKeras())
    model_file = tmp_path / "model.h5"
    model_file.write_bytes(b"")
    with pytest.raises(InputError, match="converted first"):
        estimate(model_file)


class _FakeKeras:
    """Quacks like a Keras model for the dispatch in estimate() (no TensorFlow needed)."""

    layers: list = []

    def predict(self, x):
        return x


# ----------------------------------------------------------------------------- dead products, fitted span

def test_dead_products_of_a_pruned_chain_are_removed():
    import numpy as np

    from edgeml.estimate.layers import LayerSpec
    from edgeml.estimate.model import effective_specs

    w1 = np.array([[3, 0, 5], [7, 0, 0]])  # output 1 has no weight: a constant
    w2 = np.array([[9, 11], [13, 15], [0, 0]])  # output 2 of the first layer is never used
    specs = [LayerSpec("fc1", "dense", n_in=2, n_out=3, weights=w1),
             LayerSpec("relu1", "activation", n_in=3, activation="relu"),
             LayerSpec("fc2", "dense", n_in=3, n_out=2, weights=w2)]
    fc1, _, fc2 = effective_specs(specs)
    assert fc1.weights.tolist() == [[3, 0, 0], [7, 0, 0]] and fc1.declared_zeros == 3
    assert fc2.weights.tolist() == [[9, 11], [0, 0], [0, 0]] and fc2.declared_zeros == 2
    assert specs[0].weights is w1  # the caller's specs are untouched


def test_boundary_registers_hold_only_the_values_a_later_layer_reads():
    """io_parallel layer boundaries register what a product downstream reads: an input with an all-zero weight
    row (pruned, or quantised to zero width by HGQ) and the activations that carry only it get no register."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import estimate_layers, load_coefficients, read_shares

    rng = np.random.default_rng(3)
    w1 = rng.integers(1, 50, size=(8, 16))
    w2 = rng.integers(1, 50, size=(16, 4))

    def design(w1, w2):
        t = Fixed(12, 4)
        return [LayerSpec("fc1", "dense", n_in=8, n_out=16, weights=w1, in_type=t, result_type=t, accum_type=t),
                LayerSpec("relu1", "activation", n_in=16, activation="relu", in_type=t, result_type=t),
                LayerSpec("fc2", "dense", n_in=16, n_out=4, weights=w2, in_type=t, result_type=t, accum_type=t)]

    def boundary_bits(specs):
        layers = estimate_layers(specs, devices.lookup("xcu250-figd2104-2L-e"), 5.0, 0.27, load_coefficients())
        return sum(e.features.get("par.ff_io", 0.0) for e in layers)

    half_read = w2.copy()
    half_read[8:] = 0  # fc2 reads fc1's first 8 outputs only
    half_input = w1.copy()
    half_input[4:] = 0  # fc1 reads the first 4 inputs only
    assert read_shares(design(w1, half_read)) == [1.0, 0.5, 0.5, 1.0]
    assert read_shares(design(half_input, w2)) == [0.5, 1.0, 1.0, 1.0]
    shared = design(w1, half_read)
    shared[2].reuse_factor = 4  # its loop indexes the input array: HLS keeps every element
    assert read_shares(shared) == [1.0, 1.0, 1.0, 1.0]
    full = boundary_bits(design(w1, w2))
    assert boundary_bits(design(w1, half_read)) < full
    assert boundary_bits(design(half_input, w2)) < full


def test_ranges_widen_outside_the_fitted_span():
    from edgeml.estimate import _with_ranges, domain

    fitted = domain.span([{"rf": 1, "bits": [16, 16], "macs": 1000, "tool": "vivado", "device_family": "7series",
                           "strategy": ["latency"], "io_type": "io_parallel"}])
    inside = {"rf": 1, "bits": [16, 16], "macs": 1500, "tool": "vivado", "device_family": "7series",
              "strategy": ["latency"], "io_type": "io_parallel"}
    assert domain.outside(inside, fitted) == []
    reasons = domain.outside(dict(inside, rf=64, tool="vitis"), fitted)
    assert len(reasons) == 2 and "ReuseFactor 64" in reasons[0]
    values = {"dsp": 100, "lut": 1000, "ff": 1000, "bram_18k": 0, "uram": 0, "latency_min": 10, "latency_max": 10,
              "ii": 1}
    ranges = {"lut": {"ratio": [0.8, 1.25]}, "latency_max": {"cycles": [-2, 2]}}
    narrow, wide = _with_ranges(values, ranges), _with_ranges(values, ranges, domain.widening(reasons))
    assert wide["lut_range"][0] < narrow["lut_range"][0] and wide["lut_range"][1] > narrow["lut_range"][1]
    assert wide["latency_max_range"] == [6, 14] and narrow["latency_max_range"] == [8, 12]


def test_one_large_exact_family_does_not_make_a_band_zero_wide():
    """Bands come from out-of-family residuals with each family weighing one: 35 exact designs of one family and
    eight families off by 5-40% give a band set by the families, where counting designs would give a zero-wide one."""
    from edgeml.estimate.fit import ranges_from

    def row(i, group, ratio):
        report = {"dsp": 100.0, "lut": 1000.0, "ff": 1000.0, "bram_18k": 0.0, "latency_max": 10, "ii": 1}
        return {"id": f"d{i}", "family": "dense", "group": group, "range_widening": 1.0, "report": report,
                "estimate": dict(report, dsp=100.0 * ratio)}

    rows = [row(i, "big", 1.0) for i in range(35)]
    rows += [row(100 + k, f"small{k}", 1.0 + e) for k, e in enumerate([0.05, 0.1, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4])]
    low, high = ranges_from(rows)["dense"]["dsp"]["ratio"]
    assert 0.75 < low < 0.95 and 1.05 < high < 1.35
    assert ranges_from(rows[:35])["dense"]["dsp"]["ratio"] == [1.0, 1.0]  # one family alone: its own spread


# ----------------------------------------------------------------------------- adder widths, saturation, FIFOs

def _dense_layer(weights, accum="ap_fixed<16,6>", io_type="io_parallel", tool="vivado"):
    """One dense layer of integer weights (as ap_fixed<16,6> constants) estimated on xcu250 at 5 ns: (totals, layer)."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import LayerSpec, parse_type
    from edgeml.estimate.model import combine, estimate_layers, load_coefficients

    w = np.asarray(weights)
    spec = LayerSpec("fc1", "dense", io_type=io_type, n_in=w.shape[0], n_out=w.shape[1], weights=w,
                     weight_type=parse_type("ap_fixed<16,6>"), accum_type=parse_type(accum))
    co = load_coefficients()
    layers = estimate_layers([spec], devices.lookup("xcu250-figd2104-2L-e"), 5.0, 0.125, co, tool)
    return combine([spec], layers, 5.0, co, tool), layers[0]


def test_small_weights_make_narrow_adders():
    """The same constants divided by 2^4 keep their multipliers (same CSD digits) but their products, truncated to
    accum_t, are 4 bits narrower: fewer adder LUT."""
    import numpy as np

    big = np.random.default_rng(0).integers(20, 60, size=(16, 8)) * 16  # |w| < 1: products near accum_t width
    (wide, _), (narrow, _) = _dense_layer(big), _dense_layer(big // 16)
    assert narrow["dsp"] == wide["dsp"] > 0
    assert narrow["lut"] < 0.9 * wide["lut"]


def test_saturating_accumulator_costs_logic_not_multipliers():
    import numpy as np

    w = np.random.default_rng(1).integers(100, 900, size=(16, 8))
    (plain, _), (saturating, _) = _dense_layer(w), _dense_layer(w, accum="ap_fixed<16,6,AP_RND,AP_SAT>")
    assert saturating["dsp"] == plain["dsp"]
    assert saturating["lut"] > 1.5 * plain["lut"]


def test_io_stream_fifos_are_counted_one_pixel_wide():
    """The first stream layer reads the input FIFO (16 values) and writes its own (8 values), 16 bits each."""
    import numpy as np

    w = np.random.default_rng(2).integers(100, 900, size=(16, 8))
    _, parallel = _dense_layer(w)
    _, stream = _dense_layer(w, io_type="io_stream")
    assert stream.features["str.lut_fifo"] == stream.features["str.ff_fifo"] == (16 + 8) * 16
    assert not any(k.endswith("_fifo") and v for k, v in parallel.features.items())


def test_vitis_stream_fifos_register_the_packed_word():
    """Vitis HLS keeps a stream's packed word in one FIFO and registers it (2 FF per bit, counted, not fitted); Vivado
    HLS's per-element FIFOs keep their data in shift registers (the fitted str.ff_fifo): same bits, more FF."""
    import numpy as np

    from edgeml.estimate.fit import MEASURED

    w = np.random.default_rng(2).integers(100, 900, size=(16, 8))
    _, vivado = _dense_layer(w, io_type="io_stream")
    _, vitis = _dense_layer(w, io_type="io_stream", tool="vitis")
    assert vitis.features["str.ff_wfifo"] == vivado.features["str.ff_fifo"] == (16 + 8) * 16
    assert not vitis.features.get("str.ff_fifo") and not vivado.features.get("str.ff_wfifo")
    assert vitis.features["str.lut_fifo"] == vivado.features["str.lut_fifo"]
    assert MEASURED["str.ff_wfifo"] == 2.0


def test_pipeline_registers_follow_what_is_live_at_each_clock_edge():
    """dense_latency's adder trees are cut where clock edges fall: no edge, no register; an edge before the products
    are ready holds every product; an edge near the root one partial sum per output. So the same tree cut at a short
    clock (many edges, early in the tree) holds far more register bits than at a long clock (one edge near the root)."""
    from edgeml.estimate.model import tree_register_bits

    # 16 terms per output, 64 outputs, 12-bit products, 16-bit accum_t, products ready at 2 ns, 0.5 ns per level
    args = dict(terms=16, n_out=64, product_bits=12.0, acc_bits=16, t_products=2.0, t_level=0.5)
    assert tree_register_bits(**args, clock_eff=5.0, cycles=0) == 0
    # one edge at 3.9 ns: level 3 done, 2 partial sums of 15 bits per output
    assert tree_register_bits(**args, clock_eff=3.9, cycles=1) == 64 * 2 * 15
    # edges at 1 ns (products in flight: 16 x 12 bits), 2 ns (level 0), 3 ns (level 2: 4 x 14 bits)
    assert tree_register_bits(**args, clock_eff=1.0, cycles=3) == 64 * (16 * 12 + 16 * 12 + 4 * 14)
    deep = tree_register_bits(**args, clock_eff=1.0, cycles=3)
    shallow = tree_register_bits(**args, clock_eff=3.9, cycles=1)
    assert deep > 5 * shallow


def test_short_clock_layer_holds_more_registers_than_a_long_clock_one():
    """The same dense layer at 3.33 ns on a 7-series part pipelines deeper than at 10 ns on UltraScale+, and its
    estimated FF (the tree registers, not only the boundary) grows with it."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import LayerSpec, parse_type
    from edgeml.estimate.model import combine, estimate_layers, load_coefficients

    w = np.random.default_rng(3).integers(100, 900, size=(32, 16))
    spec = LayerSpec("fc1", "dense", n_in=32, n_out=16, weights=w, weight_type=parse_type("ap_fixed<16,6>"),
                     accum_type=parse_type("ap_fixed<16,6>"))
    co = load_coefficients()
    fast = estimate_layers([spec], devices.lookup("xc7z007s-clg225-2"), 3.33, 0.27, co)
    slow = estimate_layers([spec], devices.lookup("xcu250-figd2104-2L-e"), 10.0, 0.125, co)
    assert fast[0].cycles > slow[0].cycles
    assert fast[0].features["mac.ff_pipe"] > 2 * slow[0].features["mac.ff_pipe"]
    assert combine([spec], fast, 3.33, co)["ff"] > combine([spec], slow, 10.0, co)["ff"]


def test_adder_delay_follows_the_products_width():
    """HLS sizes each adder to its operands: the same products in a 24-bit accum_t add in chains as short as in a
    16-bit one, so the layer does not pipeline deeper just because accum_t is wider."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import LayerSpec, parse_type
    from edgeml.estimate.model import estimate_layers, load_coefficients

    def cycles(accum):  # same fraction bits, so the same products; only accum_t's integer bits differ
        spec = LayerSpec("fc1", "dense", n_in=128, n_out=16, weights=w, weight_type=parse_type("ap_fixed<16,6>"),
                         accum_type=parse_type(accum))
        return estimate_layers([spec], devices.lookup("xc7z007s-clg225-2"), 3.33, 0.27, load_coefficients())[0].cycles

    w = np.random.default_rng(4).integers(1, 8, size=(128, 16))  # few-bit constants: narrow products
    assert cycles("ap_fixed<24,14>") == cycles("ap_fixed<16,6>") > 1


@pytest.mark.parametrize("n_in,rf,units,expected", [
    (784, 392, 8, 3 * 391 * 16),  # csynth PK_suits dense at RF 392: 1172 16-bit selects (18752 LUT)
    (784, 196, 16, 5 * 195 * 16),  # RF 196: 15957 LUT of expressions
    (784, 784, 13, 0),  # RF == n_in: one index for all multipliers, no chain (PK_rank: 927 LUT of expressions)
    (32, 64, 5, 0),  # RF > n_in
    (32, 1, 320, 0),  # RF 1: constants
])
def test_resource_select_chains_follow_the_distinct_input_offsets(n_in, rf, units, expected):
    from edgeml.estimate.model import select_chain_bits

    assert select_chain_bits(n_in, rf, units, 16) == expected


def test_resource_kernel_prices_its_rewind_multiplexers_except_inlined_old_kernels():
    """Every input of a dense_resource kernel passes a rewind multiplexer (hls4ml >= 0.7); hls4ml <= 0.6's inlined
    kernel has none. The large-fan-in design that was 5-9x low (PK_suits: 784 inputs) now lands near csynth."""
    import dataclasses

    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import _mac_layer, load_coefficients

    weights = np.random.default_rng(0).integers(-300, 300, size=(784, 4))
    spec = LayerSpec("fc", "dense", io_type="io_stream", strategy="resource", reuse_factor=392, n_in=784, n_out=4,
                     weights=weights, weight_type=Fixed(16, 6))
    args = (devices.lookup("xczu5ev-sfvc784-2LV-e"), 5.0, 4.375, load_coefficients())
    new, old = _mac_layer(spec, *args), _mac_layer(dataclasses.replace(spec, inline_kernel=True), *args)
    assert new.features["lut_rin"] == 784 * 16 and new.features["lut_rchain"] == 3 * 391 * 16
    assert old.features["lut_rin"] == old.features["lut_rchain"] == 0


def test_suits_resource_dense_lut_near_csynth(shared_dir):
    total, report, _ = _total_and_report(shared_dir, "PK_suits_zu5ev_rf196")
    assert 0.6 * report["lut"] <= total["lut"] <= 1.5 * report["lut"]


def test_io_parallel_resource_designs_are_dataflow_with_fifo_channels():
    """hls4ml's SetPipelineStyle puts an io_parallel design with any Resource layer under DATAFLOW: its layer outputs
    become FIFO channels (the io_stream FIFO coefficient), not pipeline boundary registers."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import estimate_layers, load_coefficients, parallel_dataflow

    w = np.random.default_rng(5).integers(-300, 300, size=(16, 8))

    def layers(strategy):
        spec = LayerSpec("fc", "dense", strategy=strategy, reuse_factor=1 if strategy == "latency" else 16, n_in=16,
                         n_out=8, weights=w, weight_type=Fixed(16, 6))
        relu = LayerSpec("relu", "activation", activation="relu", n_in=8, n_out=8)
        specs = [spec, relu]
        return specs, estimate_layers(specs, devices.lookup("xc7z020-clg400-1"), 5.0, 0.125, load_coefficients())

    specs, dataflow = layers("resource")
    assert parallel_dataflow(specs)
    # the dense output feeding the relu is 8 channels of 16 bits; the top's input and the relu's output are ports
    assert dataflow[0].features["str.lut_fifo"] == dataflow[0].features["str.ff_fifo"] == 8 * 16
    assert not dataflow[1].features.get("str.lut_fifo")
    assert not dataflow[0].features.get("par.ff_io") and not dataflow[1].features.get("par.ff_io")
    specs, pipeline = layers("latency")
    assert not parallel_dataflow(specs) and not pipeline[0].features.get("str.lut_fifo")
    assert pipeline[0].features["par.ff_io"] > 0


@pytest.mark.parametrize("words, bits, expected", [
    (512, 448, 13),  # 512 x 36 blocks: 13 columns (wa-hls4ml 128x224 8-bit at RF 512: 14 = 13 + the index table)
    (1024, 448, 25),  # 1K x 18 blocks at twice the depth, not 13 36-bit columns (256x224 8-bit at RF 1024: 26)
    (768, 448, 25),  # a depth between 512 and 1024 takes the 1K x 18 shape
    (384, 64, 2),
    (4096, 4, 1),  # deep and narrow: one 4K x 4 block
])
def test_rom_takes_the_bram_shape_with_fewest_blocks(words, bits, expected):
    from edgeml.estimate.model import rom_brams

    assert rom_brams(words, bits) == expected


@pytest.mark.parametrize("n_in, rf, expected", [
    (32, 512, 1),  # outidx[512] of 4-bit values: 2 Kb, a BRAM
    (128, 512, 1),  # 512 x 2 bits = 1 Kb: a BRAM
    (96, 384, 0),  # 384 x 2 bits: LUTs
    (256, 512, 0),  # RF = 2 n_in: 512 one-bit values
    (160, 480, 0),  # 480 x 2 bits
    (96, 480, 1),  # 480 x 3 bits
    (32, 16, 0),  # RF <= n_in: no output-index table
    (64, 96, 0),  # RF > n_in but not a multiple: the other kernel variant
])
def test_resource_output_index_table_goes_to_bram_from_1kb(n_in, rf, expected):
    from edgeml.estimate.model import index_table_brams

    assert index_table_brams(n_in, rf) == expected


@pytest.mark.parametrize("n_in, n_out, rf, units, expected", [
    (128, 224, 512, 56, 56 * 224 * 16),  # RF = 4 n_in: every multiplier reaches every accumulator
    (160, 192, 480, 64, 64 * 192 * 16),  # RF = 3 n_in
    (224, 224, 448, 112, 0),  # RF = 2 n_in: a one-bit index, two accumulators per multiplier
    (784, 13, 784, 13, 0),  # RF == n_in
    (32, 10, 8, 40, 0),  # RF < n_in
    (64, 32, 96, 22, 0),  # RF > n_in, not a multiple
])
def test_resource_accumulator_crossbar_from_three_times_n_in(n_in, n_out, rf, units, expected):
    from edgeml.estimate.model import accumulator_crossbar_bits

    assert accumulator_crossbar_bits(n_in, n_out, rf, units, 16) == expected


def test_resource_single_layer_bram_and_lut_follow_the_rom_and_crossbar():
    """A wa-hls4ml-like Resource single layer (Vivado HLS 2020.1, xcu250): BRAM from the RF-deep weight ROM's shape plus
    the output-index table, and LUT growing with the crossbar once RF >= 3 n_in."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import _mac_layer, load_coefficients

    w = np.random.default_rng(3).integers(-100, 100, size=(256, 224))
    args = (devices.lookup("xcu250-figd2104-2L-e"), 5.0, 4.375, load_coefficients())

    def layer(rf):
        return _mac_layer(LayerSpec("fc", "dense", strategy="resource", reuse_factor=rf, n_in=256, n_out=224,
                                    weights=w, weight_type=Fixed(8, 1)), *args)

    assert layer(1024).bram_18k == 25 + 1  # csynth: 26
    assert layer(512).bram_18k == 25  # RF = 2 n_in: 512 x (112 x 8) in 512 x 36 blocks, no index table
    assert layer(1024).features["lut_xbar"] == 56 * 224 * 16 and layer(512).features["lut_xbar"] == 0


def test_vitis_2021_copies_the_softmax_exp_table_per_read():
    """Vitis HLS 2021.1 builds n - 1 copies of softmax's exp table for n classes (AK_*: 9 BRAM_18K for 10 classes);
    Vivado HLS and Vitis HLS 2024.1 pair the reads on the dual ports (ceil(n / 2))."""
    from edgeml.estimate import devices
    from edgeml.estimate.layers import LayerSpec
    from edgeml.estimate.model import estimate_layers, load_coefficients

    spec = LayerSpec("softmax", "softmax", n_in=10, n_out=10)
    device, co = devices.lookup("xc7z007s-clg225-2"), load_coefficients()

    def brams(tool):
        return estimate_layers([spec], device, 5.0, 0.27, co, tool)[0].bram_18k

    assert brams("vitis-2021.1") == 9 + 1
    assert brams("vivado-2019.2") == brams("vitis-2024.1") == 5 + 1


@pytest.mark.parametrize("case", ["AK_mnist_dsp_rf1", "AK_arrythmia_lut_rf2", "AK_jet_tagging_dsp_rf1"])
def test_vitis_2021_softmax_brams_match_csynth(shared_dir, case):
    total, report, _ = _total_and_report(shared_dir, case)
    assert total["bram_18k"] == report["bram_18k"]


def test_fabric_bound_softmax_is_shorter_than_dsp_bound():
    """`config_op mul -impl fabric`: softmax's 18 x 18 product is a LUT multiplier registered once instead of a DSP with
    its three pipeline registers (AK_*_lut softmax modules 2-3 cycles shorter than AK_*_dsp)."""
    from edgeml.estimate import devices
    from edgeml.estimate.layers import LayerSpec
    from edgeml.estimate.model import FABRIC_SOFTMAX_CYCLES, estimate_layers, load_coefficients

    spec = LayerSpec("softmax", "softmax", n_in=5, n_out=5)
    device, co = devices.lookup("xc7z007s-clg225-2"), load_coefficients()

    def cycles(mul_impl):
        return estimate_layers([spec], device, 3.33, 0.27, co, "vitis-2021.1", mul_impl)[0].cycles

    assert cycles("dsp") == cycles(None) == cycles("fabric") + FABRIC_SOFTMAX_CYCLES


def test_stream_activation_registers_follow_the_clock():
    """An io_stream ReLU holds its pixel's bits times the cuts in its path: a slow part at a short clock more than a
    fast part at a long one (csynth: xc7z020 at 5 ns 2.1 FF per pixel bit, xcu50 at 25 ns 0.1)."""
    from edgeml.estimate import devices
    from edgeml.estimate.layers import LayerSpec
    from edgeml.estimate.model import estimate_layers, load_coefficients

    spec = LayerSpec("relu", "activation", activation="relu", io_type="io_stream", n_in=64, n_out=64, n_chan=4)
    co = load_coefficients()

    def elem(part, clock):
        return estimate_layers([spec], devices.lookup(part), clock, 0.125, co)[0].features["str.ff_elem"]

    assert elem("xc7z020-clg400-1", 5.0) == pytest.approx(2 * elem("xc7z020-clg400-1", 10.0))
    assert elem("xc7z020-clg400-1", 10.0) > 5 * elem("xcu50-fsvh2104-2-e", 25.0) > 0


# ----------------------------------------------------------------------------- timing warnings

def _timing_warnings_of(in_type, weights, weight_type, rf=1, part="xc7z020clg400-1", clock=5.0):
    import numpy as np

    from edgeml.estimate import estimate_specs
    from edgeml.estimate.layers import LayerSpec, parse_type

    w = np.asarray(weights)
    spec = LayerSpec("fc1", "dense", reuse_factor=rf, n_in=w.shape[0], n_out=w.shape[1], weights=w,
                     in_type=parse_type(in_type), weight_type=parse_type(weight_type),
                     accum_type=parse_type("ap_fixed<24,10>"), result_type=parse_type("ap_fixed<16,6>"))
    result = estimate_specs([spec], part, clock, tool="vivado-2020.1", calibration=False)
    return [w for w in result["warnings"] if "fc1" in w], result["timing_risk"]


def test_timing_warnings_follow_what_hls_can_pipeline():
    """On a 7-series part at 5 ns a multiply-add is slower than the clock. Products bound to LUTs are one
    combinational operation (csynth missed timing on every such ground-truth design): 'will likely fail'. DSP-bound
    products are pipelined inside the slice, so RF 1 closes (no warning); shared multipliers behind the RF
    multiplexer sometimes do not: 'may fail'. A fast part at the same clock warns about none of them."""
    import numpy as np

    rng = np.random.default_rng(4)
    many_digits = rng.choice([85, -107, 91, -75, 109, 77], size=(16, 8))  # 8-bit constants of 4-5 signed digits
    wide = rng.integers(5000, 30000, size=(16, 8)) * rng.choice([-1, 1], size=(16, 8))
    lut, risk = _timing_warnings_of("ap_fixed<8,3>", many_digits, "ap_fixed<8,3>")
    assert len(lut) == 1 and "will likely fail" in lut[0] and "LUTs" in lut[0] and risk == "likely_fail"
    assert _timing_warnings_of("ap_fixed<16,6>", wide, "ap_fixed<16,6>") == ([], None)
    shared, risk = _timing_warnings_of("ap_fixed<16,6>", wide, "ap_fixed<16,6>", rf=2)
    assert len(shared) == 1 and "may fail" in shared[0] and risk == "may_fail"
    fast = _timing_warnings_of("ap_fixed<8,3>", many_digits, "ap_fixed<8,3>", part="xcu250-figd2104-2L-e")
    assert fast == ([], None)


def _estimated_modules(shared_dir, tmp_path, names):
    """(case, estimated layer, csynth module {latency, lut, ff}) for every layer of ``names`` that csynth reports
    alone."""
    from edgeml.estimate import devices
    from edgeml.estimate.fit import load_cases
    from edgeml.estimate.model import estimate_layers, load_coefficients

    for name in names:
        (tmp_path / name).symlink_to(shared_dir / "ground-truth" / name)
    co = load_coefficients()
    for case in load_cases(tmp_path, quick=True):
        layers = estimate_layers(case.specs, devices.lookup(case.part), case.clock_ns, case.uncertainty, co, case.tool,
                                 case.mul_impl)
        for est in layers:
            module = (case.modules or {}).get(est.name)
            if module is not None:
                yield case, est, module


def _module_cycles(shared_dir, tmp_path, names):
    """(case, estimated layer, csynth module latency) for every layer of ``names`` that csynth reports alone."""
    for case, est, module in _estimated_modules(shared_dir, tmp_path, names):
        yield case, est, module["latency"]


def test_softmax_cycles_count_the_maximum_tree_and_the_sum_tree(shared_dir, tmp_path):
    """softmax_stable reduces its inputs twice (a compare-and-select tree for the maximum, an adder tree for the sum):
    csynth's softmax modules of AK_* (Vitis 2021.1, 2 to 16 inputs, 3.33 and 5 ns) are within 2 cycles of the
    estimate, where one tree left the 16-input one 8 cycles short."""
    names = ["AK_arrythmia_dsp_rf1", "AK_breast_cancer_dsp_rf1", "AK_cardio_lut_rf1", "AK_mnist_dsp_rf1"]
    seen = 0
    for case, est, cycles in _module_cycles(shared_dir, tmp_path, names):
        if est.kind == "softmax":
            assert abs(est.cycles - cycles) <= 2, (case.id, est.cycles, cycles)
            seen += 1
    assert seen == len(names)


def test_vitis_shared_multipliers_finish_after_their_core_pipeline(shared_dir, tmp_path):
    """Vitis HLS at RF > 1 (Latency): one issue per distinct (input, constant) pair through the shared multipliers,
    then the core's pipeline and an adder. csynth's dense modules of AK_jet_tagging at RF 100 are within a cycle of the
    estimate with DSP cores (3 stages at 3.33 ns) and fabric ones (1 stage); counting every product less one cycle
    left the 5-output layer 5 cycles short."""
    from edgeml.estimate import devices
    from edgeml.estimate.model import load_coefficients, logic_delay, vitis_multiplier_stages

    co = load_coefficients()
    zynq = dict(devices.lookup("xc7z007s-clg225-2"), tool_delay=co["timing"]["delay_vitis"])
    assert logic_delay(zynq, co["timing"]) * co["timing"]["t_mul"] > 3.33 * (1 - 0.125)
    assert vitis_multiplier_stages(zynq, co["timing"], 3.33 * (1 - 0.125), fabric=False) == 3
    assert vitis_multiplier_stages(zynq, co["timing"], 3.33 * (1 - 0.125), fabric=True) == 1
    assert vitis_multiplier_stages(zynq, co["timing"], 5.0 * (1 - 0.125), fabric=False) == 1
    layers = [(case.id, est.name, est.cycles, cycles) for case, est, cycles in
              _module_cycles(shared_dir, tmp_path, ["AK_jet_tagging_dsp_rf100", "AK_jet_tagging_lut_rf100"])
              if est.kind == "dense"]
    assert len(layers) == 8
    assert all(abs(est - rep) <= 1 for _, _, est, rep in layers), layers


def test_a_stream_dense_layer_reads_its_input_words_once(shared_dir, tmp_path):
    """io_stream dense_wrapper: the kernel (its RF schedule included) plus one cycle per input word (a pixel of the
    feature map before it) and two. csynth: NG_v3_stream's dense modules at RF 64 are 68-69 cycles (the estimate
    counted the interval again: 131), PK_rank's 784-input layer fed by 196 pixels at RF 784 is 990."""
    rows = [(case.id, est.name, est.cycles, cycles) for case, est, cycles in
            _module_cycles(shared_dir, tmp_path, ["NG_v3_stream", "PK_rank_z020"]) if est.kind == "dense"]
    assert len(rows) == 5
    assert all(abs(est - rep) <= 0.02 * rep + 1 for _, _, est, rep in rows), rows


def test_a_rounding_saturating_relu_takes_a_cycle_where_its_adder_misses_the_clock(shared_dir, tmp_path):
    """A ReLU into a rounding, saturating type (AK_*: ap_ufixed<8,0,AP_RND_CONV,AP_SAT>) adds an increment and an
    overflow check: 1 cycle at 3.33 ns on the -2 xc7z007s, 0 at 5 ns (csynth, every module); a truncating, wrapping
    ReLU is a sign-bit select, 0 cycles even on a -1 xc7z020 at 5 ns with 1.35 ns uncertainty (IRIS)."""
    rows = [(case.id, case.clock_ns, est.cycles, cycles) for case, est, cycles in
            _module_cycles(shared_dir, tmp_path, ["AK_jet_tagging_dsp_rf1", "AK_mnist_dsp_rf1", "IRIS_z020_v2025"])
            if est.kind == "activation" and "relu" in est.name]
    assert {clock for _, clock, _, _ in rows} == {3.33, 5.0}
    assert len(rows) == 8
    assert all(est == rep for _, _, est, rep in rows), rows
    assert sorted({rep for case, clock, _, rep in rows if case.startswith("AK_jet")}) == [1]
