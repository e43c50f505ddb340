"""`edgeml convert` wall time, and the emulator against the g++ C-simulation.

For the tutorial jet tagger (float at ap_fixed<16,6>: a freshly built, briefly trained
16-64-32-32-5 network, or --quick: 16-16-5) and the QKeras 6-bit pruned fixture, on 10,000
test jets of the default sample:

- engines: ``convert(engine='both')``: C-sim seconds (g++ compile + run) vs emulator seconds,
  jets/s of each, and how many jets the two engines give identical values in every layer;
- end to end: ``convert()`` wall time with ``engine='emulate'`` and with ``engine='csim'``
  (load, hls4ml conversion, Keras reference, report and estimate included);
- throughput: the emulator alone on 100,000 jets (the 10,000 repeated), best of 3;
- softmax settings for triggers (stable default, ``Implementation: argmax``, ``Skip: true``):
  decision agreement, output difference and the estimated cost;
- the cache-hit time.

    python benchmarks/convert.py --out results.json [--quick]

Targets (issue 13): the emulator >= 50x faster than C-sim with its compile, >= 1,000,000 jets/s.
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
SOFTMAX_SETTINGS = {"stable (default)": {}, "argmax": {"Implementation": "argmax"}, "skip": {"Skip": True}}


def train_float(out_dir: Path, quick: bool) -> Path:
    from edgeml import config
    from edgeml.train import train

    cfg = config.validate({"model": {"hidden": [16] if quick else [64, 32, 32]},
                           "train": {"epochs": 2 if quick else 10}})
    return train(cfg, out_dir, "float_tagger", progress=False).model


def timed_convert(model: Path, out: Path, n: int, **kwargs) -> tuple[dict, float]:
    from edgeml.convert import convert

    start = time.perf_counter()
    report = convert(model, output_dir=out, n=n, force=True, **kwargs)
    return report, time.perf_counter() - start


def engines(label: str, model: Path, tmp: Path, n: int) -> dict:
    both, _ = timed_convert(model, tmp / "both", n, engine="both")
    emulate_report, emulate_wall = timed_convert(model, tmp / "emulate", n, engine="emulate")
    csim_report, csim_wall = timed_convert(model, tmp / "csim", n, engine="csim")
    e, c = both["engines"]["emulate"], both["engines"]["csim"]
    split = {k: csim_report["timing"].get(k) for k in ("load", "convert", "compile", "csim", "keras", "report")}
    return {"model": label, "n": both["csim"]["n"], "engines": both["engines"],
            "emulate_vs_csim": both["emulate_vs_csim"],
            "engine_speedup": c["seconds"] / e["seconds"],
            "convert_wall_s": {"emulate": emulate_wall, "csim": csim_wall},
            "convert_speedup": csim_wall / emulate_wall,
            "csim_split_s": split,
            "argmax_agreement": both["csim"]["argmax_agreement"],
            "argmax_agreement_logits": both["csim"]["argmax_agreement_logits"],
            "bit_exact_logits": both["csim"]["bit_exact_logits"],
            "first_broken_layer": both["first_broken_layer"]}


def throughput(model_path: Path, tmp: Path, n_jets: int, n: int) -> dict:
    import numpy as np

    from edgeml import config
    from edgeml.firmware import build, emulate
    from edgeml.firmware.stage import comparison_data
    from edgeml.modelio import load_model

    cfg = config.defaults()
    model = load_model(model_path)
    X, _, _, _ = comparison_data(model_path, model, None, n, cfg)
    X = np.resize(X, (n_jets, X.shape[1]))
    hls_model, _ = build(model, cfg["hls"], tmp / "throughput")
    out = {"n": n_jets}
    for trace in (False, True):
        best = min(_seconds(lambda: emulate(hls_model, X, trace=trace)) for _ in range(3))
        out["traced" if trace else "outputs_only"] = {"seconds": best, "jets_per_second": n_jets / best}
    return out


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def softmax_settings(label: str, model: Path, tmp: Path, n: int) -> list[dict]:
    from edgeml import config

    rows = []
    for name, layer in SOFTMAX_SETTINGS.items():
        cfg = config.validate({"hls": {"LayerName": {"softmax": layer}}} if layer else {})
        report, _ = timed_convert(model, tmp / f"sm-{len(rows)}", n, config=cfg, engine="emulate")
        c, est = report["csim"], (report.get("estimate") or {}).get("total", {})
        rows.append({"model": label, "softmax": name, "accuracy": c["accuracy_csim"],
                     "argmax_agreement": c["argmax_agreement"],
                     "argmax_agreement_logits": c["argmax_agreement_logits"],
                     "max_abs_diff": c["max_abs_diff"], "softmax_ties": c["softmax_ties"],
                     "estimate": {k: est.get(k) for k in ("lut", "ff", "dsp", "bram_18k", "latency_max", "ii")}})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--quick", action="store_true", help="small network and 1000 jets")
    args = parser.parse_args(argv)
    from edgeml.convert import convert

    n = 1000 if args.quick else 10000
    results = {"quick": args.quick, "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "runs": [], "softmax": []}
    with tempfile.TemporaryDirectory(prefix="edgeml-bench-convert-") as tmp:
        tmp = Path(tmp)
        float_model = train_float(tmp / "models", args.quick)
        models = {"float <16,6>": float_model, "qkeras 6-bit pruned (fixture)": QKERAS_FIXTURE}
        for i, (label, model) in enumerate(models.items()):
            results["runs"].append(engines(label, model, tmp / f"m{i}", n))
            results["softmax"] += softmax_settings(label, model, tmp / f"m{i}", n)
        results["throughput"] = throughput(float_model, tmp, 10 * n, n)
        start = time.perf_counter()
        cached = convert(QKERAS_FIXTURE, output_dir=tmp / "m1" / "emulate", n=n, engine="emulate")
        results["cache_hit_s"] = time.perf_counter() - start
        results["cache_hit"] = cached["cache"]["hit"]
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for run in results["runs"]:
        e, c = run["engines"]["emulate"], run["engines"]["csim"]
        x = run["emulate_vs_csim"]
        print(f"{run['model']}: C-sim {c['seconds']:.2f}s (compile {run['csim_split_s']['compile']:.2f}s) vs "
              f"emulator {e['seconds'] * 1000:.1f} ms: {run['engine_speedup']:.0f}x; identical "
              f"{x['identical_fraction']:.2%} of {x['n']}; convert() {run['convert_wall_s']['csim']:.1f}s -> "
              f"{run['convert_wall_s']['emulate']:.1f}s ({run['convert_speedup']:.1f}x)")
    t = results["throughput"]
    print(f"emulator on {t['n']:,} jets: {t['outputs_only']['jets_per_second']:,.0f} jets/s "
          f"(traced: {t['traced']['jets_per_second']:,.0f})")
    for row in results["softmax"]:
        print(f"{row['model']} softmax {row['softmax']}: agreement {row['argmax_agreement']:.4f} "
              f"(pre-softmax {row['argmax_agreement_logits']:.4f}), LUT {row['estimate']['lut']}, "
              f"latency {row['estimate']['latency_max']}")
    print(f"cache hit: {results['cache_hit_s'] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
