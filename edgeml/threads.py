"""One thread per worker process: what a search trial and an HGQ restart's worker both run with, so that W
workers on W cores do not fight over them."""

from __future__ import annotations

# Every worker process: one TensorFlow/OpenMP/BLAS thread, quiet TensorFlow.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
              "PYTHONWARNINGS": "ignore"}


def use_one_tensorflow_thread() -> None:
    """TensorFlow's intra- and inter-op pools of this process to one thread each."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this (reused) worker: the setting is in force
        pass
