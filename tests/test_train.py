"""Real TensorFlow training on a few hundred jets (seconds)."""

import json

import numpy as np

from edgeml import config
from edgeml.data import load_jets, make_splits, subsample
from edgeml.modelio import load_model
from edgeml.train import build_model, train


def small_cfg(**train):
    cfg = config.validate({"data": {"max_jets": 1500}, "train": {"epochs": 3, "batch_size": 128, **train}})
    return cfg


def test_build_model_is_the_tutorial_network():
    model = build_model(config.defaults()["model"])
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert [d.units for d in dense] == [64, 32, 32, 5]
    assert [layer.name for layer in model.layers][-2:] == ["output", "softmax"]
    assert model.count_params() == 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5


def test_options_add_batch_norm_and_dropout():
    model = build_model({**config.defaults()["model"], "hidden": [8], "batch_norm": True, "dropout": 0.1})
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNormalization", "Activation", "Dropout", "Dense", "Activation"]


def test_train_saves_model_scaler_metrics_and_learns(tmp_path):
    cfg = small_cfg()
    paths = train(cfg, tmp_path, "tiny", progress=False)
    metrics = json.loads(paths.metrics.read_text())
    assert metrics["accuracy"] > 0.35  # five balanced classes: chance is 0.2
    assert set(metrics["auc"]) == {"g", "q", "w", "z", "t"}
    assert all(v > 1 for v in metrics["rejection_at_50"].values())
    assert metrics["parameters"] > 0 and metrics["epochs_trained"] == 3
    history = json.loads(paths.history.read_text())
    assert len(history["val_loss"]) == 3
    scaler = json.loads(paths.scaler.read_text())
    assert scaler["formula"] == "x_scaled = (x - mean) / scale"

    # The saved model reproduces the reported test accuracy on the same split.
    data = subsample(load_jets("default"), 1500, cfg["seed"])
    splits = make_splits(data, 0.2, 0.2, cfg["seed"])
    proba = load_model(paths.model).predict(splits.X_test, verbose=0)
    assert np.mean(proba.argmax(1) == splits.y_test) == metrics["accuracy"]


def test_untuned_batches_are_kerass_batching_one_permutation_per_epoch():
    import tensorflow as tf

    from edgeml.train import untuned_batches

    X = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10, dtype=np.int64)
    tf.random.set_seed(0)
    batches = [(bx.numpy(), by.numpy()) for bx, by in untuned_batches(X, y, batch_size=4, epochs=3, shuffle=True)]
    assert [len(by) for _, by in batches] == [4, 4, 2] * 3
    epochs = [np.concatenate([by for _, by in batches[i:i + 3]]) for i in (0, 3, 6)]
    for order in epochs:
        assert sorted(order) == list(range(10))
    assert any(list(order) != list(range(10)) for order in epochs)
    assert len({tuple(order) for order in epochs}) > 1
    assert all((bx[:, 0] == by).all() for bx, by in batches)

    validation = [by for _, by in untuned_batches(X, y, batch_size=4)]
    assert [len(by) for by in validation] == [4, 4, 2]
    assert np.concatenate(validation).tolist() == list(range(10))

    # Distillation's packed targets are rows, not labels: they stay with their jets.
    packed = np.stack([y, 2 * y], axis=1).astype(np.float32)
    for bx, by in untuned_batches(X, packed, batch_size=4, epochs=2, shuffle=True):
        assert by.shape[1:] == (2,) and (by.numpy() == np.stack([bx[:, 0], 2 * bx[:, 0]], axis=1)).all()
