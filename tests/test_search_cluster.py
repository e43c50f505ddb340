"""edgeml search on a real Ray cluster (ray start --head on loopback), and under faults (slow: real trials)."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_search import ROOT, TINY, write_config

# The environment of the README's recipe: nothing about Ray's authentication set, whatever this shell has.
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_")}, "PYTHONPATH": str(ROOT),
       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_pids(pgid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def listening_addresses(pids: set[int]) -> list[str]:
    """Local addresses of the listening TCP sockets that ``pids`` own (ss -ltnp)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines()
            if any(f"pid={p}," in line for p in pids)]


def kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(3)


def start(*args, env=ENV) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeml", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def start_head(env=ENV) -> tuple[subprocess.Popen, int, str]:
    """The README's `ray start --head --node-ip-address=127.0.0.1 --port P` (blocking, in its own session
    directory, two CPUs, no dashboard, so the test owns and stops it); returns once the port answers."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    head = subprocess.Popen([RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--port", str(port),
                             "--temp-dir", temp, "--num-cpus", "2", "--include-dashboard=false", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return head, port, temp
        except OSError:
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(1)


def search_on_cluster(tmp_path, env=ENV) -> None:
    head, port, temp = start_head(env)
    try:
        search = start("search", str(write_config(tmp_path, TINY.replace("trials: 2", "trials: 3"))),
                       "--address", f"127.0.0.1:{port}", "--trials", "3", "--epochs", "1",
                       "--run-dir", str(tmp_path / "run"), "--json", env=env)
        addresses = []
        while search.poll() is None:  # every socket of the cluster and the search stays on loopback
            addresses += listening_addresses(group_pids(head.pid) | group_pids(search.pid))
            time.sleep(2)
        out, err = search.communicate()
        assert search.returncode == 0, err[-3000:]
        loopback = ("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:")
        assert addresses and all(a.startswith(loopback) for a in addresses), addresses
        result = json.loads(out)
        assert result["address"] == f"127.0.0.1:{port}" and len(result["trials"]) == 3
        assert all(t["status"] in ("completed", "infeasible", "failed") for t in result["trials"])
        done = [t for t in result["trials"] if t["status"] != "failed"]
        assert done and all(t["node_id"] in result["nodes"] for t in done)
        assert (Path(temp) / "session_latest").exists()  # the cluster we started holds the session
    finally:
        kill_group(head)


def test_search_on_a_ray_cluster(tmp_path):
    """The README's recipe as a user runs it: this machine's ~/.ray (a local Ray left a token there, so the head
    turns token authentication on, and the search must attach with that token)."""
    search_on_cluster(tmp_path)


@pytest.mark.slow
def test_search_on_a_ray_cluster_without_authentication(tmp_path):
    """A machine where Ray never ran: no token, so `ray start --head` leaves authentication off."""
    home = tmp_path / "home"
    home.mkdir()
    search_on_cluster(tmp_path, {**ENV, "HOME": str(home)})


def test_cluster_token_missing_or_wrong_is_one_line(tmp_path):
    """A head with token authentication (its HOME holds a token); a client without that token stops at once
    with one line naming what to set."""
    head_home, client_home = tmp_path / "head", tmp_path / "client"
    (head_home / ".ray").mkdir(parents=True)
    client_home.mkdir()
    (head_home / ".ray" / "auth_token").write_text("a" * 32)
    head, port, _ = start_head({**ENV, "HOME": str(head_home)})
    config = str(write_config(tmp_path))
    try:
        for env, word in (({**ENV, "HOME": str(client_home)}, "this machine has no token"),
                          ({**ENV, "HOME": str(client_home), "RAY_AUTH_TOKEN": "b" * 32},
                           "refuses the token from RAY_AUTH_TOKEN")):
            started = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "edgeml", "search", config, "--address", f"127.0.0.1:{port}",
                                "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, env=env,
                               timeout=120)
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            assert r.returncode == 2 and len(lines) == 1 and word in lines[0] and "RAY_AUTH_TOKEN" in lines[0], r.stderr
            assert time.monotonic() - started < 30
    finally:
        kill_group(head)


def _worker_pids(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ImplicitFunc" in line or "_trainable" in line]


@pytest.mark.slow
def test_killed_worker_still_ends_with_every_trial_accounted_for(tmp_path):
    run = tmp_path / "run"
    search = start("search", str(write_config(tmp_path, TINY.replace("trials: 2", "trials: 3"))),
                   "--run-dir", str(run), "--epochs", "3", "--workers", "2", "--json")
    try:
        deadline = time.monotonic() + 180
        while not _worker_pids(search.pid):
            assert search.poll() is None and time.monotonic() < deadline, "no trial worker appeared"
            time.sleep(1)
        time.sleep(1)  # mid-trial: the worker imports TensorFlow for ~2 s, then trains (a 3-epoch trial takes ~2 s)
        pids = _worker_pids(search.pid)
        assert pids, "every trial worker had ended before one could be killed"
        os.kill(pids[0], signal.SIGKILL)
        out, err = search.communicate(timeout=900)
    finally:
        kill_group(search)
    assert search.returncode in (0, 1), err[-3000:]  # 1 only if every trial failed
    records = json.loads((run / "trials.json").read_text())
    assert len(records) == 3 and all(r["status"] in ("completed", "failed", "infeasible") for r in records)
    assert (run / "search_summary.json").is_file() and (run / "search_report.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("state_period_s", ["0.5", "1000"])  # 1000: Tune's saved state surely predates the kill
def test_killed_driver_then_resume_runs_only_the_remaining_trials(tmp_path, state_period_s):
    run = tmp_path / "run"
    config = write_config(tmp_path, TINY.replace("trials: 2", "trials: 4"))
    search = start("search", str(config), "--run-dir", str(run), "--epochs", "1", "--workers", "1",
                   env={**ENV, "TUNE_GLOBAL_CHECKPOINT_S": state_period_s})
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                before = json.loads((run / "trials.json").read_text())
            except (OSError, ValueError):
                before = []
            if before:
                break
            assert search.poll() is None and time.monotonic() < deadline, search.stderr.read()[-2000:]
            time.sleep(0.5)
        os.kill(search.pid, signal.SIGKILL)  # kill -9 the driver only
        search.wait()
    finally:
        kill_group(search)  # then what it left behind (its local Ray), ours to clean
    before = json.loads((run / "trials.json").read_text())
    assert 1 <= len(before) < 4
    resumed = subprocess.run([sys.executable, "-m", "edgeml", "search", str(config), "--run-dir", str(run),
                              "--epochs", "1", "--workers", "1", "--resume"], capture_output=True, text=True,
                             env={**ENV, "TUNE_GLOBAL_CHECKPOINT_S": state_period_s}, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = json.loads((run / "trials.json").read_text())
    assert len(after) == 4 and len({r["trial_id"] for r in after}) == 4
    kept = {r["trial_id"]: r for r in after}
    assert all(kept[r["trial_id"]]["seconds"] == r["seconds"] for r in before)  # not rerun
    progress = [ln for ln in resumed.stderr.splitlines() if "[edgeml] search " in ln and "/4: trial" in ln]
    assert len(progress) <= 4 - len(before), progress  # only the remaining trials ran
