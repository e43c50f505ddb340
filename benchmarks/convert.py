"""Wall time of `edgeml convert`, split into load / convert / compile / C-sim / report, and C-sim jets/s.

Converts the tutorial jet tagger twice: float at ap_fixed<16,6> (a freshly built, briefly
trained 16-64-32-32-5 network, or --quick: 16-16-5) and the QKeras 6-bit pruned fixture,
then a third time to time the cache hit.

    python benchmarks/convert.py --out results.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
QKERAS_FIXTURE = ROOT / "tests" / "fixtures" / "keras224_qkeras_pruned.json"


def train_float(out_dir: Path, quick: bool) -> Path:
    from edgeml import config
    from edgeml.train import train

    cfg = config.validate({"model": {"hidden": [16] if quick else [64, 32, 32]},
                           "train": {"epochs": 2 if quick else 10}})
    return train(cfg, out_dir, "float_tagger", progress=False).model


def run_one(label: str, model: Path, out: Path, n: int) -> dict:
    from edgeml.convert import convert

    start = time.perf_counter()
    report = convert(model, output_dir=out, n=n, force=True)
    wall = time.perf_counter() - start
    c, t = report["csim"], report["timing"]
    return {"model": label, "n": c["n"], "wall_s": wall,
            "split_s": {k: t.get(k) for k in ("load", "convert", "compile", "csim", "keras", "report")},
            "csim_jets_per_s": c["jets_per_second"], "argmax_agreement": c["argmax_agreement"],
            "argmax_agreement_logits": c["argmax_agreement_logits"], "bit_exact_logits": c["bit_exact_logits"],
            "first_broken_layer": report["first_broken_layer"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--quick", action="store_true", help="small network and 1000 jets")
    args = parser.parse_args(argv)
    from edgeml.convert import convert

    n = 1000 if args.quick else 10000
    results = {"quick": args.quick, "python": platform.python_version(), "cpu_count": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="edgeml-bench-convert-") as tmp:
        tmp = Path(tmp)
        float_model = train_float(tmp / "models", args.quick)
        results["runs"].append(run_one("float <16,6>", float_model, tmp / "float", n))
        results["runs"].append(run_one("qkeras 6-bit pruned (fixture)", QKERAS_FIXTURE, tmp / "qkeras", n))
        start = time.perf_counter()
        cached = convert(QKERAS_FIXTURE, output_dir=tmp / "qkeras", n=n)
        results["cache_hit_s"] = time.perf_counter() - start
        results["cache_hit"] = cached["cache"]["hit"]
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for run in results["runs"]:
        split = ", ".join(f"{k} {v:.2f}s" for k, v in run["split_s"].items() if v is not None)
        print(f"{run['model']}: {run['wall_s']:.1f}s ({split}); C-sim {run['csim_jets_per_s']:.0f} jets/s; "
              f"agreement {run['argmax_agreement']:.4f} (logits {run['argmax_agreement_logits']:.4f})")
    print(f"cache hit: {results['cache_hit_s'] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
