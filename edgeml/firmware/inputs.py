"""The data the firmware is compared on: the model's own inputs, for a model of any input shape.

``--data`` is one of
- a jet file (CSV, NPZ, HDF5, Parquet, ARFF with the 16 features and ``class``) or nothing, for a jet
  tagger (one input of 16 features): edgeml's jets, scaled by the model's ``<stem>_scaler.json``;
- ``FILE.npy``: one array, the input of a single-input model;
- ``FILE.npz`` or ``FILE.h5``: ``X`` (single input) or one array per Keras input name, optional ``y``;
- ``FILE.h5:/group/dataset``: that dataset is the input (labels: a dataset ``y`` beside it, if any);
  ``FILE.h5:/group``: the group read like an NPZ file;
- ``synthetic``: uniform values in each input's range (``--input-range LO,HI``, else the range of the
  firmware's input type), seeded by the config seed.

Arrays are fed as they are (no scaler): they are the model's inputs. Each must be (n, *input shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeml.errors import InputError

SYNTHETIC = "synthetic"
JET_SUFFIXES = (".csv", ".parquet", ".pq", ".arff")
ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")
JET_FEATURES = 16


@dataclass
class ModelInputs:
    """One array per model input (Keras ``model.inputs`` order), each (n, *shape); labels if the data has any."""

    arrays: list[np.ndarray]
    names: list[str]
    y: np.ndarray | None
    source: str
    warnings: list[str] = field(default_factory=list)
    jets: bool = False  # edgeml's jets: labels index CLASSES
    synthetic: dict | None = None  # {"distribution", "ranges", "seed"} when the inputs are generated

    @property
    def n(self) -> int:
        return len(self.arrays[0])

    def subset(self, keep: np.ndarray) -> "ModelInputs":
        return ModelInputs([a[keep] for a in self.arrays], self.names, None if self.y is None else self.y[keep],
                           self.source, self.warnings, self.jets, self.synthetic)


def input_shapes(model) -> list[tuple[int, ...]]:
    """Each Keras input's shape without the batch axis."""
    return [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]


def is_jet_model(model) -> bool:
    """edgeml's tagger: one input of the 16 jet features."""
    return input_shapes(model) == [(JET_FEATURES,)]


def split_data_argument(data) -> tuple[Path, str | None]:
    """``file.h5:/group/dataset`` -> (file, '/group/dataset'); anything else -> (path, None)."""
    text = str(data)
    head, sep, tail = text.rpartition(":")
    if sep and tail.startswith("/") and Path(head).suffix.lower() in (".h5", ".hdf5"):
        return Path(head), tail
    return Path(text), None


def jet_layout(path: Path, dataset: str | None) -> bool:
    """Is ``path`` a file edgeml's jet reader takes (so a jet tagger gets its scaler applied)?"""
    suffix = path.suffix.lower()
    if dataset is not None or suffix == ".npy":
        return False
    if suffix in JET_SUFFIXES:
        return True
    from edgeml.data import FEATURES

    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
            return "features" in keys or set(FEATURES) <= keys or {"X", "y"} <= keys
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                keys = set(f.keys())
            return {"jets", "jetFeatureNames"} <= keys or set(FEATURES) <= keys
    except Exception:  # unreadable: the array reader names the problem
        return False
    return False


def read_arrays(data, names: list[str], shapes: list[tuple[int, ...]], aliases: dict[str, str] | None = None
                ) -> ModelInputs:
    """The model's inputs from an .npy/.npz/.h5 file, checked against the input ``names`` and ``shapes``.

    ``aliases`` maps an input name to another accepted key (the name before edgeml renamed a
    reserved one)."""
    path, dataset = split_data_argument(data)
    if not path.is_file():
        raise InputError(f"data file {path} does not exist; pass .npy, .npz or .h5 with the model's inputs, "
                         "or --data synthetic")
    suffix = path.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise InputError(f"data file {path}: '{suffix}' holds jet features, not the inputs of this model "
                         f"(shape {_shapes_text(names, shapes)}); use .npy, .npz or .h5[:/dataset]")
    try:
        arrays, y = _read(path, dataset, names, aliases or {})
    except InputError:
        raise
    except Exception as e:  # corrupt or foreign file: say which and what the reader said
        raise InputError(f"cannot read {data}: {type(e).__name__}: {e}") from None
    inputs = ModelInputs(arrays, names, y, str(data))
    check_shapes(inputs, shapes)
    return inputs


def _read(path: Path, dataset: str | None, names: list[str], aliases: dict) -> tuple[list, np.ndarray | None]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if len(names) > 1:
            raise InputError(f"{path}: a .npy file holds one array but the model has inputs {', '.join(names)}; "
                             "use .npz (or .h5) with one array per input name")
        return [np.load(path, allow_pickle=False)], None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return _pick({k: z[k] for k in z.files}, names, aliases, str(path))
    import h5py

    with h5py.File(path, "r") as f:
        node = f[dataset] if dataset is not None else f
        where = f"{path}:{dataset}" if dataset else str(path)
        if isinstance(node, h5py.Dataset):
            if len(names) > 1:
                raise InputError(f"{where} is one dataset but the model has inputs {', '.join(names)}; "
                                 f"give the group holding one dataset per input name")
            parent = node.parent
            y = parent["y"][()] if "y" in parent and isinstance(parent["y"], h5py.Dataset) \
                and parent["y"].name != node.name else None
            return [node[()]], y
        return _pick({k: node[k][()] for k in node.keys() if isinstance(node[k], h5py.Dataset)}, names, aliases, where)


def _pick(table: dict, names: list[str], aliases: dict, where: str) -> tuple[list, np.ndarray | None]:
    """``X`` for a single input, else one array per input name; ``y`` if present."""
    y = table.get("y")
    if len(names) == 1 and "X" in table:
        return [table["X"]], y
    arrays = []
    for name in names:
        key = name if name in table else aliases.get(name)
        if key not in table:
            held = ", ".join(sorted(table)) or "nothing"
            expected = "'X' or " if len(names) == 1 else ""
            raise InputError(f"{where} has no array for model input '{name}' (expected {expected}one array per "
                             f"input name: {', '.join(names)}; found {held})")
        arrays.append(table[key])
    return arrays, y


def check_shapes(inputs: ModelInputs, shapes: list[tuple[int, ...]]) -> None:
    """Each array (n, *shape), finite, numeric, the same n everywhere; labels one per event."""
    for i, (name, array, shape) in enumerate(zip(inputs.names, inputs.arrays, shapes)):
        array = np.asarray(array)
        if array.dtype.kind not in "fiub":
            raise InputError(f"{inputs.source}: input '{name}' holds {array.dtype} values, not numbers")
        if array.ndim < 1 or tuple(array.shape[1:]) != shape:
            raise InputError(f"{inputs.source}: input '{name}' expects arrays of shape (n, "
                             f"{', '.join(map(str, shape))}), found {tuple(array.shape)}")
        if len(array) != inputs.n:
            raise InputError(f"{inputs.source}: input '{name}' has {len(array)} events but "
                             f"'{inputs.names[0]}' has {inputs.n}")
        bad = ~np.isfinite(array.astype(np.float64))
        if bad.any():
            raise InputError(f"{inputs.source}: input '{name}' has {int(bad.sum())} NaN/inf value(s); "
                             "drop or fix those events")
        inputs.arrays[i] = array.astype(np.float32)
    if inputs.n == 0:
        raise InputError(f"{inputs.source}: no events")
    if inputs.y is not None and len(inputs.y) != inputs.n:
        raise InputError(f"{inputs.source}: 'y' has {len(inputs.y)} labels for {inputs.n} events")


def parse_range(text: str | None) -> tuple[float, float] | None:
    """``--input-range LO,HI`` -> (LO, HI) with LO < HI."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in str(text).split(","))
    except ValueError:
        raise InputError(f"--input-range {text!r}: expected LO,HI, e.g. 0,1") from None
    if not lo < hi or not np.isfinite([lo, hi]).all():
        raise InputError(f"--input-range {text!r}: LO must be below HI, both finite")
    return lo, hi


def synthetic(names: list[str], shapes: list[tuple[int, ...]], ranges: list[tuple[float, float]], n: int,
              seed: int) -> ModelInputs:
    """``n`` events, every value uniform in [lo, hi) of its input, independent, seeded."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(lo, hi, size=(n, *shape)).astype(np.float32) for shape, (lo, hi) in zip(shapes, ranges)]
    spec = {"distribution": "uniform, independent per value", "seed": seed,
            "ranges": {name: [float(lo), float(hi)] for name, (lo, hi) in zip(names, ranges)}}
    text = ", ".join(f"{name} in [{lo:g}, {hi:g})" for name, (lo, hi) in zip(names, ranges))
    return ModelInputs(arrays, names, None, f"synthetic: uniform values, {text}, seed {seed}", synthetic=spec)


def missing_data_message(model_path: Path, names: list[str], shapes: list[tuple[int, ...]]) -> str:
    return (f"{model_path.name} takes {_shapes_text(names, shapes)}, not the 16 jet features: pass its inputs "
            f"with --data (.npy, .npz or .h5[:/dataset]), or --data synthetic to compare on uniform random inputs "
            f"(range: --input-range LO,HI, default the input type's range)")


def _shapes_text(names: list[str], shapes: list[tuple[int, ...]]) -> str:
    parts = [f"'{name}' of shape ({', '.join(map(str, s))})" for name, s in zip(names, shapes)]
    return ("input " if len(parts) == 1 else "inputs ") + ", ".join(parts)
