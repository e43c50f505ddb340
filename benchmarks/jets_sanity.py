"""Physics sanity of a jet sample (default: the embedded Pythia8 sample) and the baseline accuracy on it.

    python benchmarks/jets_sanity.py --out results.json [--quick] [--data FILE]

Checks: median mass_mmdt of W, Z, top within 10% of 80.4, 91.2, 173 GeV; gluon multiplicity above quark
multiplicity; mean n2_b1_mmdt lower for W and Z than for q and g. Then trains the default baseline
network (configs/default.yaml) on the sample and reports its test accuracy (about 0.76 on the public,
detector-level dataset), and records every feature's per-class median (docs/data.md's table).
--quick trains on 10,000 jets for 5 epochs. Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeml import config
from edgeml.data import CLASSES, FEATURES, load_jets
from edgeml.io import read_json, write_json

MASS_TARGETS = {"w": 80.4, "z": 91.2, "t": 173.0}
MASS_TOLERANCE = 0.10
ACCURACY_ON_PUBLIC_DATA = 0.76


def per_class(data, feature: str, reduce) -> dict[str, float]:
    column = data.X[:, FEATURES.index(feature)]
    return {c: float(reduce(column[data.y == i])) for i, c in enumerate(CLASSES)}


def physics_checks(data) -> dict:
    medians = per_class(data, "mass_mmdt", np.median)
    multiplicity = per_class(data, "multiplicity", np.median)
    n2 = per_class(data, "n2_b1_mmdt", np.mean)
    checks = {f"median_mass_{c}_within_10pct_of_{target}": abs(medians[c] / target - 1) <= MASS_TOLERANCE
              for c, target in MASS_TARGETS.items()}
    checks["gluon_multiplicity_above_quark"] = multiplicity["g"] > multiplicity["q"]
    checks["n2_b1_lower_for_w_z_than_q_g"] = max(n2["w"], n2["z"]) < min(n2["q"], n2["g"])
    return {"checks": checks, "median_mass_mmdt": medians, "median_multiplicity": multiplicity,
            "mean_n2_b1_mmdt": n2, "median_features": {f: per_class(data, f, np.median) for f in FEATURES}}


def baseline_accuracy(source: str, quick: bool) -> dict:
    from edgeml.train import train

    cfg = config.load(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    cfg["data"]["source"] = source
    if quick:
        cfg["data"]["max_jets"] = 10_000
        cfg["train"]["epochs"] = 5
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        metrics = read_json(train(cfg, tmp, "baseline", progress=False).metrics)
    return {"accuracy": metrics["accuracy"], "auc": metrics["auc"], "epochs_trained": metrics["epochs_trained"],
            "n_test": metrics["n"], "train_wall_seconds": round(time.perf_counter() - started, 1),
            "accuracy_on_public_dataset": ACCURACY_ON_PUBLIC_DATA}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="train on 10,000 jets for 5 epochs")
    parser.add_argument("--data", default="default", help="'default' or a jet file (NPZ/CSV/...)")
    args = parser.parse_args()

    data = load_jets(args.data)
    result = {"benchmark": "jets_sanity", "quick": args.quick, "data": data.source, "n_jets": len(data),
              "class_counts": {c: int(np.sum(data.y == i)) for i, c in enumerate(CLASSES)},
              **physics_checks(data), "baseline": baseline_accuracy(args.data, args.quick)}
    result["passed"] = all(result["checks"].values())
    write_json(args.out, result)
    for name, ok in result["checks"].items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    print(f"baseline accuracy {result['baseline']['accuracy']:.4f} "
          f"(public dataset: ~{ACCURACY_ON_PUBLIC_DATA}) -> {args.out}")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
