"""``TrialLog``: the Ray Tune callback on the driver that logs every finished trial as it ends.

Each finished trial (completed, infeasible or failed after its retries) becomes one record in
``trials.json`` and ``trials.csv``, both rewritten atomically, and its model lands in
``trials/<trial_id>.h5``. It also prints the one progress line per trial. Records of earlier
sessions (``--resume``) are kept. Tune pickles its callbacks into ``tuner.pkl`` and restores them from
there; a log pickles as its run directory only and unpickles as the live log of that directory, so a
restored experiment reports to the driver's log, not to a stale copy.
"""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

from ray.tune import Callback

from edgeml.io import atomic_path
from edgeml.search import records as recs


_LIVE: dict[str, "TrialLog"] = {}  # the log of the search running on each run directory in this process


def _live_log(run_dir: str) -> "TrialLog":
    return _LIVE.get(run_dir) or TrialLog(Path(run_dir), 0, recs.read_trials(Path(run_dir)) or [])


class TrialLog(Callback):
    """Log every finished trial (see the module docstring) and print one progress line for it."""

    def __init__(self, run_dir: Path, total: int, records: list[dict], time_budget_s: float | None = None):
        self.run_dir, self.total, self.time_budget_s = Path(run_dir).resolve(), total, time_budget_s
        self.records = {r["trial_id"]: r for r in records}
        self.resumed = len(self.records)
        self.offset = 0  # trials logged before the running Tune experiment began (it numbers its own from 1)
        self.started = time.monotonic()
        _LIVE[str(self.run_dir)] = self

    def __reduce__(self):
        return _live_log, (str(self.run_dir),)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = dict(trial.last_result or {})
        if result.get(recs.REPLAYED) and trial.trial_id in self.records:
            return  # finished before the interruption: logged, and its model is on disk
        if "accuracy" not in result:  # ended without reporting: count it as failed
            self._add(trials, trial, {"status": "failed", "error": "the trial ended without a result"})
            return
        models = result.pop("models", None)
        if not models:  # a worker on another edgeml (a cluster node not updated) reports in another form
            self._add(trials, trial, {"status": "failed", "error": "the trial reported no model; does every node "
                                      "of the cluster run the driver's edgeml?"})
            return
        for key, model in models.items():  # key: "" for a qkeras trial's model, "e0007" for an HGQ snapshot
            name = f"{trial.trial_id}_{key}" if key else trial.trial_id
            with atomic_path(recs.model_path(self.run_dir, name)) as tmp:
                tmp.write_bytes(base64.b64decode(model))
        # Tune rewrites every trial's last result into its experiment state each time it saves it; with the
        # models left in (tens of kB each) a long search spends the driver's core on that.
        trial.run_metadata.last_result = result
        self._add(trials, trial, recs.record_of_result(result))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._add(trials, trial, {"status": "failed", "error": _error_line(trial)})

    def _add(self, trials, trial, record: dict) -> None:
        """A trial's number is its place in the order the searcher created the trials (the counter Tune puts
        first in its experiment tag; its list of trials is reordered when it retries one)."""
        record = {"trial": self.offset + int(trial.experiment_tag.split("_", 1)[0]), "trial_id": trial.trial_id,
                  "config": dict(trial.config), **record}
        self.records[trial.trial_id] = record
        recs.write_trials(self.run_dir, list(self.records.values()))
        self._progress(record)

    def _progress(self, record: dict) -> None:
        done = len(self.records)
        now = done - self.resumed
        elapsed = time.monotonic() - self.started
        eta = elapsed / now * max(self.total - done, 0) if now else 0.0
        if self.time_budget_s is not None:  # the wall clock ends the search first
            eta = min(eta, max(self.time_budget_s - elapsed, 0.0))
        best = recs.best_feasible(list(self.records.values()))
        designs = record.get("designs") or []
        what = (f"{record.get('method') or 'qkeras'} {record['status']}, val acc {record['accuracy']:.4f}, cost "
                f"{record['cost']:,.0f}" + (f" ({sum(d['feasible'] for d in designs)} of {len(designs)} designs "
                                           "within budget)" if designs else "")
                if record.get("accuracy") is not None else f"failed ({record.get('error') or 'error'})")
        best_text = (f"best feasible: acc {best['accuracy']:.4f} at cost {best['cost']:,.0f}" if best
                     else "no feasible trial yet")
        print(f"[edgeml] search {done}/{self.total}: trial {record['trial']} {what} | {best_text} | "
              f"ETA {_duration(eta)}", file=sys.stderr, flush=True)


def _error_line(trial) -> str:
    try:
        lines = [ln.strip() for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
    except (OSError, TypeError):
        return "the trial's worker failed"
    return lines[-1][:300] if lines else "the trial's worker failed"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
