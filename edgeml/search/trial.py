"""One trial, on a Ray worker: the existing stages end to end on one point of the space.

compress (``train_recipe``: QKeras student, tfmot pruning, optional distillation) -> hls4ml graph
(``build_hls_model``, nothing compiled) -> ``estimate`` -> metrics. The jets are quantized to the
trial's input type before training and validation, so the accuracy is the one the firmware's
input sees. Everything a trial needs arrives in ``TrialData`` through Ray's object store.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from edgeml.fixed import Fixed
from edgeml.search import budget as budgets
from edgeml.search import space as spaces
from edgeml.search.engine import CORE_LOCKS_ENV

# Cost columns of every trial record (trials.csv / trials.json / the front).
COST_COLUMNS = ("lut", "dsp", "ff", "bram", "latency_ns", "ii", "bops", "params")
DSP_LUT_EQUIVALENT = 55  # one DSP counted as 55 LUTs in the default cost


@dataclass
class TrialData:
    """What every trial reads: the run's splits (scaled), its scaler, the teacher, the settings."""

    arrays: dict  # X_train, y_train, X_val, y_val, X_test, y_test
    scaler: object  # edgeml.data.Scaler
    classes: list
    teacher_h5: bytes | None
    cfg: dict
    search: dict  # the validated search section
    epochs: int


_HELD_CORE_LOCK: list[FileLock] = []  # held for the worker's life: it keeps this worker's core


def pin_to_free_core() -> None:
    """Move this worker (every thread) to a core no other trial worker holds, when the search asks for it
    (a local search whose trials fill every core); a worker that died frees its core with its lock."""
    lock_dir = os.environ.get(CORE_LOCKS_ENV)
    if not lock_dir or _HELD_CORE_LOCK:
        return
    for core in sorted(os.sched_getaffinity(0)):
        lock = FileLock(os.path.join(lock_dir, f"core{core}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        _HELD_CORE_LOCK.append(lock)
        for thread in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that has just ended
                os.sched_setaffinity(int(thread), {core})
        return


def _held_core() -> int | None:
    affinity = os.sched_getaffinity(0)
    return next(iter(affinity)) if _HELD_CORE_LOCK and len(affinity) == 1 else None


def pin_threads() -> None:
    """One TensorFlow thread per trial: W trials on W cores must not fight over them."""
    os.environ["OMP_NUM_THREADS"] = "1"
    pin_to_free_core()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this (reused) worker: the setting is in force
        pass
    if _held_core() is not None:
        stop_thread_spinning()


def stop_thread_spinning() -> None:
    """TensorFlow's pool thread spins a while waiting for its next op. On a worker pinned to one core that
    spin only takes the core from the Python thread that has the work: the same trials ran 2.5% faster
    side by side without it (28.8 vs 29.5 s for five, four pairs), and no slower unpinned. TensorFlow 2.14
    has no public switch for the eager context, so the ConfigProto option goes into the context before it
    starts (a reused worker's context has started with it already)."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    if ctx._initialized:
        return
    config = config_pb2.ConfigProto()
    if ctx._config is not None:
        config.CopyFrom(ctx._config)
    config.experimental.disable_thread_spinning = True
    ctx._config = config


def cost_of(row: dict, objective: str) -> float:
    """The objective's cost of a trial record (or reference): LUT + 55*DSP, latency in ns, or BOPs."""
    if objective == "latency":
        return float(row["latency_ns"])
    if objective == "bops":
        return float(row["bops"])
    return float(row["lut"] + DSP_LUT_EQUIVALENT * row["dsp"])


def constraints(excess: dict) -> list[float]:
    """Optuna's constraint values: each limit's relative excess (<= 0 within budget), capped to stay finite."""
    return [float(min(v, 1e9)) for v in excess.values()]


def splits_of(data: TrialData, input_type):
    """The run's splits with every feature quantized to the firmware input type ``input_type``."""
    from edgeml.data import Splits

    a = data.arrays
    q = (lambda X: input_type.quantize_to_floats(X).astype(np.float32)) if input_type is not None else (lambda X: X)
    return Splits(q(a["X_train"]), a["y_train"], q(a["X_val"]), a["y_val"], q(a["X_test"]), a["y_test"],
                  data.scaler, list(data.classes))


def run_trial(params: dict, data: TrialData) -> dict:
    """Train, convert and estimate one point; return its record (model bytes included, base64)."""
    pin_threads()
    import tensorflow as tf

    from edgeml.compress.cost import model_cost
    from edgeml.compress.recipes import Recipe, train_recipe
    from edgeml.convert import build_hls_model
    from edgeml.estimate import estimate
    from edgeml.modelio import load_model, save_model

    started, started_at = time.monotonic(), time.time()
    tf.keras.backend.clear_session()  # a reused worker must not accumulate earlier trials' graphs
    search = data.search
    precision = spaces.input_precision(params, search["space"])
    t_in = Fixed.parse(precision)
    splits = splits_of(data, t_in)
    hls = spaces.hls_section(params, data.cfg, search)
    recipe = Recipe("trial", spaces.recipe_section(params, data.epochs))
    with tempfile.TemporaryDirectory(prefix="edgeml-trial-") as tmp:
        teacher = _teacher(data.teacher_h5, Path(tmp)) if params["distill"] else None
        trained, _, _ = train_recipe(recipe, data.cfg, splits, teacher, progress=False, autotune_input=False)
        path = Path(tmp) / "model.h5"
        save_model(trained, path)
        model = load_model(path)  # accuracy and estimate of exactly the bytes the front will ship
        model_bytes = path.read_bytes()
        proba = model.predict(splits.X_val, batch_size=4096, verbose=0)
        accuracy = float(np.mean(proba.argmax(axis=1) == splits.y_val))
        total = estimate(build_hls_model(model, hls, Path(tmp) / "hls"))["total"]
    cost = model_cost(model, input_bits=t_in.width)
    row = {"lut": int(round(total["lut"])), "dsp": int(round(total["dsp"])), "ff": int(round(total["ff"])),
           "bram": float(total["bram_18k"]), "latency_ns": float(total["latency_ns"]), "ii": int(total["ii"]),
           "bops": int(cost["bops"]), "params": int(cost["nonzero_weights"])}
    over = budgets.excess(total, budgets.limits(search["budget"]))
    return {"accuracy": accuracy, "cost": cost_of(row, search["objective"]), **row,
            "feasible": all(v <= 0 for v in over.values()), "excess": over,
            "constraints": constraints(over),
            "input_precision": precision, "sparsity_achieved": float(cost["sparsity"]),
            "seconds": round(time.monotonic() - started, 2), "started_at": started_at, "ended_at": time.time(),
            "pid": os.getpid(), "core": _held_core(), "hostname": socket.gethostname(),
            "node_id": _node_id(), "model_h5_b64": base64.b64encode(model_bytes).decode("ascii")}


def _teacher(teacher_h5: bytes | None, tmp: Path):
    from edgeml.errors import InputError
    from edgeml.modelio import load_model

    if teacher_h5 is None:
        raise InputError("a distilled trial needs the float baseline as teacher; none was shipped")
    path = tmp / "teacher.h5"
    path.write_bytes(teacher_h5)
    return load_model(path)


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
