"""Copy the reference models of a finished default run into models/ (shipped with edgeml).

    edgeml run                                   # the default config -> runs/default/
    python scripts/refresh_reference_models.py --run-dir runs/default

Each model lands as ``models/<name>.h5`` with ``<name>_scaler.json`` and ``<name>_metrics.json``
beside it (the layout every edgeml stage writes), so ``edgeml convert models/<name>.h5`` works
right after install; ``models/README.md`` gets the run's numbers for those models.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_MODELS = ("baseline", "tutorial_qkeras", "edgeml_compact")
COMPANIONS = ("scaler", "metrics")  # the history is not needed to convert and would only add bulk


def model_files(run_dir: Path) -> dict[str, dict]:
    """name -> {model, scaler, metrics, ...} run-dir-relative paths, from the run's manifest."""
    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"error: {manifest} does not exist; finish `edgeml run` first")
    found = {}
    for record in json.loads(manifest.read_text())["stages"].values():
        found.update(record.get("outputs", {}).get("models") or {})
    return found


def refresh(run_dir: Path, models_dir: Path, names=REFERENCE_MODELS) -> dict:
    files = model_files(run_dir)
    absent = [n for n in names if n not in files]
    if absent:
        raise SystemExit(f"error: {run_dir} has no model(s) {', '.join(absent)} (has: {', '.join(files)}); "
                         "run the default config with its compression recipes")
    models_dir.mkdir(parents=True, exist_ok=True)
    copied = {}
    for name in names:
        copied[name] = []
        for kind in ("model",) + COMPANIONS:
            source = run_dir / files[name][kind]
            target = models_dir / (f"{name}.h5" if kind == "model" else f"{name}_{kind}.json")
            shutil.copyfile(source, target)
            copied[name].append(str(target.relative_to(models_dir.parent) if models_dir.is_relative_to(REPO)
                                    else target))
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {"models": {}}
    (models_dir / "README.md").write_text(_readme(names, summary, run_dir))
    return {"run_dir": str(run_dir), "copied": copied,
            "models": {n: summary["models"].get(n) for n in names}}


def _readme(names, summary: dict, run_dir: Path) -> str:
    lines = ["# Reference models", "",
             "The models of the default `edgeml run` (float baseline and two compression recipes), each with the",
             "scaler it was trained with. Convert one with `edgeml convert models/<name>.h5`. Regenerate with",
             "`python scripts/refresh_reference_models.py --run-dir runs/default` after a default run.", "",
             "| model | accuracy | C-sim accuracy | BOPs | est. DSP | est. LUT | est. FF | latency (ns) |",
             "|---|---|---|---|---|---|---|---|"]

    def fmt(value, pattern):
        return "n/a" if value is None else pattern.format(value)

    for name in names:
        s = summary["models"].get(name) or {}
        e = s.get("estimate") or {}
        lines.append(f"| {name} | {fmt(s.get('accuracy'), '{:.4f}')} | {fmt(s.get('accuracy_csim'), '{:.4f}')} | "
                     f"{fmt(s.get('bops'), '{:,.0f}')} | {fmt(e.get('dsp'), '{:,.0f}')} | "
                     f"{fmt(e.get('lut'), '{:,.0f}')} | {fmt(e.get('ff'), '{:,.0f}')} | "
                     f"{fmt(e.get('latency_ns'), '{:.1f}')} |")
    lines += ["", f"Numbers from `{run_dir.name}`'s summary.json (test split of the default sample; resources are "
              "edgeml's estimate for the run's part)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "default")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, help="write what was copied (and its numbers) as JSON")
    args = parser.parse_args(argv)
    result = refresh(args.run_dir, args.models_dir)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
