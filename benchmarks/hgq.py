"""Benchmark: HGQ alone vs edgeml's QKeras search vs edgeml with HGQ, on the default sample (xcu250, 5 ns).

    python benchmarks/hgq.py --out benchmarks/results/hgq.json [--quick] [--budget-min 10]

(1) ``hgq_alone``: HGQ's own jet-tagger recipe (16-64-32-32-5 HDense from scratch, bit-width L1 2e-6,
    beta ramped log from 5e-7 to 1e-4 over 800 epochs, batch 2048, Adam 3e-3), every epoch on its
    (validation accuracy, EBOPs) front kept and calibrated (``edgeml.compress.hgq.train_hgq`` runs exactly
    that recipe; no distillation, no edgeml choices). Not budgeted.
(2) ``qkeras_search``: ``edgeml.search`` with QKeras trials only (``method: [qkeras]``) for ``--budget-min``
    of wall clock.
(3) ``edgeml``: edgeml with HGQ in the same budget: HGQ recipes over HGQ's full 800-epoch ramp
    (``--recipe``: comma-separated, configs/hgq.yaml, the tutorial network, by default; ``hgq_small``:
    16-8-32-8-5 distilled; ``--distill``: distilled from the float baseline; ``--from-baseline``: from its
    weights; ``--restarts N``: each trained N times from new seeds, one front of all), every training of
    every recipe two at a time on the two cores (``train_hgq_recipes``), seeded from ``--seed`` (default:
    the run's seed + 1, so that (3) never repeats (1)'s training); then ``edgeml.search`` for the rest of
    the budget (the default space, QKeras trials and HGQ trials of ``search.hgq_epochs``;
    ``--edgeml-search-config``: another config's search section).
Each search stops on the wall clock (``edgeml.search``'s ``time_budget_min``, Tune's time budget), and
the JSON gives the wall time each method really took.

Every front design is measured the same way: firmware test accuracy from the bit-exact emulator on all
test jets (``edgeml convert``), edgeml's estimate (LUT, DSP, FF on its ranking basis, Vivado post-synthesis
by default, latency from csynth; cost = LUT + 55*DSP, ``cost_csynth`` the same from csynth), EBOPs
(HGQ designs) or BOPs (QKeras designs), and da4ml's adder-graph cost (sum of hls4ml's ``da_kernel_cost``
over the Dense layers, ``Strategy: distributed_arithmetic``) for designs at ReuseFactor 1 (null otherwise).
Checks: at accuracy 0.72, 0.73, 0.735, 0.74 and float - 0.005, (3)'s cheapest design costs at most (1)'s
and (2)'s cheapest; at float - 0.01, (3)'s cheapest da4ml cost is at most 0.15x tutorial_qkeras's.
--quick: 30 HGQ epochs, a 1-minute budget, da4ml cost of at most 3 designs per method (checks the script).

``--work-dir DIR`` keeps every design's model there (listed in the JSON); ``--reprice FILE`` measures the
designs of an earlier result again (e.g. after an estimator change) without training anything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edgeml import config as cfgmod  # noqa: E402

DSP_LUT = 55
THRESHOLDS = (0.72, 0.73, 0.735, 0.74)
HGQ_RECIPE = {"kind": "hgq", "start": "scratch", "epochs": 800, "learning_rate": 3e-3,
              "student": {"hidden": [64, 32, 32]},
              "hgq": {"batch_size": 2048, "bits_l1": 2e-6,
                      "beta": {"start": 5e-7, "end": 1e-4, "interpolation": "log"}}}


def firmware_row(model_path: Path, hls: dict, test_jets: Path, project: Path) -> dict:
    """Emulated firmware accuracy on every test jet and edgeml's estimate of the design."""
    from edgeml.convert import convert

    with np.load(test_jets) as z:
        n = len(z["y"])
    report = convert(model_path, config={"hls": hls}, output_dir=project, data=test_jets, n=n, force=True,
                     engine="emulate")
    estimate = report.get("estimate") or {}
    t, csynth = estimate.get("cost") or estimate.get("total") or {}, estimate.get("total") or {}
    lut, dsp = t.get("lut"), t.get("dsp")
    return {"accuracy_test": float(report["csim"]["accuracy_csim"]), "n_test": n,
            "engine": report["csim"]["engine"], "basis": estimate.get("basis", "csynth"), "lut": lut, "dsp": dsp,
            "ff": t.get("ff"), "latency_ns": t.get("latency_ns"),
            "cost": None if lut is None else float(lut + DSP_LUT * dsp),
            "cost_csynth": None if csynth.get("lut") is None else float(csynth["lut"] + DSP_LUT * csynth["dsp"])}


def da_cost(model_path: Path, hls: dict, project: Path) -> float:
    """da4ml's cost of the design with every Dense as distributed arithmetic (hls4ml's da_kernel_cost)."""
    from edgeml.firmware.hls import build
    from edgeml.modelio import load_model

    da = cfgmod.validate({"hls": {**hls, "Strategy": "distributed_arithmetic", "ReuseFactor": 1,
                                  "LayerName": {}}})["hls"]
    hls_model, _ = build(load_model(model_path), da, project)
    return float(sum(layer.get_attr("da_kernel_cost") or 0.0 for layer in hls_model.get_layers()
                     if layer.get_attr("strategy") == "distributed_arithmetic"))


def measure(designs: list[dict], hls: dict, test_jets: Path, tmp: Path, da_max: int | None) -> list[dict]:
    """Firmware rows for every design; da4ml cost for the RF-1 ones (the cheapest ``da_max`` if set)."""
    rows = []
    for i, d in enumerate(designs):
        row = {**d, **firmware_row(Path(d["model"]), hls, test_jets, tmp / f"{d['method']}_{i}")}
        row["da_cost"] = None
        rows.append(row)
    rf1 = sorted((r for r in rows if r["reuse_factor"] == 1), key=lambda r: r["cost"] or 0)
    for r in rf1[:da_max] if da_max else rf1:
        r["da_cost"] = da_cost(Path(r["model"]), hls, tmp / f"da_{Path(r['model']).stem}")
    return rows


# ----------------------------------------------------------------------------- the three methods


def recipe_file(recipe: str) -> Path:
    """A recipe named after configs/ (hgq, hgq_small) or a config file's path."""
    path = Path(recipe) if recipe.endswith((".yaml", ".yml")) else ROOT / "configs" / f"{recipe}.yaml"
    if not path.is_file():
        sys.exit(f"error: --recipe {recipe}: no such recipe; give a name in configs/ (hgq, hgq_small, hgq_cheap) or a YAML file")
    return path


def edgeml_recipe(name: str, args) -> dict:
    """(3)'s compression section for one recipe, with the command line's overrides."""
    ours = cfgmod.load(recipe_file(name))["compression"]
    ours["distill"]["enabled"] = ours["distill"]["enabled"] or args.distill
    ours["start"] = "baseline" if args.from_baseline else ours["start"]
    ours["hgq"]["restarts"] = args.restarts or ours["hgq"]["restarts"]
    return ours


def hgq_designs(front, splits, out_dir: Path, method: str, hidden) -> list[dict]:
    from edgeml.compress.hgq import save_front

    shape = "-".join(str(n) for n in (splits.X_train.shape[1], *hidden, len(splits.classes)))
    save_front(front, splits, out_dir, method)
    listed = json.loads((out_dir / f"{method}_front.json").read_text())["snapshots"]
    return [{"method": method, "model": str(out_dir / s["model"]), "ebops": s["ebops"], "bops": None,
             "val_accuracy": s["val_accuracy"], "epoch": s["epoch"], "beta": s["beta"], "reuse_factor": 1,
             "architecture": f"HGQ {shape}, " + (f"restart {s['restart']}, " if s.get("restart") else "")
             + f"epoch {s['epoch']}, beta {s['beta']:.2e}"
             + (f", fine-tuned {s['fine_tune_epoch']} epochs" if s.get("fine_tune_epoch") else "")} for s in listed]


def search_designs(summary: dict, run_dir: Path, method: str) -> list[dict]:
    out = []
    for f in summary["front"]:
        rf = re.search(r"RF (\d+)", f.get("architecture") or "")
        out.append({"method": method, "model": str(run_dir / f["model"]), "ebops": f.get("ebops") if
                    f.get("method") == "hgq" else None, "bops": f.get("bops"),
                    "val_accuracy": f.get("accuracy_val"), "reuse_factor": int(rf.group(1)) if rf else None,
                    "architecture": f.get("architecture")})
    return out


def run_search(cfg: dict, run_dir: Path, minutes: float, epochs: int | None, splits, teacher) -> tuple[dict, float]:
    """A search that runs as many trials as ``minutes`` of wall clock allow."""
    from edgeml.search import search

    started = time.monotonic()
    summary = search(cfg, run_dir=run_dir, trials=100_000, workers=2, epochs=epochs, force=True,
                     splits=splits, teacher=teacher, time_budget_min=minutes)
    return summary, time.monotonic() - started


# ----------------------------------------------------------------------------- checks


def cheapest(rows: list[dict], accuracy: float, key: str = "cost") -> dict | None:
    good = [r for r in rows if r["accuracy_test"] >= accuracy and r.get(key) is not None]
    return min(good, key=lambda r: r[key]) if good else None


def checks(fronts: dict, float_accuracy: float, tutorial: dict) -> dict:
    points = {f"{a}": a for a in THRESHOLDS}
    points["float-0.005"] = round(float_accuracy - 0.005, 4)
    out = {}
    for label, a in points.items():
        best = {m: cheapest(rows, a) for m, rows in fronts.items()}
        ours, others = best["edgeml"], [best["hgq_alone"], best["qkeras_search"]]
        met = ours is not None and all(o is None or ours["cost"] <= o["cost"] for o in others)
        out[label] = {"accuracy": a, "met": met,
                      "cheapest_cost": {m: (b["cost"] if b else None) for m, b in best.items()}}
    a = round(float_accuracy - 0.01, 4)
    ours = cheapest(fronts["edgeml"], a, "da_cost")
    ref = tutorial.get("da_cost")
    out["da_cost_vs_tutorial"] = {"accuracy": a, "edgeml_da_cost": ours["da_cost"] if ours else None,
                                  "tutorial_qkeras_da_cost": ref,
                                  "ratio": ours["da_cost"] / ref if ours and ref else None,
                                  "met": bool(ours and ref and ours["da_cost"] <= 0.15 * ref)}
    return out


# ----------------------------------------------------------------------------- main


KEEP = ("method", "accuracy_test", "val_accuracy", "cost", "cost_csynth", "basis", "lut", "dsp", "ff", "latency_ns",
        "ebops", "bops", "da_cost", "reuse_factor", "architecture", "engine", "n_test")
DESIGN = ("method", "model", "ebops", "bops", "val_accuracy", "reuse_factor", "architecture")


def train_designs(args, cfg: dict, splits, teacher, work: Path, result: dict) -> dict:
    """(1), (2) and (3): every front design of each method (model files under ``work``); wall times into ``result``."""
    from edgeml.compress.hgq import train_hgq, train_hgq_recipes

    budget, hgq_epochs = result["budget_min"], result["hgq_epochs"]
    search_epochs = 3 if args.quick else None
    designs = {}
    # (1) HGQ alone
    started = time.monotonic()
    recipe = cfgmod.validate({"compression": {**HGQ_RECIPE, "epochs": hgq_epochs}})["compression"]
    front = train_hgq(recipe, splits, cfg=cfg, progress=False)
    designs["hgq_alone"] = hgq_designs(front, splits, work / "hgq_alone", "hgq_alone",
                                       HGQ_RECIPE["student"]["hidden"])
    result["wall_s"]["hgq_alone"] = round(time.monotonic() - started, 1)

    # (2) edgeml's QKeras search, budgeted
    qkeras_cfg = cfgmod.validate({**cfg, "search": {"space": {"method": ["qkeras"]}}})
    summary, wall = run_search(qkeras_cfg, work / "qkeras_search", budget, search_epochs, splits, teacher)
    result["trials"] = {"qkeras_search": summary["counts"]}
    designs["qkeras_search"] = search_designs(summary, work / "qkeras_search", "qkeras_search")
    result["wall_s"]["qkeras_search"] = round(wall, 1)

    # (3) edgeml with HGQ: its recipes over the full ramp (every restart of every recipe, two at a time), then
    # the search in what is left of the budget. Its seeds start above (1)'s so that it never repeats (1)'s training.
    started = time.monotonic()
    seed = cfg["seed"] + 1 if args.seed is None else args.seed
    names = args.recipe.split(",")
    recipes = [edgeml_recipe(name, args) for name in names]
    fronts = train_hgq_recipes(recipes, splits, teacher=teacher, epochs=hgq_epochs, cfg=cfg, seed=seed,
                               progress=False, baseline=teacher, workers=2)
    designs["edgeml"] = [d for name, ours, front in zip(names, recipes, fronts)
                         for d in hgq_designs(front, splits, work / "edgeml" / Path(name).stem, "edgeml",
                                              ours["student"]["hidden"])]
    left = budget * 60 - (time.monotonic() - started)
    own_search = (cfgmod.load(args.edgeml_search_config) if args.edgeml_search_config
                  else cfgmod.validate({**cfg, "search": {}}))  # the default space: QKeras and HGQ trials
    if left > 60:
        summary, _ = run_search(own_search, work / "edgeml_search", left / 60, search_epochs, splits, teacher)
        designs["edgeml"] += search_designs(summary, work / "edgeml_search", "edgeml")
        result["trials"]["edgeml_search"] = summary["counts"]
    result["wall_s"]["edgeml"] = round(time.monotonic() - started, 1)
    result["edgeml_hgq_epochs"] = hgq_epochs
    result["edgeml_recipes"] = [{"recipe": name, "hidden": ours["student"]["hidden"],
                                 "distill": ours["distill"]["enabled"], "start": ours["start"],
                                 "restarts": ours["hgq"]["restarts"], "beta": ours["hgq"]["beta"]}
                                for name, ours in zip(names, recipes)]
    result["edgeml_seed"] = seed
    return designs


def earlier_designs(path: Path) -> tuple[dict, dict]:
    """An earlier result and its designs, refused when their model files are gone."""
    earlier = json.loads(path.read_text())
    designs = {m: [{k: r.get(k) for k in DESIGN} for r in rows] for m, rows in earlier["fronts"].items()}
    missing = [d["model"] for rows in designs.values() for d in rows if not d["model"] or not Path(d["model"]).exists()]
    if missing:
        sys.exit(f"error: {len(missing)} design models of {path} are gone (e.g. {missing[0]}); --reprice needs the "
                 "--work-dir of that run")
    return earlier, designs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budget-min", type=float, default=None, help="wall-clock budget of (2) and of (3), minutes "
                    "(at most 30; default 10, --quick 1)")
    ap.add_argument("--edgeml-search-config", default=None, help="config whose search section (3) uses")
    ap.add_argument("--recipe", default="hgq", help="(3)'s HGQ recipes, comma-separated: names in configs/ (hgq: "
                    "the tutorial network; hgq_small: 16-8-32-8-5, distilled; hgq_cheap: beta to 2e-4) or YAML files")
    ap.add_argument("--seed", type=int, default=None, help="(3)'s first seed (restarts take the next ones; default: "
                    "the run's seed + 1, since (1) trains from the run's seed and (3) never repeats it)")
    ap.add_argument("--distill", action="store_true", help="(3)'s HGQ recipe distils from the float baseline")
    ap.add_argument("--from-baseline", action="store_true", help="(3)'s HGQ recipe starts from the float baseline's "
                    "weights (compression.start: baseline) instead of from scratch")
    ap.add_argument("--restarts", type=int, default=None, help="(3)'s HGQ recipe trained this many times from "
                    "new seeds, one front of all (compression.hgq.restarts; default: the recipe's)")
    ap.add_argument("--work-dir", default=None, help="keep every design's model here (default: a temporary folder)")
    ap.add_argument("--reprice", default=None, help="measure the designs of this earlier result again, no training")
    args = ap.parse_args()
    for name in args.recipe.split(","):
        recipe_file(name)
    if args.work_dir and not args.reprice and Path(args.work_dir).exists() and any(Path(args.work_dir).iterdir()):
        sys.exit(f"error: --work-dir {args.work_dir} is not empty; give a new folder (its designs are kept there)")

    from edgeml.data import splits_from_config
    from edgeml.modelio import load_model
    from edgeml.search.front import test_jets_file

    cfg = cfgmod.load(ROOT / "configs" / "default.yaml")
    cfg["compression"]["recipes"] = []
    hls = cfg["hls"]
    splits = splits_from_config(cfg)
    teacher = load_model(ROOT / "models" / "baseline.h5")
    float_accuracy = json.loads((ROOT / "models" / "baseline_metrics.json").read_text())["accuracy"]
    if args.reprice:
        result, designs = earlier_designs(Path(args.reprice))
        result["repriced_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    else:
        budget = min(args.budget_min or (1.0 if args.quick else 10.0), 30.0)
        result, designs = {"quick": args.quick, "budget_min": budget, "float_accuracy": float_accuracy, "wall_s": {},
                           "hgq_epochs": 30 if args.quick else 800}, None
    with tempfile.TemporaryDirectory(prefix="edgeml-bench-hgq-") as tmp:
        tmp = Path(tmp)
        work = Path(args.work_dir).resolve() if args.work_dir else tmp / "designs"
        test_jets = test_jets_file(cfg, tmp / "test_jets.npz")
        tutorial = ROOT / "models" / "tutorial_qkeras.h5"
        ref = firmware_row(tutorial, hls, test_jets, tmp / "tutorial")
        ref["da_cost"] = da_cost(tutorial, hls, tmp / "tutorial_da")
        result["reference"] = {"tutorial_qkeras": ref}
        if designs is None:
            designs = train_designs(args, cfg, splits, teacher, work, result)
        da_max = 3 if result["quick"] else None
        fronts = {m: measure(d, hls, test_jets, tmp, da_max) for m, d in designs.items()}
        keep = KEEP + ("model",) if args.work_dir or args.reprice else KEEP  # model paths only where they are kept
        result["fronts"] = {m: [{k: r.get(k) for k in keep} for r in rows] for m, rows in fronts.items()}
        result["checks"] = checks(fronts, result["float_accuracy"], ref)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"wall_s": result["wall_s"], "checks": result["checks"]}, indent=1))


if __name__ == "__main__":
    main()
