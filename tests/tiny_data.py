"""Small jet-shaped data sets shared by the training tests."""

import numpy as np

from edgeml.data import JetData, make_splits


def separable_jet_splits(n: int):
    """``n`` seeded 16-feature events of five classes, each class shifted along every feature so that a
    few epochs of a tiny network learn them; split 60/20/20."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, n)
    X = rng.normal(size=(n, 16)).astype(np.float32) + y[:, None] * np.linspace(0.2, 1.0, 16, dtype=np.float32)
    return make_splits(JetData(X, y, "tiny"), 0.2, 0.2, 0)
