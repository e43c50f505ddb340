"""Baseline jet tagger on the default data, one training per seed: accuracy, per-class AUC, confusion matrix.

    python benchmarks/train_baseline.py --out results.json [--quick] [--seeds 42 43 44]

Each seed sets both the data split and the network initialisation (the config's ``seed``). The
confusion matrix (rows: true class, columns: predicted class, test-split counts) is summed over seeds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeml import config
from edgeml.data.prepare import splits_from_config
from edgeml.io import read_json, write_json
from edgeml.modelio import load_model
from edgeml.train import train


def run_seed(cfg: dict, seed: int) -> dict:
    cfg = {**cfg, "seed": seed}
    splits = splits_from_config(cfg)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = train(cfg, tmp, "baseline", splits=splits, progress=False)
        metrics = read_json(paths.metrics)
        predicted = load_model(paths.model).predict(splits.X_test, batch_size=4096, verbose=0).argmax(axis=1)
    n = len(splits.classes)
    confusion = np.bincount(splits.y_test * n + predicted, minlength=n * n).reshape(n, n)
    return {"seed": seed, "accuracy": metrics["accuracy"], "auc": metrics["auc"],
            "rejection_at_50": metrics["rejection_at_50"], "epochs_trained": metrics["epochs_trained"],
            "n_test": metrics["n"], "confusion": confusion.tolist(), "classes": list(splits.classes),
            "wall_seconds": round(time.perf_counter() - started, 1)}


def summarise(runs: list[dict]) -> dict:
    accuracy = np.array([r["accuracy"] for r in runs])
    classes = runs[0]["classes"]
    confusion = np.sum([r["confusion"] for r in runs], axis=0)
    std = float(accuracy.std(ddof=1)) if len(runs) > 1 else 0.0
    return {"accuracy_mean": float(accuracy.mean()), "accuracy_std": std,
            "auc_mean": {c: float(np.mean([r["auc"][c] for r in runs])) for c in classes},
            "confusion_summed": confusion.tolist(),
            "confusion_row_fractions": np.round(confusion / confusion.sum(axis=1, keepdims=True), 4).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="5,000 jets, 5 epochs, one seed (smoke run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "default.yaml"))
    args = parser.parse_args()

    cfg = config.load(args.config)
    seeds = args.seeds
    if args.quick:
        cfg["data"]["max_jets"] = 5000
        cfg["train"]["epochs"] = 5
        seeds = seeds[:1]
    runs = [run_seed(cfg, seed) for seed in seeds]
    result = {"benchmark": "train_baseline", "quick": args.quick, "data": cfg["data"]["source"],
              **summarise(runs), "runs": runs}
    write_json(args.out, result)
    per_seed = ", ".join(f"{r['accuracy']:.4f}" for r in runs)
    print(f"accuracy {result['accuracy_mean']:.4f} ± {result['accuracy_std']:.4f} over seeds {seeds} "
          f"({per_seed}) -> {args.out}")


if __name__ == "__main__":
    main()
