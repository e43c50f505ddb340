"""One edgeml process at a time per run directory, hls4ml project or shared cache entry.

``hold(directory, RUN_DIR)`` is a context manager around a kernel ``flock`` (filelock's
``FileLock``) on ``.<name>.lock`` *beside* the directory: beside, because ``convert --force``
renames the project directory away while it rebuilds, and a lock file inside would move with it.
The kernel drops a flock when its holder dies, kill -9 included, so a dead holder never
blocks anyone: the next process simply takes the lock over.

Who holds the lock (pid, host, start time) goes into a sidecar ``.<name>.lock.json``, written
atomically once the lock is taken and removed before it is released. It only feeds the
"in use by pid N since T" message: a missing, stale or garbled sidecar makes that message
vaguer, never wrong about whether the directory is busy.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgeml.errors import EdgemlError, InputError
from edgeml.integrity import remove_stale_temporaries

INFO_RETRY_SECONDS = 0.5  # a holder writes its sidecar right after locking: give it that long


@dataclass(frozen=True)
class LockKind:
    what: str  # how the message names the directory
    option: str | None  # the CLI option that picks another one (None: the command has none)


RUN_DIR = LockKind("run directory", "--run-dir")
OUTPUT_DIR = LockKind("output directory", "--output")
REPORT_RUN_DIR = LockKind("run directory", None)

_HELD: set[Path] = set()  # lock files this process holds


class DirectoryBusy(InputError):
    """Another live process holds the directory's lock (exit code 2)."""


def lock_file(directory: str | os.PathLike) -> Path:
    """The lock file of ``directory``: ``.<name>.lock`` in its parent, one per real path."""
    real = Path(os.path.abspath(directory))
    with contextlib.suppress(OSError):
        real = real.resolve()
    return real.parent / f".{real.name}.lock"


@dataclass(frozen=True)
class Held:
    lock: Path
    interrupted: dict | None  # the previous holder's info when it died holding the lock (kill -9, crash)


@contextlib.contextmanager
def hold(directory: str | os.PathLike, kind: LockKind = RUN_DIR, wait: bool = False) -> Iterator[Held]:
    """Hold ``directory``'s lock for the block; busy: raise ``DirectoryBusy``, or queue with ``wait``.

    Re-entrant within a process (a command holding a run directory may call ``pipeline.run`` on it).
    """
    from filelock import FileLock, Timeout

    path = lock_file(directory)
    if path in _HELD:
        yield Held(path, None)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise DirectoryBusy(busy_message(directory, kind)) from None
            print(f"waiting for {kind.what} {directory}: in use by {_holder(path)}", file=sys.stderr, flush=True)
            lock.acquire(timeout=-1)
    except OSError as e:
        raise EdgemlError(f"cannot lock {kind.what} {directory}: cannot create {path} "
                          f"({e.strerror or e}); choose a writable location") from None
    try:
        left = _read_info(path, live_only=False)  # a holder that released would have removed it
        remove_stale_temporaries(path.parent, _info_file(path).name)  # of a holder killed while writing it
        _write_info(path)
        _HELD.add(path)
        yield Held(path, left)
    finally:
        _HELD.discard(path)
        with contextlib.suppress(OSError):
            _info_file(path).unlink()  # before the release: afterwards it may already be the next holder's
        lock.release()


def busy_message(directory: str | os.PathLike, kind: LockKind) -> str:
    other = f", pass --wait, or use another {kind.option}" if kind.option else " or pass --wait"
    return f"{kind.what} {directory} is in use by {_holder(lock_file(directory))}; wait for it{other}"


@contextlib.contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Block until no other process works on the shared file ``path`` (a cache entry), then hold it."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        yield


def _info_file(lock: Path) -> Path:
    return lock.with_name(lock.name + ".json")


def _write_info(lock: Path) -> None:
    from edgeml.io import write_json

    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200]}
    with contextlib.suppress(OSError, EdgemlError):  # a full disk costs only the message's detail
        write_json(_info_file(lock), info)


def _read_info(lock: Path, live_only: bool = True) -> dict | None:
    try:
        info = json.loads(_info_file(lock).read_text())
    except (OSError, ValueError):  # absent, or garbled/truncated by a crash: no detail
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int) or not isinstance(info.get("since"), str):
        return None
    if live_only and info.get("host") == socket.gethostname() and not _alive(info["pid"]):
        return None  # left by a holder killed before it could clean up; the new one has not written yet
    return info


def _holder(lock: Path) -> str:
    deadline = time.monotonic() + INFO_RETRY_SECONDS
    while True:
        info = _read_info(lock)
        if info is not None:
            host = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
            return f"pid {info['pid']}{host} since {info['since']}"
        if time.monotonic() >= deadline:
            return "another process"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
