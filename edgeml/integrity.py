"""State read back is checked, never trusted.

Whoever writes a result records the content digest of every file in it (the run manifest
per stage, the convert cache for its project); whoever reuses the result first compares
the digests. A missing, truncated or garbled file, a model ``.h5``, ``predictions.npz``,
a scaler JSON or a compiled ``.so``, shows as a mismatch, and the result is rebuilt after
a one-line warning rather than passed on. JSON bookkeeping files themselves are parsed
and shape-checked on read; a garbled one counts as absent.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator

from edgeml.errors import EdgemlError
from edgeml.io import _file_digest, write_json


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def digests(base: Path, relpaths: Iterable[str]) -> dict[str, str]:
    """SHA-256 of each file (directories: of every file inside) under ``base``, keyed by relative path."""
    return {rel: _file_digest(Path(base) / rel) for rel in relpaths}


def first_damaged(base: Path, recorded: dict[str, str]) -> tuple[str, str] | None:
    """(relative path, 'is missing' / 'changed') of the first recorded file that no longer matches."""
    for rel, expected in recorded.items():
        path = Path(base) / rel
        if not path.exists():
            return rel, "is missing"
        try:
            if _file_digest(path) != expected:
                return rel, "has a changed, missing or extra file" if path.is_dir() else "changed"
        except OSError:
            return rel, "is unreadable"
    return None


def read_json_checked(path: Path, required: Iterable[str] = (), what: str = "") -> dict | None:
    """The JSON object at ``path``; None (with a warning) when it is truncated, garbled or lacks a key."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        obj = None
    if not isinstance(obj, dict) or any(k not in obj for k in required):
        warn(f"{path} is truncated or garbled; not trusting it, {what or 'rebuilding'}")
        return None
    return obj


def read_sealed_json(path: Path, required: Iterable[str] = (), what: str = "rebuilding") -> dict | None:
    """A JSON record written by ``write_sealed_json``, returned only if every file it vouches for is intact."""
    obj = read_json_checked(path, required, what)
    if obj is None:
        return None
    recorded = obj.get("digests", {})
    damaged = first_damaged(Path(path).parent, recorded) if isinstance(recorded, dict) else ("digests", "garbled")
    if damaged is not None:
        warn(f"{Path(path).parent / damaged[0]} {damaged[1]} since it was recorded in {Path(path).name} "
             f"(truncated or corrupt?); {what}")
        return None
    return obj


def write_sealed_json(path: Path, obj: dict, files: Iterable[str]) -> Path:
    """Write ``obj`` plus the digests of ``files`` (paths relative to ``path``'s folder)."""
    return write_json(path, {**obj, "digests": digests(Path(path).parent, [str(f) for f in files])})


_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(\.\w+)?$")  # edgeml.io.atomic_path's mkstemp names


def remove_stale_temporaries(folder: Path, target: str | None = None) -> None:
    """Delete atomic-write temporaries a killed process left in ``folder`` (only those for ``target`` if given).

    Call it only while holding the lock of everything that writes there: a live writer's
    temporary looks the same.
    """
    if not Path(folder).is_dir():
        return
    for path in Path(folder).glob(".*"):
        match = _TEMPORARY.match(path.name)
        if match and (target is None or match["target"] == target) and path.is_file():
            path.unlink(missing_ok=True)


def recover_project(out: Path, cache_file: str, holder: dict) -> None:
    """Undo what a conversion killed while holding ``out``'s lock left: a half-written project, a moved-away one.

    ``convert --force`` moves the old project to ``.<name>.replaced-<pid>`` while it builds.
    The old project comes back unless the new one was finished (its cache file written);
    a half-written new project (hls4ml's ``firmware/`` but no cache file) is removed.
    """
    import shutil

    out = Path(out)
    backups = sorted(out.parent.glob(f".{out.name}.replaced-*"), key=lambda p: p.stat().st_mtime)
    finished = (out / cache_file).is_file()
    half_written = not finished and out.is_dir() and (out / "firmware").is_dir()
    who = f"pid {holder.get('pid')}, since {holder.get('since')}"
    if not finished and backups and _restorable(backups[-1], cache_file):
        if out.exists():
            shutil.rmtree(out)
        backups.pop().rename(out)
        warn(f"restored {out} as it was before a conversion that was interrupted ({who})")
    elif half_written:
        shutil.rmtree(out)
        warn(f"removed the half-written project {out} of an interrupted conversion ({who}); converting again")
    for backup in backups:
        shutil.rmtree(backup, ignore_errors=True)
    remove_stale_temporaries(out)


def _restorable(backup: Path, cache_file: str) -> bool:
    """An edgeml project whose files still match its cache (it may have been half deleted), or a foreign one."""
    if not (backup / cache_file).is_file():
        return True
    return read_sealed_json(backup / cache_file, what="discarding that copy") is not None


_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EFBIG: "file too large",
                   errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}
_PERMISSION = (errno.EACCES, errno.EPERM)


@contextlib.contextmanager
def refused_writes(where: Path, option: str = "--run-dir") -> Iterator[None]:
    """Turn a write the disk refuses inside the block into ``storage_error``'s one-line error."""
    try:
        yield
    except Exception as e:
        refused = storage_error(e, where, option)
        if refused is None:
            raise
        raise refused from None


def storage_error(e: BaseException, where: Path, option: str = "--run-dir") -> EdgemlError | None:
    """A one-line error for a write the disk refused (full, read-only, no permission); None for other errors.

    Every artifact is written to a temporary file and renamed, so what was there before is intact.
    """
    code = getattr(e, "errno", None) if isinstance(e, OSError) else None
    if code not in _STORAGE_ERRNOS:  # h5py and hls4ml do not always keep errno: look at the message
        code = next((c for c in _STORAGE_ERRNOS if c not in _PERMISSION and os.strerror(c) in str(e)), None)
    if code is None:
        return None
    name = getattr(e, "filename", None)
    if code in _PERMISSION and name and not _inside(Path(name), Path(where)):
        return None  # e.g. an unreadable input file: not about where edgeml writes
    target = name or where
    return EdgemlError(f"cannot write in {where}{f' ({target})' if name else ''}: {_STORAGE_ERRNOS[code]}; "
                       f"free space or fix permissions, or use another {option}; the earlier results are unchanged")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
