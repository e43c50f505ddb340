"""Corrupted state is detected and rebuilt with a one-line warning, never reused, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeml import config, pipeline
from edgeml.convert import CACHE_FILE, PREDICTIONS_FILE, REPORT_FILE, convert
from edgeml.data import Scaler
from edgeml.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"
QKERAS = FIXTURES / "keras224_qkeras_pruned.json"


def cfg():
    return config.validate({"name": "t", "data": {"max_jets": 800}, "train": {"epochs": 2, "batch_size": 128}})


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def flip(path: Path) -> None:
    """One byte changed in the middle: the file still parses as often as not."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def early_run(tmp_path_factory):
    """A finished data + baseline run to copy and damage."""
    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline, "STAGES", [s for s in pipeline.STAGES if s.name in ("data", "baseline")])
    run_dir = tmp_path_factory.mktemp("early") / "run"
    pipeline.run(cfg(), run_dir, progress=False)
    yield run_dir, mp
    mp.undo()


DAMAGE = {
    "manifest truncated": ("manifest.json", truncate, ["data", "baseline"], "every stage runs again"),
    "manifest record garbled": ("manifest.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "stages": {**json.loads(p.read_text())["stages"], "baseline": [1]}})),
        ["baseline"], "record of stage 'baseline' is garbled"),
    "model .h5 truncated": ("models/baseline.h5", truncate, ["baseline"], "baseline.h5 changed"),
    "model .h5 one byte": ("models/baseline.h5", flip, ["baseline"], "baseline.h5 changed"),
    "scaler JSON garbled": ("models/baseline_scaler.json", flip, ["baseline"], "baseline_scaler.json changed"),
    "data scaler truncated": ("data/scaler.json", truncate, ["data", "baseline"], "scaler.json changed"),
    "splits removed": ("data/splits.npz", Path.unlink, ["data", "baseline"], "splits.npz is missing"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_run_state_is_rebuilt_with_a_warning(early_run, tmp_path, capsys, case):
    source, _ = early_run
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    before = json.loads((run_dir / "manifest.json").read_text())["stages"]
    metrics = json.loads((run_dir / "models" / "baseline_metrics.json").read_text())
    name, damage, rerun, message = DAMAGE[case]
    damage(run_dir / name)
    capsys.readouterr()
    after = pipeline.run(cfg(), run_dir, progress=False)["stages"]
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and message in warnings[0], err
    assert [s for s in before if after[s]["finished"] + str(after[s]["seconds"])
            != before[s]["finished"] + str(before[s]["seconds"])] == rerun
    # rebuilt, and the rebuilt result is the one an undamaged run gives (training is seeded)
    assert json.loads((run_dir / "models" / "baseline_metrics.json").read_text()) == metrics
    Scaler.load(run_dir / "models" / "baseline_scaler.json")
    assert pipeline.run(cfg(), run_dir, progress=False)["stages"] == after  # and now trusted again


def test_report_command_refuses_damaged_run_state(early_run, tmp_path):
    source, _ = early_run
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    flip(run_dir / "models" / "baseline_metrics.json")
    with pytest.raises(InputError, match="baseline_metrics.json changed since stage 'baseline' wrote it; rerun"):
        pipeline.verify_run(run_dir)


def test_garbled_scaler_is_a_clear_input_error(tmp_path):
    path = tmp_path / "s.json"
    for text in ('{"mean": [1, 2', '{"features": ["a"], "mean": [1, 2], "scale": [1]}',
                 '{"features": ["a"], "mean": [1], "scale": [0]}', "[1, 2]"):
        path.write_text(text)
        with pytest.raises(InputError, match=f"scaler file {path}"):
            Scaler.load(path)


# ----------------------------------------------------------------------------- the convert cache

@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A C-simulated project: its compiled .so is one of the files the cache vouches for."""
    out = tmp_path_factory.mktemp("prj") / "qkeras"
    return out, convert(QKERAS, output_dir=out, n=200, engine="csim")


def so_file(out: Path) -> Path:
    return next((out / "firmware").glob("*.so"))


PROJECT_DAMAGE = {
    "compiled .so truncated": (so_file, truncate),
    "predictions.npz one byte": (lambda out: out / PREDICTIONS_FILE, flip),
    "convert report truncated": (lambda out: out / REPORT_FILE, truncate),
    "cache file garbled": (lambda out: out / CACHE_FILE, truncate),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=[] if c == "compiled .so truncated" else pytest.mark.slow)
                                  for c in PROJECT_DAMAGE])
def test_damaged_convert_cache_is_rebuilt_not_reused(project, tmp_path, capsys, case):
    source, first = project
    out = tmp_path / "qkeras"
    shutil.copytree(source, out)
    which, damage = PROJECT_DAMAGE[case]
    damage(which(out))
    capsys.readouterr()
    report = convert(QKERAS, output_dir=out, n=200, engine="csim")  # no --force: the project is edgeml's own
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "converting again" in warnings[0]
    assert report["cache"]["hit"] is False and not report["cache"]["library_reused"]
    timing = {"jets_per_second"}
    assert {k: v for k, v in report["csim"].items() if k not in timing} == \
        {k: v for k, v in first["csim"].items() if k not in timing}
    with np.load(out / PREDICTIONS_FILE) as z:
        assert z.files
    assert convert(QKERAS, output_dir=out, n=200, engine="csim")["cache"]["hit"]


def test_cli_convert_on_a_damaged_project_warns_once_and_succeeds(project, tmp_path):
    source, _ = project
    out = tmp_path / "qkeras"
    shutil.copytree(source, out)
    truncate(so_file(out))
    result = subprocess.run([sys.executable, "-m", "edgeml", "convert", str(QKERAS), "--output", str(out),
                             "--n", "200", "--engine", "csim"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sum(line.startswith("warning:") and "converting again" in line
               for line in result.stderr.splitlines()) == 1


# ----------------------------------------------------------------------------- refused writes

ENOSPC_CHILD = """
import errno, os, sys
real = os.replace
def replace(src, dst):
    if str(dst).endswith(sys.argv[1]):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
    return real(src, dst)
os.replace = replace
from edgeml.cli import main
main(sys.argv[2:])
"""


def test_full_disk_during_a_stage_is_one_line_and_keeps_the_old_files(tmp_path):
    """ENOSPC injected at the rename of the data stage's splits (no root needed; tests/test_faults.py
    fills a real tmpfs)."""
    import os

    import yaml

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "data": {"max_jets": 600}}))
    run_dir = tmp_path / "run"
    args = ["run", str(config), "--run-dir", str(run_dir), "--only", "data"]
    first = subprocess.run([sys.executable, "-m", "edgeml", *args], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = subprocess.run([sys.executable, "-c", ENOSPC_CHILD, "splits.npz", *args], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot write in {run_dir} ({run_dir / 'data' / 'splits.npz'}): no space left on the device; free "
        "space or fix permissions, or use another --run-dir; the earlier results are unchanged")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


KILLED_CONVERSION = """
import os, shutil, signal, sys
from pathlib import Path
from edgeml import locks
out = Path(sys.argv[1])
with locks.hold(out, locks.OUTPUT_DIR):
    out.rename(out.with_name(f".{out.name}.replaced-{os.getpid()}"))  # what convert --force does first
    (out / "firmware").mkdir(parents=True)  # hls4ml had started writing the new project
    (out / "firmware" / "myproject.cpp").write_text("// half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_conversion_killed_while_replacing_a_project_gets_it_back(project, tmp_path, capsys):
    import os

    source, first = project
    out = tmp_path / "qkeras"
    shutil.copytree(source, out)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run([sys.executable, "-c", KILLED_CONVERSION, str(out)], env=env)
    assert killed.returncode == -9
    assert not (out / CACHE_FILE).exists()
    capsys.readouterr()
    report = convert(QKERAS, output_dir=out, n=200, engine="csim")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "restored" in warnings[0] and "interrupted" in warnings[0]
    assert report["cache"]["hit"]  # the old project is back, whole: nothing to rebuild
    assert not list(tmp_path.glob(".qkeras.replaced-*"))


def test_half_written_project_of_a_killed_conversion_is_removed(tmp_path, capsys):
    import os

    out = tmp_path / "new"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", KILLED_CONVERSION, str(out)], env=env)
    shutil.rmtree(next(tmp_path.glob(".new.replaced-*")))  # a first conversion: there was nothing to replace
    from edgeml import integrity, locks

    with locks.hold(out, locks.OUTPUT_DIR) as held:
        assert held.interrupted
        integrity.recover_project(out, CACHE_FILE, held.interrupted)
    assert not out.exists()
    assert "removed the half-written project" in capsys.readouterr().err


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    from edgeml import integrity

    keep = [".baseline.lock", ".baseline.lock.json", ".baseline.replaced-12", ".hidden", "model.h5", ".x.abc.h5"]
    stale = [".scaler.json.m_ijczxw.json", ".baseline.h5.abcdefgh.h5", "..baseline.lock.json.syvqr_16.json"]
    for name in keep + stale:
        (tmp_path / name).write_text("x")
    integrity.remove_stale_temporaries(tmp_path, ".baseline.lock.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + stale[:2])
    integrity.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
