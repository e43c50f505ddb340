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

from edgeml import config as cfgmod
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
    """Train, convert and estimate one point; return its result (model bytes included, base64).

    A qkeras trial is one design. An hgq trial's training gives a front of snapshots, each one a design
    converted, estimated and checked against the budget (``designs``); the trial reports to the sampler its
    best design (the most accurate feasible one, else the one closest to the budget)."""
    pin_threads()
    import tensorflow as tf

    started, started_at = time.monotonic(), time.time()
    tf.keras.backend.clear_session()  # a reused worker must not accumulate earlier trials' graphs
    precision = spaces.input_precision(params, data.search["space"])
    t_in = Fixed.parse(precision)
    splits = splits_of(data, t_in)
    hls = spaces.hls_section(params, data.cfg, data.search)
    with tempfile.TemporaryDirectory(prefix="edgeml-trial-") as tmp:
        teacher = _teacher(data.teacher_h5, Path(tmp)) if params["distill"] else None
        if params.get("method", spaces.QKERAS) == spaces.HGQ:
            designs = _hgq_designs(params, data, splits, teacher, hls, Path(tmp))
        else:
            designs = [_qkeras_design(params, data, splits, teacher, hls, t_in.width, Path(tmp))]
    best = primary(designs)
    models = {d.pop("key"): base64.b64encode(d.pop("model_bytes")).decode("ascii") for d in designs}
    return {**{k: v for k, v in best.items() if k not in ("epoch", "beta")},
            "method": params.get("method", spaces.QKERAS), "input_precision": precision,
            "designs": designs if params.get("method") == spaces.HGQ else None, "design": best.get("epoch"),
            "seconds": round(time.monotonic() - started, 2), "started_at": started_at, "ended_at": time.time(),
            "pid": os.getpid(), "core": held_core(), "hostname": socket.gethostname(),
            "node_id": _node_id(), "models": models}


def primary(designs: list[dict]) -> dict:
    """The design a trial reports: the most accurate within budget (then the cheapest), else the least over it."""
    feasible = [d for d in designs if d["feasible"]]
    if feasible:
        return max(feasible, key=lambda d: (d["accuracy"], -d["cost"]))
    return min(designs, key=lambda d: (max(d["excess"].values(), default=0.0), -d["accuracy"]))


def _measured(model_bytes: bytes, hls: dict, splits, data: TrialData, tmp: Path) -> tuple[dict, object]:
    """Validation accuracy and estimate of exactly the bytes the front will ship, checked against the budget
    on the run's ``estimate.basis`` (resources after synthesis by default; latency and II from csynth)."""
    from edgeml.convert import build_hls_model
    from edgeml.estimate import estimate
    from edgeml.modelio import load_model

    path = tmp / "design.h5"
    path.write_bytes(model_bytes)
    model = load_model(path)
    proba = model.predict(splits.X_val, batch_size=4096, verbose=0)
    total = budgets.ranked(estimate(build_hls_model(model, hls_for(model, hls), tmp / "hls"),
                                    basis=cfgmod.estimate_basis(data.cfg)))
    over = budgets.excess(total, budgets.limits(data.search["budget"]))
    row = {"accuracy": float(np.mean(proba.argmax(axis=1) == splits.y_val)), "lut": int(round(total["lut"])),
           "dsp": int(round(total["dsp"])), "ff": int(round(total["ff"])), "bram": float(total["bram_18k"]),
           "latency_ns": float(total["latency_ns"]), "ii": int(total["ii"]),
           "feasible": all(v <= 0 for v in over.values()), "excess": over, "constraints": constraints(over),
           "model_bytes": model_bytes}
    return row, model


def input_layer_name(model) -> str:
    """The name hls4ml gives the model's input layer (a Sequential's is '<first layer>_input'; HGQ's proxy
    models are functional, their InputLayer named by Keras)."""
    config = model.get_config()
    if config.get("input_layers"):
        return config["input_layers"][0][0]
    first = config["layers"][0]
    return first["config"]["name"] if first["class_name"] == "InputLayer" else f"{model.layers[0].name}_input"


def hls_for(model, hls: dict) -> dict:
    """``hls`` with the trial's input precision (``spaces.hls_section`` sets it on 'fc1_input') on the input layer
    of ``model``."""
    layers = dict(hls.get("LayerName") or {})
    name = input_layer_name(model)
    if spaces.INPUT_LAYER in layers and name != spaces.INPUT_LAYER:
        layers[name] = layers.pop(spaces.INPUT_LAYER)
    return {**hls, "LayerName": layers}


def _finish_row(row: dict, objective: str) -> dict:
    row["status"] = "completed" if row["feasible"] else "infeasible"
    row["cost"] = cost_of(row, objective)
    return row


def _qkeras_design(params: dict, data: TrialData, splits, teacher, hls: dict, input_bits: int, tmp: Path) -> dict:
    from edgeml.compress.cost import model_cost
    from edgeml.compress.recipes import Recipe, train_recipe
    from edgeml.modelio import save_model

    recipe = Recipe("trial", spaces.recipe_section(params, data.epochs))
    trained, _, _ = train_recipe(recipe, data.cfg, splits, teacher, progress=False, autotune_input=False)
    save_model(trained, tmp / "model.h5")
    row, model = _measured((tmp / "model.h5").read_bytes(), hls, splits, data, tmp)
    cost = model_cost(model, input_bits=input_bits)
    row.update(bops=int(cost["bops"]), ebops=qkeras_ebops(cost), params=int(cost["nonzero_weights"]),
               sparsity_achieved=float(cost["sparsity"]), key="")
    return _finish_row(row, data.search["objective"])


def qkeras_ebops(cost: dict) -> int:
    """HGQ's EBOPs of a QKeras model: the multiplier bits (weight bits x input bits) of every nonzero weight,
    with QKeras's one width per layer where HGQ has one per weight; no accumulator term (BOPs has one)."""
    return int(sum(v["nonzero"] * v["weight_bits"] * v["input_bits"] for v in cost["cost_per_layer"].values()))


def _hgq_designs(params: dict, data: TrialData, splits, teacher, hls: dict, tmp: Path) -> list[dict]:
    from edgeml.compress.hgq import proxy_cost, train_hgq
    from edgeml.modelio import save_model

    recipe = spaces.hgq_recipe_section(params, data.search["hgq_epochs"])
    front = train_hgq(recipe, splits, teacher=teacher, cfg=data.cfg, progress=False, autotune_input=False)
    designs = []
    for snap in front.snapshots:
        save_model(snap.proxy, tmp / "model.h5")
        row, model = _measured((tmp / "model.h5").read_bytes(), hls, splits, data, tmp)
        cost = proxy_cost(model)
        # BOPs of an HGQ design are its EBOPs (as `edgeml compress` reports them): HGQ counts per-weight bits
        row.update(bops=int(round(snap.ebops)), ebops=int(round(snap.ebops)), params=int(cost["nonzero_weights"]),
                   sparsity_achieved=float(cost["sparsity"]), epoch=snap.epoch, beta=snap.beta,
                   key=snap.tag)
        designs.append(_finish_row(row, data.search["objective"]))
    return designs


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
