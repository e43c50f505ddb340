"""edgeml search --resume on a finished search whose files were damaged, and with more trials than it had.

One real 3-trial search (local Ray on loopback, 1 epoch) is made once; each test works on a copy.
"""

import json
import shutil
import subprocess
import sys

import pytest

from test_search import TINY, write_config
from test_search_cluster import ENV

from edgeml import config as cfgmod
from edgeml.search import budget as budgets
from edgeml.search import records as recs

CONFIG = TINY.replace("trials: 2", "trials: 3")


def edgeml_search(config, run, *args):
    return subprocess.run([sys.executable, "-m", "edgeml", "search", str(config), "--run-dir", str(run),
                           "--epochs", "1", "--workers", "2", *args], capture_output=True, text=True, env=ENV,
                          timeout=900)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("finished")
    config = write_config(base, CONFIG)
    r = edgeml_search(config, base / "run")
    assert r.returncode == 0, r.stderr[-3000:]
    return config, base / "run"


@pytest.fixture
def copy(finished, tmp_path):
    config, run = finished
    shutil.copytree(run, tmp_path / "run", symlinks=True)
    return config, tmp_path / "run"


def truncate(path, keep=0.5):
    text = path.read_bytes()
    path.write_bytes(text[: int(len(text) * keep)])


def limits():
    return budgets.limits(cfgmod.validate({"search": {}})["search"]["budget"])


def trial_lines(stderr):
    return [ln for ln in stderr.splitlines() if "[edgeml] search " in ln and ": trial " in ln]


@pytest.mark.parametrize("damage", ["log", "log and csv", "log and Tune state", "log, csv and a model"])
def test_recover_rebuilds_the_log_from_what_is_intact(copy, capsys, damage):
    _, run = copy
    whole = json.loads((run / recs.TRIALS_JSON).read_text())
    truncate(run / recs.TRIALS_JSON)
    if "csv" in damage:
        truncate(run / recs.TRIALS_CSV, 0.3)
    if "Tune" in damage:
        for state in (run / "tune" / "search").glob("experiment_state-*.json"):
            truncate(state)
    if "model" in damage:
        truncate(recs.model_path(run, whole[0]["trial_id"]))
    assert recs.read_trials(run) is None  # garbled: detected, not taken for an empty log
    rebuilt = recs.recover(run, limits())
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert warnings and "truncated or garbled" in warnings[0] and len(warnings) == 1 + ("model" in damage)
    assert [r["trial_id"] for r in rebuilt] == [r["trial_id"] for r in whole]
    for old, new in zip(whole, rebuilt):
        lost = "model" in damage and old is whole[0]
        assert new["status"] == ("failed" if lost else old["status"]) and new["config"] == old["config"]
        if not lost:
            assert new["accuracy"] == pytest.approx(old["accuracy"]) and new["lut"] == old["lut"]
            assert new["excess"] == pytest.approx(old["excess"])
    assert recs.read_trials(run) == rebuilt  # the rebuilt log is on disk again


def test_resume_with_a_truncated_log_keeps_every_result(copy):
    """The reported fault: trials.json truncated, --resume ended with 'every trial failed' and an empty front."""
    config, run = copy
    before = json.loads((run / "search_summary.json").read_text())
    truncate(run / recs.TRIALS_JSON)
    r = edgeml_search(config, run, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "rebuilt the log of 3 trials" in warnings[0], r.stderr
    assert not trial_lines(r.stderr)  # nothing was trained again
    after = json.loads((run / "search_summary.json").read_text())
    assert after["counts"] == before["counts"]
    assert [f["trial_id"] for f in after["front"]] == [f["trial_id"] for f in before["front"]]


@pytest.mark.slow
def test_resume_with_more_trials_runs_them(copy):
    """--resume --trials 4 on a finished 3-trial search runs one more trial, numbered 4, and says so."""
    config, run = copy
    before = json.loads((run / recs.TRIALS_JSON).read_text())
    r = edgeml_search(config, run, "--resume", "--trials", "4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 more trials (trials 4-4)" in r.stderr and len(trial_lines(r.stderr)) == 1, r.stderr
    after = json.loads((run / recs.TRIALS_JSON).read_text())
    assert [a["trial"] for a in after] == [1, 2, 3, 4] and after[:3] == before
    assert recs.model_readable(recs.model_path(run, after[3]["trial_id"]))
    again = edgeml_search(config, run, "--resume", "--trials", "4")
    assert again.returncode == 0 and "4 trials logged already (--trials 4); none left to run" in again.stderr


@pytest.mark.slow
def test_resume_without_tune_state_continues_from_the_csv(copy):
    """trials.json and Tune's experiment state garbled: the log comes back from trials.csv and the search goes
    on in a new Tune experiment told the logged trials."""
    config, run = copy
    truncate(run / recs.TRIALS_JSON)
    for state in (run / "tune" / "search").glob("experiment_state-*.json"):
        truncate(state)
    r = edgeml_search(config, run, "--resume", "--trials", "4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "3 from trials.csv" in r.stderr and "experiment_state" in r.stderr, r.stderr
    assert "its sampler told the 3 logged ones" in r.stderr and len(trial_lines(r.stderr)) == 1
    assert len(json.loads((run / recs.TRIALS_JSON).read_text())) == 4


def test_a_failing_resume_leaves_earlier_results(copy):
    """Every model lost: the resumed search would hold no finished trial; it stops and the summary and the
    report stay as they were."""
    config, run = copy
    summary, report = (run / "search_summary.json").read_bytes(), (run / "search_report.html").read_bytes()
    for model in (run / recs.MODELS_DIR).glob("*.h5"):
        truncate(model)
    r = edgeml_search(config, run, "--resume")
    assert r.returncode == 1, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the resumed search holds 0 finished trials, fewer than the 3"), last
    assert (run / "search_summary.json").read_bytes() == summary
    assert (run / "search_report.html").read_bytes() == report
