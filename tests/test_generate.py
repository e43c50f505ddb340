"""Real Pythia8 + FastJet generation of a few dozen jets per class, and the shipped default sample.

Generation tests need the edgeml[generate] extra (pythia8mc, fastjet) and skip without it.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeml.cli import main
from edgeml.data import CLASSES, FEATURES, default_sample_metadata, default_sample_path, load_jets
from edgeml.data.generate import (COMMON_SETTINGS, PROCESSES, RESONANCE_ID, _decay_quarks, generate, plan_tasks,
                                  write_sample)
from edgeml.errors import InputError


@pytest.fixture(scope="module")
def generators():
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")


@pytest.fixture(scope="module")
def sample(generators):
    """30 jets per class, two worker processes: the CI run of the real generator."""
    return generate(150, seed=11, workers=2, progress=False)


def column(data, name, label):
    return data.X[data.y == CLASSES.index(label), FEATURES.index(name)]


def test_balanced_float32_finite(sample):
    data, meta = sample
    assert data.X.shape == (150, 16) and data.X.dtype == np.float32
    assert np.bincount(data.y, minlength=5).tolist() == [30] * 5
    assert np.all(np.isfinite(data.X))
    assert meta["jets_per_class"] == {c: 30 for c in CLASSES}
    assert meta["jets_per_cpu_second"] > 0 and meta["versions"]["pythia8mc"].startswith("8.317")


def test_physics_is_recognisable(sample):
    data, _ = sample
    assert 65 < np.median(column(data, "mass_mmdt", "w")) < 95
    assert 75 < np.median(column(data, "mass_mmdt", "z")) < 105
    assert 145 < np.median(column(data, "mass_mmdt", "t")) < 200
    assert np.median(column(data, "multiplicity", "g")) > np.median(column(data, "multiplicity", "q"))
    multiplicity = data.X[:, FEATURES.index("multiplicity")]
    assert np.all(multiplicity == np.round(multiplicity)) and multiplicity.min() >= 2
    # alpha = 1, beta = 1 generalised D2 is D2^(1) itself, as in the public dataset.
    np.testing.assert_array_equal(data.X[:, FEATURES.index("d2_b1_mmdt")], data.X[:, FEATURES.index("d2_a1_b1_mmdt")])


@pytest.mark.parametrize("label", ["w", "z"])
def test_w_and_z_come_from_wprime_decays_and_are_longitudinal(generators, label):
    """W' -> W Z bosons share momentum as z(1 - z): about 6% of decays put a quark below z = 0.1,
    against about 27% for the transverse bosons of V + jet production (docs/data.md)."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    # The hard process alone: the production and decay are all this test looks at.
    for setting in [*COMMON_SETTINGS, *PROCESSES[label], "PartonLevel:all = off", "HadronLevel:all = off"]:
        assert pythia.readString(setting)
    assert pythia.init()
    soft = 0
    for _ in range(300):
        assert pythia.next()
        process = pythia.process
        bosons = [i for i in range(process.size()) if process[i].idAbs() == RESONANCE_ID[label]]
        assert len(bosons) == 1 and process[process[bosons[0]].mother1()].idAbs() == 34  # from the W'
        a, b = (q.pT() for q in _decay_quarks(process, bosons[0]))
        soft += min(a, b) / (a + b) < 0.1
    assert soft / 300 < 0.12


def test_plan_is_balanced_and_chunked():
    tasks = plan_tasks(13, seed=1, chunk=2)
    per_class = {c: sum(t[2] for t in tasks if t[0] == c) for c in CLASSES}
    assert per_class == {"g": 3, "q": 3, "w": 3, "z": 2, "t": 2}
    assert max(t[2] for t in tasks) == 2


def test_cli_writes_loadable_sample_and_refuses_overwrite(tmp_path, generators):
    out = tmp_path / "jets.npz"
    args = ["data", "generate", "--n-jets", "10", "--out", str(out), "--seed", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = load_jets(out)
    assert len(data) == 10 and sorted(set(data.y.tolist())) == [0, 1, 2, 3, 4]
    meta = json.loads((tmp_path / "jets.json").read_text())
    assert meta["seed"] == 2 and meta["n_jets"] == 10 and meta["workers"] == 1
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.output

    # Same seed, two worker processes: the same jets in the same order.
    parallel, _ = generate(10, seed=2, workers=2, progress=False)
    np.testing.assert_array_equal(parallel.X, data.X.astype(np.float32))
    np.testing.assert_array_equal(parallel.y, data.y)


def test_write_sample_wants_npz(tmp_path, sample):
    with pytest.raises(InputError, match=".npz"):
        write_sample(sample[0], sample[1], tmp_path / "jets.csv")


def test_default_sample_is_a_balanced_pythia8_sample_under_8_mb():
    path = default_sample_path()
    assert path.stat().st_size < 8_000_000
    data = load_jets("default")
    counts = np.bincount(data.y, minlength=5)
    assert len(data) >= 100_000 and counts.max() - counts.min() <= 1
    meta = default_sample_metadata()
    assert meta["n_jets"] == len(data) and meta["jets_per_class"] == dict(zip(CLASSES, counts.tolist()))
    assert meta["versions"]["pythia8mc"] == "8.317.2" and meta["jets_per_cpu_second"] > 0
    # The shipped jets come from the generator's current settings (W/Z from W' -> W Z).
    assert meta["pythia_class_settings"] == PROCESSES and meta["pythia_common_settings"] == COMMON_SETTINGS
