import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Any Ray a test starts stays on loopback and does not phone home (without the first, Ray on Linux
# binds to the interface address even when given 127.0.0.1).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the project: real hls4ml ground truth; tests using it skip when absent."""
    from edgeml.paths import shared_dir as find

    path = find()
    if path is None:
        pytest.skip("../shared is not present")
    return path
