"""Every source format on small files in the exact layout of the real sources."""

import hashlib
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from edgeml.data import (CLASSES, FEATURES, JetData, Scaler, describe, fetch_openml, load_jets, make_splits,
                         read_file, split_indices, write_npz)
from edgeml.errors import InputError


def sample(n=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES))).astype(np.float32) * 3 + 1
    y = np.arange(n) % len(CLASSES)
    return X, y


def frame(n=50):
    X, y = sample(n)
    df = pd.DataFrame(X, columns=FEATURES)
    df["class"] = [CLASSES[i] for i in y]
    return df, X, y


def check(data: JetData, X, y):
    assert data.X.dtype == np.float32 and data.X.shape == X.shape
    np.testing.assert_allclose(data.X, X, rtol=1e-6)
    np.testing.assert_array_equal(data.y, y)


def test_csv(tmp_path):
    df, X, y = frame()
    df.to_csv(tmp_path / "j.csv", index=False)
    check(read_file(tmp_path / "j.csv"), X, y)


def test_parquet(tmp_path):
    df, X, y = frame()
    df.to_parquet(tmp_path / "j.parquet")
    check(read_file(tmp_path / "j.parquet"), X, y)


def test_npz_columns_and_edgeml_layout(tmp_path):
    df, X, y = frame()
    np.savez(tmp_path / "cols.npz", **{c: df[c].to_numpy().astype(float if c != "class" else str) for c in df.columns})
    check(read_file(tmp_path / "cols.npz"), X, y)
    write_npz(JetData(X, y, "t"), tmp_path / "own.npz")
    check(read_file(tmp_path / "own.npz"), X, y)


def test_hdf5_flat_columns(tmp_path):
    df, X, y = frame()
    with h5py.File(tmp_path / "j.h5", "w") as f:
        for c in FEATURES:
            f[c] = df[c].to_numpy()
        f["class"] = np.array([CLASSES[i] for i in y], dtype="S1")
    check(read_file(tmp_path / "j.h5"), X, y)


def test_hdf5_zenodo_layout(tmp_path):
    """Zenodo 3602260: 'jets' (N, 59) with 'j_'-prefixed jetFeatureNames and one-hot j_g..j_t, j_undef."""
    X, y = sample(40)
    names = ["j_ptfrac", "j_pt", "j_eta", "j_mass", "j_tau1_b1"] + [f"j_{f}" for f in FEATURES] + \
            [f"j_{c}" for c in CLASSES] + ["j_undef"]
    jets = np.zeros((41, len(names)), dtype=np.float32)
    jets[:40, 5:5 + len(FEATURES)] = X
    jets[np.arange(40), 5 + len(FEATURES) + y] = 1
    jets[40, -1] = 1  # an undefined jet: dropped
    with h5py.File(tmp_path / "jetImage_0_100p.h5", "w") as f:
        f["jets"] = jets
        f["jetFeatureNames"] = np.array([n.encode() for n in names])
        f["jetConstituentList"] = np.zeros((41, 4, 16), dtype=np.float32)
    check(read_file(tmp_path / "jetImage_0_100p.h5"), X, y)


ARFF_HEADER = "@RELATION hls4ml_lhc_jets_hlf\n\n" + "".join(f"@ATTRIBUTE {f} NUMERIC\n" for f in FEATURES) + \
    "@ATTRIBUTE class {g,q,t,w,z}\n\n@DATA\n"


def arff_text(X, y):
    rows = [",".join(f"{v:.9g}" for v in row) + f",{CLASSES[c]}" for row, c in zip(X, y)]
    return ARFF_HEADER + "\n".join(rows) + "\n"


def test_openml_download_is_cached(tmp_path):
    X, y = sample(30)
    text = arff_text(X, y)
    server = tmp_path / "server"
    server.mkdir()
    (server / "file_22044302.arff").write_text(text)
    (server / "desc_42468.json").write_text(json.dumps({"data_set_description": {
        "id": "42468", "name": "hls4ml_lhc_jets_hlf", "file_id": "22044302",
        "md5_checksum": hashlib.md5(text.encode()).hexdigest()}}))
    kwargs = dict(cache=tmp_path / "cache", api_url=f"file://{server}/desc_{{id}}.json",
                  download_url=f"file://{server}/file_{{file_id}}.arff")
    cached = fetch_openml(**kwargs)
    check(read_file(cached), X, y)
    (server / "file_22044302.arff").unlink()  # a second call must not download again
    assert fetch_openml(**kwargs) == cached


def test_openml_md5_mismatch_and_offline(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    (server / "file_1.arff").write_text(arff_text(*sample(10)))
    (server / "desc_42468.json").write_text(json.dumps({"data_set_description": {"file_id": "1",
                                                                                  "md5_checksum": "0" * 32}}))
    with pytest.raises(InputError, match="MD5 mismatch"):
        fetch_openml(cache=tmp_path / "c", api_url=f"file://{server}/desc_{{id}}.json",
                     download_url=f"file://{server}/file_{{file_id}}.arff")
    with pytest.raises(InputError, match="cannot download OpenML"):
        fetch_openml(cache=tmp_path / "c", api_url=f"file://{tmp_path}/absent_{{id}}.json")


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns=["zlogz"]), "missing feature column(s) zlogz"),
    (lambda df: df.assign(j_pt=1.0), "unexpected column(s) j_pt"),
    (lambda df: df.assign(zlogz=np.where(np.arange(len(df)) == 3, np.nan, df["zlogz"])), "NaN/inf"),
    (lambda df: df.assign(mass_mmdt=np.inf), "NaN/inf"),
    (lambda df: df.assign(**{"class": "h"}), "unknown class label(s) 'h'"),
    (lambda df: df.assign(**{"class": "g"}), "at least 2 of g, q, w, z, t"),
    (lambda df: df.drop(columns=["class"]), "no 'class' column"),
])
def test_bad_data_is_refused_with_one_line(tmp_path, mutate, message):
    df, _, _ = frame()
    mutate(df).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError) as err:
        read_file(tmp_path / "bad.csv")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_corrupt_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_jets(tmp_path / "none.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unsupported extension"):
        read_file(tmp_path / "x.txt")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="cannot read"):
        read_file(tmp_path / "broken.h5")


def test_default_sample_loads_and_is_described():
    data = load_jets("default")
    summary = describe(data)
    assert summary["n_jets"] == len(data) > 1000
    assert summary["features"] == FEATURES and summary["classes"] == CLASSES
    assert set(summary["stats"]["mass_mmdt"]) == set(CLASSES)


def test_split_is_deterministic_stratified_and_disjoint():
    y = np.repeat(np.arange(5), 100)
    a = split_indices(y, 0.2, 0.25, seed=7)
    b = split_indices(y, 0.2, 0.25, seed=7)
    c = split_indices(y, 0.2, 0.25, seed=8)
    for part_a, part_b in zip(a, b):
        np.testing.assert_array_equal(part_a, part_b)
    assert not np.array_equal(a[2], c[2])
    train, val, test = a
    assert len(set(train) | set(val) | set(test)) == 500
    assert np.all(np.bincount(y[test]) == 20) and np.all(np.bincount(y[val]) == 20)


def test_scaler_fit_on_train_only_and_exported(tmp_path):
    X, y = sample(500)
    splits = make_splits(JetData(X, y, "t"), 0.2, 0.2, seed=1)
    assert abs(splits.X_train.mean()) < 1e-5 and splits.X_train.std(axis=0) == pytest.approx(1, abs=1e-4)
    assert abs(splits.X_test.mean(axis=0)).max() > 1e-3  # test data is scaled with the train statistics
    path = splits.scaler.save(tmp_path / "scaler.json")
    saved = json.loads(path.read_text())
    assert saved["features"] == FEATURES and len(saved["mean"]) == len(saved["scale"]) == 16
    restored = Scaler.load(path)
    np.testing.assert_allclose(restored.transform(X), splits.scaler.transform(X), rtol=1e-6)
    with pytest.raises(InputError, match="expects 16"):
        restored.transform(X[:, :15])
