"""edgeml search: config, bad input, and a tiny real search (local Ray on loopback, real training/hls4ml/g++)."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from edgeml import config as cfgmod  # noqa: E402
from edgeml.errors import ConfigError, InputError  # noqa: E402
from edgeml.search import budget as budgets  # noqa: E402
from edgeml.search import space as spaces  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = """
name: tiny
data: {max_jets: 3000}
search:
  trials: 2
  space: {hidden_layers: [1, 2], widths: [8, 16], distill: [false], ReuseFactor: [1], Strategy: [Latency],
          method: [qkeras]}
"""


def edgeml(*args, cwd=None, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "edgeml", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def write_config(tmp_path, text=TINY) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(text)
    return path


def test_search_section_is_optional_and_validated():
    assert cfgmod.validate({})["search"] is None  # the default run has no search stage
    cfg = cfgmod.validate({"search": {}})
    assert cfg["search"]["budget"]["Part"] == "xcu250-figd2104-2L-e" and cfgmod.validate(cfg) == cfg
    for bad, word in [({"search": {"space": {"widths": []}}}, "empty"),
                      ({"search": {"space": {"weight_bits": [8, 4]}}}, "low <= high"),
                      ({"search": {"space": {"weight_bits": [1, 4]}}}, "within"),
                      ({"search": {"budgett": {}}}, "unknown key 'search.budgett'")]:
        with pytest.raises(ConfigError, match=word):
            cfgmod.validate(bad)


def test_space_distributions_and_trial_settings():
    space = cfgmod.validate({"search": {}})["search"]["space"]
    dists = spaces.distributions(space)
    assert {"hidden_layers", "width_4", "weight_bits_out", "input_bits", "sparsity", "distill", "ReuseFactor",
            "Strategy", "learning_rate"} <= set(dists)
    start = spaces.starting_point(space)
    assert spaces.hidden_widths(start) == [64, 32, 32] and start["input_bits"] == 16
    recipe = spaces.recipe_section(start, epochs=5)
    assert recipe["quantize"]["per_layer"]["fc2"]["bits"] == 6 and recipe["prune"]["sparsity"] == 0.75
    compact = spaces.starting_points(space)[1]
    assert [compact[f"weight_bits_{i}"] for i in (1, 2, 3)] == [6, 4, 4] and compact["weight_bits_out"] == 5
    cfg = cfgmod.validate({"search": {}})
    hls = spaces.hls_section(start, cfg, cfg["search"])
    assert hls["LayerName"]["fc1_input"]["Precision"] == "ap_fixed<16,4>"
    with pytest.raises(InputError, match="input_integer"):
        spaces.distributions({**space, "input_bits": [2, 3]})


def test_budget_excess_and_tightest_constraint():
    budget = cfgmod.validate({"search": {}})["search"]["budget"]
    limits = budgets.limits(budget)
    assert limits["LUT"] == pytest.approx(0.05 * 1728000, rel=0.01) and limits["II"] == 5
    total = {"lut": 2 * limits["LUT"], "dsp": 0, "ff": 0, "bram_18k": 0, "latency_ns": 50, "ii": 1}
    over = budgets.excess(total, limits)
    assert over["LUT"] == pytest.approx(1.0) and over["latency"] < 0
    records = [{"excess": {"LUT": 1.0, "latency": 0.5}}, {"excess": {"LUT": 0.1, "latency": -1}}]
    assert budgets.tightest(records).startswith("LUT (search.budget.max_lut_pct) is exceeded by 2 of 2")
    with pytest.raises(InputError, match="device table"):
        budgets.limits({**budget, "Part": "xc-nonsense"})


@pytest.mark.parametrize("args, config, word", [
    (["--address", "127.0.0.1:9"], TINY, "no Ray cluster at 127.0.0.1:9"),
    ([], TINY.replace("distill: [false]", "distill: []"), "search.space.distill is empty"),
    ([], TINY.replace("distill: [false]", "distill: [false], input_bits: [2, 3]"), "input_integer"),
    ([], TINY.replace("trials: 2", "trials: 2\n  colour: red"), "unknown key 'search.colour'"),
    (["--time-budget", "0"], TINY, "--time-budget must be a positive number of minutes"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, config, word):
    started = time.monotonic()
    r = edgeml("search", str(write_config(tmp_path, config)), "--run-dir", str(tmp_path / "run"), *args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert time.monotonic() - started < 60  # an unreachable address fails fast


def test_tiny_search_end_to_end(tmp_path):
    """Two real trials on a local loopback Ray: logs, front models ready for convert, summary, report, --json."""
    run = tmp_path / "run"
    ray_sessions = set(Path(tempfile.gettempdir()).glob("edgeml-ray-*"))
    r = edgeml("search", str(write_config(tmp_path)), "--run-dir", str(run), "--epochs", "1", "--workers", "2",
               "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert set(Path(tempfile.gettempdir()).glob("edgeml-ray-*")) <= ray_sessions  # Ray's session files removed
    out = json.loads(r.stdout)
    assert out["engine"] == "ray" and out["address"] is None and len(out["trials"]) == 2
    assert all(t["status"] in ("completed", "failed", "infeasible") for t in out["trials"])
    assert sum("search 1/2" in ln or "search 2/2" in ln for ln in r.stderr.splitlines()) == 2  # progress lines
    records = json.loads((run / "trials.json").read_text())
    assert [r["trial"] for r in records] == [1, 2]
    if len(os.sched_getaffinity(0)) == 2:  # two workers fill the cores: each trial ran pinned to its own
        assert sorted(r["core"] for r in records) == sorted(os.sched_getaffinity(0))
    for state in (run / "tune" / "search").glob("experiment_state-*.json"):
        assert "\"models\"" not in state.read_text()  # Tune's state (rewritten all along) stays small
    header = (run / "trials.csv").read_text().splitlines()[0].split(",")
    for col in ("accuracy", "cost", "lut", "dsp", "ff", "bram", "latency_ns", "ii", "bops", "params", "feasible",
                "status", "seconds", "param_width_1", "param_sparsity"):
        assert col in header
    summary = json.loads((run / "search_summary.json").read_text())
    assert summary["front"], "two feasible trials give a non-empty front"
    with np.load(run / "data" / "test_jets.npz") as z:
        n_test = len(z["y"])
    for f in summary["front"]:
        model = run / f["model"]
        assert model.is_file() and model.with_name(f"{model.stem}_scaler.json").is_file()
        assert f["n_test"] == n_test and abs(f["accuracy_test"] - f["accuracy_test_keras"]) < 0.1  # firmware ~ Keras
    assert set(summary["reference"]) == {"tutorial_qkeras", "edgeml_compact"}
    html = (run / "search_report.html").read_text()
    assert "data:image/png;base64," in html and "edgeml_compact" in html and "<script" not in html
    # a second search in the same directory needs --resume or --force
    again = edgeml("search", str(write_config(tmp_path)), "--run-dir", str(run), "--epochs", "1")
    assert again.returncode == 2 and "--resume" in again.stderr


def test_trial_workers_take_distinct_cores(tmp_path):
    """Each worker pins all its threads to a core no other holds; with every core taken, the next runs unpinned."""
    cores = sorted(os.sched_getaffinity(0))
    code = ("import os, sys; from edgeml.search.workers import pin_to_free_core; pin_to_free_core(); "
            "print(sorted({c for t in os.listdir('/proc/self/task') for c in os.sched_getaffinity(int(t))}), "
            "flush=True); sys.stdin.read()")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGEML_CORE_LOCKS": str(tmp_path)}
    workers, seen = [], []
    try:
        for _ in range(len(cores) + 1):
            workers.append(subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True, env=env))
            seen.append(json.loads(workers[-1].stdout.readline()))
    finally:
        for w in workers:
            w.kill()
            w.wait()
    assert sorted(seen[:-1]) == [[c] for c in cores] and seen[-1] == cores


def test_pinned_worker_stops_tensorflow_thread_spinning(tmp_path):
    """A pinned trial worker starts TensorFlow without pool-thread spinning (private API: recheck on a TF upgrade)."""
    code = ("from edgeml.search.workers import pin_threads; pin_threads(); import tensorflow as tf; "
            "tf.constant(1.0) + 1.0; from tensorflow.python.eager import context; "
            "print(context.context().config.experimental.disable_thread_spinning)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGEML_CORE_LOCKS": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split() == ["True"], out.stderr[-2000:]


def test_budget_no_trial_meets(tmp_path):
    text = TINY.replace("trials: 2", "trials: 2\n  budget: {max_lut_pct: 0.01}")
    run = tmp_path / "run"
    r = edgeml("search", str(write_config(tmp_path, text)), "--run-dir", str(run), "--epochs", "1")
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no trial meets the budget: LUT (search.budget.max_lut_pct)"), last
    closest = last.split("closest was trial ")[1]  # the nearest trial's LUTs against 0.01% of the xcu250's
    assert "LUT " in closest and " > 173" in closest, last
    records = json.loads((run / "trials.json").read_text())
    assert len(records) == 2 and all(r["status"] == "infeasible" for r in records)
    assert json.loads((run / "search_summary.json").read_text())["front"] == []


@pytest.mark.slow
def test_time_budget_stops_the_search_on_the_wall_clock(tmp_path):
    """--time-budget ends a 500-trial search after its minutes, with the trials that finished logged and a front."""
    run = tmp_path / "run"
    r = edgeml("search", str(write_config(tmp_path, TINY.replace("trials: 2", "trials: 500"))), "--run-dir",
               str(run), "--epochs", "1", "--time-budget", "0.5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(at most 0.5 min)" in r.stderr
    records = json.loads((run / "trials.json").read_text())
    assert 2 <= len(records) < 500  # 500 one-epoch trials take far longer than half a minute on two workers
    assert json.loads((run / "search_summary.json").read_text())["front"]


@pytest.mark.slow
def test_run_gets_a_search_stage_from_a_search_section(tmp_path):
    """edgeml run with a search: section searches after the report, the run's baseline as teacher."""
    config = write_config(tmp_path, TINY.replace("search:\n", "train: {epochs: 2}\nsearch:\n  epochs: 1\n")
                          .replace("distill: [false]", "distill: [true]"))
    r = edgeml("run", str(config), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "search" / "search_summary.json").read_text())
    assert summary["counts"]["completed"] + summary["counts"]["infeasible"] == 2
    assert (tmp_path / "run" / "search" / "search_report.html").is_file()
    assert "training the float baseline once" not in r.stderr  # the run's baseline is the teacher


def test_progress_bar_draws_on_a_terminal_only():
    """edgeml.progress (tqdm): the bar with counts, ETA and the info text on a TTY; nothing in a log."""
    import fcntl
    import pty
    import struct
    import termios

    code = ("from edgeml.progress import Progress\n"
            "with Progress(3, 'train') as p:\n    for i in range(4): p.update(1, f'loss 0.{i}')\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: a 120-column terminal on stdin/stdout/stderr
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.execve(sys.executable, [sys.executable, "-c", code], {**os.environ, "PYTHONPATH": str(ROOT)})
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    screen = out.decode()
    assert "  train [########################] 3/3 " in screen and "ETA" in screen and "loss 0.3" in screen, screen
    logged = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert logged.returncode == 0 and logged.stderr == ""


def test_default_space_fits_every_part_of_the_device_table(tmp_path):
    """A budget on any part the estimator knows: the default space's starting points (QKeras and HGQ under
    distributed arithmetic) give valid hls sections, and a QKeras trial's graph is estimated on that part."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    from edgeml.convert import build_hls_model
    from edgeml.estimate import devices, estimate

    model = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(16,), name="fc1_input"),
        QDense(8, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
               name="fc1"),
        QActivation(quantized_relu(6, 0), name="relu1"),
        QDense(5, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
               name="output")])
    for part in devices.DEVICES:
        cfg = cfgmod.validate({"search": {"budget": {"Part": part}}})
        limits = budgets.limits(cfg["search"]["budget"])
        assert limits["LUT"] > 0 and limits["DSP"] > 0
        points = spaces.starting_points(cfg["search"]["space"])
        assert [p["method"] for p in points] == ["qkeras", "qkeras", "hgq"]
        sections = [spaces.hls_section(p, cfg, cfg["search"]) for p in points]
        assert all(h["Part"] == part for h in sections)
        assert (sections[2]["Strategy"], sections[2]["ReuseFactor"], sections[2]["IOType"]) == \
            ("distributed_arithmetic", 1, "io_parallel")
        total = estimate(build_hls_model(model, sections[0], tmp_path / part))["total"]
        assert total["lut"] > 0 and all(name in budgets.excess(total, limits) for name in limits)
