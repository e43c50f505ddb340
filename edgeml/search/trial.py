"""One trial, on a Ray worker: the existing stages end to end on one point of the space.

compress (``train_recipe``: QKeras student, tfmot pruning, optional distillation) -> hls4ml graph
(``build_hls_model``, nothing compiled) -> ``estimate`` -> metrics. The jets are quantized to the
trial's input type before training and validation, so the accuracy is the one the firmware's
input sees. Everything a trial needs arrives in ``TrialData`` through Ray's object store.
"""

from __future__ import annotations

import base64
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.fixed import Fixed
from edgeml.search import budget as budgets
from edgeml.search import space as spaces
from edgeml.search.records import constraints, cost_of
from edgeml.search.workers import held_core, pin_threads


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
            "pid": os.getpid(), "core": held_core(), "hostname": socket.gethostname(),
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
