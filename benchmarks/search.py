"""Benchmark: edgeml search on the default sample and budget (xcu250, 5 ns).

    python benchmarks/search.py --out benchmarks/results/search.json [--quick]

Full: 300 trials of 50 epochs with 2 workers (the issue asks for at least 48; a trial takes ~5-15 s
on a core, so 300 still fit well inside the hour), the quality target: a front model with
firmware test accuracy at least edgeml_compact's - 0.5 points at <= 0.6x its LUT + 55*DSP, within
60 minutes; then the same 8-trial search with 1 and 2 workers for speedup_2_workers (trial phase
wall time; target >= 1.7), with Optuna's seeded random sampler so both train the same 8 trials.
--quick: 4 trials for the main search and 4 for the speedup pair, 3 epochs each, to check the script.
Local Ray on loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeml import config as cfgmod  # noqa: E402
from edgeml.search import search  # noqa: E402

FRONT_KEYS = ("accuracy_test", "accuracy_val", "lut", "dsp", "ff", "latency_ns", "ii", "bops", "params", "cost",
              "model", "architecture")


def run_search(trials: int, workers: int, epochs: int | None, run_dir: Path, sampler: str = "tpe") -> dict:
    cfg = cfgmod.validate({"search": {"sampler": sampler}})
    return search(cfg, run_dir=run_dir, trials=trials, workers=workers, epochs=epochs, force=True)


def quality(summary: dict) -> dict | None:
    """The cheapest front model within 0.5 points of edgeml_compact's test accuracy, and its cost ratio."""
    ref = summary["reference"].get("edgeml_compact")
    if not ref:
        return None
    good = [f for f in summary["front"] if f.get("accuracy_test", 0) >= ref["accuracy_test"] - 0.005]
    if not good:
        return {"met": False, "reason": "no front model within 0.5 points of edgeml_compact"}
    best = min(good, key=lambda f: f["cost"])
    ratio = best["cost"] / ref["cost"]
    return {"met": bool(ratio <= 0.6), "cost_ratio": round(ratio, 3), "model": best.get("model"),
            "accuracy_test": best["accuracy_test"], "reference_accuracy_test": ref["accuracy_test"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    trials, pair, epochs = (4, 4, 3) if args.quick else (300, 8, 50)
    with tempfile.TemporaryDirectory(prefix="edgeml-bench-search-") as tmp:
        started = time.monotonic()
        summary = run_search(trials, 2, epochs, Path(tmp) / "main")
        wall = time.monotonic() - started
        timing = {}
        for w in (1, 2):
            # random proposals: both runs train the very same trials (TPE's would depend on which
            # results are in when each proposal is made, i.e. on the number of workers)
            s = run_search(pair, w, epochs, Path(tmp) / f"speedup_{w}", sampler="random")
            timing[w] = s["seconds"]["trials"]
    done = summary["counts"]["completed"] + summary["counts"]["infeasible"]
    result = {"engine": summary["engine"], "workers": summary["workers"], "quick": args.quick,
              "trials_requested": trials, "trials_completed": done, "trials_failed": summary["counts"]["failed"],
              "trials_feasible": summary["counts"]["completed"], "epochs": summary["epochs"],
              "wall_s": round(wall, 1), "trials_per_hour": round(done / wall * 3600, 1),
              "speedup_2_workers": round(timing[1] / timing[2], 2) if timing[2] else None,
              "speedup_trials": pair, "speedup_trial_phase_s": {"1": timing[1], "2": timing[2]},
              "front": [{k: f.get(k) for k in FRONT_KEYS} for f in summary["front"]],
              "reference": summary["reference"], "quality_target": quality(summary)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("trials_completed", "wall_s", "speedup_2_workers", "quality_target")}))


if __name__ == "__main__":
    main()
