"""Reading the hls4ml LHC jet dataset from every source it comes in.

Sources: the sample embedded in the package, the OpenML table ``hls4ml_lhc_jets_hlf``
(id 42468, downloaded once into the user cache), and local CSV, NPZ, HDF5 (including
Zenodo 3602260's ``jets`` + ``jetFeatureNames`` layout), Parquet and ARFF files with
the 16 feature columns plus a ``class`` column holding g/q/w/z/t.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeml.errors import InputError
from edgeml.io import atomic_path

FEATURES = [
    "zlogz", "c1_b0_mmdt", "c1_b1_mmdt", "c1_b2_mmdt", "c2_b1_mmdt", "c2_b2_mmdt",
    "d2_b1_mmdt", "d2_b2_mmdt", "d2_a1_b1_mmdt", "d2_a1_b2_mmdt", "m2_b1_mmdt", "m2_b2_mmdt",
    "n2_b1_mmdt", "n2_b2_mmdt", "mass_mmdt", "multiplicity",
]
CLASSES = ["g", "q", "w", "z", "t"]

# The one line to change when the embedded default sample is replaced.
DEFAULT_SAMPLE = "pythia8_jets.npz"
DEFAULT_DIR = Path(__file__).parent / "default"

OPENML_ID = 42468
OPENML_API = "https://api.openml.org/api/v1/json/data/{id}"
OPENML_DOWNLOAD = "https://api.openml.org/data/v1/download/{file_id}"


@dataclass
class JetData:
    """Jets as a float32 feature matrix (columns in ``FEATURES`` order) and integer labels."""

    X: np.ndarray
    y: np.ndarray
    source: str
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    classes: list[str] = field(default_factory=lambda: list(CLASSES))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> "JetData":
        return JetData(self.X[index], self.y[index], self.source, self.features, self.classes)


def default_sample_path() -> Path:
    return DEFAULT_DIR / DEFAULT_SAMPLE


def default_sample_metadata() -> dict:
    meta = DEFAULT_DIR / (Path(DEFAULT_SAMPLE).stem + ".json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def cache_dir() -> Path:
    """User cache for downloads: $EDGEML_CACHE, else $XDG_CACHE_HOME/edgeml, else ~/.cache/edgeml."""
    if os.environ.get("EDGEML_CACHE"):
        return Path(os.environ["EDGEML_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgeml"


def load_jets(source: str | os.PathLike | None = "default") -> JetData:
    """Load jets from ``'default'``, ``'openml'`` or a file path; validate them."""
    if source is None or str(source) == "default":
        data = read_file(default_sample_path())
        data.source = f"default sample ({DEFAULT_SAMPLE})"
        return data
    if str(source) == "openml":
        return _read_openml()
    return read_file(Path(source))


def read_file(path: Path) -> JetData:
    path = Path(path)
    if not path.exists():
        raise InputError(f"data file {path} does not exist; pass a CSV, NPZ, HDF5 or Parquet file, or 'default'")
    readers = {".csv": _read_csv, ".npz": _read_npz, ".h5": _read_hdf5, ".hdf5": _read_hdf5,
               ".parquet": _read_parquet, ".pq": _read_parquet, ".arff": _read_arff}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InputError(
            f"data file {path} has an unsupported extension '{path.suffix}'; use one of {', '.join(readers)}"
        )
    try:
        columns, labels = reader(path)
    except InputError:
        raise
    except Exception as e:  # corrupt or foreign file: say which file and what the reader said
        raise InputError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    return _validated(columns, labels, str(path))


def _validated(columns: dict[str, np.ndarray], labels: np.ndarray, source: str) -> JetData:
    missing = [f for f in FEATURES if f not in columns]
    if missing:
        raise InputError(f"{source}: missing feature column(s) {', '.join(missing)}; "
                         f"expected the 16 features {', '.join(FEATURES)} and a 'class' column")
    extra = [c for c in columns if c not in FEATURES]
    if extra:
        raise InputError(f"{source}: unexpected column(s) {', '.join(extra)}; keep only the 16 features and 'class'")
    X = np.stack([np.asarray(columns[f], dtype=np.float64) for f in FEATURES], axis=1)
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(f"{source}: {int(bad.sum())} NaN/inf value(s), first in row {row} column "
                         f"'{FEATURES[col]}'; drop or fix those jets")
    y = _label_indices(np.asarray(labels), source)
    present = np.unique(y)
    if len(present) < 2:
        raise InputError(f"{source}: only class(es) {[CLASSES[i] for i in present]} present; "
                         "a tagger needs at least 2 of g, q, w, z, t")
    return JetData(X.astype(np.float32), y, source)


def _label_indices(labels: np.ndarray, source: str) -> np.ndarray:
    if labels.ndim == 2:  # one-hot columns in CLASSES order (Zenodo layout)
        if labels.shape[1] != len(CLASSES) or not np.all(labels.sum(axis=1) == 1):
            raise InputError(f"{source}: one-hot labels must have exactly one of {', '.join(CLASSES)} set per jet")
        return labels.argmax(axis=1).astype(np.int64)
    if labels.dtype.kind in "iu":
        if labels.min() < 0 or labels.max() >= len(CLASSES):
            raise InputError(f"{source}: integer labels must lie in 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
        return labels.astype(np.int64)
    text = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in labels])
    text = np.char.strip(np.char.lower(text))
    unknown = sorted(set(text) - set(CLASSES))
    if unknown:
        raise InputError(f"{source}: unknown class label(s) {', '.join(map(repr, unknown[:5]))}; "
                         f"allowed: {', '.join(CLASSES)}")
    lookup = {c: i for i, c in enumerate(CLASSES)}
    return np.array([lookup[t] for t in text], dtype=np.int64)


def _split_columns(table: dict[str, np.ndarray], source: Path) -> tuple[dict, np.ndarray]:
    if "class" not in table:
        raise InputError(f"{source}: no 'class' column; add one holding g, q, w, z or t for each jet")
    labels = table.pop("class")
    return table, labels


def _read_csv(path: Path):
    import pandas as pd

    frame = pd.read_csv(path)
    return _split_columns({c: frame[c].to_numpy() for c in frame.columns}, path)


def _read_parquet(path: Path):
    import pandas as pd

    frame = pd.read_parquet(path)
    return _split_columns({c: frame[c].to_numpy() for c in frame.columns}, path)


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as z:
        if "X" in z and "y" in z:  # edgeml's own layout: matrix + labels + names
            names = [str(n) for n in z["features"]] if "features" in z else FEATURES
            if z["X"].ndim != 2 or z["X"].shape[1] != len(names):
                raise InputError(f"{path}: 'X' must be a (jets, {len(names)}) matrix")
            columns = {n: z["X"][:, i] for i, n in enumerate(names)}
            labels = z["y"]
            if "classes" in z and labels.dtype.kind in "iu":
                labels = np.asarray([str(c) for c in z["classes"]])[labels]
            return columns, labels
        return _split_columns({k: z[k] for k in z.files}, path)


def _read_hdf5(path: Path):
    import h5py

    with h5py.File(path, "r") as f:
        if "jets" in f and "jetFeatureNames" in f:
            return _zenodo_columns(f["jets"][()], [n.decode() if isinstance(n, bytes) else str(n)
                                                   for n in f["jetFeatureNames"][()]], path)
        table = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    return _split_columns(table, path)


def _zenodo_columns(jets: np.ndarray, names: list[str], path: Path):
    """Zenodo 3602260: a (jets, 59) array with 'j_'-prefixed names and one-hot j_g..j_t labels."""
    index = {n.removeprefix("j_"): i for i, n in enumerate(names)}
    missing = [f for f in FEATURES + CLASSES if f not in index]
    if missing:
        raise InputError(f"{path}: jetFeatureNames lacks {', '.join(missing)}")
    columns = {f: jets[:, index[f]] for f in FEATURES}
    onehot = np.stack([jets[:, index[c]] for c in CLASSES], axis=1)
    keep = onehot.sum(axis=1) == 1  # drop 'j_undef' jets, as the dataset's authors do
    return {f: v[keep] for f, v in columns.items()}, onehot[keep].astype(np.int64)


def _read_arff(path: Path):
    """OpenML's ARFF export: @attribute lines, then comma-separated @data rows."""
    names: list[str] = []
    rows: list[list[str]] = []
    in_data = False
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("%"):
                continue
            low = line.lower()
            if in_data:
                rows.append([v.strip().strip("'\"") for v in line.split(",")])
            elif low.startswith("@attribute"):
                names.append(line.split(None, 2)[1].strip("'\""))
            elif low.startswith("@data"):
                in_data = True
    if not rows:
        raise InputError(f"{path}: ARFF file has no @data rows")
    cols = list(zip(*rows))
    table = {n: np.array(c) for n, c in zip(names, cols)}
    labels = table.pop("class", None)
    if labels is None:
        raise InputError(f"{path}: ARFF file has no 'class' attribute")
    return {n: v.astype(np.float64) for n, v in table.items()}, labels


def _read_openml(**fetch_options) -> JetData:
    """The cached OpenML jets; a truncated or garbled cache file is downloaded again, once."""
    from edgeml.integrity import warn

    cached = fetch_openml(**fetch_options)
    try:
        return read_file(cached)
    except InputError as e:
        warn(f"the cached OpenML download is damaged ({e}); downloading it again")
    return read_file(fetch_openml(refresh=True, **fetch_options))


def fetch_openml(dataset_id: int = OPENML_ID, cache: Path | None = None,
                 api_url: str = OPENML_API, download_url: str = OPENML_DOWNLOAD, refresh: bool = False) -> Path:
    """Download OpenML dataset ``dataset_id`` once and cache it as NPZ; return the cached path.

    The URLs are parameters so that the whole path (description, ARFF download, MD5 check,
    parsing, caching) can be exercised against ``file://`` URLs offline. The cache is
    shared by every process of the user: one downloads while the others wait, and every
    file lands by atomic rename. ``refresh`` replaces a cached copy found damaged.
    """
    from edgeml.integrity import remove_stale_temporaries
    from edgeml.locks import exclusive

    cache = Path(cache) if cache is not None else cache_dir()
    cached = cache / f"openml_{dataset_id}.npz"
    if cached.is_file() and not refresh:
        return cached
    with exclusive(cached):
        if cached.is_file() and (not refresh or _readable(cached)):  # another process fetched it meanwhile
            return cached
        for name in (cached.name, f"openml_{dataset_id}.arff"):  # left by a download that was killed
            remove_stale_temporaries(cache, name)
        return _download_openml(dataset_id, cache, cached, api_url, download_url)


def _readable(path: Path) -> bool:
    try:
        read_file(path)
    except InputError:
        return False
    return True


def _download_openml(dataset_id: int, cache: Path, cached: Path, api_url: str, download_url: str) -> Path:
    try:
        with urllib.request.urlopen(api_url.format(id=dataset_id), timeout=60) as r:
            description = json.load(r)["data_set_description"]
        arff = cache / f"openml_{dataset_id}.arff"
        with atomic_path(arff) as tmp:
            with urllib.request.urlopen(download_url.format(file_id=description["file_id"]), timeout=600) as r:
                tmp.write_bytes(r.read())
            expected = description.get("md5_checksum")
            if expected and hashlib.md5(tmp.read_bytes()).hexdigest() != expected:
                raise InputError(f"OpenML download of dataset {dataset_id} is corrupt (MD5 mismatch); retry")
    except OSError as e:
        raise InputError(f"cannot download OpenML dataset {dataset_id} ({e}); check the network, or pass a "
                         "local file with --data") from None
    data = read_file(arff)
    write_npz(data, cached)
    arff.unlink()
    return cached


def write_npz(data: JetData, path: Path) -> Path:
    """Write jets in edgeml's NPZ layout (X, y, features, classes)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, X=data.X.astype(np.float32), y=data.y.astype(np.int8),
                                features=np.array(data.features), classes=np.array(data.classes))
    return Path(path)
