"""The training stage: the float jet tagger from config, trained and saved with its scaler and metrics."""

from __future__ import annotations

import math

from dataclasses import dataclass
from pathlib import Path


from edgeml.data import Splits, splits_from_config
from edgeml.io import write_json
from edgeml.metrics import classification_metrics
from edgeml.modelio import save_model
from edgeml.progress import keras_callback


@dataclass
class TrainedModel:
    """Where a trained model and its companions live on disk."""

    model: Path
    scaler: Path
    metrics: Path
    history: Path


def artifact_paths(out_dir: str | Path, name: str) -> TrainedModel:
    """The file layout every stage uses: ``<name>.h5`` beside ``<name>_scaler.json`` etc."""
    out_dir = Path(out_dir)
    return TrainedModel(out_dir / f"{name}.h5", out_dir / f"{name}_scaler.json",
                        out_dir / f"{name}_metrics.json", out_dir / f"{name}_history.json")


def build_model(model_cfg: dict, n_features: int = 16, n_classes: int = 5, seed: int = 42):
    """Dense tagger with hls4ml-friendly layer names (fc1, relu1, ..., output, softmax).

    The softmax is a separate layer so that the pre-softmax logits ('output') can be
    compared bit for bit with the firmware.
    """
    import tensorflow as tf
    from tensorflow.keras import layers, regularizers

    tf.keras.utils.set_random_seed(seed)
    reg = regularizers.l1(model_cfg["l1"]) if model_cfg["l1"] > 0 else None
    model = tf.keras.Sequential(name="jet_tagger")
    # not "input": hls4ml reserves that node name
    model.add(layers.InputLayer(input_shape=(n_features,), name="fc1_input"))
    for i, width in enumerate(model_cfg["hidden"], start=1):
        model.add(layers.Dense(width, kernel_initializer=model_cfg["kernel_initializer"],
                               kernel_regularizer=reg, name=f"fc{i}"))
        if model_cfg["batch_norm"]:
            model.add(layers.BatchNormalization(name=f"bn{i}"))
        model.add(layers.Activation(model_cfg["activation"], name=f"{model_cfg['activation']}{i}"))
        if model_cfg["dropout"] > 0:
            model.add(layers.Dropout(model_cfg["dropout"], name=f"dropout{i}"))
    model.add(layers.Dense(n_classes, kernel_initializer=model_cfg["kernel_initializer"],
                           kernel_regularizer=reg, name="output"))
    model.add(layers.Activation("softmax", name="softmax"))
    return model


def standard_callbacks(train_cfg: dict, checkpoint: Path | None = None, progress: bool | None = None) -> list:
    """Early stopping, LR reduction on plateau, best-weights checkpoint, epoch progress bar."""
    import tensorflow as tf

    callbacks = [
        tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=train_cfg["early_stopping_patience"],
                                         restore_best_weights=True),
        tf.keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=train_cfg["lr_factor"],
                                             patience=train_cfg["lr_patience"], min_lr=train_cfg["min_lr"],
                                             verbose=0),
        keras_callback(train_cfg["epochs"], enabled=progress),
    ]
    if checkpoint is not None:
        callbacks.append(tf.keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss",
                                                            save_best_only=True, save_weights_only=True))
    return callbacks


def fit_inputs(X, y, X_val, y_val, batch_size: int, epochs: int, autotune_input: bool = True) -> dict:
    """``fit`` keyword arguments for shuffled training batches and validation data: Keras's own arrays
    (autotuned), or ``untuned_batches`` for a search trial's single inter-op thread."""
    if autotune_input:
        return {"x": X, "y": y, "batch_size": batch_size, "shuffle": True, "validation_data": (X_val, y_val)}
    return {"x": untuned_batches(X, y, batch_size, epochs, shuffle=True),
            "steps_per_epoch": math.ceil(len(y) / batch_size),
            "validation_data": untuned_batches(X_val, y_val, batch_size)}


def untuned_batches(X, y, batch_size: int, epochs: int = 1, shuffle: bool = False):
    """Keras's own in-memory batching (a fresh permutation each epoch, gathered batches) as a tf.data
    pipeline with autotuning off; pass it to ``fit`` with ``steps_per_epoch=ceil(len(X) / batch_size)``.

    Why: Keras autotunes the pipeline it builds from arrays, and in a process with one TensorFlow
    inter-op thread (a search trial) tearing that iterator down can stall: measured here, 3.4-3.9 s
    at the end of a 6 s fit, in most runs with two such processes on the two cores. This one never did.
    Every element is a whole batch, cut from the arrays (validation) or from one gather of the epoch's
    permutation (training) without a copy: slicing and re-batching row by row, or gathering batch by
    batch in a map, cost a search trial ~10% of its CPU in tf.data's threads.
    """
    import tensorflow as tf

    if shuffle:
        dataset = _permuted_batches(X, y, batch_size, epochs)
    else:
        dataset = _sliced_batches((X, y), batch_size).repeat(epochs)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return dataset.prefetch(1).with_options(options)


def _sliced_batches(arrays: tuple, batch_size: int):
    """``arrays`` (numpy or tensors, same length) as consecutive batches, the last one partial."""
    import tensorflow as tf

    n = arrays[0].shape[0]
    full = n // batch_size
    batches = tf.data.Dataset.from_tensor_slices(
        tuple(tf.reshape(a[:full * batch_size], [full, batch_size, *a.shape[1:]]) for a in arrays))
    if n % batch_size:
        batches = batches.concatenate(tf.data.Dataset.from_tensors(tuple(a[full * batch_size:] for a in arrays)))
    return batches


def _permuted_batches(X, y, batch_size: int, epochs: int):
    """A fresh permutation of (X, y) each epoch, gathered once and cut into batches (the last one partial)."""
    import tensorflow as tf

    n = len(X)

    def permutation(_):
        return tf.random.shuffle(tf.range(n, dtype=tf.int64))

    def epoch_batches(order, data):
        return _sliced_batches((tf.gather(data[0], order), tf.gather(data[1], order)), batch_size)

    orders = tf.data.Dataset.range(1).repeat(epochs).map(permutation)
    arrays = tf.data.Dataset.from_tensors((X, y)).repeat()
    return tf.data.Dataset.zip((orders, arrays)).flat_map(epoch_batches)


def fit(model, splits: Splits, train_cfg: dict, loss="sparse_categorical_crossentropy",
        checkpoint: Path | None = None, progress: bool | None = None, extra_callbacks: list | None = None) -> dict:
    """Compile with Adam and fit on the train split, validating on val; return the history."""
    import tensorflow as tf

    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=train_cfg["learning_rate"]),
                  loss=loss, metrics=["accuracy"])
    history = model.fit(splits.X_train, splits.y_train, validation_data=(splits.X_val, splits.y_val),
                        epochs=train_cfg["epochs"], batch_size=train_cfg["batch_size"], shuffle=True, verbose=0,
                        callbacks=standard_callbacks(train_cfg, checkpoint, progress) + list(extra_callbacks or []))
    if checkpoint is not None and Path(checkpoint).exists():
        model.load_weights(str(checkpoint))  # the best epoch, whether or not early stopping fired
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def evaluate(model, splits: Splits) -> dict:
    proba = model.predict(splits.X_test, batch_size=4096, verbose=0)
    return classification_metrics(splits.y_test, proba, splits.classes)


def save_trained(model, splits: Splits, history: dict, out_dir: str | Path, name: str, extra: dict | None = None
                 ) -> TrainedModel:
    """Save model, scaler, metrics (physics and hardware cost) and history under ``out_dir``."""
    from edgeml.compress.cost import model_cost

    paths = artifact_paths(out_dir, name)
    save_model(model, paths.model)
    splits.scaler.save(paths.scaler)
    metrics = {"name": name, **evaluate(model, splits), **model_cost(model),
               "epochs_trained": len(history.get("loss", [])), **(extra or {})}
    write_json(paths.metrics, metrics)
    write_json(paths.history, history)
    return paths


def train(cfg: dict, out_dir: str | Path, name: str = "baseline", splits: Splits | None = None,
          progress: bool | None = None) -> TrainedModel:
    """Train the float baseline described by ``cfg`` and save it in ``out_dir``."""
    import tempfile

    splits = splits if splits is not None else splits_from_config(cfg)
    model = build_model(cfg["model"], splits.X_train.shape[1], len(splits.classes), cfg["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        history = fit(model, splits, cfg["train"], checkpoint=Path(tmp) / "best.weights.h5", progress=progress)
    return save_trained(model, splits, history, out_dir, name)
