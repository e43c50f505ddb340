"""The second answer (Vivado post-synthesis), its use for 'fits' / cost / budget, constant pricing by bits, the
multiplier binding of build scripts, and distributed-arithmetic layers priced by da4ml."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeml.estimate import estimate, estimate_specs, mul_impl
from edgeml.estimate.layers import Fixed, LayerSpec, parse_type, quantize


@pytest.fixture(autouse=True)
def _private_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEML_CONFIG_DIR", str(tmp_path / "edgeml-config"))


def _prj(shared_dir, case):
    return shared_dir / "ground-truth" / case / "hls4ml_prj"


def _one_dense(weights, in_type="ap_fixed<8,3>", w_type="ap_fixed<8,2>", **kw):
    spec = LayerSpec("fc1", "dense", n_in=weights.shape[0], n_out=weights.shape[1], weights=weights,
                     in_type=parse_type(in_type), weight_type=parse_type(w_type), accum_type=parse_type("ap_fixed<18,8>"),
                     result_type=parse_type("ap_fixed<18,8>"), **kw)
    return estimate_specs([spec], "xcu250-figd2104-2L-e", 5.0, calibration=False)


def test_both_answers_in_the_json_with_their_tool(shared_dir):
    from edgeml.cli import main

    out = CliRunner().invoke(main, ["estimate", str(_prj(shared_dir, "J")), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    total, post = result["total"], result["post_synthesis"]
    for k in ("lut", "ff", "dsp", "bram_18k"):
        assert isinstance(total[k], (int, float)) and isinstance(post[k], (int, float))
        lo, hi = post[f"{k}_range"]
        assert lo <= post[k] <= hi
    assert post["tool"] == "vivado-2020.1" and result["settings"]["tool"] == "vivado-2020.1"
    assert result["basis"] == "post_synthesis" and result["cost"]["lut"] == post["lut"]
    assert "csynth" in result["predicts"] and "post-synthesis" in result["predicts"].replace("_", "-")
    # J's folder holds a Vivado utilization report: compared beside the csynth one
    assert set(result["post_synthesis_comparison"]) >= {"lut", "ff", "dsp"}
    assert result["post_synthesis_comparison"]["lut"]["report"] == 2796


def test_basis_decides_fits_and_cost(shared_dir):
    """H: csynth binds 664 DSP on a 220-DSP xc7z020; Vivado keeps 220 and builds the rest from LUTs, so the
    post-synthesis answer fits and the csynth one does not."""
    post = estimate(_prj(shared_dir, "H"), calibration=False)
    csynth = estimate(_prj(shared_dir, "H"), calibration=False, basis="csynth")
    assert post["post_synthesis"]["dsp"] == 220 and post["post_synthesis"]["dsp_moved_to_lut"] > 400
    assert post["total"]["fits"] is True and csynth["total"]["fits"] is False
    assert post["total"]["fits_csynth"] is False
    assert csynth["cost"]["dsp"] == csynth["total"]["dsp"] and post["cost"]["dsp"] == 220
    with pytest.raises(Exception, match="basis"):
        estimate(_prj(shared_dir, "H"), calibration=False, basis="vivado")


def test_budget_and_report_rank_on_the_basis(shared_dir):
    from edgeml.report import ModelRecord
    from edgeml.search import budget

    result = estimate(_prj(shared_dir, "H"), calibration=False)
    limits = {"DSP": 300.0}
    assert budget.excess(result, limits)["DSP"] < 0  # post-synthesis: 220 DSP
    assert budget.excess(result["total"], limits)["DSP"] > 0  # a bare csynth total: 705 DSP
    rec = ModelRecord("H", estimate=result)
    assert rec.cost() == result["post_synthesis"]["lut"] + 55 * 220


def test_config_basis_is_validated():
    from edgeml import config
    from edgeml.errors import ConfigError

    assert config.defaults()["estimate"]["basis"] == "post_synthesis"
    with pytest.raises(ConfigError, match="estimate.basis"):
        config.validate({"estimate": {"basis": "vivado"}})


def test_powers_of_two_cost_fewer_lut_than_dense_random_constants():
    """Same layer, same ap_fixed<8,2> weight type: constants that are powers of two are wires, random 8-bit
    constants are shift-add chains of up to four signed digits (the input is too narrow for a DSP)."""
    rng = np.random.default_rng(0)
    t = Fixed(8, 2)
    shape = (32, 16)
    random = quantize(rng.uniform(-1.9, 1.9, size=shape), t)
    random[random == 0] = 3
    powers = np.sign(random) * 2 ** rng.integers(0, 7, size=shape)
    cheap, costly = _one_dense(powers), _one_dense(random)
    assert cheap["total"]["dsp"] == costly["total"]["dsp"] == 0
    assert cheap["total"]["lut"] < 0.7 * costly["total"]["lut"]
    assert cheap["post_synthesis"]["lut"] < 0.7 * costly["post_synthesis"]["lut"]
    zeros = random.copy()
    zeros[:, ::2] = 0  # zero weights are free
    assert _one_dense(zeros)["total"]["lut"] < 0.65 * costly["total"]["lut"]


def test_small_values_inside_a_wide_type_cost_what_their_bits_need():
    """HGQ declares a layer's weight type as wide as its widest weight: constants of 2-4 significant bits in an
    ap_fixed<14,3> type are priced by their values (narrow products, few signed digits, no DSP), not the type's
    14 bits; the same layer with full-width random constants of that type costs far more, in csynth and after
    synthesis, and its constants keep their DSPs (a 16-bit input)."""
    rng = np.random.default_rng(1)
    t = Fixed(14, 3)
    shape = (32, 16)
    full = quantize(rng.uniform(-3.9, 3.9, size=shape), t)
    full[full == 0] = 3
    small = np.sign(full) * rng.integers(1, 16, size=shape)  # |w| < 16 ulp of the type: at most 4 bits
    kw = dict(in_type="ap_fixed<16,6>", w_type="ap_fixed<14,3>")
    cheap, costly = _one_dense(small, **kw), _one_dense(full, **kw)
    assert costly["total"]["dsp"] > 0 and cheap["total"]["dsp"] < 0.25 * costly["total"]["dsp"]
    assert cheap["total"]["lut"] < 0.9 * costly["total"]["lut"]
    assert cheap["post_synthesis"]["lut"] < 0.9 * costly["post_synthesis"]["lut"]
    assert cheap["post_synthesis"]["lut"] + 55 * cheap["post_synthesis"]["dsp"] < \
        0.3 * (costly["post_synthesis"]["lut"] + 55 * costly["post_synthesis"]["dsp"])


def test_build_script_multiplier_binding(shared_dir, tmp_path):
    """`config_op mul -impl fabric` (AK_*_lut) forbids DSPs; `-impl dsp` binds the 8-bit products HLS would otherwise
    leave to LUTs (AK_*_dsp: csynth DSP = the products with >= 3 signed digits)."""
    import shutil

    prj = tmp_path / "prj"
    shutil.copytree(_prj(shared_dir, "AK_cardio_dsp_rf1"), prj)
    assert mul_impl(prj) is None
    free = estimate(prj, calibration=False)["total"]["dsp"]
    (prj / "build_prj.tcl").write_text("open_project myproject_prj\nconfig_op mul -impl dsp -latency 3\n")
    assert mul_impl(prj) == "dsp"
    dsp = estimate(prj, calibration=False)["total"]["dsp"]
    (prj / "build_prj.tcl").write_text("config_op mul -impl fabric\n")
    assert estimate(prj, calibration=False)["total"]["dsp"] == 0
    assert dsp > free and abs(dsp - 36) <= 4  # csynth of AK_cardio_dsp_rf1: 36


def test_distributed_arithmetic_is_priced_by_da4ml():
    from edgeml.estimate import da

    rng = np.random.default_rng(3)
    t = Fixed(6, 1)
    w = quantize(rng.uniform(-1, 1, size=(12, 6)), t)
    real = w * 2.0 ** -t.frac
    solved = da.layer_cost(real, Fixed(8, 3))
    assert solved["lut"] > 0 and solved["depth"] >= 1
    assert da.layer_cost(real, Fixed(8, 3)) == solved  # cached
    cheaper = da.layer_cost(np.sign(real) * 0.5, Fixed(8, 3))
    assert cheaper["lut"] < solved["lut"]
    result = _one_dense(w, in_type="ap_fixed<8,3>", w_type="ap_fixed<6,1>", strategy="distributed_arithmetic")
    layer = result["layers"][0]
    assert result["total"]["dsp"] == 0 and layer["details"]["priced_by"] == "da4ml"
    assert layer["details"]["da_cost"] == solved["lut"]
    assert any("da4ml" in n for n in result["notes"])


def test_a_dsp_product_moved_into_fabric_costs_its_binary_partial_products():
    """Vivado builds a DSP-bound product it moves off a full part from the constant's set bits, not its signed
    digits: 59 (0b111011, 64 - 4 - 1) and 41 (0b101001) both have three signed digits and six value bits; in fabric
    59 needs four adders and 41 two."""
    import numpy as np

    from edgeml.estimate import devices
    from edgeml.estimate.layers import Fixed, LayerSpec
    from edgeml.estimate.model import _mac_layer, csd_digits, load_coefficients

    assert list(csd_digits(np.array([59, 41]))) == [3, 3]
    fabric = {}
    for constant in (59, 41):
        spec = LayerSpec("fc", "dense", n_in=1, n_out=1, weights=np.array([[constant]]), in_type=Fixed(16, 6),
                         weight_type=Fixed(16, 6))
        layer = _mac_layer(spec, devices.lookup("xc7z020clg400-1"), 5.0, 4.375, load_coefficients())
        assert layer.dsp == 1
        fabric[constant] = layer.info["fabric_add_bits"]
    assert fabric[59] == 2 * fabric[41] > 0
