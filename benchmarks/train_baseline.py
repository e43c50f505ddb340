"""Baseline jet tagger on the default data: accuracy, per-class AUC, wall time.

    python benchmarks/train_baseline.py --out results.json [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from edgeml import config
from edgeml.io import read_json, write_json
from edgeml.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="5,000 jets and 5 epochs (smoke run)")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "default.yaml"))
    args = parser.parse_args()

    cfg = config.load(args.config)
    if args.quick:
        cfg["data"]["max_jets"] = 5000
        cfg["train"]["epochs"] = 5
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = train(cfg, tmp, "baseline")
        metrics = read_json(paths.metrics)
    wall = time.perf_counter() - started
    result = {"benchmark": "train_baseline", "quick": args.quick, "data": cfg["data"]["source"],
              "accuracy": metrics["accuracy"], "auc": metrics["auc"], "rejection_at_50": metrics["rejection_at_50"],
              "epochs_trained": metrics["epochs_trained"], "n_test": metrics["n"], "wall_seconds": round(wall, 1)}
    write_json(args.out, result)
    print(f"accuracy {result['accuracy']:.4f} in {wall:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
