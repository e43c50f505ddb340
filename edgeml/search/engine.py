"""The engine: Optuna's multi-objective sampler proposes, Ray Tune runs the trials.

Trial inputs travel through Ray's object store (``tune.with_parameters``), results come back through
Tune to the ``TrialLog`` callback. Tune saves its experiment state in ``<run_dir>/tune/<experiment>``, so
``Tuner.restore`` resumes an interrupted search without rerunning finished trials. A search that must go
past its Tune experiment (``--resume --trials N`` beyond the trials it was started with, or a Tune state that
cannot be read back) continues in a new experiment whose Optuna study is seeded with every logged trial.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

from edgeml.integrity import warn
from edgeml.progress import stage as announce
from edgeml.search import records as recs
from edgeml.search.trial import run_trial


def trial_constraints(frozen_trial) -> list[float]:
    """Optuna's constraints: the trial's relative budget excess per limit (<= 0 feasible)."""
    return list(frozen_trial.user_attrs.get("constraints", [0.0]))


def make_sampler(kind: str, seed: int, n_trials: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=trial_constraints,
                                             population_size=max(4, min(50, n_trials // 4)))
    return optuna.samplers.TPESampler(seed=seed, constraints_func=trial_constraints, multivariate=True,
                                      n_startup_trials=max(2, min(10, n_trials // 4)))


def _searcher_class():
    from ray.tune.search.optuna import OptunaSearch

    class ConstrainedOptunaSearch(OptunaSearch):
        """OptunaSearch that hands Optuna each trial's budget excess (for the sampler's constraints_func),
        and pickles its study only when it changed: Tune saves the searcher with its experiment state (up to
        twice a second), and the study grows with every trial."""

        _pickled: bytes | None = None

        def suggest(self, trial_id):
            self._pickled = None
            return super().suggest(trial_id)

        def on_trial_result(self, trial_id, result):
            self._pickled = None
            super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id, result=None, error=False):
            self._pickled = None
            ot_trial = self._ot_trials.get(trial_id)
            if result and ot_trial is not None and "constraints" in result:
                ot_trial.set_user_attr("constraints", list(result["constraints"]))
            super().on_trial_complete(trial_id, result, error)

        def save(self, checkpoint_path):
            if self._pickled is None:
                self._pickled = pickle.dumps({k: v for k, v in self.__dict__.items() if k != "_pickled"})
            Path(checkpoint_path).write_bytes(self._pickled)

    return ConstrainedOptunaSearch


def seed_study(study, records: list[dict], distributions: dict) -> int:
    """Tell a fresh Optuna study the logged trials (values and budget excess) so a continued search samples
    from what is known; a trial whose parameters the current space no longer holds is left out."""
    import optuna

    told = 0
    for r in records:
        if r["status"] == "failed" or not isinstance(r.get("excess"), dict):
            continue
        c = recs.constraints(r["excess"])
        try:
            study.add_trial(optuna.trial.create_trial(
                params={k: r["config"][k] for k in distributions}, distributions=distributions,
                values=[r["accuracy"], r["cost"]], user_attrs={"constraints": c},
                system_attrs={"constraints": tuple(c)}))  # what Optuna's samplers read the constraints from
        except (KeyError, ValueError):
            continue
        told += 1
    return told


def _trainable(config: dict, data, replay: dict) -> None:
    """Run one trial; one the log already holds (finished after Tune last saved its state) is replayed."""
    from ray import tune

    logged = replay.get(tune.get_context().get_trial_id())
    tune.report(logged if logged is not None else run_trial(config, data))


def restorable(experiment_dir: Path) -> str | None:
    """None when Tune can restore the experiment, else what is wrong with its saved state."""
    from ray import cloudpickle, tune

    if not tune.Tuner.can_restore(str(experiment_dir)):
        return "has no experiment state"
    newest = {pattern: max(experiment_dir.glob(pattern), default=None)
              for pattern in ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl",
                              "tuner.pkl")}
    for pattern, path in newest.items():
        if path is None:
            return f"has no {pattern}"
        try:
            data = path.read_bytes()
            json.loads(data) if pattern.startswith("experiment_state") else cloudpickle.loads(data)
        except Exception:  # noqa: BLE001 - any failure to read it back means Tune cannot restore from it
            return f"has an unreadable {path.name}"
    return None


def can_resume(run_dir: Path) -> bool:
    """A search was started here: a Tune experiment or a trial log is there to continue from."""
    return bool(recs.experiments(run_dir)) or (Path(run_dir) / recs.TRIALS_JSON).exists() \
        or (Path(run_dir) / recs.TRIALS_CSV).exists()


def run_trials(data, distributions: dict, start: list[dict], n_trials: int, workers: int, run_dir: Path,
               resume: bool, seed: int, sampler: str, max_failures: int, log,
               time_budget_s: float | None = None) -> None:
    """Run (or resume) the search until ``n_trials`` trials are logged, or ``time_budget_s`` of wall clock have
    passed (Tune then stops the running trials); finished trials reach ``log`` (a Tune callback holding the
    records so far) as they end."""
    from ray import tune

    replay = recs.replayable(list(log.records.values())) if resume else {}
    trainable = tune.with_resources(tune.with_parameters(_trainable, data=data, replay=replay), {"cpu": 1})
    if resume:
        _finish_interrupted(run_dir, trainable, log)
    done = len(log.records)
    if done >= n_trials:
        if resume:
            announce(f"search: {done} trials logged already (--trials {n_trials}); none left to run")
        return
    offset = max((r["trial"] for r in log.records.values()), default=0)
    searcher = _searcher_class()(space=distributions, metric=["accuracy", "cost"], mode=["max", "min"],
                                 sampler=make_sampler(sampler, seed + offset, n_trials),
                                 points_to_evaluate=start[:n_trials] if offset == 0 else None)
    if offset:
        told = seed_study(searcher._ot_study, list(log.records.values()), distributions)
        announce(f"search: {n_trials - done} more trials (trials {offset + 1}-{offset + n_trials - done}) in a new "
                 f"Tune experiment, its sampler told the {told} logged ones")
    name = recs.experiment_name(offset)
    path = Path(run_dir, recs.TUNE_DIR, name).resolve()
    if path.exists():  # an experiment whose state could not be read back: keep it aside, out of the way
        path.rename(path.with_name(f"{name}.unreadable-{int(time.time())}"))
    log.offset = offset
    tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=n_trials - done, max_concurrent_trials=workers,
                                    reuse_actors=True, time_budget_s=time_budget_s),
        run_config=tune.RunConfig(name=name, storage_path=str(path.parent),
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  callbacks=[log], verbose=0)).fit()


def _finish_interrupted(run_dir: Path, trainable, log) -> None:
    """Restore the newest Tune experiment and run what it had left; one that cannot be read back is skipped
    with a warning (the logged trials seed the experiment that continues)."""
    from ray import tune

    found = recs.experiments(run_dir)
    if not found:
        return
    offset, path = found[-1]
    problem = restorable(path)
    if problem:
        warn(f"Tune's state in {path} {problem}; continuing from the {len(log.records)} logged trials in a new "
             "Tune experiment")
        return
    log.offset = offset
    tune.Tuner.restore(str(path), trainable=trainable, resume_errored=False).fit()
