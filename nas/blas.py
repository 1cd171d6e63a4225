"""MKL's fast code path on AMD CPUs: the `nas` command runs with a one-function shim preloaded.

torch's CPU wheels link Intel's MKL for fp32 matrix products (linear layers, attention's products). MKL picks
its kernels by CPU vendor: on an AMD CPU it takes a generic AVX2 path even where the CPU has AVX-512. Measured
on the 2-core AMD EPYC of BENCHMARKS.md ("MKL on AMD"): a [4096, 144] x [144, 288] product at 1 thread runs
~96 GFLOP/s through MKL and ~235 through oneDNN (which dispatches by CPU features); with MKL's vendor check
answered "Intel" MKL runs ~230. MKL's vendor check is one exported function, `mkl_serv_intel_cpu_true`; a
shared library that defines it to return 1, preloaded (LD_PRELOAD) before torch loads, makes MKL choose its
kernels by the CPU's features as it does on Intel (MKL still checks each instruction set it uses).

How the command uses it (`nas.preload.reexec`, called by the `nas` entry point before anything imports torch):
on Linux x86-64 with an AMD CPU, unless `--no-mkl-intel-path` is given or NAS_MKL_INTEL_PATH=0 is set, the
shim is compiled once with the system's C compiler into the user's cache folder and the command re-executes
itself with it preloaded. Ray's local workers inherit the environment, so trials run with it too. Without a C
compiler, or on another CPU, nothing changes. Same network and precision (fp32); other kernels sum in another
order, so numbers differ in the last bits and a trained network's accuracy moves within seed noise, as with a
different thread count (the baseline cache does not key on it, as it does not key on threads).
`active()` says whether this process has it; run.yaml's `runtime.mkl_intel_path` and environment.json record it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ENV_SWITCH = "NAS_MKL_INTEL_PATH"  # "0": never preload the shim
FLAG = "--no-mkl-intel-path"
SHIM_SOURCE = "/* hybrid-nas: MKL chooses its kernels by CPU features, as on Intel */\n" \
              "int mkl_serv_intel_cpu_true(void) { return 1; }\n"
SHIM_NAME = "mkl_intel_path.so"


def amd_x86() -> bool:
    """Linux on an x86-64 AMD CPU (the case where MKL takes its generic path)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return "AuthenticAMD" in line
    except OSError:
        return False
    return False


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hybrid-nas"


def build_shared(so: Path, source: Path | str, flags: list[str]) -> Path | None:
    """`so` built from `source` (a C file, or its text) with the system's C compiler (`cc`/`gcc`) and `flags`
    where it is not there yet; None where it cannot be built. Concurrent first uses each build their own and one
    wins (an atomic rename); the shim here and `nas.dwconv`'s kernel are built this way."""
    if so.is_file():
        return so
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    tmp = so.parent / f"{so.name}.{os.getpid()}.tmp"
    src = so.parent / f"{so.stem}.{os.getpid()}.c" if isinstance(source, str) else source
    try:
        so.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, str):
            src.write_text(source)
        subprocess.run([cc, *flags, "-o", str(tmp), str(src)], check=True, capture_output=True, timeout=120)
        os.replace(tmp, so)
    except (OSError, subprocess.SubprocessError):
        tmp.unlink(missing_ok=True)
        return None
    finally:
        if isinstance(source, str):
            src.unlink(missing_ok=True)
    return so


def shim_path() -> Path | None:
    """The compiled shim (built on first use with `cc`/`gcc`; None where no compiler can build it)."""
    return build_shared(cache_dir() / SHIM_NAME, SHIM_SOURCE, ["-shared", "-fPIC", "-O2"])


def wanted(argv: list[str]) -> bool:
    return amd_x86() and os.environ.get(ENV_SWITCH, "1") != "0" and FLAG not in argv


def env_with_shim(env: dict[str, str] | None = None) -> dict[str, str] | None:
    """`env` (default: this process's) with the shim added to LD_PRELOAD; None where it cannot be built or is
    not wanted here (benches start their job processes with it)."""
    from nas.preload import with_libraries  # nas.preload imports this module

    so = shim_path() if wanted([]) else None
    return None if so is None else with_libraries(dict(os.environ if env is None else env), [str(so)])


def active() -> bool:
    """Whether MKL in this process takes its Intel kernel path on an AMD CPU (the shim answers MKL's check)."""
    if not amd_x86():
        return False
    import ctypes

    try:
        fn = ctypes.CDLL(None).mkl_serv_intel_cpu_true  # the preloaded shim comes first in the global scope
    except (AttributeError, OSError):
        return False
    fn.restype = ctypes.c_int
    return bool(fn())


__all__ = ["amd_x86", "shim_path", "wanted", "env_with_shim", "active", "FLAG", "ENV_SWITCH"]
