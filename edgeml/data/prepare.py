"""Deterministic splits and the input scaler that travels with every model.

The scaler is fit on the training split only and saved as JSON beside each model:
the firmware sees raw detector features, so whoever feeds it must apply the same
(mean, scale) in the same feature order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.data.load import CLASSES, FEATURES, JetData
from edgeml.errors import InputError
from edgeml.io import read_json, write_json


@dataclass
class Scaler:
    mean: np.ndarray
    scale: np.ndarray
    features: list[str]

    @classmethod
    def fit(cls, X: np.ndarray, features: list[str] = FEATURES) -> "Scaler":
        mean = X.mean(axis=0, dtype=np.float64)
        scale = X.std(axis=0, dtype=np.float64)
        scale[scale == 0] = 1.0  # a constant feature carries no information; keep it finite
        return cls(mean, scale, list(features))

    def transform(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] != len(self.features):
            raise InputError(f"data has {X.shape[1]} features but the model's scaler expects "
                             f"{len(self.features)} ({', '.join(self.features)})")
        return ((X - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"features": self.features, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "formula": "x_scaled = (x - mean) / scale"}

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Scaler":
        try:
            d = read_json(path)
        except ValueError as e:  # truncated or garbled: never scale with a guess
            raise InputError(f"scaler file {path} is not valid JSON ({e}); restore it or retrain the model") from None
        try:
            scaler = cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64),
                         list(d["features"]))
        except KeyError as e:
            raise InputError(f"scaler file {path} lacks {e}; expected keys features, mean, scale") from None
        except (TypeError, ValueError) as e:
            raise InputError(f"scaler file {path} is garbled ({e}); restore it or retrain the model") from None
        if scaler.mean.shape != scaler.scale.shape or scaler.mean.shape != (len(scaler.features),) \
                or not (np.all(np.isfinite(scaler.mean)) and np.all(np.isfinite(scaler.scale)) and np.all(scaler.scale)):
            raise InputError(f"scaler file {path} is garbled (mean/scale do not match its {len(scaler.features)} "
                             "features or are not finite and non-zero); restore it or retrain the model")
        return scaler


@dataclass
class Splits:
    """Train/validation/test jets, already scaled, plus the scaler that did it."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    scaler: Scaler
    classes: list[str]


def split_indices(y: np.ndarray, test_fraction: float, val_fraction: float, seed: int):
    """Stratified, seeded split: the same jets land in the same split on every machine."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round((len(idx) - n_test) * val_fraction))
        test.append(idx[:n_test])
        val.append(idx[n_test:n_test + n_val])
        train.append(idx[n_test + n_val:])
    return tuple(np.sort(np.concatenate(part)) for part in (train, val, test))


def subsample(data: JetData, max_jets: int | None, seed: int) -> JetData:
    if max_jets is None or max_jets >= len(data):
        return data
    keep = np.random.default_rng(seed).permutation(len(data))[:max_jets]
    return data.subset(np.sort(keep))


def make_splits(data: JetData, test_fraction: float = 0.2, val_fraction: float = 0.2, seed: int = 42) -> Splits:
    train, val, test = split_indices(data.y, test_fraction, val_fraction, seed)
    if min(len(train), len(val), len(test)) == 0:
        raise InputError(f"{data.source}: {len(data)} jets are too few to split into train/val/test")
    scaler = Scaler.fit(data.X[train], data.features)
    return Splits(scaler.transform(data.X[train]), data.y[train], scaler.transform(data.X[val]), data.y[val],
                  scaler.transform(data.X[test]), data.y[test], scaler, list(data.classes))


def splits_from_config(cfg: dict) -> Splits:
    """The data stage as a function of the config: load, subsample, split, scale."""
    from edgeml.data.load import load_jets

    d = cfg["data"]
    data = subsample(load_jets(d["source"]), d["max_jets"], cfg["seed"])
    return make_splits(data, d["test_fraction"], d["val_fraction"], cfg["seed"])


def describe(data: JetData) -> dict:
    """Summary used by ``edgeml data info``: counts and per-class feature statistics."""
    stats = {}
    for j, feature in enumerate(data.features):
        stats[feature] = {}
        for i, cls in enumerate(data.classes):
            values = data.X[data.y == i, j].astype(np.float64)
            if len(values):
                stats[feature][cls] = {"mean": float(values.mean()), "std": float(values.std()),
                                       "median": float(np.median(values))}
    counts = np.bincount(data.y, minlength=len(data.classes))
    return {"source": data.source, "n_jets": int(len(data)), "features": list(data.features),
            "classes": list(data.classes), "class_counts": {c: int(n) for c, n in zip(data.classes, counts)},
            "stats": stats}
