"""Progress display: a live bar with ETA on a terminal (tqdm), silence in logs and CI."""

from __future__ import annotations

import sys

from tqdm import tqdm

BAR_FORMAT = "  {desc} [{bar:24}] {n_fmt}/{total_fmt} {elapsed} ETA {remaining} {info}"


class _Bar(tqdm):
    """tqdm with a free-text ``info`` field at the end of the line (tqdm's postfix would start with ", ")."""

    info = ""

    @property
    def format_dict(self):
        return {**super().format_dict, "info": self.info}


def interactive() -> bool:
    return sys.stderr.isatty()


class Progress:
    """``with Progress(total, 'train') as p: p.update(1, 'loss 0.8')``; draws only on a TTY."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        enabled = interactive() if enabled is None else enabled
        self.bar = _Bar(total=max(total, 1), desc=label, file=sys.stderr, disable=not enabled, ascii="-#",
                        bar_format=BAR_FORMAT, leave=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def update(self, n: int = 1, info: str = "") -> None:
        self.bar.info = info
        self.bar.update(min(n, self.bar.total - self.bar.n))


def keras_callback(epochs: int, label: str = "epochs", enabled: bool | None = None):
    """A Keras callback drawing one bar over epochs (Keras' own per-batch output is turned off)."""
    import tensorflow as tf

    class _EpochBar(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = Progress(epochs, label, enabled)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy"))
            self.bar.update(1, shown)

        def on_train_end(self, logs=None):
            self.bar.__exit__()

    return _EpochBar()


def stage(message: str) -> None:
    """One line announcing a pipeline stage (always shown: it is the run's log)."""
    print(f"[edgeml] {message}", file=sys.stderr, flush=True)
