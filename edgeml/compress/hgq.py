"""HGQ recipes (``compression.kind: hgq``): every weight and activation learns its own bit width.

HGQ (hgq 0.2.6, "HGQ v1") trains a tagger of ``HQuantize`` (the input), ``HDense`` /
``HDenseBatchNorm`` layers whose kernel and output quantizers have one trainable fractional
bit width per element. The loss is the task loss + beta * EBOPs (HGQ's effective bit operations,
a resource proxy) + bits_l1 * sum(bit widths); a weight that learns 0 bits is zero, pruned.

One training is a whole front: beta ramps from ``hgq.beta.start`` to ``hgq.beta.end`` and every
epoch is a different accuracy/EBOPs trade-off. ``hgq.fine_tune`` then trains some snapshots (the
cheapest, or spread along the front) above an accuracy floor a few epochs more with every bit width
frozen and beta held: the penalty pulled their weights off the task as well as their bits down, and the
weights win back part of that accuracy at the same bits (on the tutorial network at 0.71-0.73, about
half a point at equal EBOPs).
``train_hgq`` keeps every epoch that no other epoch beats on both (validation accuracy up, EBOPs
down), fine-tuned ones included, then calibrates each kept snapshot on the
training jets (``trace_minmax``: the integer bits and the exact EBOPs come from the ranges the
training jets reach) and exports HGQ's proxy model (``to_proxy_model``: Dense + ReLU +
``FixedPointQuantizer`` layers that hls4ml 1.3 converts bit-exactly). Validation accuracy and
EBOPs are re-measured on the calibrated proxy and the front recomputed on them.

``hgq.restarts`` trains the recipe that many times from different seeds and keeps one front of all
their snapshots: HGQ's front moves from seed to seed by more than the accuracy steps users choose
between, and restarts are the cheapest way to a better front for a fixed network.

The recipe's model (``HGQFront.chosen``) is the snapshot with the fewest EBOPs whose validation
accuracy is within ``hgq.choose_within`` of the best snapshot's; the test split is never used
to choose.

Python API (what ``edgeml.search`` calls for HGQ trials)::

    from edgeml.compress.hgq import train_hgq
    front = train_hgq(settings, splits, teacher=None, epochs=None)   # settings: a compression section
    front.chosen.val_accuracy, front.chosen.ebops, front.chosen.proxy   # a Keras model for hls4ml
    [(s.epoch, s.beta, s.val_accuracy, s.ebops) for s in front.snapshots]

The proxy models output logits (no softmax layer): the firmware's decision is their argmax.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeml.errors import InputError
from edgeml.threads import WORKER_ENV, use_one_tensorflow_thread

DEFAULT_HIDDEN = [64, 32, 32]


@dataclass
class Snapshot:
    """One epoch of an HGQ training, calibrated on the training jets.

    ``val_accuracy`` and ``ebops`` are those of the calibrated proxy (``proxy``), the Keras model
    hls4ml converts; ``train_val_accuracy`` / ``train_ebops`` what the epoch logged while training."""

    epoch: int  # 1-based
    beta: float
    val_accuracy: float
    ebops: float
    train_val_accuracy: float
    train_ebops: float
    weights: list = field(repr=False, default_factory=list)  # the HGQ model's weights after this epoch
    proxy: object = field(repr=False, default=None)  # calibrated proxy Keras model
    restart: int = 0  # which of the recipe's ``hgq.restarts`` trainings (0: the first, seeded with the run's seed)
    fine_tune_epoch: int = 0  # > 0: epoch ``epoch``'s snapshot after this many epochs of hgq.fine_tune

    @property
    def tag(self) -> str:
        """``e0123``, ``r1_e0123`` for a later restart, ``..._ft07`` fine-tuned: unique within one recipe's front."""
        tag = f"e{self.epoch:04d}" if self.restart == 0 else f"r{self.restart}_e{self.epoch:04d}"
        return f"{tag}_ft{self.fine_tune_epoch:02d}" if self.fine_tune_epoch else tag

    def summary(self) -> dict:
        return {"epoch": self.epoch, "beta": self.beta, "val_accuracy": self.val_accuracy, "ebops": self.ebops,
                "train_val_accuracy": self.train_val_accuracy, "train_ebops": self.train_ebops,
                "restart": self.restart, "fine_tune_epoch": self.fine_tune_epoch}


@dataclass
class HGQFront:
    """``snapshots``: the calibrated (validation accuracy, EBOPs) front, fewest EBOPs first;
    ``chosen``: the recipe's model (see the module docstring); ``history``: per-epoch logs of its training."""

    snapshots: list[Snapshot]
    chosen: Snapshot
    history: dict
    hgq_model: object = field(repr=False, default=None)  # the HGQ model (holds the chosen snapshot's weights)
    settings: dict = field(repr=False, default_factory=dict)
    hidden: list = field(default_factory=list)
    histories: list = field(default_factory=list)  # every restart's per-epoch logs (``history`` is the chosen's)


def hgq_settings(settings: dict) -> dict:
    """The ``hgq`` subsection of a validated compression section (refused when kind is not 'hgq')."""
    if settings.get("kind") != "hgq":
        raise InputError(f"compression.kind is {settings.get('kind')!r}, not 'hgq': this is not an HGQ recipe")
    return settings["hgq"]


def beta_schedule(beta: dict, epochs: int) -> list[float]:
    """beta of every epoch: ``start`` to ``end`` over ``beta.epochs`` (log or linear), then ``end``."""
    ramp = min(beta["epochs"] or epochs, epochs)
    start, end = beta["start"], beta["end"]
    out = []
    for e in range(epochs):
        t = min(e / (ramp - 1), 1.0) if ramp > 1 else 1.0
        if beta["interpolation"] == "log" and start > 0:
            out.append(float(start * (end / start) ** t))
        else:
            out.append(float(start + (end - start) * t))
    return out


def build_hgq_model(h: dict, hidden: list[int], n_features: int, n_classes: int, seed: int, beta: float = 0.0):
    """HQuantize -> HDense(relu) x len(hidden) -> HDense logits, named inp_q, fc1, ..., output."""
    import tensorflow as tf
    from HGQ import HDense, HDenseBatchNorm, HQuantize
    from HGQ.utils import MonoL1, get_default_kq_conf, get_default_paq_conf

    tf.keras.utils.set_random_seed(seed)

    def conf(default, bits):
        return {**default, "init_bw": float(bits), "regularizer": MonoL1(h["bits_l1"])}

    kq, paq = conf(get_default_kq_conf(), h["weight_bits"]), conf(get_default_paq_conf(), h["activation_bits"])
    hidden_layer = HDenseBatchNorm if h["batch_norm"] else HDense
    layers = [tf.keras.layers.InputLayer(input_shape=(n_features,), name="fc1_input"),
              HQuantize(paq_conf=conf(get_default_paq_conf(), h["input_bits"]), beta=beta, name="inp_q")]
    for i, width in enumerate(hidden, start=1):
        layers.append(hidden_layer(width, activation="relu", kq_conf=dict(kq), paq_conf=dict(paq), beta=beta,
                                   name=f"fc{i}"))
    layers.append(HDense(n_classes, kq_conf=dict(kq), paq_conf=dict(paq), beta=beta, name="output"))
    return tf.keras.Sequential(layers, name="hgq_tagger")


def copy_baseline_weights(baseline, model, h: dict) -> None:
    """Start from the float baseline: its Dense kernels and biases, kernel bits re-adapted to them."""
    import tensorflow as tf
    from HGQ.layers import HLayerBase

    dense = {layer.name: layer for layer in baseline.layers if type(layer).__name__ == "Dense"}
    for layer in model.layers:
        if not isinstance(layer, HLayerBase) or not getattr(layer, "_has_kernel", False):
            continue
        source = dense.get(layer.name)
        if source is None or tuple(source.kernel.shape) != tuple(layer.kernel.shape):
            raise InputError(f"the HGQ recipe starts from the baseline, but layer {layer.name} has no float twin of "
                             f"shape {tuple(layer.kernel.shape)}; set compression.start: scratch or the baseline's "
                             "widths in compression.student.hidden")
        layer.kernel.assign(source.kernel)
        layer.bias.assign(source.bias)
        layer.kq.fbw.assign(tf.fill(layer.kq.fbw.shape, float(h["weight_bits"])))
        layer.kq.adapt_bw_bits(layer.kernel)


def _hgq_layers(model):
    from HGQ.layers import HLayerBase

    return [layer for layer in model.layers if isinstance(layer, HLayerBase)]


def _front(points: list, accuracy, cost) -> list:
    """The points no other point beats on both (higher accuracy, lower cost), fewest cost first."""
    ordered = sorted(points, key=lambda p: (cost(p), -accuracy(p)))
    front, best = [], -math.inf
    for p in ordered:
        if accuracy(p) > best:
            front.append(p)
            best = accuracy(p)
    return front


class _Training:
    """Keras callbacks of one HGQ training: beta of each epoch, and the running front of raw snapshots."""

    def __init__(self, model, betas: list[float]):
        import tensorflow as tf
        from HGQ import FreeBOPs, ResetMinMax

        outer = self

        class Beta(tf.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                for layer in _hgq_layers(model):
                    layer.beta.assign(betas[epoch])

        class Keep(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                outer.offer(epoch, betas[epoch], float(logs["val_accuracy"]), float(logs["bops"]), model)

        # FreeBOPs writes the epoch's EBOPs into the logs before the snapshot keeper reads them; ResetMinMax
        # starts each epoch's activation ranges afresh so that EBOPs follow the bits of that epoch.
        self.callbacks = [Beta(), ResetMinMax(), FreeBOPs(), Keep()]
        self.kept: list[dict] = []

    def offer(self, epoch: int, beta: float, acc: float, bops: float, model) -> None:
        if any(k["acc"] >= acc and k["bops"] <= bops for k in self.kept):
            return
        self.kept = [k for k in self.kept if not (acc >= k["acc"] and bops <= k["bops"])]
        self.kept.append({"epoch": epoch + 1, "beta": beta, "acc": acc, "bops": bops, "weights": model.get_weights()})


def train_hgq(recipe, splits, teacher=None, epochs: int | None = None, cfg: dict | None = None, seed: int | None = None,
              progress: bool | None = None, autotune_input: bool = True, baseline=None) -> HGQFront:
    """Train one HGQ recipe and return its calibrated front; nothing is written, the test split is not touched.

    ``recipe``: a ``Recipe`` or a validated compression section with ``kind: hgq``. ``teacher``: a float
    Keras model ending in a 'softmax' layer, used when ``distill.enabled``. ``epochs`` overrides the
    recipe's. ``cfg``: the run config (model.hidden when student.hidden is null, seed); ``baseline``: the
    float model for ``start: baseline`` (defaults to ``teacher``). ``autotune_input``: see
    ``edgeml.compress.recipes.fit_compressed``. With ``hgq.restarts`` N > 1 the recipe is trained N times
    (seeds seed, seed+1, ...), ``hgq.workers`` at a time, and the front is that of every restart's snapshots.
    """
    return train_hgq_recipes([recipe], splits, teacher, epochs, cfg, seed, progress, autotune_input, baseline)[0]


def train_hgq_recipes(recipes: list, splits, teacher=None, epochs: int | None = None, cfg: dict | None = None,
                      seed: int | None = None, progress: bool | None = None, autotune_input: bool = True,
                      baseline=None, workers: int | None = None) -> list[HGQFront]:
    """``train_hgq`` of several recipes, every restart of every recipe in one pool of worker processes.

    ``workers``: trainings at a time (default: the first recipe's ``hgq.workers``). Each worker process
    trains with one TensorFlow thread, so W workers use W cores; with one worker, or one training, it all
    runs in this process."""
    seed = seed if seed is not None else (cfg or {}).get("seed", 42)
    plans = [_plan(getattr(r, "settings", r), splits, teacher, epochs, cfg, seed, baseline) for r in recipes]
    jobs = [job for plan in plans for job in plan.jobs]
    workers = min(workers or hgq_settings(plans[0].settings)["workers"] or available_cores(), len(jobs))
    fits = iter(_fit_all(jobs, workers, progress, autotune_input))
    return [_assemble(plan, [next(fits) for _ in plan.jobs], splits) for plan in plans]


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class _FitJob:
    """One restart's training, picklable for a worker process: the initial weights (after ``start:
    baseline``'s copy) and the targets (the teacher's logits packed in when distilling) are made here."""

    h: dict
    hidden: list
    n_features: int
    n_classes: int
    seed: int
    restart: int
    initial_weights: list
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    distill: dict | None
    learning_rate: float
    betas: list


@dataclass
class _Plan:
    settings: dict
    hidden: list
    jobs: list


def _plan(s: dict, splits, teacher, epochs: int | None, cfg: dict | None, seed: int, baseline) -> _Plan:
    from edgeml.compress.distill import pack_targets, teacher_logits

    h = hgq_settings(s)
    hidden = list(s["student"]["hidden"] or (cfg or {}).get("model", {}).get("hidden") or DEFAULT_HIDDEN)
    n_features, n_classes = splits.X_train.shape[1], len(splits.classes)
    betas = beta_schedule(h["beta"], int(epochs or s["epochs"]))
    y_train, y_val, distill = splits.y_train, splits.y_val, None
    if s["distill"]["enabled"]:
        if teacher is None:
            raise InputError("the HGQ recipe distils from the float baseline; pass it (--from) or set "
                             "compression.distill.enabled: false")
        y_train = pack_targets(splits.y_train, teacher_logits(teacher, splits.X_train))
        y_val = pack_targets(splits.y_val, teacher_logits(teacher, splits.X_val))
        distill = s["distill"]
    source = baseline if baseline is not None else teacher
    if s["start"] == "baseline" and source is None:
        raise InputError("the HGQ recipe starts from the baseline; pass the float model (--from) or set "
                         "compression.start: scratch")
    lr = s["learning_rate"] or (cfg or {}).get("train", {}).get("learning_rate", 3e-3)
    jobs = []
    for restart in range(h["restarts"]):
        model = build_hgq_model(h, hidden, n_features, n_classes, seed + restart, betas[0])
        if s["start"] == "baseline":
            copy_baseline_weights(source, model, h)
        jobs.append(_FitJob(h, hidden, n_features, n_classes, seed + restart, restart, model.get_weights(),
                            splits.X_train, y_train, splits.X_val, y_val, distill, lr, betas))
    return _Plan(s, hidden, jobs)


def _fit_all(jobs: list, workers: int, progress: bool | None, autotune_input: bool) -> list:
    """(kept raw snapshots, logs, model or None) of every job, in order."""
    if workers <= 1:
        return [_fit(job, progress, autotune_input) for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    from edgeml.progress import Progress

    with tempfile.TemporaryDirectory(prefix="edgeml-hgq-") as tmp, ThreadPoolExecutor(workers) as pool, \
            Progress(len(jobs), f"HGQ trainings ({workers} at a time)", progress) as bar:
        futures = [pool.submit(_fit_in_subprocess, job, Path(tmp) / f"job{i}") for i, job in enumerate(jobs)]
        for future in futures:
            future.add_done_callback(lambda _: bar.update(1))
        return [(*future.result(), None) for future in futures]


def _fit_in_subprocess(job: _FitJob, stem: Path) -> tuple[list, dict]:
    """One job in a fresh Python (``edgeml.compress.hgq_worker``) with one TensorFlow thread. A new
    interpreter rather than multiprocessing: spawn would re-run the caller's script, fork would copy
    TensorFlow's threads."""
    job_file, out_file, log_file = stem.with_suffix(".job"), stem.with_suffix(".out"), stem.with_suffix(".log")
    job_file.write_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    env = {**os.environ, **WORKER_ENV}
    with open(log_file, "wb") as log:
        done = subprocess.run([sys.executable, "-m", "edgeml.compress.hgq_worker", str(job_file), str(out_file)],
                              stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0 or not out_file.exists():
        tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"HGQ training of restart {job.restart} (seed {job.seed}) failed in its worker process "
                           f"(exit {done.returncode}): {tail[0]}")
    return pickle.loads(out_file.read_bytes())


def fit_in_this_process(job_file: str, out_file: str) -> None:
    """The worker's side of ``_fit_in_subprocess``: one TensorFlow thread, the job's result pickled."""
    use_one_tensorflow_thread()
    job = pickle.loads(Path(job_file).read_bytes())
    # the tf.data pipeline that never stalls with one inter-op thread (see edgeml.train.untuned_batches)
    kept, logs, _ = _fit(job, progress=False, autotune_input=False)
    Path(out_file).write_bytes(pickle.dumps((kept, logs), protocol=pickle.HIGHEST_PROTOCOL))


def _fit(job: _FitJob, progress: bool | None, autotune_input: bool) -> tuple[list, dict, object]:
    """Train one restart: its raw front of epochs (weights kept), per-epoch logs and the HGQ model."""
    import tensorflow as tf

    from edgeml.compress.distill import distillation_loss
    from edgeml.progress import keras_callback
    from edgeml.train import fit_inputs

    model = build_hgq_model(job.h, job.hidden, job.n_features, job.n_classes, job.seed, job.betas[0])
    model.set_weights(job.initial_weights)
    loss = (distillation_loss(job.distill["alpha"], job.distill["temperature"]) if job.distill
            else tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _compile(model, loss, job.learning_rate)
    training = _Training(model, job.betas)
    epochs = len(job.betas)
    callbacks = [*training.callbacks, keras_callback(epochs, enabled=progress)]
    inputs = fit_inputs(job.X_train, job.y_train, job.X_val, job.y_val, job.h["batch_size"], epochs, autotune_input)
    history = model.fit(**inputs, epochs=epochs, verbose=0, callbacks=callbacks)
    logs = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    logs["beta"] = job.betas
    logs["seed"] = job.seed
    kept = training.kept
    if job.h["fine_tune"]["epochs"]:
        tuned = _fine_tune(model, kept, job, loss, progress, autotune_input)
        kept = _front(kept + tuned, lambda k: k["acc"], lambda k: k["bops"])
    return kept, logs, model


def _fine_tune(model, kept: list[dict], job: _FitJob, loss, progress: bool | None, autotune_input: bool) -> list[dict]:
    """``hgq.fine_tune`` of some of ``kept`` above the floor: each one's raw front of fine-tuned epochs."""
    from edgeml.progress import Progress
    from edgeml.train import fit_inputs

    ft = job.h["fine_tune"]
    parents = fine_tune_parents(kept, ft)
    inputs = fit_inputs(job.X_train, job.y_train, job.X_val, job.y_val, job.h["batch_size"], ft["epochs"],
                        autotune_input)
    learning_rate = ft["learning_rate"] or job.learning_rate / 3
    points = []
    with Progress(len(parents), "HGQ fine-tuning (bits frozen)", progress) as bar:
        for parent in parents:
            model.set_weights(parent["weights"])
            training = _Training(model, [parent["beta"]] * ft["epochs"])
            _compile(model, loss, learning_rate)
            model.fit(**inputs, epochs=ft["epochs"], verbose=0, callbacks=[*training.callbacks, _frozen_bits(model)])
            points += [{**k, "epoch": parent["epoch"], "fine_tune_epoch": k["epoch"]} for k in training.kept]
            bar.update(1)
    return points


def fine_tune_parents(kept: list[dict], ft: dict) -> list[dict]:
    """The snapshots ``hgq.fine_tune`` trains further: of those at or above ``min_val_accuracy``, ordered by EBOPs,
    the ``snapshots`` cheapest, or (``select: spread``) as many evenly spaced along that order, both ends included."""
    eligible = sorted((k for k in kept if k["acc"] >= ft["min_val_accuracy"]), key=lambda k: k["bops"])
    n = min(ft["snapshots"], len(eligible))
    if ft["select"] == "cheapest" or n < 2:
        return eligible[:n]
    step = (len(eligible) - 1) / (n - 1)
    return [eligible[round(i * step)] for i in range(n)]


def _compile(model, loss, learning_rate: float) -> None:
    import tensorflow as tf

    from edgeml.compress.distill import label_accuracy

    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=[label_accuracy])


def _frozen_bits(model):
    """A callback holding every quantizer's bit widths at their values now. Keras 2 cannot make a variable
    untrainable after it is built, so the optimizer's step on them is undone after every batch."""
    import tensorflow as tf

    quantizers = [q for layer in _hgq_layers(model) for q in (getattr(layer, "kq", None), layer.paq) if q is not None]
    frozen = [(q.fbw, q.fbw.numpy()) for q in quantizers]

    class FrozenBits(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for variable, value in frozen:
                variable.assign(value)

    return FrozenBits()


@dataclass
class _Trained:
    """One training of a recipe: its calibrated snapshots, per-epoch logs and the HGQ model."""

    snapshots: list[Snapshot]
    logs: dict
    model: object


def _assemble(plan: _Plan, fits: list, splits) -> HGQFront:
    """Calibrate every restart's kept epochs (here: the proxies are Keras models) and take one front of all."""
    s, h = plan.settings, plan.settings["hgq"]
    trainings = []
    for job, (kept, logs, model) in zip(plan.jobs, fits):
        if model is None:  # trained in a worker: rebuild the same network for its weights
            model = build_hgq_model(h, plan.hidden, job.n_features, job.n_classes, job.seed, job.betas[0])
        snapshots = [calibrate(model, raw, splits, h, job.restart) for raw in
                     sorted(kept, key=lambda k: (k["epoch"], k.get("fine_tune_epoch", 0)))]
        trainings.append(_Trained(snapshots, logs, model))
    snapshots = [snap for training in trainings for snap in training.snapshots]
    front = _front(snapshots, lambda p: p.val_accuracy, lambda p: p.ebops)
    chosen = choose(front, h["choose_within"])
    model, logs = trainings[chosen.restart].model, trainings[chosen.restart].logs
    model.set_weights(chosen.weights)
    return HGQFront(front, chosen, logs, model, s, plan.hidden, [t.logs for t in trainings])


def calibrate(model, raw: dict, splits, h: dict, restart: int = 0) -> Snapshot:
    """A raw snapshot's weights, ranges traced on the training jets, exported as the proxy model hls4ml converts."""
    from HGQ import to_proxy_model, trace_minmax

    model.set_weights(raw["weights"])
    ebops = float(trace_minmax(model, splits.X_train, bsz=16384, verbose=False))
    proxy = to_proxy_model(model, aggressive=h["overflow"] == "WRAP")
    logits = proxy.predict(splits.X_val, batch_size=16384, verbose=0)
    accuracy = float(np.mean(logits.argmax(axis=1) == splits.y_val))
    return Snapshot(raw["epoch"], raw["beta"], accuracy, ebops, raw["acc"], raw["bops"], raw["weights"], proxy,
                    restart, raw.get("fine_tune_epoch", 0))


def choose(front: list[Snapshot], within: float) -> Snapshot:
    """The snapshot with the fewest EBOPs within ``within`` of the best validation accuracy."""
    best = max(s.val_accuracy for s in front)
    return min((s for s in front if s.val_accuracy >= best - within), key=lambda s: (s.ebops, -s.val_accuracy))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def proxy_metrics(proxy, splits) -> dict:
    """Test metrics of a proxy model (probabilities: the softmax of its logits)."""
    from edgeml.metrics import classification_metrics

    logits = proxy.predict(splits.X_test, batch_size=16384, verbose=0)
    return classification_metrics(splits.y_test, softmax(logits), splits.classes)


def proxy_cost(proxy) -> dict:
    """Parameters and nonzero kernel weights of a proxy model's Dense layers (zeros: weights that learned 0 bits)."""
    kernels = [layer.kernel.numpy() for layer in proxy.layers if type(layer).__name__ == "Dense"]
    total = int(sum(k.size for k in kernels))
    nonzero = int(sum(np.count_nonzero(k) for k in kernels))
    return {"kernel_weights": total, "nonzero_weights": nonzero, "sparsity": float(1 - nonzero / max(total, 1))}


def save_front(front: HGQFront, splits, out_dir: str | Path, name: str) -> dict:
    """Save the chosen proxy as ``<name>.h5`` (with scaler, metrics, history, like any recipe) and every front
    snapshot as ``<name>_front/<name>_<tag>.h5`` (``Snapshot.tag``) + scaler, listed in ``<name>_front.json``; return the
    chosen model's ``TrainedModel`` paths."""
    from edgeml.io import write_json
    from edgeml.modelio import save_model
    from edgeml.train import artifact_paths

    out_dir = Path(out_dir)
    paths = artifact_paths(out_dir, name)
    front_dir = out_dir / f"{name}_front"
    front_dir.mkdir(parents=True, exist_ok=True)
    listed = []
    for snap in front.snapshots:
        stem = f"{name}_{snap.tag}"
        save_model(snap.proxy, front_dir / f"{stem}.h5")
        splits.scaler.save(front_dir / f"{stem}_scaler.json")
        listed.append({**snap.summary(), "model": f"{front_dir.name}/{stem}.h5", "chosen": snap is front.chosen})
    write_json(out_dir / f"{name}_front.json", {"recipe": name, "rule": "fewest EBOPs within "
                                                f"{front.settings['hgq']['choose_within']} of the best validation "
                                                "accuracy", "snapshots": listed})
    chosen = front.chosen
    save_model(chosen.proxy, paths.model)
    splits.scaler.save(paths.scaler)
    metrics = {"name": name, **proxy_metrics(chosen.proxy, splits), **proxy_cost(chosen.proxy),
               # the report's BOPs column: HGQ's EBOPs (per-weight bits x input bits, no adder term)
               "bops": chosen.ebops, "ebops": chosen.ebops, "val_accuracy": chosen.val_accuracy, "epoch": chosen.epoch,
               "beta": chosen.beta, "epochs_trained": len(front.history.get("loss", [])), "recipe": name,
               "kind": "hgq", "hidden": front.hidden, "front": f"{name}_front.json",
               "distilled": front.settings["distill"]["enabled"], "restarts": front.settings["hgq"]["restarts"],
               "restart": chosen.restart, "seed": front.history.get("seed")}
    write_json(paths.metrics, metrics)
    write_json(paths.history, front.history)
    return paths


def run_hgq_recipe(recipe, cfg: dict, splits, baseline, out_dir: str | Path, progress: bool | None = None):
    """``edgeml compress``/``run`` for an HGQ recipe: train, calibrate, save the chosen model and its front."""
    teacher = baseline if recipe.settings["distill"]["enabled"] else None
    front = train_hgq(recipe, splits, teacher=teacher, cfg=cfg, progress=progress, baseline=baseline)
    return save_front(front, splits, out_dir, recipe.name)


__all__ = ["HGQFront", "Snapshot", "beta_schedule", "build_hgq_model", "choose", "run_hgq_recipe", "save_front",
           "train_hgq"]
