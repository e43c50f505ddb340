"""The wheel must carry every subpackage, the default sample and the configs."""

import tomllib
from pathlib import Path

from edgeml.paths import packaged_configs

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "edgeml").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"


def test_configs_ship_with_the_package():
    shipped = {p.name for p in packaged_configs().glob("*.yaml")}
    assert {"default.yaml", "tutorial_pruned.yaml", "tutorial_qkeras.yaml", "edgeml_compact.yaml"} <= shipped


def test_keras_3_is_not_installed():
    """hls4ml 1.3 switches to its Keras-3 parser whenever keras>=3 is importable; QKeras/tfmot need Keras 2."""
    import keras
    import tensorflow as tf

    assert keras.__version__.startswith("2.14"), keras.__version__
    assert tf.__version__ == "2.14.1"
