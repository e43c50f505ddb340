"""Progress display: a live bar with ETA on a terminal, silence in logs and CI."""

from __future__ import annotations

import sys
import time


def interactive() -> bool:
    return sys.stderr.isatty()


class Progress:
    """``with Progress(total, 'train') as p: p.update(1, 'loss 0.8')``; draws only on a TTY."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.enabled = interactive() if enabled is None else enabled
        self.start = time.monotonic()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def update(self, n: int = 1, info: str = "") -> None:
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r  {self.label} [{bar}] {self.done}/{self.total} "
                         f"{elapsed:5.0f}s ETA {eta:4.0f}s {info}\033[K")
        sys.stderr.flush()


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
