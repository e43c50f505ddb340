import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the project: real hls4ml ground truth; tests using it skip when absent."""
    from edgeml.paths import shared_dir as find

    path = find()
    if path is None:
        pytest.skip("../shared is not present")
    return path
