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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml import config as cfgmod
from edgeml import integrity, locks
from edgeml.errors import InputError
from edgeml.data.load import CLASSES
from edgeml.firmware import advice, fidelity, hgq_proxy
from edgeml.firmware import inputs as inputs_mod
from edgeml.firmware.inputs import ModelInputs
from edgeml.firmware.tasks import TASKS, check_labels, choose_tasks
from edgeml.firmware.hls import build, write_project
from edgeml.firmware.passes import prepare_for_hls
from edgeml.firmware.render import render_markdown
from edgeml.io import content_hash, read_json, write_json, write_text

REPORT_FILE = "convert_report.json"
REPORT_MD = "convert_report.md"
PREDICTIONS_FILE = "predictions.npz"
CACHE_FILE = "edgeml_convert_cache.json"
CACHE_VERSION = 3  # bump when the report layout or the build recipe changes
DEFAULT_PROJECTS_DIR = Path("hls_projects")
ENGINES = ("emulate", "csim", "both")
PACKAGE_DIR = Path(__file__).resolve().parent


def recipe_files() -> list[Path]:
    """edgeml's own conversion code, part of the cache key: every module of this package and of its
    subpackages (the emulator), the fixed-point helpers it uses and the jet reader (compiled caches excluded)."""
    edgeml_dir = PACKAGE_DIR.parent
    files = sorted(PACKAGE_DIR.rglob("*.py")) + [edgeml_dir / name for name in ("simulate.py", "fixed.py",
                                                                                 "metrics.py", "data/load.py")]
    return [f for f in files if f.is_file() and "__pycache__" not in f.parts]


def convert(model_path, config: dict | None = None, output_dir=None, data=None, n: int = 10000,
            force: bool = False, auto_precision: bool = False, weights=None, engine: str | None = None,
            wait: bool = False, task: str = "auto", score_output: str | None = None,
            input_range: str | tuple | None = None) -> dict:
    """Convert ``model_path`` with hls4ml, evaluate the firmware bit-exactly and return the fidelity report.

    The project lands in ``output_dir`` (default ``hls_projects/<model name>``) with
    ``convert_report.json``/``.md`` and ``predictions.npz``. ``engine`` (default: the config's
    ``convert.engine``) is 'emulate', 'csim' or 'both'. An identical conversion (same model files,
    hls settings, hls4ml version) is served from the project's cache; other data reuses the build.
    The project directory is locked meanwhile: another process on it fails at once
    (``locks.DirectoryBusy``), or queues with ``wait``.

    ``data``: see ``edgeml.firmware.inputs`` (jets, .npy/.npz/.h5[:/dataset] with the model's inputs, or
    'synthetic' with ``input_range`` 'LO,HI'). ``task`` ('auto', 'classification', 'regression',
    'autoencoder') chooses what the report measures; ``score_output`` names an output that is an
    anomaly score.
    """
    model_path = Path(model_path)
    name = model_path.name if model_path.is_dir() else model_path.stem
    out = Path(output_dir) if output_dir is not None else DEFAULT_PROJECTS_DIR / name
    with locks.hold(out, locks.OUTPUT_DIR, wait) as held:
        if held.interrupted:
            integrity.recover_project(out, CACHE_FILE, held.interrupted)
        with integrity.refused_writes(out, "--output"):
            return _convert(model_path, config, out, data, n, force, auto_precision, weights, engine,
                            Analysis(task, score_output, input_range))


@dataclass(frozen=True)
class Analysis:
    """What the user asked the report to measure: ``--task``, ``--score-output``, ``--input-range``."""

    task: str = "auto"
    score_output: str | None = None
    input_range: str | tuple | None = None


def _convert(model_path: Path, config: dict | None, out: Path, data, n: int, force: bool, auto_precision: bool,
             weights, engine: str | None, analysis: Analysis) -> dict:
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
    if analysis.task not in TASKS:
        raise InputError(f"--task {analysis.task!r} is unknown; use one of {', '.join(TASKS)}")
    input_range = inputs_mod.parse_range(analysis.input_range) if isinstance(analysis.input_range, str) \
        else analysis.input_range
    if not model_path.exists():
        raise InputError(f"model file {model_path} does not exist")
    name = model_path.name if model_path.is_dir() else model_path.stem
    model_files = [model_path]
    if model_path.suffix.lower() == ".json":
        model_files.append(Path(weights) if weights else model_path.with_name(f"{model_path.stem}_weights.h5"))
    build_key = content_hash(*[f for f in model_files if f.exists()], hls, hls4ml.__version__,
                             bool(auto_precision), CACHE_VERSION, *recipe_files())
    data_key = content_hash(_data_identity(data, cfg), n, engine, analysis.task, analysis.score_output,
                            None if input_range is None else list(input_range),
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
    loaded = load_model(model_path, weights=weights)
    model, hgq_notes = hgq_proxy.as_proxy(prepare_for_hls(loaded), model_path, cfg, data)  # full HGQ: its proxy
    hgq_notes += hgq_proxy.inexact_notes(model)
    aliases = dict(zip(model.input_names, loaded.input_names))  # data may use a name edgeml renamed
    jet_classes = len(CLASSES) if inputs_mod.is_jet_model(model) else 0
    tasks = choose_tasks(model, analysis.task, analysis.score_output, jet_classes)
    inputs = comparison_data(model_path, model, data, n, cfg, input_range=input_range, aliases=aliases)
    inputs.warnings[:0] = hgq_notes
    first_output = tuple(int(d) for d in model.outputs[0].shape[1:])
    job = Comparison(tasks, check_labels(tasks[0], inputs.y, first_output, inputs.source),
                     list(CLASSES) if inputs.jets else [], analysis.score_output)
    timing["load"] = time.perf_counter() - t
    reuse = cache is not None and cache["build_key"] == build_key
    if reuse:  # same firmware, other data or engine: rebuild the graph in memory, reuse a compiled library
        report, hls_model = _reuse_build(model, cache, out, inputs.arrays, job, engine, timing)
    else:
        report, hls_model = _fresh_build(model, hls, out, inputs.arrays, job, auto_precision, engine, timing)
    # --auto-precision builds twice: each warning once
    report["warnings"] = list(dict.fromkeys(inputs.warnings + report.pop("warnings", [])))
    report.update({"model": str(model_path), "name": name, "data": inputs.source, "project_dir": str(out),
                   "hls4ml_version": hls4ml.__version__, "hls": hls,
                   "inputs": [{"name": nm, "shape": list(a.shape[1:])} for nm, a in zip(inputs.names, inputs.arrays)],
                   "tasks": [{"output": t.name, "task": t.task, "reason": t.reason} for t in tasks]})
    if inputs.synthetic is not None:
        report["synthetic"] = inputs.synthetic
        report["csim"]["notes"].append(
            f"the inputs are synthetic ({inputs.synthetic['distribution']}, ranges "
            + ", ".join(f"{k} [{lo:g}, {hi:g})" for k, (lo, hi) in inputs.synthetic["ranges"].items())
            + "): overflow fractions and the precision advice hold for that distribution, not for real events")
    t = time.perf_counter()
    arrays = report.pop("arrays")
    report["estimate"] = _estimate(hls_model, cfgmod.estimate_basis(cfg))
    if report["estimate"] and "error" in report["estimate"]:
        report["warnings"].append(f"the resource/latency estimate failed: {report['estimate']['error']}")
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

def evaluate(hls_model, X: list[np.ndarray], engine: str, timing: dict, library: Path | None = None) -> dict:
    """Run the firmware on ``X`` (one array per firmware input, ``get_input_variables()`` order) with
    ``engine``; the emulator's numbers are used when it ran.

    Returns outputs (one (n, size) array per model output) and traces of the engine used, per-engine
    ``{seconds, jets_per_second}`` (C-sim seconds include its compile), the cross-check when both ran,
    the compiled library (None without C-sim) and the fallback note, if any.
    """
    from edgeml.firmware import csim
    from edgeml.firmware.emulator import emulate, unsupported_layers

    n = len(X[0])
    feed = X[0] if len(X) == 1 else X
    gaps = unsupported_layers(hls_model) if engine in ("emulate", "both") else []
    note = None
    if gaps:
        note = (f"the emulator does not cover layer(s) {', '.join(gaps)}: the numbers come from the "
                f"C-simulation (g++)")
    runs: dict[str, tuple] = {}
    engines: dict[str, dict] = {}
    if engine in ("emulate", "both") and not gaps:
        t = time.perf_counter()
        result = emulate(hls_model, feed)  # the emulator chunks wide (image) models itself
        seconds = time.perf_counter() - t
        runs["emulate"] = (_output_list(result.outputs, n), result.traces)  # (n, size) each, decoded when read
        timing["emulate"] = timing.get("emulate", 0.0) + seconds
        engines["emulate"] = _rate(n, seconds)
    if engine in ("csim", "both") or gaps:
        compile_s = 0.0
        if library is not None:  # the cache's library: loading it is no compile
            csim.attach_library(hls_model, library)
        else:
            t = time.perf_counter()
            library = csim.compile_model(hls_model)
            compile_s = time.perf_counter() - t
        timing["compile"] = timing.get("compile", 0.0) + compile_s
        outputs, traces, run_s = csim.simulate(hls_model, feed)
        timing["csim"] = timing.get("csim", 0.0) + run_s
        runs["csim"] = (_output_list(outputs, n), traces)
        engines["csim"] = _rate(n, compile_s + run_s)
    used = "emulate" if "emulate" in runs else "csim"
    outputs, traces = runs[used]
    result = {"engine": used, "outputs": outputs, "traces": traces, "engines": engines, "note": note, "runs": runs,
              "library": library, "run_seconds": engines[used]["seconds"] if used == "emulate" else run_s}
    if len(runs) == 2:
        result["emulate_vs_csim"] = fidelity.engine_agreement(*runs["emulate"], *runs["csim"])
    return result


def _output_list(values, n: int) -> list[np.ndarray]:
    """One (n, size) float64 array per model output (engines return an array for a single output)."""
    values = values if isinstance(values, (list, tuple)) else [values]
    return [_rows(v, n) for v in values]


def _rows(values, n: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(n, -1)


def _rate(n: int, seconds: float) -> dict:
    return {"seconds": seconds, "jets_per_second": n / seconds if seconds > 0 else None}


# --------------------------------------------------------------------------- builds

@dataclass(frozen=True)
class Comparison:
    """What the firmware is compared for: each output's task, the first output's checked labels (or None),
    class names (jets: g, q, w, z, t; else the class indices) and the output that is an anomaly score."""

    tasks: list
    labels: np.ndarray | None
    classes: list[str]
    score_output: str | None


def input_order(hls_model, model) -> list[int]:
    """For each firmware input (``get_input_variables()`` order), the index of its Keras input."""
    names = list(model.input_names)
    hls_names = list(hls_model.inputs)
    if sorted(hls_names) != sorted(names):
        return list(range(len(names)))
    return [names.index(name) for name in hls_names]


def _evaluate_model(model, hls: dict, project_dir: Path, X: list[np.ndarray], job: Comparison, engine: str,
                    timing: dict, library: Path | None = None) -> tuple[dict, object]:
    """Build the hls4ml model, run the firmware and compare it with Keras. ``X``: Keras input order."""
    from edgeml.firmware import csim
    from edgeml.firmware.reference import keras_reference

    t = time.perf_counter()
    hls_model, warnings = build(model, hls, project_dir)
    csim.enable_tracing(hls_model)  # the written project is the same whichever engine runs
    timing["convert"] = timing.get("convert", 0.0) + time.perf_counter() - t
    order = input_order(hls_model, model)
    X_fw = [X[i] for i in order]
    run = evaluate(hls_model, X_fw, engine, timing, library)
    t = time.perf_counter()
    logits_name = fidelity.keras_name(hls_model, fidelity.logits_layer(hls_model))
    types = fidelity.input_types(hls_model)
    keras_types = [types[order.index(i)] for i in range(len(X))]
    ref = keras_reference(model, X, keras_types, logits_name)
    ref["X_quantized"] = [ref["X_quantized"][i] for i in order]
    timing["keras"] = timing.get("keras", 0.0) + time.perf_counter() - t
    result = fidelity.compare(hls_model, X_fw, job.labels, job.classes, ref, run["outputs"], run["traces"],
                              job.tasks, job.score_output)
    result["csim"]["engine"] = run["engine"]
    result["csim"]["jets_per_second"] = len(X[0]) / run["run_seconds"] if run["run_seconds"] > 0 else None
    result.update({"library": run["library"], "warnings": warnings, "engines": run["engines"],
                   "engine_note": run["note"], "emulate_vs_csim": run.get("emulate_vs_csim")})
    # HGQ proxy models: the third engine, HGQ's own float32 predictions, against every firmware engine that ran
    proxy = {f"proxy_vs_{name}": hgq_proxy.proxy_agreement(model, hls_model, X, _keras_order(hls_model, model,
                                                                                               outputs), traces)
             for name, (outputs, traces) in run["runs"].items()} if hgq_proxy.is_proxy_model(model) else {}
    result["proxy_agreement"] = proxy or None
    return result, hls_model


def _keras_order(hls_model, model, outputs: list) -> list:
    """Firmware outputs (``get_output_variables()`` order) in ``model.outputs`` order, where the names tell."""
    from edgeml.firmware.emulator.core import output_names

    names = [t.name.split("/")[0] for t in model.outputs]
    fw_names = output_names(hls_model, hls_model.get_output_variables())
    if sorted(names) != sorted(fw_names):
        return outputs
    return [outputs[fw_names.index(name)] for name in names]


def _fresh_build(model, hls: dict, out: Path, X, job: Comparison, auto_precision: bool, engine: str, timing: dict):
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
                before, _ = _evaluate_model(model, hls, Path(tmp) / "before", X, job, first, timing)
            effective = advice.apply_precisions(hls, _suggest(before))
        result, hls_model = _evaluate_model(model, effective, out, X, job, engine, timing)
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


def _reuse_build(model, cache: dict, out: Path, X, job: Comparison, engine: str, timing: dict):
    library = out / cache["library"] if cache.get("library") else None
    result, hls_model = _evaluate_model(model, cache["hls_effective"], out, X, job, engine, timing, library)
    timing.setdefault("compile", 0.0)
    report = _report(result, cache["hls_effective"], out)
    old = read_json(out / REPORT_FILE)
    if "auto_precision" in old:
        report["auto_precision"] = old["auto_precision"]
    return report, hls_model


def _report(result: dict, effective_hls: dict, out: Path) -> dict:
    broken = fidelity.first_broken_layer(result["layers"])
    library = result["library"]
    report = {"csim": result["csim"], "outputs": result["outputs"], "layers": result["layers"],
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
    return advice.suggest_precisions(result["layers"], result["csim"].get("extra_fraction_bits_needed", 0))


SUMMARY_KEYS = ("accuracy_csim", "argmax_agreement", "argmax_agreement_logits", "max_abs_diff", "max_abs_diff_logits")


def _summary(result: dict) -> dict:
    c = result["csim"]
    summary = {k: c[k] for k in SUMMARY_KEYS if k in c}
    if "score" in c:
        summary["score_spearman"] = c["score"]["spearman"]
    broken = fidelity.first_broken_layer(result["layers"])
    summary["first_broken_layer"] = None if broken is None else broken["name"]
    return summary


# --------------------------------------------------------------------------- data and project files

def comparison_data(model_path: Path, model, data, n: int, cfg: dict, input_range: tuple | None = None,
                    aliases: dict | None = None) -> ModelInputs:
    """The events to compare on (at most ``n``, a seeded random subset of a larger file): edgeml's jets
    scaled like the tagger's training data for a jet tagger, else the model's own inputs from ``data``
    (see ``edgeml.firmware.inputs``) or synthetic ones."""
    names, shapes = list(model.input_names), inputs_mod.input_shapes(model)
    if data is not None and str(data) == inputs_mod.SYNTHETIC:
        ranges = [input_range] * len(names) if input_range is not None else _input_type_ranges(model, cfg["hls"])
        return inputs_mod.synthetic(names, shapes, ranges, n, cfg["seed"])
    if input_range is not None:
        raise InputError("--input-range sets the range of --data synthetic; drop it or pass --data synthetic")
    jets = data is None or inputs_mod.jet_layout(*inputs_mod.split_data_argument(data))
    if inputs_mod.is_jet_model(model) and jets:
        inputs = _jets(model_path, names, data, cfg)
    elif data is None:
        raise InputError(inputs_mod.missing_data_message(model_path, names, shapes))
    else:
        inputs = inputs_mod.read_arrays(data, names, shapes, aliases)
        if _scaler_path(model_path).is_file():
            inputs.warnings.append(f"{_scaler_path(model_path).name} is not applied to {data}: arrays are fed "
                                   "as the model's inputs, as they are")
    if n < inputs.n:  # a seeded random subset: files and splits are often ordered by class
        inputs = inputs.subset(np.sort(np.random.default_rng(cfg["seed"]).permutation(inputs.n)[:n]))
    return inputs


def _jets(model_path: Path, names: list[str], data, cfg: dict) -> ModelInputs:
    """edgeml's jets for a tagger, scaled by its scaler (the default split: the split's own scaler)."""
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
    return ModelInputs([np.asarray(X, dtype=np.float32)], names, y, source, warnings, jets=True)


def _input_type_ranges(model, hls: dict) -> list[tuple[float, float]]:
    """The range of each input's firmware type (what ``--data synthetic`` draws from without --input-range)."""
    from edgeml.firmware.hls import hls4ml_config
    from edgeml.fixed import Fixed

    cfg, _ = hls4ml_config(model, hls)
    ranges = []
    for name in model.input_names:
        precision = cfg["LayerName"].get(name, {}).get("Precision", hls["Precision"])
        text = precision.get("result") if isinstance(precision, dict) else precision
        try:
            t = Fixed.parse(str(text))
        except ValueError:
            raise InputError(f"input {name}: its type {text} is not ap_fixed; give --input-range LO,HI") from None
        lo, hi = t.range
        ranges.append((lo, hi + t.lsb))
    return ranges


def _scaler_path(model_path: Path) -> Path:
    stem = model_path.name if model_path.is_dir() else model_path.stem
    return model_path.with_name(f"{stem}_scaler.json")


def _replaceable(out: Path) -> bool:
    """--force replaces an empty directory or a project (edgeml's or hls4ml's), never other user data."""
    return out.is_dir() and (not any(out.iterdir()) or (out / CACHE_FILE).is_file()
                             or (out / "hls4ml_config.yml").is_file())


def _data_identity(data, cfg: dict):
    if data is not None:
        path, dataset = inputs_mod.split_data_argument(data)
        return ["file", path, dataset] if path.is_file() else ["file", str(data)]
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


def _estimate(hls_model, basis: str):
    """Hook for the resource/latency estimator (edgeml.estimate), never fatal to the conversion."""
    try:
        from edgeml import estimate as estimator
    except ImportError:
        return None
    if not hasattr(estimator, "estimate"):
        return None
    try:
        return estimator.estimate(hls_model, basis=basis)
    except Exception as e:  # the estimator's failure must not cost the user the conversion
        return {"error": f"{type(e).__name__}: {e}"}


def _write_outputs(out: Path, report: dict, arrays: dict) -> None:
    from edgeml.io import atomic_path

    with atomic_path(out / PREDICTIONS_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    write_text(out / REPORT_MD, render_markdown(report))
