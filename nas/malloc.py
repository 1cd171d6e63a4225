"""tcmalloc under the `nas` command: the process's malloc, preloaded where the system has it.

A training step of the protocol's small networks runs about 2,000 ops (BENCHMARKS.md, "A step's fixed cost"),
and each allocates its output: how fast malloc and free are shows in every step. gperftools' tcmalloc serves
them from per-thread caches. Measured on the 2-core Intel Xeon of BENCHMARKS.md ("tcmalloc under the `nas`
command", 2026-12-06), the `nas train` command of a confirm-protocol job ran 1.10-1.13x (mobile_former_151m) and
1.06x (mobilevit_xs) as fast with it as with glibc's malloc, with the same test top-1 to the digit and 4-10% less
peak memory (`bench/allocators.py`); jemalloc (0.86-0.91x) and mimalloc (1.00-1.02x) were not faster there.

How the command uses it (`nas.preload`): on Linux, where the library is found (`library()`: `NAS_TCMALLOC` names
one, else the system's gperftools `libtcmalloc_minimal.so.4`, which `scripts/setup.sh` installs from Debian's
libtcmalloc-minimal4), unless `--no-tcmalloc` is given or NAS_TCMALLOC=0 is set, the command re-executes itself
with it in LD_PRELOAD before anything imports torch. Ray's local workers inherit the environment, so trials run
with it too. Where it is not found nothing changes. malloc does no arithmetic: every number is the same.
`active()` says whether this process runs on it; run.yaml's `runtime.tcmalloc` and environment.json record it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_SWITCH = "NAS_TCMALLOC"  # "0": glibc's malloc; a path: that library
FLAG = "--no-tcmalloc"
NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")  # gperftools; the minimal one has no profiler
DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
# tcmalloc reports each allocation of 1 GiB or more on stderr by default (a dataset held in memory can be one)
QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


def library() -> Path | None:
    """The tcmalloc to preload: NAS_TCMALLOC's path where it names one (ConfigError where that is not a file),
    else the first of `NAMES` in the system's library folders or this Python's prefix (conda's gperftools); None
    where there is none or on another OS than Linux."""
    if sys.platform != "linux":
        return None
    named = os.environ.get(ENV_SWITCH, "")
    if named not in ("", "0", "1"):
        if not Path(named).is_file():
            from nas.errors import ConfigError

            raise ConfigError(f"{ENV_SWITCH}={named} is not a file",
                              f"point {ENV_SWITCH} at a tcmalloc library (e.g. /usr/lib/x86_64-linux-gnu/"
                              f"libtcmalloc_minimal.so.4), set {ENV_SWITCH}=0 for glibc's malloc, or unset it")
        return Path(named)
    return find(NAMES)


def find(names: tuple[str, ...]) -> Path | None:
    """The first of the shared libraries `names` in the system's library folders or this Python's prefix."""
    for d in (*DIRS, os.path.join(sys.prefix, "lib")):
        for name in names:
            p = Path(d) / name
            if p.is_file():
                return p
    return None


def wanted(argv: list[str]) -> bool:
    return sys.platform == "linux" and os.environ.get(ENV_SWITCH, "1") != "0" and FLAG not in argv


def active() -> bool:
    """Whether tcmalloc is mapped into this process (preloaded, it serves every malloc)."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            return any("libtcmalloc" in line for line in f)
    except OSError:
        return False


__all__ = ["library", "find", "wanted", "active", "FLAG", "ENV_SWITCH", "QUIET"]
