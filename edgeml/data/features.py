"""The 16 hls4ml jet features from a jet's constituent four-vectors, in pure numpy.

Input is one jet as an ``(n, 4)`` array of ``(px, py, pz, E)`` in GeV (its constituents, ungroomed).
The function reclusters the constituents with Cambridge/Aachen, grooms with the modified mass-drop
tagger (mMDT: beta = 0, z_cut = 0.1) and evaluates the energy-correlation ratios on the groomed
constituents. Formulas and references: docs/data.md ("Generated jets").

Written for jets of at most a few hundred constituents: C/A is the O(n^3) textbook algorithm and
the three-point correlators sum over all triplets.
"""

from __future__ import annotations

import numpy as np

from edgeml.data.load import FEATURES

Z_CUT = 0.1
BETAS = (1.0, 2.0)


def kinematics(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transverse momentum, rapidity and azimuth of four-vectors ``(n, 4)``."""
    px, py, pz, e = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    pt = np.hypot(px, py)
    # E - |pz| can underflow to 0 for massless particles along the beam; jets here never are.
    rapidity = 0.5 * np.log((e + pz) / (e - pz))
    return pt, rapidity, np.arctan2(py, px)


def delta_r(y: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Pairwise distance in the rapidity-azimuth plane, ``(n, n)``."""
    dphi = np.abs(phi[:, None] - phi[None, :])
    dphi = np.where(dphi > np.pi, 2 * np.pi - dphi, dphi)
    return np.hypot(y[:, None] - y[None, :], dphi)


def ca_tree(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster all constituents into one jet with Cambridge/Aachen (E-scheme).

    Returns ``(children, momenta)``: node ids 0..n-1 are the constituents, node n+k is the k-th
    merge with ``children[n+k] = (a, b)`` (-1 for leaves) and four-momentum ``momenta[n+k]``.
    The last node is the whole jet.
    """
    n = len(p)
    momenta = np.zeros((2 * n - 1, 4))
    momenta[:n] = p
    children = np.full((2 * n - 1, 2), -1, dtype=np.int64)
    _, y, phi = kinematics(p)
    dist = delta_r(y, phi)
    np.fill_diagonal(dist, np.inf)
    node_of_slot = np.arange(n)  # slot a holds the merged pseudojet after each merge; slot b dies
    alive = np.ones(n, dtype=bool)
    for k in range(n - 1):
        a, b = np.unravel_index(np.argmin(dist), dist.shape)
        new = n + k
        momenta[new] = momenta[node_of_slot[a]] + momenta[node_of_slot[b]]
        children[new] = node_of_slot[a], node_of_slot[b]
        node_of_slot[a], alive[b] = new, False
        _, y_new, phi_new = kinematics(momenta[new][None, :])
        y[a], phi[a] = y_new[0], phi_new[0]
        dphi = np.abs(phi - phi[a])
        row = np.hypot(y - y[a], np.where(dphi > np.pi, 2 * np.pi - dphi, dphi))
        row[~alive] = np.inf
        row[a] = np.inf
        dist[a, :] = dist[:, a] = row
        dist[b, :] = dist[:, b] = np.inf
    return children, momenta


def mmdt_groom(p: np.ndarray, z_cut: float = Z_CUT) -> np.ndarray:
    """Indices of the constituents kept by mMDT (beta = 0) on the C/A reclustering.

    Decluster from the top; stop at the first splitting with min(pT_a, pT_b) / (pT_a + pT_b) > z_cut,
    otherwise follow the harder branch. If no splitting passes, the hardest constituent is kept
    (grooming mode, as SoftDrop does) so every jet has a groomed mass (then 0 for massless input).
    """
    n = len(p)
    if n == 1:
        return np.array([0])
    children, momenta = ca_tree(p)
    pt = np.hypot(momenta[:, 0], momenta[:, 1])
    node = len(children) - 1
    while node >= n:
        a, b = children[node]
        if min(pt[a], pt[b]) / (pt[a] + pt[b]) > z_cut:
            break
        node = a if pt[a] >= pt[b] else b
    return _leaves(children, node, n)


def _leaves(children: np.ndarray, node: int, n: int) -> np.ndarray:
    stack, leaves = [node], []
    while stack:
        k = stack.pop()
        if k < n:
            leaves.append(k)
        else:
            stack.extend(children[k])
    return np.sort(np.array(leaves))


def correlators(z: np.ndarray, theta: np.ndarray, betas: tuple[float, ...]) -> dict[float, dict[str, float]]:
    """Normalised energy correlators of momentum fractions ``z`` (sum 1) and angles ``theta``, per beta.

    e2 = sum_{i<j} z_i z_j theta_ij^b;  e3 = sum_{i<j<k} z_i z_j z_k (theta_ij theta_ik theta_jk)^b;
    1e3 / 2e3 = the same triplet sum with the smallest angle / the product of the two smallest
    angles to the power b (Moult, Necib, Thaler generalised correlators).
    """
    n = len(z)
    out = {}
    for beta in betas:
        a = theta ** beta
        np.fill_diagonal(a, 0.0)  # 0**0 = 1 would pair a particle with itself when beta = 0
        za = z[:, None] * a
        out[beta] = {"e2": float(0.5 * z @ a @ z),
                     "e3": float(np.trace(za @ za @ za) / 6.0),  # ordered distinct triplets / 3!
                     "1e3": 0.0, "2e3": 0.0}
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    for i in range(n - 2):  # triplets i < j < k, one slab of (j, k) pairs per i
        rest = slice(i + 1, n)
        mask = upper[: n - i - 1, : n - i - 1]
        t_ij = np.broadcast_to(theta[i, rest][:, None], mask.shape)[mask]
        t_ik = np.broadcast_to(theta[i, rest][None, :], mask.shape)[mask]
        t_jk = theta[rest, rest][mask]
        lowest = np.minimum(np.minimum(t_ij, t_ik), t_jk)
        middle = np.maximum(np.minimum(t_ij, t_ik), np.minimum(np.maximum(t_ij, t_ik), t_jk))
        weight = z[i] * (z[rest][:, None] * z[rest][None, :])[mask]
        for beta in betas:
            out[beta]["1e3"] += float(weight @ lowest ** beta)
            out[beta]["2e3"] += float(weight @ (lowest * middle) ** beta)
    return out


def _ratio(num: float, den: float) -> float:
    """Correlator ratios are 0/0 for one- or two-particle jets; report 0 there (no substructure)."""
    return num / den if den > 0 else 0.0


def jet_features(p: np.ndarray, z_cut: float = Z_CUT) -> dict[str, float]:
    """The 16 hls4ml features of one jet from its constituents ``(n, 4) = (px, py, pz, E)``."""
    p = np.asarray(p, dtype=np.float64).reshape(-1, 4)
    if len(p) == 0:
        raise ValueError("a jet needs at least one constituent")
    pt, _, _ = kinematics(p)
    jet_pt = np.hypot(*p[:, :2].sum(axis=0))
    z_all = pt / jet_pt
    out = {"zlogz": float(np.sum(z_all * np.log(z_all))), "multiplicity": float(len(p))}

    groomed = p[mmdt_groom(p, z_cut)]
    g_pt, g_y, g_phi = kinematics(groomed)
    z = g_pt / g_pt.sum()
    theta = delta_r(g_y, g_phi)
    e = correlators(z, theta, BETAS)
    total = groomed.sum(axis=0)
    out["mass_mmdt"] = float(np.sqrt(max(total[3] ** 2 - total[:3] @ total[:3], 0.0)))
    # beta = 0: every pair has weight 1, so e2 = sum_{i<j} z_i z_j = (1 - sum z_i^2) / 2.
    out["c1_b0_mmdt"] = float(0.5 * (1.0 - z @ z))
    for beta in BETAS:
        b, c = e[beta], f"b{beta:.0f}_mmdt"
        out[f"c1_{c}"] = b["e2"]
        out[f"c2_{c}"] = _ratio(b["e3"], b["e2"] ** 2)
        out[f"d2_{c}"] = _ratio(b["e3"], b["e2"] ** 3)
        # alpha = 1: the numerator always uses angular exponent 1, the denominator beta.
        out[f"d2_a1_{c}"] = _ratio(e[1.0]["e3"], b["e2"] ** (3.0 / beta))
        out[f"m2_{c}"] = _ratio(b["1e3"], b["e2"])
        out[f"n2_{c}"] = _ratio(b["2e3"], b["e2"] ** 2)
    return out


def feature_vector(p: np.ndarray, z_cut: float = Z_CUT) -> np.ndarray:
    """``jet_features`` as a float64 row in ``FEATURES`` order."""
    values = jet_features(p, z_cut)
    return np.array([values[f] for f in FEATURES])
