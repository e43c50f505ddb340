"""The Ray a search runs on: a local one on loopback, or an existing cluster at ``--address``.

Ray 2.60 turns token authentication on for a head started where a token exists (``ray start --head`` with
``~/.ray/auth_token`` present; ``ray.init()`` of a local Ray creates one), while a driver that attaches to an
address keeps ``RAY_AUTH_MODE`` at its default, disabled, and is refused (``InvalidAuthToken``). So before
attaching, the search asks the cluster's GCS whether it takes a call without a token; if not, it attaches
with token authentication and the token Ray itself would use (``RAY_AUTH_TOKEN``, the file named by
``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``), or stops with one line saying what to set.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from edgeml.errors import InputError
from edgeml.search.workers import CORE_LOCKS_ENV
from edgeml.threads import WORKER_ENV

LOOPBACK = "127.0.0.1"
STATE_SAVE_PERIOD_S = "0.5"
CONNECT_TIMEOUT_S = 5.0
AUTH_MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
# Ray runs workers at nice +15 below its driver by default; the trials are the search's work, so a local
# search runs them at the driver's own priority (`nice edgeml search` still lowers everything). At +15 they
# yield to anything else on the machine, which starves W parallel trials far more than one.
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}


def ray_environment() -> None:
    """Before Ray starts: loopback only, no usage stats, Tune state saved twice a second, no big per-trial logs."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # else Ray binds the machine's interface address
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Tune's experiment state holds every trial, so saving it costs more as the search grows; at most twice a
    # second keeps the driver's share small, and --resume replays from trials.json what finished since.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_SAVE_PERIOD_S)
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # results carry the model; trials.json is our log
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address!r} is not HOST:PORT (the address `ray start --head` printed)")
    return host, int(port)


def connect(address: str | None, workers: int | None) -> dict:
    """Start a local loopback Ray with ``workers`` CPUs, or attach to ``address``; return what we ran on."""
    ray_environment()
    import ray

    options = {"runtime_env": {"env_vars": WORKER_ENV}, "log_to_driver": False, "logging_level": logging.ERROR,
               "configure_logging": True}
    if address:
        host, port = parse_address(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise InputError(f"no Ray cluster at {address} ({e.strerror or e}); start one with `ray start --head "
                             "--port PORT` or leave out --address for a local search") from None
        authenticate(f"{host}:{port}")
        ray.init(address=f"{host}:{port}", **options)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return {"engine": "ray", "address": f"{host}:{port}", "workers": workers or cpus,
                "nodes": [n["NodeID"] for n in ray.nodes() if n.get("Alive")]}
    workers = workers or os.cpu_count() or 1
    temp_dir = tempfile.mkdtemp(prefix="edgeml-ray-")  # our own session files, apart from anyone else's Ray
    if workers == len(os.sched_getaffinity(0)):
        options["runtime_env"] = {"env_vars": {**WORKER_ENV, CORE_LOCKS_ENV: temp_dir}}
    try:
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address=LOOPBACK, _temp_dir=temp_dir,
                 _system_config=LOCAL_SYSTEM_CONFIG, **options)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return {"engine": "ray", "address": None, "workers": workers,
            "nodes": [n["NodeID"] for n in ray.nodes() if n.get("Alive")], "temp_dir": temp_dir}


def disconnect(info: dict) -> None:
    """Leave Ray; a local search's session directory goes too (Ray leaves its logs and sockets behind,
    tens of MB per search)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if info.get("temp_dir"):
        remove_session_dir(Path(info["temp_dir"]))


def remove_session_dir(path: Path, timeout_s: float = 10.0) -> None:
    """Remove a local Ray's session directory; Ray's processes may still be writing their last logs into it
    while they exit (seen on a busy machine: an empty session folder left behind), so try again a while."""
    deadline = time.monotonic() + timeout_s
    while True:
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def local_token() -> tuple[str | None, str]:
    """The token Ray would use here and where it comes from, in Ray's own order of precedence."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip(), TOKEN_ENV
    path = Path(os.environ[TOKEN_PATH_ENV]) if os.environ.get(TOKEN_PATH_ENV) else Path.home() / ".ray" / "auth_token"
    try:
        return path.read_text().strip() or None, str(path)
    except OSError:
        return None, str(path)


def gcs_accepts(address: str, token: str | None) -> bool:
    """Whether the cluster's GCS answers a call carrying ``token`` (None: no token at all)."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(address) as channel:
        try:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=CONNECT_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                return False
            raise InputError(f"the Ray cluster at {address} does not answer ({e.details()}); check --address "
                             "(the address `ray start --head` printed)") from None
    return True


def authenticate(address: str) -> None:
    """Attach with token authentication when the cluster asks for it (see the module docstring)."""
    if gcs_accepts(address, None):
        return  # a cluster without authentication
    token, source = local_token()
    fix = (f"set {TOKEN_ENV} to the cluster's token (`ray get-auth-token` on its head node prints it) or put "
           "it in ~/.ray/auth_token")
    if os.environ.get(AUTH_MODE_ENV, "token").lower() != "token":
        raise InputError(f"the Ray cluster at {address} uses token authentication but {AUTH_MODE_ENV}="
                         f"{os.environ[AUTH_MODE_ENV]} here; unset {AUTH_MODE_ENV} (or set it to token) and {fix}")
    if token is None:
        raise InputError(f"the Ray cluster at {address} uses token authentication and this machine has no token "
                         f"({TOKEN_ENV} unset, no {source}); {fix}")
    if not gcs_accepts(address, token):
        raise InputError(f"the Ray cluster at {address} refuses the token from {source}; {fix}")
    os.environ[AUTH_MODE_ENV] = "token"
    # Ray reads RAY_AUTH_MODE into its cached config when imported; refresh it, as `ray.init()` does itself
    # when it turns token authentication on for a local cluster.
    from ray._raylet import Config

    Config.initialize("")
