"""HGQ trials in edgeml search: every snapshot on an HGQ trial's front is a candidate design, checked against the
budget and logged; the fronts show the method and EBOPs beside BOPs."""

import json

import pytest

from test_search import TINY, edgeml, write_config

from edgeml.search import records as recs
from edgeml.search.trial import primary


def _design(epoch, accuracy, cost, feasible, over=-0.5):
    return {"epoch": epoch, "beta": 1e-5 * epoch, "accuracy": accuracy, "cost": cost, "lut": cost, "dsp": 0, "ff": 1,
            "bram": 0.0, "latency_ns": 20.0, "ii": 1, "bops": 10 * epoch, "ebops": 10 * epoch, "params": 5,
            "feasible": feasible, "excess": {"LUT": over}, "status": "completed" if feasible else "infeasible"}


def test_a_trial_reports_its_most_accurate_design_within_budget_else_the_nearest():
    designs = [_design(1, 0.70, 100, True), _design(2, 0.74, 300, True), _design(3, 0.76, 900, False, 0.2)]
    assert primary(designs)["epoch"] == 2
    over = [_design(1, 0.70, 100, False, 0.5), _design(2, 0.74, 300, False, 0.1)]
    assert primary(over)["epoch"] == 2


def test_every_design_is_a_candidate_and_the_front_is_chosen_over_designs():
    hgq = {"trial": 2, "trial_id": "b", "config": {}, "method": "hgq", "status": "completed",
           "designs": [_design(3, 0.70, 100, True), _design(7, 0.74, 300, True), _design(9, 0.76, 900, False, 0.2)]}
    qkeras = {"trial": 1, "trial_id": "a", "config": {}, "method": "qkeras", "status": "completed", "design": None,
              **{k: v for k, v in _design(0, 0.72, 200, True).items() if k not in ("epoch", "beta")}}
    failed = {"trial": 3, "trial_id": "c", "config": {}, "status": "failed", "error": "x"}
    designs = recs.candidates([qkeras, hgq, failed])
    assert [d["design_id"] for d in designs] == ["a", "b_e0003", "b_e0007", "b_e0009"]
    assert [d["model"] for d in designs][:2] == ["trials/a.h5", "trials/b_e0003.h5"]
    front = recs.pareto(designs, "cost")
    assert [(f["design_id"], f["method"]) for f in front] == [("b_e0003", "hgq"), ("a", "qkeras"), ("b_e0007", "hgq")]


@pytest.mark.slow
def test_hgq_and_qkeras_trials_in_one_search(tmp_path):
    """A real 3-trial search: the two QKeras reference recipes and the HGQ one (distributed arithmetic)."""
    run = tmp_path / "run"
    config = (TINY.replace("trials: 2", "trials: 3\n  epochs: 3\n  hgq_epochs: 6")
              .replace("method: [qkeras]", "method: [qkeras, hgq]"))
    r = edgeml("search", str(write_config(tmp_path, config)), "--run-dir", str(run), "--workers", "2",
               cwd=tmp_path, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    records = json.loads((run / "trials.json").read_text())
    assert [t["method"] for t in records] == ["qkeras", "qkeras", "hgq"]
    hgq = records[2]
    assert hgq["config"]["hgq_Strategy"] == "distributed_arithmetic" and hgq["designs"]
    for d in hgq["designs"]:  # each snapshot: its own estimate, budget check and model
        assert d["status"] in ("completed", "infeasible") and set(d["excess"]) >= {"LUT", "DSP", "latency"}
        model = run / "trials" / f"{hgq['trial_id']}_e{d['epoch']:04d}.h5"
        assert d["ebops"] == d["bops"] and recs.model_readable(model)
    assert all(t["ebops"] > 0 and t["bops"] > t["ebops"] for t in records[:2])  # QKeras: BOPs add the accumulators
    header = (run / "trials.csv").read_text().splitlines()[0].split(",")
    assert {"method", "design", "bops", "ebops"} <= set(header)
    summary = json.loads((run / "search_summary.json").read_text())
    assert (summary["epochs"], summary["hgq_epochs"]) == (3, 6)  # an HGQ ramp is longer than a QKeras fine-tune
    assert max(d["epoch"] for d in hgq["designs"]) <= 6 and "3 epochs each (hgq trials 6)" in r.stderr + r.stdout
    by_method = summary["designs"]["by_method"]
    assert by_method["hgq"] == len(hgq["designs"]) and by_method["qkeras"] == 2
    assert all(f["method"] in ("qkeras", "hgq") and f["ebops"] is not None for f in summary["front"])
    assert all((run / f["model"]).is_file() for f in summary["front"])
    html = (run / "search_report.html").read_text()
    assert "<th>method</th>" in html and "<th>EBOPs</th>" in html and "hgq" in html
