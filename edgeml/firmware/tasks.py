"""What the fidelity report measures, by task: classification, regression or autoencoder (NumPy only).

The task of each model output comes from ``--task`` or, with ``auto``, from the output layer:
a softmax (or a single sigmoid unit) classifies, an output of the input's shape reconstructs
(autoencoder), anything else regresses. The report states the task and why.

Trigger working points select the events whose score is **strictly above** a threshold; the
threshold is the lowest value that keeps the selected fraction of background at or below the
target rate. Firmware outputs are discrete, so many events can share the threshold value:
they are all left out together (never split arbitrarily), the achieved rate is reported beside
the target, and the events at the threshold are counted (``ties_at_threshold``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeml.errors import InputError

TASKS = ("auto", "classification", "regression", "autoencoder")
BACKGROUND_RATES = (0.1, 0.01, 0.001)
SCORE_QUANTILES = (0.999, 0.9999)
RELATIVE_FLOOR = 0.01  # relative errors divide by max(|Keras value|, 1% of that output's standard deviation)


@dataclass(frozen=True)
class OutputTask:
    """The task of one model output (``name``: the Keras output layer) and why it was chosen."""

    name: str
    task: str
    reason: str


def choose_tasks(model, requested: str = "auto", score_output: str | None = None,
                 jet_classes: int = 0) -> list[OutputTask]:
    """The task of every Keras output, in ``model.outputs`` order. ``jet_classes``: the model is edgeml's
    jet tagger with that many classes, so an output of that size is classification even without a softmax."""
    if requested not in TASKS:
        raise InputError(f"--task {requested!r} is unknown; use one of {', '.join(TASKS)}")
    names = list(model.output_names)
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.outputs]
    in_shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
    if score_output is not None and score_output not in names:
        raise InputError(f"--score-output {score_output}: the model has no output '{score_output}' "
                         f"(outputs: {', '.join(names)})")
    if score_output is not None and math.prod(shapes[names.index(score_output)]) != 1:
        raise InputError(f"--score-output {score_output}: the score must be one value per event, the output "
                         f"has shape {shapes[names.index(score_output)]}")
    tasks = []
    for name, shape in zip(names, shapes):
        if requested != "auto":
            if requested == "autoencoder" and shape not in in_shapes and score_output is None:
                raise InputError(f"--task autoencoder: output '{name}' has shape {shape}, not the input's "
                                 f"{in_shapes[0]}; give the anomaly score with --score-output NAME")
            tasks.append(OutputTask(name, requested, "--task"))
            continue
        activation = output_activation(model.get_layer(name))
        if activation == "softmax":
            tasks.append(OutputTask(name, "classification", "softmax output"))
        elif jet_classes and shape == (jet_classes,):  # HGQ taggers end in logits: the firmware decides by argmax
            tasks.append(OutputTask(name, "classification", f"jet tagger: {jet_classes} class scores"))
        elif activation == "sigmoid" and math.prod(shape) == 1:
            tasks.append(OutputTask(name, "classification", "one sigmoid output"))
        elif len(in_shapes) == 1 and shape == in_shapes[0]:
            tasks.append(OutputTask(name, "autoencoder", "output has the input's shape"))
        elif name == score_output:
            tasks.append(OutputTask(name, "regression", "--score-output"))
        else:
            tasks.append(OutputTask(name, "regression", "no softmax, output not of the input's shape"))
    return tasks


def output_activation(layer) -> str | None:
    """The activation a Keras/QKeras layer ends with ('softmax', 'sigmoid', ...; None if linear or unknown)."""
    kind = type(layer).__name__
    if kind == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    name = getattr(activation, "__name__", None) or str(activation)
    name = name.lower()
    for known in ("softmax", "sigmoid"):
        if known in name:
            return known
    return None if name == "linear" else name


def check_labels(task: OutputTask, y: np.ndarray | None, out_shape: tuple[int, ...], source: str
                 ) -> np.ndarray | None:
    """Labels in the form the task uses, or an error saying why they do not fit the task.

    classification: integer classes (or one-hot) -> (n,) ints; regression: the target, one per
    output value -> (n, size); autoencoder: 0 (background) / 1 (signal) per event -> (n,) bool."""
    if y is None:
        return None
    y = np.asarray(y)
    size = math.prod(out_shape)
    where = f"{source}: labels 'y' do not fit the {task.task} task of output '{task.name}'"
    if task.task == "classification":
        classes = max(size, 2)
        if y.ndim == 2 and y.shape[1] == classes and size > 1 and np.all((y == 0) | (y == 1)) \
                and np.all(y.sum(axis=1) == 1):
            return y.argmax(axis=1).astype(np.int64)
        whole = y.ndim == 1 and y.dtype.kind in "iufb" and np.all(np.mod(y.astype(np.float64), 1) == 0)
        if not whole or y.min() < 0 or y.max() >= classes:
            raise InputError(f"{where}: expected integer classes 0..{classes - 1} or one-hot (n, {classes}), "
                             f"found {_describe(y)}")
        return y.astype(np.int64)
    if task.task == "regression":
        if y.dtype.kind not in "iufb" or y.reshape(len(y), -1).shape[1] != size:
            raise InputError(f"{where}: expected one target per output value, shape (n, "
                             f"{', '.join(map(str, out_shape))}), found {_describe(y)}")
        return y.reshape(len(y), -1).astype(np.float64)
    if y.ndim != 1 or not np.all((y == 0) | (y == 1)):
        raise InputError(f"{where}: expected 0 (background) or 1 (signal) per event, found {_describe(y)}")
    return y.astype(bool)


def _describe(y: np.ndarray) -> str:
    values = np.unique(y) if y.size else np.array([])
    shown = ", ".join(f"{v:g}" if y.dtype.kind in "iufb" else repr(v) for v in values[:5])
    return f"shape {tuple(y.shape)}, {y.dtype}, values {shown}" + ("..." if len(values) > 5 else "")


# --------------------------------------------------------------------------- working points

def threshold_at_rate(score: np.ndarray, rate: float) -> float:
    """The lowest threshold t with at most ``rate`` of ``score`` strictly above it (-inf: all pass)."""
    allowed = math.floor(rate * len(score) + 1e-9)
    if allowed >= len(score):
        return -math.inf
    return float(np.sort(score)[::-1][allowed])


def working_point(score: np.ndarray, signal: np.ndarray, rate: float) -> dict:
    """Signal efficiency at a background rate: events with score > t, t from the background (see module)."""
    t = threshold_at_rate(score[~signal], rate)
    selected = score > t
    tied = score == t
    with_ties = selected | tied  # the next point the discrete score allows, above the target rate
    return {"threshold": t, "signal_efficiency": float(np.mean(selected[signal])) if signal.any() else None,
            "background_rate": float(np.mean(selected[~signal])),
            "ties_at_threshold": int(tied.sum()), "background_ties_at_threshold": int((tied & ~signal).sum()),
            "signal_efficiency_with_ties": float(np.mean(with_ties[signal])) if signal.any() else None,
            "background_rate_with_ties": float(np.mean(with_ties[~signal])),
            "selected": selected}


def tie_gaps(points: dict) -> list[str]:
    """Working points the firmware cannot reach: its background rate falls below half the target because
    background events tie at the threshold (the threshold is itself a background value: one event at it
    is no tie) -> 'class at rate: rate without or with the tied events'."""
    gaps = []
    for cls, rows in points.items():
        for r in rows:
            f = r["firmware"]
            if f["background_ties_at_threshold"] > 1 and f["background_rate"] < r["background_rate_target"] / 2:
                gaps.append(f"{cls} at {r['background_rate_target']:g}: {f['background_rate']:.3g} or "
                            f"{f['background_rate_with_ties']:.3g} with the {f['background_ties_at_threshold']} "
                            f"background events tied at {f['threshold']:g}")
    return gaps


def working_points(y: np.ndarray, keras: np.ndarray, firmware: np.ndarray, labels: list[str],
                   rates=BACKGROUND_RATES) -> dict:
    """Per class (one-vs-rest; one output: class 1 against 0) and background rate: signal efficiency of
    Keras and of the firmware, each at its own threshold, and the fraction of Keras-selected events the
    firmware selects too."""
    columns = range(keras.shape[1]) if keras.shape[1] > 1 else [0]
    out = {}
    for c in columns:
        cls = c if keras.shape[1] > 1 else 1
        signal = y == cls
        if signal.all() or not signal.any():
            continue
        rows = []
        for rate in rates:
            k = working_point(keras[:, c], signal, rate)
            f = working_point(firmware[:, c], signal, rate)
            both = int(np.sum(k["selected"] & f["selected"]))
            rows.append({"background_rate_target": rate, "n_background": int((~signal).sum()),
                         "keras": _public(k), "firmware": _public(f),
                         "selected_by_both": both,
                         "selected_by_both_fraction": both / int(k["selected"].sum()) if k["selected"].any() else None})
        out[labels[cls] if keras.shape[1] > 1 else labels[-1]] = rows
    return out


def _public(point: dict) -> dict:
    return {k: v for k, v in point.items() if k != "selected"}


# --------------------------------------------------------------------------- regression and scores

def regression_fidelity(keras_q: np.ndarray, firmware: np.ndarray, keras_float: np.ndarray,
                        target: np.ndarray | None = None) -> dict:
    """Per output value: |firmware - Keras| (max, mean) and relative error (median, 99th percentile);
    against the target too when there is one."""
    diff = np.abs(firmware - keras_q)
    floor = RELATIVE_FLOOR * np.std(keras_q, axis=0)
    rel = diff / np.maximum(np.abs(keras_q), np.maximum(floor, 1e-30))
    out = {"max_abs_diff": diff.max(axis=0).tolist(), "mean_abs_diff": diff.mean(axis=0).tolist(),
           "relative_error_median": np.median(rel, axis=0).tolist(),
           "relative_error_p99": np.quantile(rel, 0.99, axis=0).tolist(),
           "max_abs_diff_all": float(diff.max()), "relative_error_p99_all": float(np.quantile(rel, 0.99))}
    if target is not None:
        out["mae_keras"] = np.mean(np.abs(keras_float - target), axis=0).tolist()
        out["mae_firmware"] = np.mean(np.abs(firmware - target), axis=0).tolist()
    return out


def reconstruction_score(x: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The autoencoder's anomaly score: mean squared error between an event's input and its reconstruction."""
    return np.mean((output.reshape(len(output), -1) - x.reshape(len(x), -1)) ** 2, axis=1)


def score_fidelity(keras: np.ndarray, firmware: np.ndarray, signal: np.ndarray | None = None,
                   quantiles=SCORE_QUANTILES) -> dict:
    """Does the firmware rank events like Keras, and select the same tail? Spearman rank correlation and,
    at the 99.9th/99.99th percentile thresholds of each, the events selected by both."""
    from scipy.stats import spearmanr

    rho = spearmanr(keras, firmware).statistic if np.ptp(keras) > 0 and np.ptp(firmware) > 0 else float("nan")
    rows = []
    for q in quantiles:
        rate = 1 - q
        tk, tf = threshold_at_rate(keras, rate), threshold_at_rate(firmware, rate)
        sk, sf = keras > tk, firmware > tf
        both = int(np.sum(sk & sf))
        row = {"quantile": q, "threshold_keras": tk, "threshold_firmware": tf,
               "selected_keras": int(sk.sum()), "selected_firmware": int(sf.sum()), "selected_by_both": both,
               "selected_by_both_fraction": both / int(sk.sum()) if sk.any() else None,
               "ties_at_threshold_firmware": int(np.sum(firmware == tf))}
        if signal is not None and signal.any():
            row["signal_efficiency_keras"] = float(np.mean(sk[signal]))
            row["signal_efficiency_firmware"] = float(np.mean(sf[signal]))
        rows.append(row)
    return {"spearman": float(rho), "max_abs_diff": float(np.max(np.abs(firmware - keras))),
            "distinct_firmware_values": int(len(np.unique(firmware))), "thresholds": rows}
