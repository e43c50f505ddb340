"""Saving and loading Keras/QKeras models with every custom object edgeml can meet."""

from __future__ import annotations

from pathlib import Path

from edgeml.errors import InputError


def custom_objects() -> dict:
    """QKeras layers/quantizers and tfmot pruning wrappers, for ``load_model``."""
    from qkeras.utils import _add_supported_quantized_objects
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    objects: dict = {"PruneLowMagnitude": pruning_wrapper.PruneLowMagnitude}
    _add_supported_quantized_objects(objects)
    return objects


def load_model(path: str | Path, compile: bool = False):
    """Load a full ``.h5`` / ``.keras`` model or a SavedModel directory, with QKeras objects."""
    import tensorflow as tf

    path = Path(path)
    if not path.exists():
        raise InputError(f"model file {path} does not exist")
    try:
        return tf.keras.models.load_model(path, custom_objects=custom_objects(), compile=compile)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"cannot load model {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def save_model(model, path: str | Path) -> Path:
    """Save as a full HDF5 model, atomically."""
    from edgeml.io import atomic_path

    with atomic_path(path, suffix=".h5") as tmp:
        model.save(tmp, include_optimizer=False)
    return Path(path)
