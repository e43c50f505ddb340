"""Run/project directory locks with real processes: refusal in a second, --wait, takeover after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeml import locks

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from edgeml import locks
with locks.hold(sys.argv[1], locks.RUN_DIR):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def holder(directory: Path, seconds: float = 60) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env=env())
    assert proc.stdout.readline().strip() == "held"
    return proc


def edgeml(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeml", *args], capture_output=True, text=True, env=env(),
                          timeout=timeout)


def test_second_run_on_a_locked_directory_exits_2_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    proc = holder(run_dir)
    try:
        started = time.monotonic()
        result = edgeml("run", "--run-dir", str(run_dir))
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: run directory {run_dir} is in use by pid {proc.pid} since ")
    assert lines[0].endswith("; wait for it, pass --wait, or use another --run-dir")
    assert elapsed < 30  # the refusal itself is immediate; the rest is the interpreter starting up
    assert not run_dir.exists()  # refused before touching anything


def test_refusal_is_fast_in_process(tmp_path):
    proc = holder(tmp_path / "d")
    try:
        started = time.monotonic()
        with pytest.raises(locks.DirectoryBusy, match=f"in use by pid {proc.pid} since"):
            with locks.hold(tmp_path / "d"):
                pass
        assert time.monotonic() - started < 1.0
        # the same directory named differently is the same lock
        with pytest.raises(locks.DirectoryBusy):
            with locks.hold(tmp_path / "x" / ".." / "d", locks.OUTPUT_DIR):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_convert_output_and_report_messages(tmp_path):
    proc = holder(tmp_path / "prj")
    try:
        result = edgeml("convert", "model.h5", "--output", str(tmp_path / "prj"))
        assert result.returncode == 2
        assert result.stderr.strip().endswith("; wait for it, pass --wait, or use another --output")
        assert f"output directory {tmp_path / 'prj'} is in use by pid {proc.pid}" in result.stderr
    finally:
        proc.kill()
        proc.wait()
    proc = holder(tmp_path / "run")
    try:
        result = edgeml("report", str(tmp_path / "run"))
        assert result.returncode == 2
        assert result.stderr.strip().endswith(f"is in use by pid {proc.pid} since "
                                              f"{json.loads((tmp_path / '.run.lock.json').read_text())['since']}"
                                              "; wait for it or pass --wait")
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_process_killed_with_sigkill_is_taken_over(tmp_path):
    proc = holder(tmp_path / "d")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / ".d.lock.json").is_file()  # the dead holder could not clean up
    with locks.hold(tmp_path / "d") as held:
        assert held.interrupted["pid"] == proc.pid
        assert json.loads((tmp_path / ".d.lock.json").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".d.lock.json").exists()


def test_wait_queues_until_the_holder_is_done(tmp_path):
    proc = holder(tmp_path / "d", seconds=1.5)
    started = time.monotonic()
    with locks.hold(tmp_path / "d", wait=True) as held:
        assert time.monotonic() - started > 0.5
        assert held.interrupted is None  # the holder finished normally
    proc.wait()


@pytest.mark.parametrize("sidecar", ["", "{\"pid\": 12", "[1, 2]", "{\"pid\": \"x\", \"since\": 3}"])
def test_garbled_holder_info_gives_a_vaguer_message_never_a_crash(tmp_path, sidecar):
    proc = holder(tmp_path / "d")
    try:
        (tmp_path / ".d.lock.json").write_text(sidecar)
        with pytest.raises(locks.DirectoryBusy, match=r"is in use by another process; wait for it"):
            with locks.hold(tmp_path / "d"):
                pass
    finally:
        proc.kill()
        proc.wait()
    with locks.hold(tmp_path / "d") as held:  # garbled info of a dead holder: taken over all the same
        assert held.interrupted is None


def test_independent_directories_are_not_serialised(tmp_path):
    proc = holder(tmp_path / "a")
    try:
        with locks.hold(tmp_path / "b"), locks.hold(tmp_path / "a2", locks.OUTPUT_DIR):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_unwritable_lock_location_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(locks.EdgemlError, match="cannot lock run directory .*choose a writable location"):
        with locks.hold(blocker / "run"):
            pass


def test_reentrant_within_a_process(tmp_path):
    with locks.hold(tmp_path / "d") as outer:
        with locks.hold(tmp_path / "d", wait=True) as inner:  # no deadlock, no refusal
            assert inner.lock == outer.lock
        assert (tmp_path / ".d.lock.json").is_file()  # the inner exit does not release the outer hold
    assert not (tmp_path / ".d.lock.json").exists()
