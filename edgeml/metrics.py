"""Physics-performance metrics shared by every stage, computed on the same test split."""

from __future__ import annotations

import numpy as np


def roc_curve(y_true: np.ndarray, proba: np.ndarray, class_index: int):
    """One-vs-rest ROC for one class: (false-positive rate, true-positive rate)."""
    from sklearn.metrics import roc_curve as _roc

    fpr, tpr, _ = _roc(y_true == class_index, proba[:, class_index])
    return fpr, tpr


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class one-vs-rest ROC AUC, and background rejection 1/FPR at 50% signal efficiency."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    out = {"n": int(len(y_true)), "accuracy": float(np.mean(proba.argmax(axis=1) == y_true)),
           "auc": {}, "rejection_at_50": {}}
    for i, cls in enumerate(classes):
        positives = y_true == i
        if positives.all() or not positives.any():
            continue
        out["auc"][cls] = float(roc_auc_score(positives, proba[:, i]))
        fpr, tpr = roc_curve(y_true, proba, i)
        fpr_at_50 = float(np.interp(0.5, tpr, fpr))
        out["rejection_at_50"][cls] = float(1.0 / fpr_at_50) if fpr_at_50 > 0 else float("inf")
    return out
