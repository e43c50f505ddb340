"""Compression benchmark: every recipe against the float baseline, same test split, several seeds.

    python benchmarks/compression.py --out FILE [--quick] [--seeds N] [--data SOURCE]

For each seed (model initialisation and shuffling; the data split is always the config's) it trains the
float baseline of configs/default.yaml, then every recipe that config lists (tutorial_pruned,
tutorial_qkeras, edgeml_compact) on that baseline, and one small student (STUDENT) twice: with
distillation from the baseline (student_kd) and without (student_scratch), so the pair isolates the
effect of distillation. Writes {"models": {name: {accuracy_mean, accuracy_std, auc_mean, bops,
nonzero_weights, sparsity, ...}}, "checks": {...}}. Exit status 1 if an acceptance check fails.
--quick: 1 seed, 5 epochs everywhere (checks are then reported but not enforced).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# The distillation pair: a small float student (16-16-8-5) from scratch, with the float baseline as teacher
# (student_kd) and with hard labels only (student_scratch). Distillation did not help the quantized
# edgeml_compact (its bounded logits cannot follow the teacher's, see docs/compression.md), so the pair
# uses the student where a capacity gap makes distillation matter.
STUDENT = {"start": "scratch", "epochs": 40, "student": {"hidden": [16, 8]}}
STUDENT_DISTILL = {"alpha": 0.3, "temperature": 2.0}


def student_recipes(cfg: dict) -> list:
    """student_kd / student_scratch: the same STUDENT trained with and without distillation."""
    from edgeml import config as cfgmod
    from edgeml.compress.recipes import Recipe

    out = []
    for name, distill in (("student_kd", True), ("student_scratch", False)):
        section = {**STUDENT, "distill": {"enabled": distill, **STUDENT_DISTILL}}
        out.append(Recipe(name, cfgmod.validate({**cfg, "compression": section})["compression"]))
    return out


def train_baseline(cfg: dict, splits, out_dir: Path):
    from edgeml.compress.cost import model_cost
    from edgeml.io import read_json
    from edgeml.train import build_model, fit, save_trained

    model = build_model(cfg["model"], splits.X_train.shape[1], len(splits.classes), cfg["seed"])
    history = fit(model, splits, cfg["train"], checkpoint=out_dir / "best.weights.h5", progress=False)
    paths = save_trained(model, splits, history, out_dir, "baseline", extra=model_cost(model))
    return model, read_json(paths.metrics)


def one_seed(cfg: dict, splits, recipes: list, seed: int) -> dict[str, dict]:
    from edgeml.compress.recipes import run_recipe
    from edgeml.io import read_json

    cfg = {**cfg, "seed": seed}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        baseline, results["baseline"] = train_baseline(cfg, splits, Path(tmp))
        results["baseline"]["wall_seconds"] = round(time.perf_counter() - started, 1)
        for recipe in recipes:
            started = time.perf_counter()
            results[recipe.name] = read_json(run_recipe(recipe, cfg, splits, baseline, tmp, progress=False).metrics)
            results[recipe.name]["wall_seconds"] = round(time.perf_counter() - started, 1)
            print(f"  seed {seed} {recipe.name:<16} accuracy {results[recipe.name]['accuracy']:.4f} "
                  f"BOPs {results[recipe.name]['bops']} ({results[recipe.name]['wall_seconds']} s)", flush=True)
    return results


def summarize(per_seed: list[dict[str, dict]]) -> dict:
    models = {}
    for name in per_seed[0]:
        runs = [seed[name] for seed in per_seed]
        acc = np.array([r["accuracy"] for r in runs])
        models[name] = {
            "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "accuracy_per_seed": acc.tolist(),
            "auc_mean": {c: float(np.mean([r["auc"][c] for r in runs])) for c in runs[0]["auc"]},
            "bops": float(np.mean([r["bops"] for r in runs])),
            "nonzero_weights": float(np.mean([r["nonzero_weights"] for r in runs])),
            "sparsity": float(np.mean([r["sparsity"] for r in runs])),
            "parameters": runs[0]["parameters"],
            "epochs_trained_mean": float(np.mean([r["epochs_trained"] for r in runs])),
            "wall_seconds_mean": float(np.mean([r["wall_seconds"] for r in runs])),
        }
    return models


def checks(models: dict) -> dict:
    base, anchor, compact = models["baseline"], models["tutorial_qkeras"], models["edgeml_compact"]
    return {
        "tutorial_qkeras_within_1.5_points_of_baseline":
            bool(base["accuracy_mean"] - anchor["accuracy_mean"] <= 0.015),
        "student_kd_above_student_scratch":
            bool(models["student_kd"]["accuracy_mean"] > models["student_scratch"]["accuracy_mean"]),
        "edgeml_compact_within_1.0_point_of_baseline": bool(base["accuracy_mean"] - compact["accuracy_mean"] <= 0.010),
        "edgeml_compact_at_most_half_the_bops_of_tutorial_qkeras": bool(compact["bops"] <= 0.5 * anchor["bops"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 epochs: a smoke test, not a result")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--data", default=None, help="data source (default: the config's, the embedded sample)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    args = parser.parse_args(argv)

    from edgeml import config as cfgmod
    from edgeml.compress.recipes import load_recipes
    from edgeml.data import DEFAULT_SAMPLE, splits_from_config
    from edgeml.io import write_json

    cfg = cfgmod.load(args.config)
    if args.data:
        cfg["data"]["source"] = args.data
    recipes = load_recipes(cfg, base_dir=Path(args.config).parent)
    recipes += student_recipes(cfg)
    seeds = 1 if args.quick else args.seeds
    if args.quick:
        cfg["train"]["epochs"] = 5
        for recipe in recipes:
            recipe.settings["epochs"] = 5
            recipe.settings["prune"]["begin_epoch"] = min(recipe.settings["prune"]["begin_epoch"], 1)
            recipe.settings["prune"]["end_epoch"] = 3
    splits = splits_from_config(cfg)
    print(f"data: {cfg['data']['source']} ({DEFAULT_SAMPLE if cfg['data']['source'] == 'default' else ''}): "
          f"train {len(splits.y_train)}, val {len(splits.y_val)}, test {len(splits.y_test)}", flush=True)
    started = time.perf_counter()
    per_seed = [one_seed(cfg, splits, recipes, cfg["seed"] + i) for i in range(seeds)]
    models = summarize(per_seed)
    result = {"models": models, "checks": checks(models), "seeds": [cfg["seed"] + i for i in range(seeds)],
              "quick": args.quick,
              "data": {"source": cfg["data"]["source"], "default_sample": DEFAULT_SAMPLE,
                       "n_train": len(splits.y_train), "n_val": len(splits.y_val), "n_test": len(splits.y_test)},
              "epochs": {"baseline": cfg["train"]["epochs"], **{r.name: r.settings["epochs"] for r in recipes}},
              "bops_definition": "sum over nonzero Dense weights of b_w*b_a + b_w + b_a + ceil(log2 n_in); "
                                 "float tensors 16 bits (docs/compression.md)",
              "wall_seconds": round(time.perf_counter() - started, 1)}
    write_json(args.out, result)
    for name, m in models.items():
        print(f"{name:<16} accuracy {m['accuracy_mean']:.4f} ± {m['accuracy_std']:.4f}  BOPs {m['bops']:>9.0f}  "
              f"nonzero {m['nonzero_weights']:>6.0f}  sparsity {m['sparsity']:.2f}")
    for check, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'} {check}")
    return 0 if args.quick or all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
