"""Independent work side by side, in real processes: the OpenML cache, conversions, whole runs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeml.data import CLASSES, FEATURES
from edgeml.data.load import _read_openml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def openml_server(tmp_path: Path, n: int = 20000) -> dict:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, len(FEATURES))), rng.integers(0, len(CLASSES), n)
    text = ("@RELATION jets\n" + "".join(f"@ATTRIBUTE {f} NUMERIC\n" for f in FEATURES)
            + "@ATTRIBUTE class {g,q,t,w,z}\n@DATA\n"
            + "\n".join(",".join(f"{v:.6g}" for v in row) + f",{CLASSES[c]}" for row, c in zip(X, y)) + "\n")
    server = tmp_path / "server"
    server.mkdir()
    (server / "file_7.arff").write_text(text)
    (server / "desc_42468.json").write_text(json.dumps({"data_set_description": {
        "file_id": "7", "md5_checksum": hashlib.md5(text.encode()).hexdigest()}}))
    return dict(cache=str(tmp_path / "cache"), api_url=f"file://{server}/desc_{{id}}.json",
                download_url=f"file://{server}/file_{{file_id}}.arff")


FETCH = """
import json, sys, time
from edgeml.data.load import _read_openml
options = json.loads(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
jets = _read_openml(**options)
print(len(jets), float(jets.X.sum()))
"""


def test_processes_share_one_openml_download(tmp_path):
    options = openml_server(tmp_path)
    start = time.time() + 3  # every process past its imports, then all at once
    procs = [subprocess.Popen([sys.executable, "-c", FETCH, json.dumps(options), str(start)], env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    assert len({r[0] for r in results}) == 1 and results[0][0].startswith("20000 ")
    leftovers = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert leftovers == [".openml_42468.npz.lock", "openml_42468.npz"]  # no half-written or duplicate files


def test_damaged_openml_cache_is_downloaded_again(tmp_path, capsys):
    options = openml_server(tmp_path, n=200)
    first = _read_openml(**options)
    cached = Path(options["cache"]) / "openml_42468.npz"
    cached.write_bytes(cached.read_bytes()[:100])
    again = _read_openml(**options)
    assert np.array_equal(again.X, first.X) and np.array_equal(again.y, first.y)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "downloading it again" in warnings[0]


@pytest.mark.slow
def test_conversions_into_different_outputs_run_side_by_side(tmp_path):
    model = FIXTURES / "keras224_qkeras_pruned.json"
    outs = [tmp_path / f"prj{i}" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "edgeml", "convert", str(model), "--output", str(out), "--n",
                               "200", "--json"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out in outs]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    reports = [json.loads(r[0]) for r in results]
    for report in reports:
        report["csim"].pop("jets_per_second")
    assert reports[0]["csim"] == reports[1]["csim"] == reports[2]["csim"]


@pytest.mark.slow
def test_runs_queue_on_one_directory_and_proceed_side_by_side_on_others(tmp_path):
    from test_faults import deterministic, tiny_config

    config = tiny_config(tmp_path)

    def start(run_dir: Path, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "edgeml", "run", str(config), "--run-dir", str(run_dir),
                                 *extra], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start(tmp_path / "a")
    time.sleep(4)  # past its imports: holding the lock
    refused = subprocess.run([sys.executable, "-m", "edgeml", "run", str(config), "--run-dir", str(tmp_path / "a")],
                             capture_output=True, text=True, env=env())
    queued, other = start(tmp_path / "a", "--wait"), start(tmp_path / "b")
    results = {name: p.communicate(timeout=900) for name, p in
               (("first", first), ("queued", queued), ("other", other))}
    assert refused.returncode == 2 and "--wait" in refused.stderr.strip().splitlines()[-1]
    assert first.returncode == queued.returncode == other.returncode == 0, results
    assert "waiting for run directory" in results["queued"][1]
    assert results["queued"][1].count("unchanged, reused") == 5  # everything but the always-rendered report
    assert deterministic(tmp_path / "a") == deterministic(tmp_path / "b")
