"""Estimator accuracy on real hls4ml csynth reports, measured out of sample (leave-one-out).

    python benchmarks/estimator.py --out FILE [--quick]

For every ground-truth case with a model (shared/ground-truth: firmware weights + parameters.h, or K
rebuilt from its transcribed config), the coefficients are refitted WITHOUT that case
(edgeml.estimate.fit.fit on the others) and the case is then estimated: estimate vs report per metric,
and per family (dense / convolutional) the median and 90th-percentile absolute relative error
(latency and II also in cycles). Also times ``estimate(hls_model)`` on the converted default jet
tagger. Acceptance (dense cases): median |rel err| <= 15% for DSP, LUT, FF and every dense case's
latency within +-2 cycles. --quick: only the io_parallel dense cases (no TensorFlow, no K).
Exit status 1 if an acceptance check fails (not enforced with --quick). Skips (exit 0) without shared/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def time_jet_tagger_estimate() -> dict:
    """Seconds to estimate the converted default jet tagger (conversion itself excluded)."""
    from edgeml import config as cfgmod
    from edgeml.convert import build_hls_model
    from edgeml.estimate import estimate
    from edgeml.train import build_model

    cfg = cfgmod.defaults()
    model = build_model(cfg["model"])
    hls_model = build_hls_model(model, cfg["hls"], Path(tempfile.mkdtemp(prefix="edgeml_bench_est_")))
    start = time.perf_counter()
    result = estimate(hls_model)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 4), "dsp": result["total"]["dsp"], "lut": result["total"]["lut"],
            "latency_max": result["total"]["latency_max"]}


def main(argv=None) -> int:
    from edgeml.estimate.fit import METRICS, error_summary, leave_one_out, load_cases
    from edgeml.io import write_json
    from edgeml.paths import shared_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    shared = shared_dir()
    if shared is None:
        print("shared/ground-truth not found: nothing to benchmark (set EDGEML_SHARED)")
        return 0
    start = time.perf_counter()
    cases = load_cases(shared / "ground-truth", quick=args.quick)
    if args.quick:
        cases = [c for c in cases if c.family == "dense" and c.io_type == "io_parallel"]
    rows = leave_one_out(cases)
    for row in rows:
        row["rel_error"] = {k: (round((row["estimate"][k] - row["report"][k]) / row["report"][k], 4)
                                if row["report"].get(k) else None) for k in METRICS}
        row["estimate"] = {k: round(v, 1) for k, v in row["estimate"].items()}
    summary = error_summary(rows)
    dense = [r for r in rows if r["family"] == "dense"]
    checks = {}
    if "dense" in summary:
        for k in ("dsp", "lut", "ff"):
            checks[f"dense_{k}_median_le_15pct"] = summary["dense"][k]["median_abs_rel_error"] <= 0.15
        checks["dense_latency_within_2_cycles"] = all(
            abs(r["estimate"]["latency_max"] - r["report"]["latency_max"]) <= 2 for r in dense)
    result = {
        "method": "leave-one-out: coefficients refitted without the case, then the case estimated",
        "predicts": "csynth (HLS) totals of the top function",
        "quick": args.quick,
        "cases": rows,
        "summary": summary,
        "checks": checks,
    }
    if not args.quick:
        result["jet_tagger_estimate_time"] = time_jet_tagger_estimate()
        checks["jet_tagger_estimate_under_2s"] = result["jet_tagger_estimate_time"]["seconds"] < 2.0
    result["seconds"] = round(time.perf_counter() - start, 1)
    write_json(args.out, result)
    for family, fam in summary.items():
        print(f"{family}: {', '.join(fam['cases'])}")
        for k in METRICS:
            e = fam[k]
            extra = f", median {e['median_abs_error_cycles']:g} / p90 {e['p90_abs_error_cycles']:g} cycles" \
                if "median_abs_error_cycles" in e else ""
            print(f"  {k:<12} median |rel err| {100 * e['median_abs_rel_error']:5.1f}%  "
                  f"p90 {100 * e['p90_abs_rel_error']:5.1f}%{extra}")
    print(json.dumps(checks))
    return 0 if args.quick or all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
