"""The libraries the `nas` command starts with preloaded, before anything imports torch.

Two, each wanted only where it helps and where it can be had: the MKL shim on an AMD CPU (`nas.blas`) and
tcmalloc (`nas.malloc`). `reexec` re-executes `python -m nas ARGV` once with the missing ones added to LD_PRELOAD;
the environment carries them to every process the command starts (Ray's local workers, benches' jobs).
"""

from __future__ import annotations

import os
import sys

from nas import blas, malloc


def libraries(argv: list[str]) -> list[str]:
    """The paths to preload for a command run with `argv` on this machine (built or found; none may be)."""
    out = []
    if blas.wanted(argv):
        so = blas.shim_path()
        if so is not None:
            out.append(str(so))
    if malloc.wanted(argv):
        so = malloc.library()
        if so is not None:
            out.append(str(so))
    return out


def with_libraries(env: dict[str, str], libs: list[str]) -> dict[str, str]:
    """`env` with `libs` in LD_PRELOAD (after what is there), and tcmalloc's large-allocation reports off."""
    env = dict(env)
    have = env.get("LD_PRELOAD", "").split()
    env["LD_PRELOAD"] = " ".join(dict.fromkeys([*have, *libs]))  # each once, in order
    if any("tcmalloc" in x for x in libs):
        for k, v in malloc.QUIET.items():
            env.setdefault(k, v)
    return env


def env_for_jobs(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) as the `nas` command would run its jobs here: benches start the
    processes they time with it."""
    return with_libraries(dict(os.environ if env is None else env), libraries([]))


def reexec(argv: list[str]) -> None:
    """Re-execute `python -m nas ARGV` with the wanted libraries preloaded where one is missing (returns where
    none is, or where this process is already the re-executed one; does not return when it re-executes)."""
    if not sys.executable or os.environ.get("_NAS_REEXEC") == "1":
        return
    libs = libraries(argv)
    if all(x in os.environ.get("LD_PRELOAD", "").split() for x in libs):
        return
    env = with_libraries(dict(os.environ), libs)
    env["_NAS_REEXEC"] = "1"  # never twice, whatever the loader did with LD_PRELOAD
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "nas", *argv], env)


__all__ = ["libraries", "with_libraries", "env_for_jobs", "reexec"]
