"""Where edgeml finds its shipped configs and optional reference material."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def shared_dir() -> Path | None:
    """The developers' ``shared/`` folder ($EDGEML_SHARED, or ``../shared`` beside the repo), if present."""
    candidates = [os.environ.get("EDGEML_SHARED"), Path(__file__).resolve().parents[2] / "shared",
                  Path.cwd().parent / "shared"]
    for c in candidates:
        if c and (Path(c) / "ground-truth").is_dir():
            return Path(c)
    return None


def packaged_configs() -> Path:
    """The repository's configs/ as installed with the package (default run and recipes)."""
    return Path(str(resources.files("edgeml.configs")))
