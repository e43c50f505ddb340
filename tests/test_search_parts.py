"""Budgets on parts other than the default: each part's own capacity, DSP slice and clock reach the trials, DA
trials keep hls4ml's ReuseFactor 1 / io_parallel rule there, and an impossible budget names the closest trial."""

import pytest

from edgeml import config as cfgmod
from edgeml.errors import InputError
from edgeml.estimate import devices
from edgeml.estimate.model import _dsp_per_product
from edgeml.search import budget as budgets
from edgeml.search import space as spaces

PARTS = [("xc7z020clg400-1", 10.0, 220, 53200), ("xcvu9p-flga2104-2L-e", 5.0, 6840, 1182240),
         ("xczu9eg-ffvb1156-2-e", 4.0, 2520, 274080), ("xczu7ev-ffvc1156-2-e", 4.0, 1728, 230400),
         ("xc7a100tcsg324-1", 10.0, 240, 63400), ("xcku115-flvb2104-2-e", 5.0, 5520, 663360),
         ("xc7k325tffg900-2", 8.0, 840, 203800), ("xczu3eg-sbva484-1-e", 5.0, 360, 70560)]


def search_section(part: str, clock: float, **limits) -> dict:
    return cfgmod.validate({"search": {"budget": {"Part": part, "ClockPeriod": clock, **limits}}})["search"]


@pytest.mark.parametrize("part, clock, dsp, lut", PARTS)
def test_budget_shares_are_of_that_part(part, clock, dsp, lut):
    limits = budgets.limits(search_section(part, clock, max_lut_pct=10, max_dsp_pct=20)["budget"])
    assert limits["LUT"] == pytest.approx(0.10 * lut) and limits["DSP"] == pytest.approx(0.20 * dsp)
    total = {"lut": 0.10 * lut * 1.5, "dsp": 0.20 * dsp, "ff": 0, "bram_18k": 0, "latency_ns": 50, "ii": 1}
    over = budgets.excess(total, limits)
    assert over["LUT"] == pytest.approx(0.5) and over["DSP"] == pytest.approx(0.0)


@pytest.mark.parametrize("part, clock, dsp, lut", PARTS)
def test_da_trial_on_any_part_is_rf1_io_parallel_on_the_budget_clock(part, clock, dsp, lut):
    search = search_section(part, clock)
    cfg = cfgmod.validate({"hls": {"IOType": "io_stream", "ReuseFactor": 4}, "search": search})
    params = {**spaces.starting_point(search["space"], spaces.HGQ_POINT), "ReuseFactor": 4}
    hls = spaces.hls_section(params, cfg, search)
    assert (hls["Strategy"], hls["ReuseFactor"], hls["IOType"]) == (cfgmod.DA, 1, "io_parallel")
    assert (hls["Part"], hls["ClockPeriod"]) == (part, clock)


def test_dsp_slice_follows_the_family():
    """A 26 x 18 product fits one DSP48E2 (27x18, UltraScale+) but needs two DSP48E1 (25x18, 7-series)."""
    assert _dsp_per_product(26, 18, devices.lookup("xczu9eg-ffvb1156-2-e")) == 1
    assert _dsp_per_product(26, 18, devices.lookup("xcvu9p-flga2104-2L-e")) == 1
    assert _dsp_per_product(26, 18, devices.lookup("xc7z020clg400-1")) == 2


def test_unknown_part_is_refused_naming_the_known_ones():
    """Versal (DSP58) is not modelled: refused, not priced as UltraScale+."""
    with pytest.raises(InputError, match=r"xcvc1902-vsva2197-2MP-e-S.*xc7z020.*choose the one nearest yours"):
        budgets.limits(search_section("xcvc1902-vsva2197-2MP-e-S", 3)["budget"])


def test_impossible_budget_names_the_closest_trial():
    limits = {"LUT": 1000.0, "DSP": 0.0, "latency": 20.0}
    row = {"lut": 0, "dsp": 0, "ff": 0, "bram": 0.0, "ii": 1}
    records = [{**row, "trial": 1, "method": "qkeras", "accuracy": 0.70, "lut": 5000, "dsp": 12, "latency_ns": 90.0,
                "excess": {"LUT": 4.0, "DSP": float("inf"), "latency": 3.5}},
               {**row, "trial": 2, "method": "hgq", "accuracy": 0.65, "lut": 16561, "latency_ns": 25.0,
                "excess": {"LUT": 15.561, "DSP": 0.0, "latency": 0.25}},
               {"trial": 3, "status": "failed", "error": "boom"}]
    assert budgets.closest(records, limits) == "closest was trial 2 (hgq, val acc 0.6500): LUT 16,561 > 1,000, " \
                                               "latency 25 > 20 ns"
    assert budgets.closest([{"trial": 1, "status": "failed"}], limits) is None
    only_dsp = [{"excess": {"DSP": float("inf"), "LUT": -0.5}}] * 2
    assert budgets.tightest(only_dsp) == "DSP (search.budget.max_dsp_pct) is exceeded by 2 of 2 trials, over a " \
                                         "limit of 0"


def test_report_budget_line_gives_each_share_of_the_part():
    from edgeml.search.report import budget_line

    budget = search_section("xc7z020clg400-1", 10, max_lut_pct=30, max_dsp_pct=0.5, max_latency_ns=300)["budget"]
    line = budget_line(budget, budgets.limits(budget))
    assert line.startswith("LUT ≤ 15,960 (30% of xc7z020), DSP ≤ 1.1 (0.5% of xc7z020)"), line
    assert line.endswith("latency ≤ 300 ns, II ≤ 5 clocks"), line


def test_front_model_carries_the_timing_verdict_of_its_part_and_clock(tmp_path):
    """A front model's firmware row says whether its firmware will close timing at the budget's part and clock:
    8-bit products on LUTs are slower than a 5 ns clock on a 7-series part (csynth missed timing on every such
    ground-truth design) but not on UltraScale+."""
    import numpy as np
    import tensorflow as tf

    from edgeml.modelio import save_model
    from edgeml.search.front import firmware_test_accuracy

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(8, activation="relu", input_shape=(16,), name="fc1"),
                                 tf.keras.layers.Dense(5, activation="softmax", name="output")])
    path = save_model(model, tmp_path / "m.h5")
    rng = np.random.default_rng(0)
    jets = tmp_path / "jets.npz"
    np.savez(jets, X=rng.normal(size=(50, 16)).astype(np.float32), y=rng.integers(0, 5, 50))
    narrow = {"Precision": "ap_fixed<8,3>", "ClockPeriod": 5.0, "IOType": "io_parallel", "Strategy": "Latency"}
    risk = {part: firmware_test_accuracy(path, {**narrow, "Part": part}, jets, tmp_path / part)["timing_risk"]
            for part in ("xc7z020clg400-1", "xcu250-figd2104-2L-e")}
    assert risk == {"xc7z020clg400-1": "likely_fail", "xcu250-figd2104-2L-e": None}
