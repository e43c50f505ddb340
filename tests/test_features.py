"""The 16 jet features on hand-made constituent lists with values worked out by hand."""

import math

import numpy as np
import pytest

from edgeml.data.features import ca_tree, delta_r, feature_vector, jet_features, kinematics, mmdt_groom
from edgeml.data.load import FEATURES


def massless(pt: float, y: float, phi: float) -> list[float]:
    return [pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(y), pt * math.cosh(y)]


def jet(*particles) -> np.ndarray:
    return np.array([massless(*p) for p in particles])


def test_kinematics_round_trip():
    p = jet((100.0, 0.3, -2.0), (50.0, -1.2, 3.0))
    pt, y, phi = kinematics(p)
    np.testing.assert_allclose(pt, [100.0, 50.0])
    np.testing.assert_allclose(y, [0.3, -1.2])
    np.testing.assert_allclose(phi, [-2.0, 3.0])


def test_delta_r_wraps_azimuth():
    d = delta_r(np.array([0.0, 0.0]), np.array([3.0, -3.0]))
    assert d[0, 1] == pytest.approx(2 * math.pi - 6.0)


def test_single_particle():
    f = jet_features(np.array([[0.0, 1000.0, 0.0, math.hypot(1000.0, 5.0)]]))  # mass 5 GeV
    assert f["multiplicity"] == 1
    assert f["zlogz"] == pytest.approx(0.0)
    assert f["mass_mmdt"] == pytest.approx(5.0, rel=1e-6)
    for name in FEATURES:
        if name not in ("multiplicity", "mass_mmdt", "zlogz"):
            assert f[name] == 0.0, name


def test_collinear_pair():
    # 700 + 300 GeV along one direction: no angle, no mass; only the beta = 0 correlator sees two particles.
    f = jet_features(jet((700.0, 0.5, 1.0), (300.0, 0.5, 1.0)))
    assert f["multiplicity"] == 2
    assert f["zlogz"] == pytest.approx(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    assert f["c1_b0_mmdt"] == pytest.approx(0.7 * 0.3)
    assert f["c1_b1_mmdt"] == pytest.approx(0.0, abs=1e-12)
    assert f["mass_mmdt"] == pytest.approx(0.0, abs=1e-3)
    assert f["n2_b1_mmdt"] == 0.0 and f["d2_b2_mmdt"] == 0.0


def test_symmetric_two_prong():
    # Two 500 GeV massless prongs at equal rapidity, Delta phi = R = 0.4.
    r = 0.4
    f = jet_features(jet((500.0, 0.0, -r / 2), (500.0, 0.0, r / 2)))
    assert f["c1_b0_mmdt"] == pytest.approx(0.25)
    assert f["c1_b1_mmdt"] == pytest.approx(0.25 * r)
    assert f["c1_b2_mmdt"] == pytest.approx(0.25 * r ** 2)
    assert f["mass_mmdt"] == pytest.approx(math.sqrt(2 * 500.0 ** 2 * (1 - math.cos(r))))
    assert f["zlogz"] == pytest.approx(2 * (500 / (1000 * math.cos(r / 2))) * math.log(500 / (1000 * math.cos(r / 2))))
    for name in ("c2_b1_mmdt", "d2_b1_mmdt", "d2_a1_b2_mmdt", "m2_b2_mmdt", "n2_b1_mmdt"):
        assert f[name] == pytest.approx(0.0, abs=1e-12), name  # no third prong: e3 = 0


def test_symmetric_three_prong():
    # Three equal prongs on an equilateral triangle of side R in (y, phi):
    # e2 = 3 (1/3)^2 R^b = R^b / 3, e3 = (1/27) R^3b, 1e3 = R^b / 27, 2e3 = R^2b / 27.
    r = 0.3
    f = jet_features(jet((300.0, 0.0, 0.0), (300.0, r, 0.0), (300.0, r / 2, r * math.sqrt(3) / 2)))
    assert f["multiplicity"] == 3
    assert f["c1_b0_mmdt"] == pytest.approx(1 / 3)
    for b in (1, 2):
        assert f[f"c1_b{b}_mmdt"] == pytest.approx(r ** b / 3)
        assert f[f"c2_b{b}_mmdt"] == pytest.approx(r ** b / 3)      # (R^3b/27) / (R^b/3)^2
        assert f[f"d2_b{b}_mmdt"] == pytest.approx(1.0)             # (R^3b/27) / (R^b/3)^3
        assert f[f"m2_b{b}_mmdt"] == pytest.approx(1 / 9)           # (R^b/27) / (R^b/3)
        assert f[f"n2_b{b}_mmdt"] == pytest.approx(1 / 3)           # (R^2b/27) / (R^b/3)^2
    # alpha = 1: e3^(1) / (e2^(beta))^(3/beta); at beta = 1 this is D2^(1) itself (as in the public data).
    assert f["d2_a1_b1_mmdt"] == pytest.approx(f["d2_b1_mmdt"])
    assert f["d2_a1_b2_mmdt"] == pytest.approx((r ** 3 / 27) / (r ** 2 / 3) ** 1.5)
    assert f["d2_a1_b2_mmdt"] == pytest.approx(3 ** -1.5)


def test_mmdt_drops_soft_wide_angle_particle():
    # A symmetric 2-prong plus a 5 GeV particle 0.7 away: C/A merges it last, z = 5/1005 < 0.1, so it
    # is groomed away; the groomed features equal those of the two prongs alone.
    prongs = ((500.0, 0.0, -0.1), (500.0, 0.0, 0.1))
    with_soft = jet(*prongs, (5.0, 0.7, 0.0))
    assert list(mmdt_groom(with_soft)) == [0, 1]
    groomed, bare = jet_features(with_soft), jet_features(jet(*prongs))
    assert groomed["multiplicity"] == 3
    for name in FEATURES:
        if name not in ("multiplicity", "zlogz"):
            assert groomed[name] == pytest.approx(bare[name]), name


def test_mmdt_follows_harder_branch():
    # Hard core (two collinear-ish particles) + a 50 GeV prong at 0.5: z = 50/1050 fails, groom to the core.
    p = jet((600.0, 0.0, 0.0), (400.0, 0.02, 0.0), (50.0, 0.5, 0.0))
    assert list(mmdt_groom(p)) == [0, 1]
    assert list(mmdt_groom(p, z_cut=0.01)) == [0, 1, 2]


def test_ca_merges_closest_pair_first():
    p = jet((100.0, 0.0, 0.0), (100.0, 0.05, 0.0), (100.0, 0.6, 0.0))
    children, momenta = ca_tree(p)
    assert sorted(children[3]) == [0, 1]
    assert sorted(children[4]) == [2, 3]
    np.testing.assert_allclose(momenta[4], p.sum(axis=0))


def test_ca_matches_fastjet_on_random_jet():
    fastjet = pytest.importorskip("fastjet")
    rng = np.random.default_rng(3)
    p = jet(*[(float(pt), float(y), float(phi)) for pt, y, phi in
              zip(rng.exponential(30.0, 40) + 1.0, rng.normal(0, 0.3, 40), rng.normal(0, 0.3, 40))])
    children, momenta = ca_tree(p)
    pjs = [fastjet.PseudoJet(*map(float, row)) for row in p]
    seq = fastjet.ClusterSequence(pjs, fastjet.JetDefinition(fastjet.cambridge_algorithm, 10.0))
    (whole,) = seq.inclusive_jets()
    a, b = fastjet.PseudoJet(), fastjet.PseudoJet()
    assert whole.has_parents(a, b)
    ours = sorted(np.hypot(momenta[children[-1]][:, 0], momenta[children[-1]][:, 1]))
    assert ours == pytest.approx(sorted([a.pt(), b.pt()]), rel=1e-9)


def test_feature_vector_order_and_scale():
    rng = np.random.default_rng(0)
    p = jet(*[(float(pt), float(y), float(phi)) for pt, y, phi in
              zip(rng.exponential(20.0, 50) + 0.5, rng.normal(0, 0.2, 50), rng.normal(0, 0.2, 50))])
    v = feature_vector(p)
    f = jet_features(p)
    assert v.shape == (16,)
    assert list(v) == [f[name] for name in FEATURES]
    assert np.all(np.isfinite(v))
    assert 0 < f["c1_b0_mmdt"] < 0.5 and f["zlogz"] < 0
