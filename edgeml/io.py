"""Atomic artifact writing and content hashing.

Artifacts are written to a temp file in the destination directory and renamed
into place, so an interrupted run never leaves a half-written file that a later
run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make shared artifacts unreadable to others
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_texts(texts: dict[Path, str]) -> None:
    """Write several files as one: every temporary first, then the renames, so a full disk changes none."""
    with contextlib.ExitStack() as stack:
        for path, text in texts.items():
            stack.enter_context(atomic_path(path)).write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def content_hash(*parts: Any) -> str:
    """Stable short hash of JSON-able values and files (Path objects, nested ones too, hash their bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(_file_digest(part).encode())
        else:
            h.update(json.dumps(_with_file_digests(part), sort_keys=True, default=_json_default).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _with_file_digests(obj: Any) -> Any:
    """Existing files named by Path inside lists/dicts stand for their content: same path, new bytes, new key."""
    if isinstance(obj, Path):
        return {"sha256": _file_digest(obj)} if obj.exists() else str(obj)
    if isinstance(obj, (list, tuple)):
        return [_with_file_digests(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _with_file_digests(v) for k, v in obj.items()}
    return obj


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(child.relative_to(path)).encode())
            h.update(_file_digest(child).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
