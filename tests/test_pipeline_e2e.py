"""`edgeml run` end to end through the CLI on a tiny config: every stage, reuse, and what a change reruns.

Slow: two hls4ml compiles per run variant. The report's content is tested in test_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

pytestmark = pytest.mark.slow

TINY_RECIPE = {"compression": {"name": "tiny_qkeras", "epochs": 2, "prune": {"sparsity": 0.5},
                               "quantize": {"enabled": True, "bits": 6, "integer": 0}}}
STAGES = ["data", "baseline", "compress", "convert", "estimate", "report"]


def tiny_config(tmp: Path, reuse_factor: int = 1) -> Path:
    recipe = tmp / "tiny_qkeras.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    cfg = {"name": "tiny", "data": {"max_jets": 600}, "model": {"hidden": [16, 8]},
           "train": {"epochs": 2, "batch_size": 128}, "compression": {"recipes": [str(recipe)]},
           "hls": {"ReuseFactor": reuse_factor}}
    path = tmp / f"tiny_rf{reuse_factor}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def edgeml(*args: str) -> str:
    from edgeml.cli import main

    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def finished(run_dir: Path) -> dict:
    return {k: v["finished"] + str(v["seconds"]) for k, v in
            json.loads((run_dir / "manifest.json").read_text())["stages"].items()}


def test_run_rerun_and_hls_change(tmp_path: Path):
    run_dir = tmp_path / "run"
    out = edgeml("run", str(tiny_config(tmp_path)), "--run-dir", str(run_dir))
    for stage in STAGES:
        assert f"[edgeml] {stage}:" in out
    assert list(finished(run_dir)) == STAGES
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    first = finished(run_dir)

    out = edgeml("run", str(tiny_config(tmp_path)), "--run-dir", str(run_dir))
    again = finished(run_dir)
    # the report is always re-rendered (cheap, follows edgeml's code); every other stage is reused
    assert out.count("unchanged, reused") == len(STAGES) - 1
    assert {s: again[s] for s in STAGES if s != "report"} == {s: first[s] for s in STAGES if s != "report"}

    # --from reruns that stage and everything after it, even when nothing changed
    edgeml("run", str(tiny_config(tmp_path)), "--run-dir", str(run_dir), "--from", "estimate")
    rerun = finished(run_dir)
    assert rerun["convert"] == again["convert"] and rerun["estimate"] != again["estimate"]

    # a firmware setting reruns conversion, estimate and report, never the training
    edgeml("run", str(tiny_config(tmp_path, reuse_factor=2)), "--run-dir", str(run_dir), "--force")
    changed = finished(run_dir)
    assert all(changed[s] == first[s] for s in ("data", "baseline", "compress"))
    assert all(changed[s] != first[s] for s in ("convert", "estimate", "report"))
    report = json.loads((run_dir / "hls" / "baseline" / "convert_report.json").read_text())
    assert report["hls"]["ReuseFactor"] == 2

    before = (run_dir / "report.html").stat().st_mtime_ns
    out = edgeml("report", str(run_dir))  # re-render from the files alone
    assert "report.html" in out and (run_dir / "report.html").stat().st_mtime_ns >= before
