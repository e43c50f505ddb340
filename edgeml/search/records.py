"""What a search keeps in its run directory, and how it is read back.

Every finished trial is one record (completed, infeasible or failed) in ``trials.json`` and
``trials.csv``, its model in ``trials/<trial_id>.h5``; Ray Tune keeps its experiment state under
``tune/``. Files read back may be truncated or garbled: ``recover`` takes ``trials.json`` when it is
whole and otherwise rebuilds the log from what is intact (Tune's experiment state, ``trials.csv``, the
models on disk), with a one-line warning. Nothing here imports Ray: the engine and the Tune callback
build on this module, not the other way round.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from edgeml.integrity import warn
from edgeml.io import write_json, write_text
from edgeml.search import budget as budgets

TRIALS_JSON, TRIALS_CSV, MODELS_DIR, TUNE_DIR = "trials.json", "trials.csv", "trials", "tune"
FINAL = ("completed", "infeasible", "failed")
REPLAYED = "replayed_from_log"  # marks a result replayed from the log, not trained again
# Cost columns of every trial record (trials.csv / trials.json / the front).
COST_COLUMNS = ("lut", "dsp", "ff", "bram", "latency_ns", "ii", "bops", "ebops", "params")
DSP_LUT_EQUIVALENT = 55  # one DSP counted as 55 LUTs in the default cost
# What a record keeps of a trial's result (the model goes to its own file).
RESULT_KEYS = ("method", "accuracy", "cost", *COST_COLUMNS, "feasible", "excess", "input_precision", "seconds",
               "sparsity_achieved", "design", "designs", "started_at", "ended_at", "pid", "core", "node_id",
               "hostname")
# An HGQ trial's designs (one per snapshot on its front); a qkeras trial is its own one design.
DESIGN_KEYS = ("epoch", "beta", "accuracy", "cost", *COST_COLUMNS, "feasible", "excess", "status",
               "sparsity_achieved")
CSV_COLUMNS = ("trial", "trial_id", "method", "design", "status", "accuracy", "cost", *COST_COLUMNS, "feasible",
               "seconds", "input_precision", "node_id", "error")
# Tune experiments of one search: the first is "search"; one that continues a search past its first trials
# (``--resume --trials N`` beyond them, or a Tune state that could not be read back) is "search_from_<K>", its
# trials numbered after the K already logged.
EXPERIMENT = "search"
_EXPERIMENT_NAME = re.compile(rf"^{EXPERIMENT}(?:_from_(\d+))?$")


def cost_of(row: dict, objective: str) -> float:
    """The objective's cost of a trial record (or reference): LUT + 55*DSP, latency in ns, or BOPs."""
    if objective == "latency":
        return float(row["latency_ns"])
    if objective == "bops":
        return float(row["bops"])
    return float(row["lut"] + DSP_LUT_EQUIVALENT * row["dsp"])


def constraints(excess: dict) -> list[float]:
    """Optuna's constraint values: each limit's relative excess (<= 0 within budget), capped to stay finite."""
    return [float(min(v, 1e9)) for v in excess.values()]


def record_of_result(result: dict) -> dict:
    """The log's fields of a trial's reported result, its status from the budget check."""
    record = {k: result.get(k) for k in RESULT_KEYS}
    record["status"] = "completed" if result.get("feasible") else "infeasible"
    return record


def model_path(run_dir: Path, design_id: str) -> Path:
    return Path(run_dir) / MODELS_DIR / f"{design_id}.h5"


def design_id(trial_id: str, epoch: int | None) -> str:
    """A design's name: the trial id, with the HGQ snapshot's epoch (``<id>_e0007``)."""
    return trial_id if epoch is None else f"{trial_id}_e{int(epoch):04d}"


def candidates(records: list[dict]) -> list[dict]:
    """Every design the trials produced, each a row like a trial record (``design_id``, its model file,
    ``epoch``/``beta`` for an HGQ snapshot): what the fronts are chosen from."""
    out = []
    for r in records:
        if r["status"] == "failed":
            continue
        shared = {"trial": r["trial"], "trial_id": r["trial_id"], "config": r["config"],
                  "method": r.get("method") or "qkeras", "input_precision": r.get("input_precision")}
        for d in r.get("designs") or [{**{k: r.get(k) for k in DESIGN_KEYS}, "epoch": r.get("design")}]:
            name = design_id(r["trial_id"], d.get("epoch"))
            out.append({**shared, **d, "design_id": name, "model": f"{MODELS_DIR}/{name}.h5"})
    return out


def experiment_name(offset: int) -> str:
    return EXPERIMENT if offset == 0 else f"{EXPERIMENT}_from_{offset}"


def experiments(run_dir: Path) -> list[tuple[int, Path]]:
    """(offset, directory) of every Tune experiment of the search, in the order they ran."""
    found = []
    for path in (Path(run_dir) / TUNE_DIR).glob(f"{EXPERIMENT}*"):
        match = _EXPERIMENT_NAME.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1) or 0), path.resolve()))
    return sorted(found)


# ---- writing -----------------------------------------------------------------------------------------------

def write_trials(run_dir: Path, records: list[dict]) -> None:
    records = sorted(records, key=lambda r: r["trial"])
    write_json(Path(run_dir) / TRIALS_JSON, records)
    params = sorted({k for r in records for k in r.get("config", {})})
    columns = list(CSV_COLUMNS) + [f"param_{p}" for p in params]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({**r, **{f"param_{k}": v for k, v in r.get("config", {}).items()}})
    write_text(Path(run_dir) / TRIALS_CSV, buffer.getvalue())


# ---- reading back ------------------------------------------------------------------------------------------

def _valid(record) -> bool:
    return (isinstance(record, dict) and record.get("status") in FINAL and isinstance(record.get("trial"), int)
            and isinstance(record.get("trial_id"), str) and isinstance(record.get("config"), dict)
            and (record["status"] == "failed" or isinstance(record.get("accuracy"), (int, float))))


def read_trials(run_dir: Path) -> list[dict] | None:
    """The records of ``trials.json``: [] when there is none yet, None when it is truncated or garbled."""
    path = Path(run_dir) / TRIALS_JSON
    if not path.exists():
        return []
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(records, list) or not all(_valid(r) for r in records):
        return None
    return records


def from_tune_state(run_dir: Path) -> list[dict]:
    """The finished trials in Tune's saved experiment states (the newest readable one of each experiment)."""
    records = []
    for offset, path in experiments(run_dir):
        state = _newest_readable_state(path)
        for trial_json, metadata_json in (state or {}).get("trial_data", []):
            try:
                trial, metadata = json.loads(trial_json), json.loads(metadata_json)
                number = offset + int(str(trial["experiment_tag"]).split("_", 1)[0])
                base = {"trial": number, "trial_id": trial["trial_id"], "config": dict(trial["config"])}
            except (ValueError, KeyError, TypeError):
                continue
            result = metadata.get("last_result") or {}
            if trial.get("status") == "TERMINATED" and "accuracy" in result:
                records.append({**base, **record_of_result(result)})
            elif trial.get("status") == "ERROR":
                records.append({**base, "status": "failed", "error": "the trial's worker failed"})
    return records


def _newest_readable_state(experiment_dir: Path) -> dict | None:
    for path in sorted(experiment_dir.glob("experiment_state-*.json"), reverse=True):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and isinstance(state.get("trial_data"), list):
            return state
    return None


def from_csv(run_dir: Path, budget_limits: dict) -> list[dict]:
    """The rows of ``trials.csv`` that parse whole, as records (the budget excess recomputed from the costs)."""
    try:
        rows = list(csv.DictReader(io.StringIO((Path(run_dir) / TRIALS_CSV).read_text())))
    except (OSError, ValueError, csv.Error):
        return []
    records = []
    for row in rows:
        try:
            record = _record_of_row(row, budget_limits)
        except (ValueError, KeyError, TypeError):
            continue  # a cut-off last row
        if _valid(record):
            records.append(record)
    return records


def _record_of_row(row: dict, budget_limits: dict) -> dict:
    record = {"trial": int(row["trial"]), "trial_id": row["trial_id"], "status": row["status"],
              "config": {k[len("param_"):]: _value(v) for k, v in row.items() if k.startswith("param_") and v != ""}}
    if record["status"] == "failed":
        return {**record, "error": row.get("error") or "the trial's worker failed"}
    for key in ("accuracy", "cost", "bram", "latency_ns", "seconds"):
        record[key] = float(row[key])
    for key in ("lut", "dsp", "ff", "ii", "bops", "params"):
        record[key] = int(row[key])
    record["ebops"] = int(row["ebops"]) if row.get("ebops") else None
    record["method"] = row.get("method") or "qkeras"
    record["design"] = int(row["design"]) if row.get("design") else None
    record["feasible"] = row["feasible"] == "True"
    record["input_precision"], record["node_id"] = row.get("input_precision"), row.get("node_id") or None
    total = {"lut": record["lut"], "dsp": record["dsp"], "ff": record["ff"], "bram_18k": record["bram"],
             "latency_ns": record["latency_ns"], "ii": record["ii"]}
    record["excess"] = budgets.excess(total, budget_limits)
    return record


def _value(text: str):
    """A parameter written by csv (str() of a bool, int, float or string) back to its type."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def model_readable(path: Path) -> bool:
    """A whole HDF5 file (a truncated or garbled one fails to open)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return len(f.keys()) > 0
    except (OSError, ValueError):
        return False


def recover(run_dir: Path, budget_limits: dict) -> list[dict]:
    """The search's log: ``trials.json`` when it is whole, else rebuilt from Tune's experiment state,
    ``trials.csv`` and the models on disk (one warning line says what was rebuilt). A finished trial whose
    model is missing or unreadable counts as failed: it cannot be on the front."""
    run_dir = Path(run_dir)
    logged = read_trials(run_dir)
    by_id = {r["trial_id"]: r for r in logged or []}
    sources = {}
    for name, found in (("Tune's experiment state", from_tune_state(run_dir)),
                        (TRIALS_CSV, from_csv(run_dir, budget_limits))):
        added = [r for r in found if r["trial_id"] not in by_id]
        by_id.update({r["trial_id"]: r for r in added})
        sources[name] = len(added)
    lost = []
    for r in by_id.values():
        missing = [c for c in candidates([r]) if not model_readable(run_dir / c["model"])]
        if not missing:
            continue
        lost.append(r["trial"])
        if r.get("designs") and len(missing) < len(r["designs"]):  # an HGQ trial keeps its other designs
            gone = {c["epoch"] for c in missing}
            r["designs"] = [d for d in r["designs"] if d.get("epoch") not in gone]
        else:
            r.update(status="failed", error=f"its model {missing[0]['model']} is missing or unreadable")
    records = sorted(by_id.values(), key=lambda r: r["trial"])
    rebuilt = {name: n for name, n in sources.items() if n}
    if logged is None or rebuilt:
        what = "is truncated or garbled" if logged is None else f"lacks {sum(rebuilt.values())} finished trials"
        origin = ", ".join(f"{n} from {name}" for name, n in rebuilt.items()) or "nothing else readable"
        warn(f"{run_dir / TRIALS_JSON} {what}; rebuilt the log of {len(records)} trials ({origin})")
    if lost:
        warn(f"{len(lost)} finished trials lost model files (a design without its model is dropped, a trial "
             "without any counts as failed): trials "
             f"{', '.join(map(str, lost[:10]))}{' ...' if len(lost) > 10 else ''}")
    if logged is None or rebuilt or lost:
        write_trials(run_dir, records)
    return records


def replayable(records: list[dict]) -> dict:
    """The logged results Tune may not have saved before an interruption, by trial id, in the form a trial
    reports them (no model: that is on disk already). A failed trial runs again."""
    replay = {}
    for r in records:
        if r["status"] != "failed" and isinstance(r.get("excess"), dict):
            result = {k: v for k, v in r.items() if k not in ("trial", "trial_id", "config", "status")}
            replay[r["trial_id"]] = {**result, "constraints": constraints(r["excess"]), REPLAYED: True}
    return replay


# ---- the front -------------------------------------------------------------------------------------------

def best_feasible(records: list[dict]) -> dict | None:
    ok = [r for r in records if r["status"] == "completed"]
    return max(ok, key=lambda r: (r["accuracy"], -r["cost"])) if ok else None


def pareto(records: list[dict], cost_key: str) -> list[dict]:
    """Completed (feasible) trials no other beats on (accuracy up, ``cost_key`` down), cheapest first."""
    ok = [r for r in records if r["status"] == "completed"]
    front = [r for r in ok if not any(o[cost_key] <= r[cost_key] and o["accuracy"] >= r["accuracy"]
                                      and (o[cost_key] < r[cost_key] or o["accuracy"] > r["accuracy"]) for o in ok)]
    unique = {(r[cost_key], r["accuracy"]): r for r in sorted(front, key=lambda r: -r["trial"])}
    return sorted(unique.values(), key=lambda r: r[cost_key])
