"""Saving and loading Keras/QKeras models with every custom object edgeml can meet."""

from __future__ import annotations

import json
from pathlib import Path

from edgeml.errors import InputError


def custom_objects() -> dict:
    """QKeras layers/quantizers, tfmot pruning wrappers and HGQ's layers (full HGQ models and the proxy
    models hls4ml converts), for ``load_model``."""
    from qkeras.utils import _add_supported_quantized_objects
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    objects: dict = {"PruneLowMagnitude": pruning_wrapper.PruneLowMagnitude}
    _add_supported_quantized_objects(objects)
    objects.update(hgq_objects())
    return objects


def hgq_objects() -> dict:
    """HGQ 0.2.6's serialisable classes by name (also under their registered 'HGQ>' names)."""
    import HGQ
    import HGQ.layers
    import HGQ.proxy
    from HGQ.utils import MonoL1

    _let_keras_format_rebuild_hgq(MonoL1, HGQ.layers.Signature)
    objects = {"MonoL1": MonoL1, "FixedPointQuantizer": HGQ.proxy.FixedPointQuantizer,
               "UnaryLUT": HGQ.proxy.UnaryLUT}
    for name in dir(HGQ.layers):
        cls = getattr(HGQ.layers, name)
        # Signature: the input layer of a model whose inputs are already fixed-point (HQuantize's alternative)
        if isinstance(cls, type) and cls.__module__.startswith("HGQ.layers") and (name[:1] in "HP"
                                                                                  or name == "Signature"):
            objects[name] = cls
    objects.update({f"HGQ>{name}": cls for name, cls in list(objects.items())})
    return objects


def _let_keras_format_rebuild_hgq(mono_l1, signature) -> None:
    """HGQ 0.2.6 saves to `.keras` files it cannot load back: its bit-width regulariser has no ``from_config``, and
    ``Signature.build`` adds a tuple to the list of dimensions the file restores. Keras finds both classes in its
    global registry (HGQ's) before any custom object we pass, so the classes themselves are mended, once."""
    if not hasattr(mono_l1, "from_config"):
        mono_l1.from_config = classmethod(lambda cls, config: cls(**config))
    if not getattr(signature.build, "_takes_lists", False):
        build = signature.build

        def build_from_any_shape(self, input_shape):
            return build(self, tuple(input_shape))

        build_from_any_shape._takes_lists = True
        signature.build = build_from_any_shape


def load_model(path: str | Path, compile: bool = False, weights: str | Path | None = None):
    """Load a Keras/QKeras model with every custom object edgeml knows.

    Accepted: a full ``.h5``/``.keras`` file, a ``.json`` architecture with its HDF5
    weights (``weights``, default ``<stem>_weights.h5`` beside it; Keras 2.0-2.4 era
    files included) or a SavedModel directory. Lambda layers and custom layers nobody
    registered are refused up front, listed by name.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"model file {path} does not exist")
    if path.is_dir():
        return _load_keras(path, compile)
    if path.suffix.lower() == ".json":
        return load_json_model(path, weights)
    if path.suffix.lower() in (".h5", ".hdf5"):
        config = _h5_model_config(path)
        if config is None:
            raise InputError(f"{path} holds weights only (no model architecture); pass the architecture "
                             f"JSON as MODEL and this file with --weights")
        refuse_unsupported(config, path)
    return _load_keras(path, compile)


def _load_keras(path: Path, compile: bool):
    import tensorflow as tf

    try:
        # The scope too: tfmot's PruneLowMagnitude.from_config deserialises its QKeras layer without them.
        with tf.keras.utils.custom_object_scope(custom_objects()):
            model = tf.keras.models.load_model(path, custom_objects=custom_objects(), compile=compile)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        hint = ""
        if path.suffix.lower() in (".h5", ".hdf5") and "PruneLowMagnitude" in json.dumps(_h5_model_config(path) or {}):
            # TF 2.14 cannot rebuild tfmot pruning wrappers around QKeras layers from HDF5
            hint = "; save the model after tfmot.sparsity.keras.strip_pruning() and convert that file"
        raise InputError(f"cannot load model {path}: {_first_line(e)}{hint}") from None
    refuse_unsupported_layers(model, path)
    return model


def load_json_model(path: Path, weights: str | Path | None = None):
    """A ``model.to_json()`` architecture plus an HDF5 weights file, as hls4ml's KerasJson/KerasH5 inputs."""
    import tensorflow as tf

    weights = Path(weights) if weights is not None else path.with_name(f"{path.stem}_weights.h5")
    if not weights.is_file():
        raise InputError(f"weights file {weights} does not exist; pass the HDF5 weights of {path.name} "
                         f"with --weights")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} is not a Keras model JSON: {_first_line(e)}") from None
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise InputError(f"{path} is not a Keras model JSON (expected 'class_name' and 'config' keys)")
    refuse_unsupported(config, path)
    try:
        with tf.keras.utils.custom_object_scope(custom_objects()):
            model = tf.keras.models.model_from_json(json.dumps(config), custom_objects=custom_objects())
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"cannot build the model in {path}: {_first_line(e)}") from None
    try:
        model.load_weights(str(weights))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"cannot load weights {weights} into {path.name}: {_first_line(e)}") from None
    return model


def _h5_model_config(path: Path) -> dict | None:
    """The architecture stored in a full-model HDF5 file, or None for a weights-only file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as e:
        raise InputError(f"cannot read {path}: not an HDF5 file or corrupt ({_first_line(e)})") from None
    if raw is None:
        return None
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: the stored model_config is corrupt ({_first_line(e)})") from None


def _layer_entries(config: dict):
    """(class_name, name) of every layer in a Keras model config, recursing into nested models and wrappers."""
    cfg = config.get("config")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers") if isinstance(cfg, dict) else None
    if layers is None:
        yield config.get("class_name"), (cfg or {}).get("name") if isinstance(cfg, dict) else None
        inner = cfg.get("layer") if isinstance(cfg, dict) else None  # wrappers: PruneLowMagnitude, TimeDistributed
        if isinstance(inner, dict) and "class_name" in inner:
            yield from _layer_entries(inner)
        return
    for layer in layers:
        yield from _layer_entries(layer)


_CONTAINERS = {"Sequential", "Functional", "Model"}


def refuse_unsupported(config: dict, source: Path | str) -> None:
    """Refuse Lambda layers and classes neither Keras nor QKeras/tfmot define, before deserialising."""
    import tensorflow as tf

    known = set(custom_objects())
    lambdas, unknown = [], []
    for class_name, name in _layer_entries(config):
        if class_name in _CONTAINERS or class_name is None:
            continue
        if class_name == "Lambda":
            lambdas.append(name)
        elif class_name not in known and not hasattr(tf.keras.layers, class_name):
            unknown.append(f"{name} ({class_name})")
    hgq = [entry for entry in unknown if _mentions_hgq(config, entry.split(" (")[0])]
    if hgq:
        raise InputError(f"{source}: HGQ custom layer(s) {', '.join(hgq)} cannot be loaded with hgq 0.2.6 (HGQ v1, "
                         "whose layers edgeml knows); save the model with hgq 0.2.6 or export its proxy model "
                         "(HGQ.to_proxy_model) and convert that")
    _raise_refused(lambdas, unknown, source)


def _mentions_hgq(config, layer_name: str) -> bool:
    """Whether the config entry of ``layer_name`` was registered by HGQ ('HGQ>' names or an HGQ module)."""
    if isinstance(config, dict):
        inner = config.get("config")
        if isinstance(inner, dict) and inner.get("name") == layer_name and "class_name" in config:
            return "HGQ" in f"{config.get('class_name')} {config.get('registered_name')} {config.get('module')}"
        return any(_mentions_hgq(v, layer_name) for v in config.values())
    if isinstance(config, list):
        return any(_mentions_hgq(v, layer_name) for v in config)
    return False


def refuse_unsupported_layers(model, source: Path | str) -> None:
    """The same check on a loaded model (SavedModel directories have no JSON to scan)."""
    import tensorflow as tf

    known = set(custom_objects())
    lambdas, unknown = [], []
    for layer in _all_layers(model):
        cls = type(layer).__name__
        if isinstance(layer, tf.keras.layers.Lambda):
            lambdas.append(layer.name)
        elif cls not in known and cls not in _CONTAINERS and not hasattr(tf.keras.layers, cls) \
                and not type(layer).__module__.startswith(("keras", "tensorflow")):
            unknown.append(f"{layer.name} ({cls})")
    _raise_refused(lambdas, unknown, source)


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer is not model:
            yield from _all_layers(layer)
        else:
            yield layer
            inner = getattr(layer, "layer", None)
            if inner is not None:
                yield inner


def _raise_refused(lambdas: list, unknown: list, source) -> None:
    parts = []
    if lambdas:
        parts.append(f"Lambda layer(s) {', '.join(map(str, lambdas))}")
    if unknown:
        parts.append(f"unknown custom layer(s) {', '.join(unknown)}")
    if parts:
        raise InputError(f"{source}: {' and '.join(parts)} cannot be converted to firmware; replace them with "
                         "standard Keras/QKeras layers")


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def save_model(model, path: str | Path) -> Path:
    """Save as a full HDF5 model, atomically."""
    from edgeml.io import atomic_path

    with atomic_path(path, suffix=".h5") as tmp:
        model.save(tmp, include_optimizer=False)
    return Path(path)
