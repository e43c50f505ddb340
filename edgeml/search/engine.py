"""The engine: Optuna's multi-objective sampler proposes, Ray Tune runs the trials.

Without an address a local Ray starts on loopback only, with one CPU per trial; with one, the search
attaches to that cluster. Trial inputs travel through Ray's object store (``tune.with_parameters``),
results come back through Tune. Tune keeps the experiment state in ``<run_dir>/tune`` after every
step, so ``Tuner.restore`` resumes an interrupted search without rerunning finished trials.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
import tempfile
from pathlib import Path

from edgeml.errors import InputError

LOOPBACK = "127.0.0.1"
STATE_SAVE_PERIOD_S = "0.5"
EXPERIMENT = "search"
CONNECT_TIMEOUT_S = 5.0
# Every trial process: one TensorFlow/OpenMP/BLAS thread, quiet TensorFlow.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
              "PYTHONWARNINGS": "ignore"}
# A local search whose trials fill every core pins each trial worker to a core of its own; this variable names
# the directory of the per-core lock files. Left to the scheduler, the trials and the driver wander across the
# cores and slow each other down.
CORE_LOCKS_ENV = "EDGEML_CORE_LOCKS"
# Ray runs workers at nice +15 below its driver by default; the trials are the search's work, so a local
# search runs them at the driver's own priority (`nice edgeml search` still lowers everything). At +15 they
# yield to anything else on the machine, which starves W parallel trials far more than one.
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}


def ray_environment() -> None:
    """Before Ray starts: loopback only, no usage stats, Tune state saved twice a second, no big per-trial logs."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # else Ray binds the machine's interface address
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Tune's experiment state holds every trial, so saving it costs more as the search grows; at most twice a
    # second keeps the driver's share small, and --resume replays from trials.json what finished since.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_SAVE_PERIOD_S)
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # results carry the model; trials.json is our log
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address!r} is not HOST:PORT (the address `ray start --head` printed)")
    return host, int(port)


def connect(address: str | None, workers: int | None) -> dict:
    """Start a local loopback Ray with ``workers`` CPUs, or attach to ``address``; return what we ran on."""
    ray_environment()
    import ray

    options = {"runtime_env": {"env_vars": WORKER_ENV}, "log_to_driver": False, "logging_level": logging.ERROR,
               "configure_logging": True}
    if address:
        host, port = parse_address(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise InputError(f"no Ray cluster at {address} ({e.strerror or e}); start one with `ray start --head "
                             "--port PORT` or leave out --address for a local search") from None
        ray.init(address=f"{host}:{port}", **options)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return {"engine": "ray", "address": f"{host}:{port}", "workers": workers or cpus,
                "nodes": [n["NodeID"] for n in ray.nodes() if n.get("Alive")]}
    workers = workers or os.cpu_count() or 1
    temp_dir = tempfile.mkdtemp(prefix="edgeml-ray-")  # our own session files, apart from anyone else's Ray
    if workers == len(os.sched_getaffinity(0)):
        options["runtime_env"] = {"env_vars": {**WORKER_ENV, CORE_LOCKS_ENV: temp_dir}}
    try:
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address=LOOPBACK, _temp_dir=temp_dir,
                 _system_config=LOCAL_SYSTEM_CONFIG, **options)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return {"engine": "ray", "address": None, "workers": workers,
            "nodes": [n["NodeID"] for n in ray.nodes() if n.get("Alive")], "temp_dir": temp_dir}


def disconnect(info: dict) -> None:
    """Leave Ray; a local search's session directory goes too (Ray leaves its logs and sockets behind,
    tens of MB per search)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if info.get("temp_dir"):
        shutil.rmtree(info["temp_dir"], ignore_errors=True)


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


def _trainable(config: dict, data, replay: dict) -> None:
    """Run one trial; one the log already holds (finished after Tune last saved its state) is replayed."""
    from ray import tune

    from edgeml.search.trial import run_trial

    logged = replay.get(tune.get_context().get_trial_id())
    tune.report(logged if logged is not None else run_trial(config, data))


def experiment_path(run_dir: Path) -> Path:
    return (Path(run_dir) / "tune" / EXPERIMENT).resolve()


def can_resume(run_dir: Path) -> bool:
    from ray import tune

    path = experiment_path(run_dir)
    return path.is_dir() and tune.Tuner.can_restore(str(path))


def run_trials(data, distributions: dict, start: list[dict], n_trials: int, workers: int, run_dir: Path,
               resume: bool, seed: int, sampler: str, max_failures: int, logger) -> None:
    """Run (or resume) the Tune experiment; finished trials reach ``logger`` (a Tune callback) as they end."""
    from ray import tune

    from edgeml.search import results

    replay = results.replayable(run_dir) if resume else {}
    trainable = tune.with_resources(tune.with_parameters(_trainable, data=data, replay=replay), {"cpu": 1})
    if resume:
        tuner = tune.Tuner.restore(str(experiment_path(run_dir)), trainable=trainable, resume_errored=False)
    else:
        searcher = _searcher_class()(space=distributions, metric=["accuracy", "cost"], mode=["max", "min"],
                                     sampler=make_sampler(sampler, seed, n_trials), points_to_evaluate=start[:n_trials])
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=n_trials, max_concurrent_trials=workers,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(experiment_path(run_dir).parent),
                                      failure_config=tune.FailureConfig(max_failures=max_failures),
                                      callbacks=[logger], verbose=0))
    tuner.fit()
