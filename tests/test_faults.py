"""kill -9 at every stage boundary and inside every stage, then a rerun; a full disk; a read-only run dir.

Real processes, real SIGKILL: the run is started in a child interpreter whose stage
functions (or artifact renames) kill their own process at the chosen point. After the
rerun, summary.json must equal an uninterrupted run's in every deterministic field: all of
it except ``run.stage_seconds`` (timings) and ``run.run_dir`` (where it ran). Disk full and
read-only need a small filesystem of their own: a tmpfs, mounted when we may (root), else skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["data", "baseline", "compress", "convert", "estimate", "report"]
TIMINGS = {"stage_seconds", "run_dir"}

# The child: arm a kill point, then run the real CLI. "before:S" is the boundary after the previous
# stage's manifest write; "after:S" is S finished but not yet recorded; "during:S" dies at S's second
# artifact rename, with the temporary file complete and the target not yet replaced.
CHILD = """
import os, signal, sys
from edgeml import pipeline
when, target = sys.argv[1].split(":")
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
stage = next(s for s in pipeline.STAGES if s.name == target)
inner = stage.fn
def fn(ctx):
    if when == "before":
        die()
    if when == "during":
        real, calls = os.replace, []
        def replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:
                die()
            return real(src, dst)
        os.replace = replace
    out = inner(ctx)
    if when == "after":
        die()
    return out
stage.fn = fn
from edgeml.cli import main
main(sys.argv[2:])
"""


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def tiny_config(tmp: Path) -> Path:
    recipe = tmp / "tiny_qkeras.yaml"
    recipe.write_text(yaml.safe_dump({"compression": {"name": "tiny_qkeras", "epochs": 2, "prune": {"sparsity": 0.5},
                                                      "quantize": {"enabled": True, "bits": 6, "integer": 0}}}))
    cfg = {"name": "tiny", "data": {"max_jets": 600}, "model": {"hidden": [16, 8]},
           "train": {"epochs": 2, "batch_size": 128}, "compression": {"recipes": [str(recipe)]}}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def edgeml(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "edgeml", *args], capture_output=True, text=True, env=env())
    if check:
        assert result.returncode == 0, result.stderr
    return result


def deterministic(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["run"] = {k: v for k, v in summary["run"].items() if k not in TIMINGS}
    return summary


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    config = tiny_config(tmp)
    edgeml("run", str(config), "--run-dir", str(tmp / "run"))
    return config, tmp / "run"


POINTS = [f"before:{s}" for s in STAGES] + [f"during:{s}" for s in STAGES] + ["after:compress", "after:convert"]


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_then_rerun_equals_an_uninterrupted_run(reference, tmp_path, point):
    config, ref = reference
    run_dir = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", CHILD, point, "run", str(config), "--run-dir", str(run_dir)],
                            capture_output=True, text=True, env=env())
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    when, stage = point.split(":")
    recorded = list(json.loads((run_dir / "manifest.json").read_text())["stages"]) \
        if (run_dir / "manifest.json").exists() else []
    assert recorded == STAGES[:STAGES.index(stage)]  # nothing of the killed stage was recorded

    rerun = edgeml("run", str(config), "--run-dir", str(run_dir))
    said = rerun.stdout + rerun.stderr
    assert "resuming: the run of pid" in said and "Traceback" not in said
    for done in recorded:  # finished stages are kept
        assert f"[edgeml] {done}: unchanged, reused" in said
    assert deterministic(run_dir) == deterministic(ref)
    hidden = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob(".*"))
    assert hidden == [".run.lock", "run/hls/.baseline.lock", "run/hls/.tiny_qkeras.lock"]  # no temporaries left


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def small_fs(tmp_path):
    mounts = []

    def mount(name: str, size: str = "16m") -> Path:
        where = tmp_path / name
        _mount_tmpfs(where, size)
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], check=False)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Progress lines may come first; then exactly one error line, last, and no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith(("[edgeml]", "  "))]
    assert errors == lines[-1:] and lines[-1].startswith("error: ") and "Traceback" not in result.stderr, \
        result.stderr
    for fragment in fragments:
        assert fragment in lines[-1]


def artifacts(run_dir: Path) -> tuple[dict, dict]:
    """Every file's digest but the manifest's, and the manifest's stage keys and output digests."""
    files = {k: v for k, v in tree_digest(run_dir).items() if k != "manifest.json"}
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    return files, {name: (s["key"], s["digests"]) for name, s in stages.items()}


def test_full_disk_is_one_line_and_keeps_earlier_artifacts(reference, small_fs):
    config, ref = reference
    disk = small_fs("disk")
    run_dir = disk / "run"
    shutil.copytree(ref, run_dir)
    before = artifacts(run_dir)
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:  # leave ~200 kB: a report needs more, an hls4ml project ~1.4 MB
        f.write(b"\0" * max(0, free - 200_000))
    result = edgeml("run", str(config), "--run-dir", str(run_dir), "--from", "convert", check=False)
    assert_one_line_error(result, f"cannot write in {run_dir}", "no space left on the device")
    after = artifacts(run_dir)
    assert [k for k in before[0] if before[0][k] != after[0].get(k)] == [] and after[1] == before[1]
    # a fresh hls4ml build (other settings) replacing a project: the old project comes back whole
    project = run_dir / "hls" / "baseline"
    result = edgeml("convert", str(run_dir / "models" / "baseline.h5"), "--output", str(project), "--force",
                    "--auto-precision", "--n", "120", check=False)
    assert_one_line_error(result, f"cannot write in {project}", "no space left on the device", "--output")
    assert artifacts(run_dir) == before
    assert not list(project.parent.glob(".baseline.replaced-*"))
    (disk / "filler").unlink()
    edgeml("run", str(config), "--run-dir", str(run_dir))  # space back: the run completes
    assert deterministic(run_dir) == deterministic(ref)


def test_read_only_run_dir_is_one_line_and_keeps_artifacts(reference, small_fs, tmp_path):
    config, ref = reference
    run_dir = small_fs("run")
    shutil.copytree(ref, run_dir, dirs_exist_ok=True)
    before = tree_digest(run_dir)
    subprocess.run(["mount", "-o", "remount,ro", str(run_dir)], check=True)
    result = edgeml("run", str(config), "--run-dir", str(run_dir), check=False)
    assert_one_line_error(result, f"cannot write in {run_dir}", "read-only file system")
    assert tree_digest(run_dir) == before
    result = edgeml("report", str(run_dir), check=False)
    assert_one_line_error(result, "read-only file system")


def test_read_only_parent_cannot_even_be_locked(reference, small_fs):
    config, ref = reference
    disk = small_fs("ro")
    shutil.copytree(ref, disk / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    result = edgeml("run", str(config), "--run-dir", str(disk / "run"), check=False)
    assert_one_line_error(result, f"cannot lock run directory {disk / 'run'}", "Read-only file system")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions; the tmpfs tests cover it")
def test_unwritable_run_dir_by_permissions(reference, tmp_path):
    config, ref = reference
    run_dir = tmp_path / "run"
    shutil.copytree(ref, run_dir)
    before = tree_digest(run_dir)
    for p in [run_dir, *run_dir.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        result = edgeml("run", str(config), "--run-dir", str(run_dir), check=False)
        assert_one_line_error(result, f"cannot write in {run_dir}", "permission denied")
        assert tree_digest(run_dir) == before
    finally:
        for p in [run_dir, *run_dir.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
