"""``edgeml run``: the stages in order, in a run directory, reusing what did not change.

A stage is a plain function ``fn(ctx) -> dict`` (its outputs, JSON-able). Its cache key
is the content hash of the config sections it reads and of the keys of the stages it
depends on, so changing ``train.epochs`` reruns the baseline and everything downstream
but not the data stage. ``manifest.json`` records each finished stage's key and outputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgeml import config as cfgmod
from edgeml import integrity, locks
from edgeml.errors import EdgemlError, InputError
from edgeml.io import atomic_path, content_hash, read_json, write_json, write_text
from edgeml.progress import stage as announce

MANIFEST = "manifest.json"


@dataclass
class Stage:
    name: str
    sections: tuple[str, ...]  # config sections (or top-level keys) the stage reads
    needs: tuple[str, ...]  # stages whose outputs it reads
    fn: Callable[["RunContext"], dict]
    doc: str = ""
    inputs: Callable[[dict], list] | None = None  # files read besides the config (their bytes join the key)
    always: bool = False  # cheap and shaped by edgeml's code rather than the config: never reused
    wanted: Callable[[dict], bool] | None = None  # optional stage: runs only when this says the config asks for it


@dataclass
class RunContext:
    cfg: dict
    run_dir: Path
    outputs: dict = field(default_factory=dict)  # stage name -> its outputs
    progress: bool | None = None

    def path(self, *parts: str) -> Path:
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def splits(self):
        """The data stage's splits, reloaded from disk (identical across stages and runs)."""
        from edgeml.data import Scaler, Splits

        out = self.outputs["data"]
        with np.load(self.run_dir / out["splits"]) as z:
            arrays = {k: z[k] for k in z.files}
        return Splits(arrays["X_train"], arrays["y_train"], arrays["X_val"], arrays["y_val"], arrays["X_test"],
                      arrays["y_test"], Scaler.load(self.run_dir / out["scaler"]), list(out["classes"]))


def _data_stage(ctx: RunContext) -> dict:
    from edgeml.data import describe, load_jets, make_splits, subsample

    d = ctx.cfg["data"]
    data = subsample(load_jets(d["source"]), d["max_jets"], ctx.cfg["seed"])
    splits = make_splits(data, d["test_fraction"], d["val_fraction"], ctx.cfg["seed"])
    with atomic_path(ctx.path("data", "splits.npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, X_train=splits.X_train, y_train=splits.y_train, X_val=splits.X_val, y_val=splits.y_val,
                     X_test=splits.X_test, y_test=splits.y_test)
    splits.scaler.save(ctx.path("data", "scaler.json"))
    summary = describe(data)
    write_json(ctx.path("data", "summary.json"), summary)
    print(f"  {summary['n_jets']} jets from {data.source}: train {len(splits.y_train)}, val {len(splits.y_val)}, "
          f"test {len(splits.y_test)}")
    return {"splits": "data/splits.npz", "scaler": "data/scaler.json", "summary": "data/summary.json",
            "classes": splits.classes, "n_jets": summary["n_jets"]}


def _baseline_stage(ctx: RunContext) -> dict:
    from edgeml.train import train

    paths = train(ctx.cfg, ctx.run_dir / "models", "baseline", splits=ctx.splits(), progress=ctx.progress)
    metrics = read_json(paths.metrics)
    print(f"  baseline accuracy {metrics['accuracy']:.4f} after {metrics['epochs_trained']} epochs")
    return {"models": {"baseline": _relative(ctx, paths)}}


def _compress_stage(ctx: RunContext) -> dict:
    from edgeml.compress.recipes import load_recipes, run_recipe
    from edgeml.modelio import load_model

    splits = ctx.splits()
    baseline = load_model(ctx.run_dir / ctx.outputs["baseline"]["models"]["baseline"]["model"])
    models = {}
    for recipe in load_recipes(ctx.cfg):
        announce(f"compress: recipe {recipe.name}")
        paths = run_recipe(recipe, ctx.cfg, splits, baseline, ctx.run_dir / "models", ctx.progress)
        m = read_json(paths.metrics)
        cost = f"{m['ebops']:,.0f} EBOPs (HGQ, epoch {m['epoch']})" if m.get("kind") == "hgq" else f"{m['bops']} BOPs"
        print(f"  {recipe.name}: accuracy {m['accuracy']:.4f}, {cost}, sparsity {m['sparsity']:.2f}")
        models[recipe.name] = _relative(ctx, paths)
    return {"models": models}


def _data_inputs(cfg: dict) -> list:
    """A data file's bytes join the key: the same path with other jets must not reuse the old splits."""
    source = Path(str(cfg["data"]["source"]))
    return [source] if source.is_file() else []


def _compression_inputs(cfg: dict) -> list:
    from edgeml.compress.recipes import recipe_files

    return recipe_files(cfg)


def _relative(ctx: RunContext, paths) -> dict:
    return {k: str(Path(v).relative_to(ctx.run_dir)) for k, v in vars(paths).items()}


STAGES: list[Stage] = [
    Stage("data", ("seed", "data"), (), _data_stage, "load, split and scale the jets", _data_inputs),
    Stage("baseline", ("seed", "model", "train"), ("data",), _baseline_stage, "train the float tagger"),
    Stage("compress", ("seed", "model", "train", "compression"), ("data", "baseline"), _compress_stage,
          "prune, quantize and distil the configured recipes", _compression_inputs),
]


# Stages after compression: every model (baseline + recipes) to firmware, estimated, reported.
# The bit-exact emulator (the default engine) runs a whole test split in well under a second; the
# cap only bounds the g++ C-simulation fallback (~10k jets/s) on a large dataset such as OpenML's.
FIRMWARE_JETS = 200_000


def _trained_models(ctx: RunContext) -> dict[str, dict]:
    """name -> run-relative files of every model the upstream stages trained, baseline first."""
    models: dict[str, dict] = {}
    for name in _MODEL_STAGES:
        models.update(ctx.outputs[name].get("models") or {})
    return models


def _test_jets(ctx: RunContext) -> Path:
    """The run's test jets (a seeded subset of FIRMWARE_JETS if more), unscaled, as the file ``convert`` reads.

    Rebuilt from the source exactly as the data stage split it, and checked against the
    stored scaled test split: the firmware is compared on the very jets the metrics used.
    convert applies each model's own scaler. The subset is random, not the first jets,
    because samples are often stored class by class.
    """
    from edgeml.data import load_jets, split_indices, subsample, write_npz

    d, splits = ctx.cfg["data"], ctx.splits()
    jets = subsample(load_jets(d["source"]), d["max_jets"], ctx.cfg["seed"])
    test = split_indices(jets.y, d["test_fraction"], d["val_fraction"], ctx.cfg["seed"])[2]
    keep = np.sort(np.random.default_rng(ctx.cfg["seed"]).permutation(len(test))[:FIRMWARE_JETS])
    raw = jets.subset(test[keep])
    if not np.array_equal(splits.scaler.transform(raw.X), splits.X_test[keep]):
        raise EdgemlError(f"the jets of {d['source']} changed since the data stage ran; rerun with --from data")
    path = ctx.path("data", "csim_test_jets.npz")
    if path.is_file() and _holds_jets(path, raw):  # identical bytes (zip timestamps differ) keep convert's cache
        return path
    return write_npz(raw, path)


def _holds_jets(path: Path, jets) -> bool:
    try:
        with np.load(path) as old:
            return np.array_equal(old["X"], jets.X) and np.array_equal(old["y"], jets.y)
    except Exception:  # truncated or garbled (zip, zlib or key errors): rewrite it
        return False


def _convert_stage(ctx: RunContext) -> dict:
    from edgeml.convert import convert

    models = _trained_models(ctx)
    test_jets = _test_jets(ctx)
    conversions = {}
    started = time.monotonic()
    for i, (name, files) in enumerate(models.items()):
        eta = f", ETA {(time.monotonic() - started) / i * (len(models) - i):.0f}s" if i else ""
        announce(f"convert: {name} ({i + 1}/{len(models)}{eta}): hls4ml project, bit-exact firmware on the test jets")
        project = ctx.path("hls", name)
        # wait=True: only an `edgeml convert --output` into this run's project can hold it; let it finish
        report = convert(ctx.run_dir / files["model"], config=ctx.cfg, output_dir=project, data=test_jets,
                         n=FIRMWARE_JETS, force=True, wait=True)
        c = report["csim"]
        print(f"  {name}: Keras {c['accuracy_keras']:.4f}, firmware {c['accuracy_csim']:.4f}, "
              f"argmax agreement {c['argmax_agreement']:.2%} on {c['n']} jets"
              + (" (cached build)" if report.get("cache", {}).get("hit") else ""))
        conversions[name] = {"project": f"hls/{name}", "report": f"hls/{name}/convert_report.json",
                             "predictions": f"hls/{name}/predictions.npz"}
    return {"conversions": conversions, "test_jets": str(test_jets.relative_to(ctx.run_dir))}


def _estimate_stage(ctx: RunContext) -> dict:
    estimates = {}
    for name, files in ctx.outputs["convert"]["conversions"].items():
        result = read_json(ctx.run_dir / files["report"]).get("estimate")
        if not result or "total" not in result:  # convert did not (or could not) estimate: use the project
            from edgeml.estimate import estimate

            result = estimate(ctx.run_dir / files["project"], basis=cfgmod.estimate_basis(ctx.cfg))
        t = result.get("cost") or result["total"]
        print(f"  {name} ({result.get('basis', 'csynth').replace('_', '-')}): DSP {t['dsp']}, LUT {t['lut']}, "
              f"FF {t['ff']}, BRAM18 {t['bram_18k']}, latency {t['latency_ns']} ns, II {t['ii']}, "
              f"fits: {'yes' if result['total'].get('fits') else 'no'}")
        estimates[name] = {"estimate": str(write_json(ctx.path("estimate", f"{name}.json"), result)
                                           .relative_to(ctx.run_dir))}
    return {"estimates": estimates}


def _report_stage(ctx: RunContext) -> dict:
    from edgeml.report import render_report

    paths = render_report(ctx.run_dir)
    print(f"  report: {paths['html']}")
    return {kind: str(p.relative_to(ctx.run_dir)) for kind, p in paths.items()}


def _search_stage(ctx: RunContext) -> dict:
    from edgeml.modelio import load_model
    from edgeml.search import search

    teacher = load_model(ctx.run_dir / ctx.outputs["baseline"]["models"]["baseline"]["model"])
    summary = search(ctx.cfg, ctx.run_dir / "search", splits=ctx.splits(), teacher=teacher, force=True)
    print(f"  search: {len(summary['front'])} models on the front; search/search_report.html")
    return {"summary": "search/search_summary.json", "report": "search/search_report.html"}


_MODEL_STAGES = tuple(s.name for s in STAGES if s.name in ("baseline", "compress"))
STAGES += [
    Stage("convert", ("hls", "convert"), ("data",) + _MODEL_STAGES, _convert_stage,
          "convert every model with hls4ml and evaluate its firmware bit-exactly on the test jets"),
    Stage("estimate", ("hls",), ("convert",), _estimate_stage, "estimate resources and latency of every model"),
    Stage("report", (), ("data",) + _MODEL_STAGES + ("convert", "estimate"), _report_stage,
          "write report.html, report.md and summary.json", always=True),
    Stage("search", ("seed", "data", "model", "train", "hls", "search"), ("data", "baseline"), _search_stage,
          "search the search: space for the best taggers within its budget (Optuna + Ray Tune)",
          wanted=lambda cfg: cfg.get("search") is not None),
]


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def default_run_dir(cfg: dict) -> Path:
    return Path("runs") / cfg["name"]


def _check_run_dir(run_dir: Path, cfg_text: str, force: bool) -> None:
    """Refuse to mix a different config's results into a non-empty run directory."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    previous = run_dir / "config.yaml"
    if previous.is_file() and previous.read_text() == cfg_text:
        return
    if not force:
        what = "a different config" if previous.is_file() else "files edgeml did not write"
        raise InputError(f"run directory {run_dir} holds {what}; pass --force to reuse it (unchanged stages are "
                         "kept) or --run-dir to choose another")


def run(cfg: dict, run_dir: str | Path | None = None, force: bool = False, only: str | None = None,
        from_stage: str | None = None, progress: bool | None = None, wait: bool = False) -> dict:
    """Run the pipeline; return the manifest. ``only``/``from_stage`` select stages (needed inputs must exist).

    The run directory is locked for the whole run: another process on it fails at once
    (``DirectoryBusy``), or queues with ``wait``.
    """
    names = stage_names()
    for opt, value in (("--only", only), ("--from", from_stage)):
        if value is not None and value not in names:
            raise InputError(f"{opt} {value!r} is not a stage (stages: {', '.join(names)})")
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    with locks.hold(run_dir, locks.RUN_DIR, wait) as held:
        if held.interrupted:
            announce(f"resuming: the run of pid {held.interrupted['pid']} (since {held.interrupted['since']}) "
                     "was interrupted; its finished stages are checked and kept")
            for folder in ("", "data", "models", "estimate"):  # projects in hls/ clean up under their own lock
                integrity.remove_stale_temporaries(run_dir / folder)
        with integrity.refused_writes(run_dir):
            return _run_locked(cfg, run_dir, force, _selected(names, only, from_stage),
                               only is not None or from_stage is not None, progress)


def _run_locked(cfg: dict, run_dir: Path, force: bool, selected: list[str], explicit: bool,
                progress: bool | None) -> dict:
    """``explicit``: the user asked for the selected stages to run again."""
    cfg_text = cfgmod.dump(cfg)
    _check_run_dir(run_dir, cfg_text, force)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", cfg_text)
    manifest_path = run_dir / MANIFEST
    manifest = load_manifest(run_dir)
    ctx = RunContext(cfg, run_dir, progress=progress)
    keys: dict[str, str] = {}
    rebuilt: set[str] = set()  # stages run now: what depends on them runs too, never mixing old and new
    for st in STAGES:
        if st.wanted is not None and not st.wanted(cfg):
            continue
        keys[st.name] = content_hash(st.name, [cfg.get(s) for s in st.sections], [keys[n] for n in st.needs],
                                     *(st.inputs(cfg) if st.inputs else []))
        previous = manifest["stages"].get(st.name)
        fresh = (previous is not None and previous["key"] == keys[st.name]
                 and not rebuilt.intersection(st.needs) and _intact(run_dir, st.name, previous))
        if st.name in selected and (st.always or explicit):
            fresh = False
        if fresh:
            ctx.outputs[st.name] = previous["outputs"]
            if st.name in selected:
                announce(f"{st.name}: unchanged, reused")
            continue
        if st.name not in selected:
            if _needed_later(st.name, selected):
                raise InputError(f"stage '{st.name}' has no up-to-date result in {run_dir}; run it first "
                                 "(drop --only/--from)")
            continue
        announce(f"{st.name}: {st.doc}")
        started = time.monotonic()
        ctx.outputs[st.name] = st.fn(ctx)
        rebuilt.add(st.name)
        manifest["stages"][st.name] = {"key": keys[st.name], "outputs": ctx.outputs[st.name],
                                       "digests": integrity.digests(run_dir, _output_files(ctx.outputs[st.name])),
                                       "seconds": round(time.monotonic() - started, 2),
                                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(manifest_path, manifest)
    return manifest


def load_manifest(run_dir: Path) -> dict:
    """The run's manifest; a garbled one, or a garbled stage record in it, is dropped with a warning."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return {"stages": {}}
    manifest = integrity.read_json_checked(path, ("stages",), "every stage runs again")
    if manifest is None or not isinstance(manifest["stages"], dict):
        if manifest is not None:
            integrity.warn(f"{path} is garbled; not trusting it, every stage runs again")
        return {"stages": {}}
    for name, record in list(manifest["stages"].items()):
        if not (isinstance(record, dict) and isinstance(record.get("key"), str)
                and isinstance(record.get("outputs"), dict) and isinstance(record.get("digests", {}), dict)):
            integrity.warn(f"{path}: the record of stage '{name}' is garbled; that stage runs again")
            del manifest["stages"][name]
    return manifest


def damaged_output(run_dir: Path, record: dict) -> tuple[str, str] | None:
    """(file, what is wrong) for the first output of a finished stage that is missing or changed."""
    if "digests" in record:
        return integrity.first_damaged(run_dir, record["digests"])
    # manifests written before digests were recorded: existence is all there is to check
    missing = [p for p in _output_files(record["outputs"]) if not (run_dir / p).exists()]
    return (missing[0], "is missing") if missing else None


def _intact(run_dir: Path, name: str, record: dict) -> bool:
    damaged = damaged_output(run_dir, record)
    if damaged is not None:
        integrity.warn(f"{run_dir / damaged[0]} {damaged[1]} since stage '{name}' wrote it; running '{name}' again")
    return damaged is None


def _selected(names: list[str], only: str | None, from_stage: str | None) -> list[str]:
    if only is not None:
        return [only]
    if from_stage is not None:
        return names[names.index(from_stage):]
    return names


def _needed_later(name: str, selected: list[str]) -> bool:
    return any(name in st.needs for st in STAGES if st.name in selected)


def _output_files(outputs: dict) -> list[str]:
    """The run-relative files and folders a stage's outputs name."""
    def paths(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                yield from paths(v)
        elif isinstance(obj, str) and ("/" in obj or obj.endswith((".json", ".h5", ".npz", ".html", ".md"))):
            yield obj

    return list(dict.fromkeys(paths(outputs)))


def verify_run(run_dir: Path) -> None:
    """Refuse a run directory whose finished stages' files changed since they were written.

    For commands that read a run as it is (``edgeml report``); a missing file is left to them
    (the report shows it as not available).
    """
    rerendered = {st.name for st in STAGES if st.always}
    for name, record in load_manifest(run_dir)["stages"].items():
        if name in rerendered or "digests" not in record:
            continue
        damaged = integrity.first_damaged(run_dir, {k: v for k, v in record["digests"].items()
                                                    if (run_dir / k).exists()})
        if damaged is not None:
            raise InputError(f"{run_dir / damaged[0]} {damaged[1]} since stage '{name}' wrote it; rerun "
                             f"'edgeml run' with this run's config (--run-dir {run_dir}) to rebuild it")


def summarize(run_dir: Path, manifest: dict) -> str:
    """A short terminal summary of the models a run produced."""
    lines = [f"run directory: {run_dir}"]
    for stage_name, record in manifest["stages"].items():
        for name, files in record["outputs"].get("models", {}).items():
            metrics_file = run_dir / files["metrics"]
            if metrics_file.is_file():
                m = read_json(metrics_file)
                aucs = " ".join(f"{c}:{v:.3f}" for c, v in m["auc"].items())
                lines.append(f"  {name:<18} accuracy {m['accuracy']:.4f}  AUC {aucs}")
    return "\n".join(lines)
