"""A trial worker's process: one TensorFlow/BLAS thread, and, in a local search that fills every core, a core of
its own. The driver puts ``WORKER_ENV`` (and ``CORE_LOCKS_ENV`` when pinning) into every worker's environment;
the trial calls ``pin_threads`` first thing."""

from __future__ import annotations

import contextlib
import os

from filelock import FileLock, Timeout

from edgeml.threads import use_one_tensorflow_thread

# A local search whose trials fill every core pins each trial worker to a core of its own; this variable names
# the directory of the per-core lock files. Left to the scheduler, the trials and the driver wander across the
# cores and slow each other down.
CORE_LOCKS_ENV = "EDGEML_CORE_LOCKS"

_HELD_CORE_LOCK: list[FileLock] = []  # held for the worker's life: it keeps this worker's core


def pin_to_free_core() -> None:
    """Move this worker (every thread) to a core no other trial worker holds, when the search asks for it
    (a local search whose trials fill every core); a worker that died frees its core with its lock."""
    lock_dir = os.environ.get(CORE_LOCKS_ENV)
    if not lock_dir or _HELD_CORE_LOCK:
        return
    for core in sorted(os.sched_getaffinity(0)):
        lock = FileLock(os.path.join(lock_dir, f"core{core}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        _HELD_CORE_LOCK.append(lock)
        for thread in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that has just ended
                os.sched_setaffinity(int(thread), {core})
        return


def held_core() -> int | None:
    """The core this worker is pinned to, if it holds one."""
    affinity = os.sched_getaffinity(0)
    return next(iter(affinity)) if _HELD_CORE_LOCK and len(affinity) == 1 else None


def pin_threads() -> None:
    """One TensorFlow thread per trial: W trials on W cores must not fight over them."""
    os.environ["OMP_NUM_THREADS"] = "1"
    pin_to_free_core()
    use_one_tensorflow_thread()
    if held_core() is not None:
        stop_thread_spinning()


def stop_thread_spinning() -> None:
    """TensorFlow's pool thread spins a while waiting for its next op. On a worker pinned to one core that
    spin only takes the core from the Python thread that has the work: the same trials ran 2.5% faster
    side by side without it (28.8 vs 29.5 s for five, four pairs), and no slower unpinned. TensorFlow 2.14
    has no public switch for the eager context, so the ConfigProto option goes into the context before it
    starts (a reused worker's context has started with it already)."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    if ctx._initialized:
        return
    config = config_pb2.ConfigProto()
    if ctx._config is not None:
        config.CopyFrom(ctx._config)
    config.experimental.disable_thread_spinning = True
    ctx._config = config
