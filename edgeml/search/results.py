"""What a search leaves in its run directory: every trial as it finishes, the Pareto fronts, the front's models.

``TrialLog`` is a Ray Tune callback on the driver: each finished trial (completed, infeasible or
failed after its retries) becomes one record in ``trials.json`` and ``trials.csv``, both rewritten
atomically, and its model lands in ``trials/<trial_id>.h5``. It also prints the one progress line
per trial. Records from an earlier, interrupted session are kept (``--resume``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
import time
from pathlib import Path

from ray.tune import Callback

from edgeml.io import atomic_path, write_json, write_text
from edgeml.search.trial import COST_COLUMNS, constraints

TRIALS_JSON, TRIALS_CSV, MODELS_DIR = "trials.json", "trials.csv", "trials"
REPLAYED = "replayed_from_log"
FINAL = ("completed", "infeasible", "failed")


def read_trials(run_dir: Path) -> list[dict]:
    """The trials logged so far; an unreadable (truncated, garbled) log counts as none."""
    path = Path(run_dir) / TRIALS_JSON
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict) and r.get("status") in FINAL] \
        if isinstance(records, list) else []


def replayable(run_dir: Path) -> dict:
    """The logged results Tune may not have saved before an interruption, by trial id, in the form a trial
    reports them (no model: that is on disk already). A failed trial runs again."""
    replay = {}
    for r in read_trials(run_dir):
        if r["status"] != "failed" and r.get("trial_id") and isinstance(r.get("excess"), dict):
            result = {k: v for k, v in r.items() if k not in ("trial", "trial_id", "config", "status")}
            replay[r["trial_id"]] = {**result, "constraints": constraints(r["excess"]), REPLAYED: True}
    return replay


def write_trials(run_dir: Path, records: list[dict]) -> None:
    records = sorted(records, key=lambda r: r["trial"])
    write_json(Path(run_dir) / TRIALS_JSON, records)
    params = sorted({k for r in records for k in r.get("config", {})})
    columns = ["trial", "trial_id", "status", "accuracy", "cost", *COST_COLUMNS, "feasible", "seconds",
               "input_precision", "node_id", "error"] + [f"param_{p}" for p in params]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({**r, **{f"param_{k}": v for k, v in r.get("config", {}).items()}})
    write_text(Path(run_dir) / TRIALS_CSV, buffer.getvalue())


class TrialLog(Callback):
    """Log every finished trial (see the module docstring) and print one progress line for it."""

    def __init__(self, run_dir: Path, total: int, objective: str):
        self.run_dir, self.total, self.objective = Path(run_dir), total, objective

    def setup(self, **info):
        self.records = {r["trial_id"]: r for r in read_trials(self.run_dir)}
        self.resumed = len(self.records)
        self.started = time.monotonic()

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = dict(trial.last_result or {})
        if result.get(REPLAYED) and trial.trial_id in self.records:
            return  # finished before the interruption: logged, and its model is on disk
        if "accuracy" not in result:  # ended without reporting: count it as failed
            self._add(trials, trial, {"status": "failed", "error": "the trial ended without a result"})
            return
        model = result.pop("model_h5_b64", None)
        if model is not None:
            with atomic_path(self.run_dir / MODELS_DIR / f"{trial.trial_id}.h5") as tmp:
                tmp.write_bytes(base64.b64decode(model))
            # Tune rewrites every trial's last result into its experiment state each time it saves it; with
            # the model left in (tens of kB per trial) a long search spends the driver's core on that.
            trial.run_metadata.last_result = result
        keep = ("accuracy", "cost", *COST_COLUMNS, "feasible", "excess", "input_precision", "seconds",
                "sparsity_achieved", "started_at", "ended_at", "pid", "core", "node_id", "hostname")
        record = {k: result.get(k) for k in keep}
        record["status"] = "completed" if result.get("feasible") else "infeasible"
        self._add(trials, trial, record)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._add(trials, trial, {"status": "failed", "error": _error_line(trial)})

    def _add(self, trials, trial, record: dict) -> None:
        """``trials`` is Tune's list in creation order (restored ones included): its index numbers the trial."""
        record = {"trial": trials.index(trial) + 1, "trial_id": trial.trial_id, "config": dict(trial.config),
                  **record}
        self.records[trial.trial_id] = record
        write_trials(self.run_dir, list(self.records.values()))
        self._progress(record)

    def _progress(self, record: dict) -> None:
        done = len(self.records)
        now = done - self.resumed
        elapsed = time.monotonic() - self.started
        eta = elapsed / now * (self.total - done) if now else 0.0
        best = best_feasible(list(self.records.values()))
        what = (f"{record['status']}, val acc {record['accuracy']:.4f}, cost {record['cost']:,.0f}"
                if record.get("accuracy") is not None else f"failed ({record.get('error') or 'error'})")
        best_text = (f"best feasible: acc {best['accuracy']:.4f} at cost {best['cost']:,.0f}" if best
                     else "no feasible trial yet")
        print(f"[edgeml] search {done}/{self.total}: trial {record['trial']} {what} | {best_text} | "
              f"ETA {_duration(eta)}", file=sys.stderr, flush=True)


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


def _error_line(trial) -> str:
    try:
        lines = [ln.strip() for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
    except (OSError, TypeError):
        return "the trial's worker failed"
    return lines[-1][:300] if lines else "the trial's worker failed"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
