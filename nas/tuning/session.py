"""The Ray session: start or join it quietly, fail fast on an unreachable cluster, keep its logs.

`init_ray` notes Ray's session folder (from `ray.init`'s own answer) in the run's ray/ folder and
`shutdown_ray` copies Ray's logs there. Only public Ray API is used.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import optuna
import ray

from nas.errors import RunError

ADDRESS_FIX = ("start one there (`ray start --head` prints its address), pass the address it printed, "
               "or drop --address to run on this machine")
_SESSION: dict[str, str] = {}  # the session folder of the Ray this process started (from ray.init's answer)


def init_ray(*, address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             log_dir: Path | None = None) -> dict[str, Any]:
    """Start (or connect to) Ray quietly: no dashboard, workers' logs not streamed to the terminal."""
    if ray.is_initialized():
        return {"address": "existing", "resources": ray.cluster_resources()}
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "2")
    quiet()
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if address:  # an existing cluster: its own resources and dashboard settings stand
        check_reachable(address)
        try:
            ctx = ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
            raise RunError(f"no Ray cluster at --address {address}: {str(e).splitlines()[0][:200]}",
                           ADDRESS_FIX) from None
    else:
        ctx = ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **kwargs)
    _SESSION.clear()
    session = str((getattr(ctx, "address_info", None) or {}).get("session_dir") or "")
    if session:
        _SESSION["dir"] = session
    info = {"address": address or "local", "resources": ray.cluster_resources(),
            "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
    if session:
        info["session_dir"] = session
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "ray_session.txt").write_text(f"{session}/logs\n")
    return info


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT where nothing listens (ray.init would retry for minutes, logging each try)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--address {address!r} is not HOST:PORT", f"e.g. --address 10.0.0.5:6379; or {ADDRESS_FIX}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise RunError(f"no Ray cluster answers at --address {address} ({e.strerror or type(e).__name__})",
                       ADDRESS_FIX) from None


def quiet() -> None:
    """One progress line instead of Ray's and Optuna's log flood (their logs stay in Ray's session folder)."""
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna\..*")
    for name in ("ray", "ray.tune", "ray.train", "ray._private", "ray.util"):
        logging.getLogger(name).setLevel(logging.ERROR)


def shutdown_ray(*, keep_logs_in: Path | None = None) -> None:
    """Stop the local Ray session; with `keep_logs_in`, first copy its logs there (they live under Ray's
    temp dir, whose socket paths are too long to put inside a run folder)."""
    if not ray.is_initialized():
        return
    session = _SESSION.pop("dir", None) if keep_logs_in is not None else None
    ray.shutdown()
    if session:
        import shutil

        src = Path(session) / "logs"
        try:
            shutil.copytree(src, keep_logs_in, dirs_exist_ok=True,
                            ignore=lambda _d, names: [n for n in names if n.endswith((".sock", ".lock"))])
        except (OSError, shutil.Error) as e:  # logs are a convenience: never fail a finished run over them
            logging.getLogger(__name__).warning("could not copy Ray's logs from %s: %s", src, e)


__all__ = ["init_ray", "shutdown_ray", "check_reachable", "quiet", "ADDRESS_FIX"]
