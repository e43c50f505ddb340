"""The convert stage: Keras/QKeras model -> hls4ml project -> firmware-exact evaluation -> fidelity report.

The firmware is evaluated by one of two engines that give the same numbers: the NumPy
emulator (``engine='emulate'``, no compiler, the default) or hls4ml's g++ C-simulation
(``'csim'``); ``'both'`` runs the two and says how many jets differ. A model with a layer the
emulator does not cover is C-simulated, with a note naming the layer.

The report says, with numbers, how faithfully the fixed-point firmware reproduces the
model: accuracy, decision (argmax) agreement before and after the softmax, output and logit
differences, and for every layer its error, overflow fraction and a suggested precision.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeml import config as cfgmod
from edgeml import integrity, locks
from edgeml.errors import InputError
from edgeml.firmware import advice, fidelity, hgq_proxy
from edgeml.firmware.hls import build, write_project
from edgeml.firmware.passes import prepare_for_hls
from edgeml.firmware.render import render_markdown
from edgeml.io import content_hash, read_json, write_json, write_text

REPORT_FILE = "convert_report.json"
REPORT_MD = "convert_report.md"
PREDICTIONS_FILE = "predictions.npz"
CACHE_FILE = "edgeml_convert_cache.json"
CACHE_VERSION = 2  # bump when the report layout or the build recipe changes
DEFAULT_PROJECTS_DIR = Path("hls_projects")
ENGINES = ("emulate", "csim", "both")
PACKAGE_DIR = Path(__file__).resolve().parent


def recipe_files() -> list[Path]:
    """edgeml's own conversion code, part of the cache key: every module of this package and the
    fixed-point helpers it uses (compiled caches excluded)."""
    edgeml_dir = PACKAGE_DIR.parent
    files = sorted(PACKAGE_DIR.glob("*.py")) + [edgeml_dir / "simulate.py", edgeml_dir / "fixed.py"]
    return [f for f in files if f.is_file()]


def convert(model_path, config: dict | None = None, output_dir=None, data=None, n: int = 10000,
            force: bool = False, auto_precision: bool = False, weights=None, engine: str | None = None,
            wait: bool = False) -> dict:
    """Convert ``model_path`` with hls4ml, evaluate the firmware bit-exactly and return the fidelity report.

    The project lands in ``output_dir`` (default ``hls_projects/<model name>``) with
    ``convert_report.json``/``.md`` and ``predictions.npz``. ``engine`` (default: the config's
    ``convert.engine``) is 'emulate', 'csim' or 'both'. An identical conversion (same model files,
    hls settings, hls4ml version) is served from the project's cache; other data reuses the build.
    The project directory is locked meanwhile: another process on it fails at once
    (``locks.DirectoryBusy``), or queues with ``wait``.
    """
    model_path = Path(model_path)
    name = model_path.name if model_path.is_dir() else model_path.stem
    out = Path(output_dir) if output_dir is not None else DEFAULT_PROJECTS_DIR / name
    with locks.hold(out, locks.OUTPUT_DIR, wait) as held:
        if held.interrupted:
            integrity.recover_project(out, CACHE_FILE, held.interrupted)
        with integrity.refused_writes(out, "--output"):
            return _convert(model_path, config, out, data, n, force, auto_precision, weights, engine)


def _convert(model_path: Path, config: dict | None, out: Path, data, n: int, force: bool, auto_precision: bool,
             weights, engine: str | None) -> dict:
    import hls4ml

    from edgeml.modelio import load_model

    t_start = time.perf_counter()
    cfg = cfgmod.validate(config) if config is not None else cfgmod.validate({})
    hls = cfg["hls"]
    engine = engine if engine is not None else cfg["convert"]["engine"]
    if engine not in ENGINES:
        raise InputError(f"engine {engine!r} is unknown; use one of {', '.join(ENGINES)}")
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if not model_path.exists():
        raise InputError(f"model file {model_path} does not exist")
    name = model_path.name if model_path.is_dir() else model_path.stem
    model_files = [model_path]
    if model_path.suffix.lower() == ".json":
        model_files.append(Path(weights) if weights else model_path.with_name(f"{model_path.stem}_weights.h5"))
    build_key = content_hash(*[f for f in model_files if f.exists()], hls, hls4ml.__version__,
                             bool(auto_precision), CACHE_VERSION, *recipe_files())
    data_key = content_hash(_data_identity(data, cfg), n, engine,
                            *[p for p in [_scaler_path(model_path)] if p.is_file()])
    cache = _read_cache(out)
    force = force or (cache is None and (out / CACHE_FILE).is_file())  # our own project, damaged: rebuild it
    if out.exists() and cache is None and not force:
        raise InputError(f"{out} already exists; pass --force to overwrite it or --output to choose another directory")
    if out.exists() and force and not _replaceable(out):
        raise InputError(f"{out} is not an hls4ml project directory; --force only replaces projects, "
                         "choose another --output")
    if cache and cache["build_key"] == build_key and cache["data_key"] == data_key:
        report = read_json(out / REPORT_FILE)
        report["cache"] = {"hit": True, "seconds": time.perf_counter() - t_start}
        return report
    if out.exists() and cache and cache["build_key"] != build_key and not force:
        raise InputError(f"{out} holds a conversion with other settings; pass --force to overwrite it "
                         "or --output to choose another directory")

    timing: dict[str, float] = {}
    t = time.perf_counter()
    model = prepare_for_hls(load_model(model_path, weights=weights))
    model, hgq_notes = hgq_proxy.as_proxy(model, model_path, cfg)  # HGQ: a full model becomes its proxy
    X, y, source, warnings = comparison_data(model_path, model, data, n, cfg)
    warnings = hgq_notes + warnings
    timing["load"] = time.perf_counter() - t
    reuse = cache is not None and cache["build_key"] == build_key
    if reuse:  # same firmware, other data or engine: rebuild the graph in memory, reuse a compiled library
        report, hls_model = _reuse_build(model, cache, out, X, y, engine, timing)
    else:
        report, hls_model = _fresh_build(model, hls, out, X, y, auto_precision, engine, timing)
    report["warnings"] = warnings + report.pop("warnings", [])
    report.update({"model": str(model_path), "name": name, "data": source, "project_dir": str(out),
                   "hls4ml_version": hls4ml.__version__, "hls": hls})
    t = time.perf_counter()
    arrays = report.pop("arrays")
    report["estimate"] = _estimate(hls_model)
    report["timing"] = timing
    _write_outputs(out, report, arrays)
    timing["report"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - t_start
    write_json(out / REPORT_FILE, report)
    sealed = [f for f in (report["library"], REPORT_FILE, PREDICTIONS_FILE) if f is not None]
    integrity.write_sealed_json(out / CACHE_FILE, {"build_key": build_key, "data_key": data_key,
                                                   "library": report["library"],
                                                   "hls_effective": report["hls_effective"]}, sealed)
    report["cache"] = {"hit": False,
                       "library_reused": bool(reuse and cache.get("library") and "csim" in report["engines"])}
    return report


# --------------------------------------------------------------------------- engines

def evaluate(hls_model, X: np.ndarray, engine: str, timing: dict, library: Path | None = None) -> dict:
    """Run the firmware on ``X`` with ``engine``; the emulator's numbers are used when it ran.

    Returns outputs and traces of the engine used, per-engine ``{seconds, jets_per_second}``
    (C-sim seconds include its compile), the cross-check when both ran, the compiled library
    (None without C-sim) and the fallback note, if any.
    """
    from edgeml.firmware import csim
    from edgeml.firmware.emulator import emulate, unsupported_layers

    gaps = unsupported_layers(hls_model) if engine in ("emulate", "both") else []
    note = None
    if gaps:
        note = (f"the emulator does not cover layer(s) {', '.join(gaps)}: the numbers come from the "
                f"C-simulation (g++)")
    runs: dict[str, tuple] = {}
    engines: dict[str, dict] = {}
    if engine in ("emulate", "both") and not gaps:
        t = time.perf_counter()
        result = emulate(hls_model, X)
        seconds = time.perf_counter() - t
        timing["emulate"] = timing.get("emulate", 0.0) + seconds
        runs["emulate"] = (_rows(result.outputs, len(X)), {k: _rows(v, len(X)) for k, v in result.traces.items()})
        engines["emulate"] = _rate(len(X), seconds)
    if engine in ("csim", "both") or gaps:
        compile_s = 0.0
        if library is not None:  # the cache's library: loading it is no compile
            csim.attach_library(hls_model, library)
        else:
            t = time.perf_counter()
            library = csim.compile_model(hls_model)
            compile_s = time.perf_counter() - t
        timing["compile"] = timing.get("compile", 0.0) + compile_s
        outputs, traces, run_s = csim.simulate(hls_model, X)
        timing["csim"] = timing.get("csim", 0.0) + run_s
        runs["csim"] = (outputs, traces)
        engines["csim"] = _rate(len(X), compile_s + run_s)
    used = "emulate" if "emulate" in runs else "csim"
    outputs, traces = runs[used]
    result = {"engine": used, "outputs": outputs, "traces": traces, "engines": engines, "note": note, "runs": runs,
              "library": library, "run_seconds": engines[used]["seconds"] if used == "emulate" else run_s}
    if len(runs) == 2:
        result["emulate_vs_csim"] = fidelity.engine_agreement(*runs["emulate"], *runs["csim"])
    return result


def _rows(values, n: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(n, -1)


def _rate(n: int, seconds: float) -> dict:
    return {"seconds": seconds, "jets_per_second": n / seconds if seconds > 0 else None}


# --------------------------------------------------------------------------- builds

def _evaluate_model(model, hls: dict, project_dir: Path, X, y, engine: str, timing: dict,
                    library: Path | None = None) -> tuple[dict, object]:
    """Build the hls4ml model, run the firmware and compare it with Keras."""
    from edgeml.data import CLASSES
    from edgeml.firmware import csim
    from edgeml.firmware.reference import keras_reference

    t = time.perf_counter()
    hls_model, warnings = build(model, hls, project_dir)
    csim.enable_tracing(hls_model)  # the written project is the same whichever engine runs
    timing["convert"] = timing.get("convert", 0.0) + time.perf_counter() - t
    run = evaluate(hls_model, X, engine, timing, library)
    t = time.perf_counter()
    logits_name = fidelity.keras_name(hls_model, fidelity.logits_layer(hls_model))
    ref = keras_reference(model, X, fidelity.input_type(hls_model), logits_name)
    timing["keras"] = timing.get("keras", 0.0) + time.perf_counter() - t
    result = fidelity.compare(hls_model, X, y, CLASSES, ref, run["outputs"], run["traces"])
    result["csim"]["engine"] = run["engine"]
    result["csim"]["jets_per_second"] = len(X) / run["run_seconds"] if run["run_seconds"] > 0 else None
    result.update({"library": run["library"], "warnings": warnings, "engines": run["engines"],
                   "engine_note": run["note"], "emulate_vs_csim": run.get("emulate_vs_csim")})
    # HGQ proxy models: the third engine, HGQ's own float32 predictions, against every firmware engine that ran
    proxy = {f"proxy_vs_{name}": hgq_proxy.proxy_agreement(model, hls_model, X, *values)
             for name, values in run["runs"].items()} if hgq_proxy.is_proxy_model(model) else {}
    result["proxy_agreement"] = proxy or None
    return result, hls_model


def _fresh_build(model, hls: dict, out: Path, X, y, auto_precision: bool, engine: str, timing: dict):
    """Build into ``out``; an existing directory (only with --force) is restored if anything fails."""
    backup = None
    if out.exists():
        backup = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        out.rename(backup)
    try:
        before = None
        effective = hls
        if auto_precision:
            first = "csim" if engine == "csim" else "emulate"
            with tempfile.TemporaryDirectory(prefix="edgeml-convert-") as tmp:
                before, _ = _evaluate_model(model, hls, Path(tmp) / "before", X, y, first, timing)
            effective = advice.apply_precisions(hls, _suggest(before))
        result, hls_model = _evaluate_model(model, effective, out, X, y, engine, timing)
        if result["library"] is None:  # no C-sim compile wrote it: the project is the deliverable
            t = time.perf_counter()
            write_project(hls_model)
            timing["write"] = time.perf_counter() - t
    except BaseException:
        if out.exists():
            shutil.rmtree(out)
        if backup is not None:
            backup.rename(out)
        raise
    if backup is not None:
        shutil.rmtree(backup)
    report = _report(result, effective, out)
    if before is not None:
        report["auto_precision"] = {"applied": _suggest(before),
                                    "before": _summary(before), "after": _summary(result)}
        report["warnings"] = before["warnings"] + report["warnings"]
    return report, hls_model


def _reuse_build(model, cache: dict, out: Path, X, y, engine: str, timing: dict):
    library = out / cache["library"] if cache.get("library") else None
    result, hls_model = _evaluate_model(model, cache["hls_effective"], out, X, y, engine, timing, library)
    timing.setdefault("compile", 0.0)
    report = _report(result, cache["hls_effective"], out)
    old = read_json(out / REPORT_FILE)
    if "auto_precision" in old:
        report["auto_precision"] = old["auto_precision"]
    return report, hls_model


def _report(result: dict, effective_hls: dict, out: Path) -> dict:
    broken = fidelity.first_broken_layer(result["layers"])
    library = result["library"]
    report = {"csim": result["csim"], "layers": result["layers"],
              "first_broken_layer": None if broken is None else {"name": broken["name"], "status": broken["status"]},
              "suggested_precision": _suggest(result),
              "hls_effective": effective_hls,
              "library": None if library is None else os.path.relpath(Path(library).resolve(), out.resolve()),
              "engines": result["engines"], "engine_note": result["engine_note"],
              "warnings": result["warnings"], "arrays": result["arrays"]}
    if result["emulate_vs_csim"] is not None:
        report["emulate_vs_csim"] = result["emulate_vs_csim"]
    if result.get("proxy_agreement"):
        report.update(result["proxy_agreement"])
    return report


def _suggest(result: dict) -> dict:
    return advice.suggest_precisions(result["layers"], result["csim"]["extra_fraction_bits_needed"])


def _summary(result: dict) -> dict:
    c = result["csim"]
    summary = {k: c[k] for k in ("accuracy_csim", "argmax_agreement", "argmax_agreement_logits",
                                 "max_abs_diff", "max_abs_diff_logits")}
    broken = fidelity.first_broken_layer(result["layers"])
    summary["first_broken_layer"] = None if broken is None else broken["name"]
    return summary


# --------------------------------------------------------------------------- data and project files

def comparison_data(model_path: Path, model, data, n: int, cfg: dict) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The jets to compare on, scaled like the model's training data: (X, y, description, warnings)."""
    from edgeml.data import Scaler, load_jets, make_splits, split_indices

    warnings: list[str] = []
    scaler_path = _scaler_path(model_path)
    scaler = Scaler.load(scaler_path) if scaler_path.is_file() else None
    if data is None:
        jets = load_jets(cfg["data"]["source"])
        if scaler is None:
            splits = make_splits(jets, cfg["data"]["test_fraction"], cfg["data"]["val_fraction"], cfg["seed"])
            X, y = splits.X_test, splits.y_test
        else:
            _, _, test = split_indices(jets.y, cfg["data"]["test_fraction"], cfg["data"]["val_fraction"], cfg["seed"])
            X, y = scaler.transform(jets.X[test]), jets.y[test]
        source = f"test split of {jets.source}"
    else:
        jets = load_jets(data)
        X, y = jets.X, jets.y
        if scaler is not None:
            X = scaler.transform(X)
        else:
            warnings.append(f"no scaler {scaler_path.name} beside the model: feeding {data} as it is")
        source = str(data)
    n_inputs = int(np.prod(model.input_shape[1:]))
    if X.shape[1] != n_inputs:
        raise InputError(f"the data has {X.shape[1]} features but the model expects {n_inputs} inputs")
    if n < len(y):  # a seeded random subset: files and splits are often ordered by class
        keep = np.sort(np.random.default_rng(cfg["seed"]).permutation(len(y))[:n])
        X, y = X[keep], y[keep]
    return X.astype(np.float32), y, source, warnings


def _scaler_path(model_path: Path) -> Path:
    stem = model_path.name if model_path.is_dir() else model_path.stem
    return model_path.with_name(f"{stem}_scaler.json")


def _replaceable(out: Path) -> bool:
    """--force replaces an empty directory or a project (edgeml's or hls4ml's), never other user data."""
    return out.is_dir() and (not any(out.iterdir()) or (out / CACHE_FILE).is_file()
                             or (out / "hls4ml_config.yml").is_file())


def _data_identity(data, cfg: dict):
    if data is not None:
        return ["file", Path(data)] if Path(data).is_file() else ["file", str(data)]
    from edgeml.data import default_sample_path

    source = cfg["data"]["source"]
    ident = Path(default_sample_path()) if source == "default" else (Path(source) if Path(source).is_file() else source)
    return ["split", ident, cfg["data"]["test_fraction"], cfg["data"]["val_fraction"], cfg["seed"]]


def _read_cache(out: Path) -> dict | None:
    cache = integrity.read_sealed_json(out / CACHE_FILE, ("build_key", "data_key", "library", "hls_effective"),
                                       "converting again")  # garbled, or its files damaged: rebuild
    if cache is None:
        return None
    library = cache.get("library")
    if (library is not None and not (out / library).is_file()) or not (out / REPORT_FILE).is_file():
        return None
    return cache


def _estimate(hls_model):
    """Hook for the resource/latency estimator (edgeml.estimate), never fatal to the conversion."""
    try:
        from edgeml import estimate as estimator
    except ImportError:
        return None
    if not hasattr(estimator, "estimate"):
        return None
    try:
        return estimator.estimate(hls_model)
    except Exception as e:  # the estimator's failure must not cost the user the conversion
        return {"error": f"{type(e).__name__}: {e}"}


def _write_outputs(out: Path, report: dict, arrays: dict) -> None:
    from edgeml.io import atomic_path

    with atomic_path(out / PREDICTIONS_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    write_text(out / REPORT_MD, render_markdown(report))
