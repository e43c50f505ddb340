"""``edgeml search``: the best jet tagger that fits a trigger budget.

Optuna's multi-objective sampler proposes points of ``search.space``; Ray Tune runs each one as a
trial (``trial.run_trial``: the existing compress -> hls4ml graph -> estimate stages); trials over
``search.budget`` are infeasible. Every finished trial is logged at once (``log.TrialLog``); at
the end the Pareto front is re-measured on the test split in firmware (C-simulation), its models are
saved for ``edgeml convert``, and ``search_summary.json`` and ``search_report.html`` are written.
See docs/search.md.

Modules, each importing only those before it: ``space``, ``budget``, ``workers`` (a trial worker's process)
-> ``records`` (the run directory's files, read back and rebuilt) -> ``trial`` (one trial) -> ``log`` (the
Tune callback), ``cluster`` (the Ray to run on) -> ``engine`` (Optuna + Tune) -> ``front``, ``report`` -> here.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from edgeml.errors import EdgemlError, InputError
from edgeml.integrity import read_json_checked, warn
from edgeml.io import write_json
from edgeml.progress import stage as announce
from edgeml.search import budget as budgets
from edgeml.search import cluster, engine, front as fronts
from edgeml.search import records as recs
from edgeml.search import space as spaces
from edgeml.search.records import COST_COLUMNS
from edgeml.search.trial import TrialData

SUMMARY, REPORT = "search_summary.json", "search_report.html"


def run_dir_lock(run_dir: Path, wait: bool = False):
    """One search per run directory at a time: the run-directory lock of ``edgeml run`` (a killed search
    releases it)."""
    from edgeml import locks

    return locks.hold(run_dir, locks.RUN_DIR, wait)


def quiet_library_warnings() -> None:
    """Optuna's deprecation and small-sample importance notes and Keras's HDF5 advice would bury the
    one-line-per-trial progress; they say nothing the user can act on."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna\.")
    warnings.filterwarnings("ignore", message=r"Some regimes for parameter")
    warnings.filterwarnings("ignore", message=r"You are saving your model as an HDF5 file")


def default_run_dir(cfg: dict) -> Path:
    return Path("runs") / cfg["name"] / "search"


def _epochs_note(settings: dict) -> str:
    hgq = settings["hgq_epochs"] if "hgq" in settings["space"]["method"] else settings["epochs"]
    return f"{settings['epochs']} epochs each" + (f" (hgq trials {hgq})" if hgq != settings["epochs"] else "")


def search(cfg: dict, run_dir: str | Path | None = None, trials: int | None = None, workers: int | None = None,
           address: str | None = None, epochs: int | None = None, resume: bool = False, force: bool = False,
           splits=None, teacher=None, wait: bool = False, time_budget_min: float | None = None) -> dict:
    """Run (or resume) a search; return the summary (also in ``<run_dir>/search_summary.json``).

    ``splits`` and ``teacher`` (the float baseline) default to the config's data and a baseline trained
    here; ``edgeml run`` passes its own. ``wait`` queues behind another process holding ``run_dir``.
    ``time_budget_min``: stop after that many minutes of the trial phase (running trials are stopped),
    even before ``trials`` have run.
    """
    quiet_library_warnings()
    settings = dict(spaces.search_settings(cfg))
    settings["trials"] = trials or settings["trials"]
    settings["workers"] = workers or settings["workers"]
    if epochs:  # --epochs sets every trial's length, HGQ ramps included
        settings["epochs"] = settings["hgq_epochs"] = epochs
    if settings["trials"] < 1 or (settings["workers"] is not None and settings["workers"] < 1):
        raise InputError("--trials and --workers must be at least 1")
    if time_budget_min is not None and not time_budget_min > 0:
        raise InputError(f"--time-budget must be a positive number of minutes, got {time_budget_min}")
    settings["time_budget_s"] = time_budget_min * 60 if time_budget_min else None
    distributions = spaces.distributions(settings["space"])  # refuses an impossible space before any work
    budgets.limits(settings["budget"])  # refuses an unknown part
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_dir_lock(run_dir, wait):
        _prepare_run_dir(run_dir, resume, force)
        return _search(cfg, settings, distributions, run_dir, address, resume, splits, teacher)


def _prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    previous = engine.can_resume(run_dir)
    if resume:
        if not previous:
            raise InputError(f"{run_dir} holds no search to resume; drop --resume to start one")
        return
    if previous and not force:
        raise InputError(f"{run_dir} already holds a search; pass --resume to continue it, --force to start over, "
                         "or --run-dir to choose another directory")
    for name in (recs.TUNE_DIR, recs.MODELS_DIR, fronts.FRONT_DIR, recs.TRIALS_JSON, recs.TRIALS_CSV, SUMMARY,
                 REPORT):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _search(cfg, settings, distributions, run_dir: Path, address, resume, splits, teacher) -> dict:
    from edgeml.data import splits_from_config

    started = time.monotonic()
    splits = splits if splits is not None else splits_from_config(cfg)
    teacher_h5 = _teacher_bytes(cfg, settings, splits, teacher, run_dir)
    data = TrialData({k: getattr(splits, k) for k in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")},
                     splits.scaler, list(splits.classes), teacher_h5, cfg, settings, settings["epochs"])
    logged = recs.recover(run_dir, budgets.limits(settings["budget"])) if resume else []
    info = cluster.connect(address, settings["workers"])
    limit = f" (at most {settings['time_budget_s'] / 60:g} min)" if settings["time_budget_s"] else ""
    announce(f"search: {settings['trials']} trials{limit} on Ray ({info['address'] or 'local, 127.0.0.1'}), "
             f"{info['workers']} at a time, {_epochs_note(settings)}; logging to {run_dir}")
    t_trials, trials_started_at = time.monotonic(), time.time()
    try:
        from edgeml.search.log import TrialLog

        log = TrialLog(run_dir, settings["trials"], logged, settings["time_budget_s"])
        engine.run_trials(data, distributions, spaces.starting_points(settings["space"]), settings["trials"],
                          info["workers"], run_dir, resume, cfg["seed"], settings["sampler"],
                          settings["max_failures"], log, settings["time_budget_s"])
        seconds_trials = time.monotonic() - t_trials  # the trial phase: Ray's shutdown is not part of it
    finally:
        cluster.disconnect(info)
    records = sorted(log.records.values(), key=lambda r: r["trial"])
    if resume:
        _keep_earlier_results(run_dir, records)
    summary = _finish(cfg, settings, run_dir, records, splits, info)
    summary["seconds"] = {"total": round(time.monotonic() - started, 1), "trials": round(seconds_trials, 1),
                          "trials_started_at": trials_started_at}
    write_json(run_dir / SUMMARY, summary)
    _render(run_dir, summary, records)
    _refuse_empty(records, summary)
    return summary


def _keep_earlier_results(run_dir: Path, records: list[dict]) -> None:
    """A resume that ends with fewer finished trials than the summary it would replace stops instead."""
    previous = read_json_checked(run_dir / SUMMARY, ("counts",), "writing a new one")
    counts = (previous or {}).get("counts") or {}
    before = sum(v for k, v in counts.items() if k != "failed" and isinstance(v, int))
    now = sum(r["status"] != "failed" for r in records)
    if now < before:
        raise EdgemlError(f"the resumed search holds {now} finished trials, fewer than the {before} of the "
                          f"{SUMMARY} it would replace; earlier results left as they were in {run_dir}")


def _teacher_bytes(cfg, settings, splits, teacher, run_dir: Path) -> bytes | None:
    """The distillation teacher as .h5 bytes: the given baseline, else one trained here once (kept for --resume)."""
    if True not in settings["space"]["distill"]:
        return None
    path = run_dir / "teacher" / "baseline.h5"
    if path.is_file() and teacher is None and not recs.model_readable(path):
        warn(f"{path} is truncated or garbled; training the teacher again")
        path.unlink()
    if teacher is not None:
        from edgeml.modelio import save_model

        save_model(teacher, path)
    elif not path.is_file():
        from edgeml.train import train

        announce("search: training the float baseline once (the distillation teacher)")
        train_cfg = {**cfg, "train": {**cfg["train"], "epochs": settings["epochs"]}}
        train(train_cfg, path.parent, "baseline", splits=splits)
    return path.read_bytes()


def _finish(cfg, settings, run_dir: Path, records: list[dict], splits, info: dict) -> dict:
    designs = recs.candidates(records)
    cost_front = recs.pareto(designs, "cost")
    latency_front = recs.pareto(designs, "latency_ns")
    on_fronts = {c["design_id"]: c for c in cost_front + latency_front}
    measured: dict[str, dict] = {}
    if on_fronts:
        announce(f"search: firmware-exact test accuracy of the {len(on_fronts)} front models")
        test_jets = fronts.test_jets_file(cfg, run_dir / "data" / "test_jets.npz")
        for c in on_fronts.values():
            model = fronts.save_front_model(run_dir, c, splits.scaler)
            hls = spaces.hls_section(c["config"], cfg, settings)
            measured[c["design_id"]] = {
                "model": str(model.relative_to(run_dir)), "architecture": fronts.describe(c),
                **fronts.firmware_test_accuracy(model, hls, test_jets,
                                                run_dir / fronts.FRONT_DIR / f"{model.stem}_hls")}

    def entry(c: dict) -> dict:
        return {"trial": c["trial"], "trial_id": c["trial_id"], "design_id": c["design_id"], "method": c["method"],
                "epoch": c.get("epoch"), "beta": c.get("beta"), "accuracy_val": c["accuracy"], "cost": c["cost"],
                **{k: c.get(k) for k in COST_COLUMNS}, **measured.get(c["design_id"], {}), "config": c["config"]}

    counts = {s: sum(r["status"] == s for r in records) for s in recs.FINAL}
    return {"engine": info["engine"], "address": info["address"], "workers": info["workers"],
            "nodes": info["nodes"], "run_dir": str(run_dir), "objective": settings["objective"],
            "budget": settings["budget"], "budget_limits": budgets.limits(settings["budget"]),
            "trials_requested": settings["trials"], "epochs": settings["epochs"], "hgq_epochs": settings["hgq_epochs"],
            "counts": counts,
            "designs": {"total": len(designs), "feasible": sum(c["status"] == "completed" for c in designs),
                        "by_method": {m: sum(c["method"] == m for c in designs)
                                      for m in sorted({c["method"] for c in designs})}},
            "front": [entry(c) for c in cost_front], "front_latency": [entry(c) for c in latency_front],
            "reference": fronts.references(cfg, settings),
            "tightest_constraint": budgets.tightest(records) if not counts["completed"] else None,
            "closest_design": budgets.closest(records, budgets.limits(settings["budget"]))
            if not counts["completed"] else None}


def _render(run_dir: Path, summary: dict, records: list[dict]) -> None:
    from edgeml.search.report import render

    render(run_dir / REPORT, summary, recs.candidates(records), records)


def _refuse_empty(records: list[dict], summary: dict) -> None:
    if summary["counts"]["completed"]:
        return
    if summary["counts"]["infeasible"]:
        raise InputError(f"no trial meets the budget: {summary['tightest_constraint']}; "
                         f"{summary['closest_design']}; relax that limit (trials kept in {summary['run_dir']})")
    first = next((r.get("error") for r in records if r.get("error")), "no trial finished")
    raise EdgemlError(f"every trial failed ({first}); trials kept in {summary['run_dir']}")


def json_result(summary: dict, records: list[dict]) -> dict:
    """What ``edgeml search --json`` prints."""
    keep = ("trial", "trial_id", "method", "status", "accuracy", "cost", *COST_COLUMNS, "feasible", "seconds",
            "node_id", "error", "designs", "config")
    return {"engine": summary["engine"], "address": summary["address"], "workers": summary["workers"],
            "nodes": summary["nodes"], "run_dir": summary["run_dir"],
            "trials": [{k: r.get(k) for k in keep} for r in records], "front": summary["front"],
            "reference": summary["reference"]}


__all__ = ["json_result", "run_dir_lock", "search"]
