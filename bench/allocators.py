"""malloc against malloc under the same `nas train` command: glibc's, and each of tcmalloc, jemalloc and mimalloc
found on the system, side by side in one run (allocators rotated round by round, each job a fresh process).

    .venv/bin/python bench/allocators.py [--archs mobile_former_151m mobilevit_xs] [--rounds 5] \\
        [--allocators glibc tcmalloc jemalloc mimalloc]

Each job is `python -m nas train ARCH --proxy confirm --final --threads 1 --no-progress`, timed from the process's
start to its end, with its peak resident memory (`ru_maxrss` of the child) and test top-1: an allocator changes no
number, so every allocator's top-1 must be the same. glibc's runs are the command with `--no-tcmalloc`; the others
preload the library themselves (`LD_PRELOAD`, `_NAS_REEXEC=1` so the command does not add its own), after the MKL
shim where the command preloads one (AMD CPUs, `nas.blas`): every side runs the same products, and only the
allocator differs (without the shim an AMD CPU runs MKL's generic kernels and another arithmetic). Debian:
`apt-get install libtcmalloc-minimal4 libjemalloc2 libmimalloc2.0`. Prints per allocator the median seconds and,
against glibc, the geometric mean of the side-by-side ratios with a 95% t interval.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from speed_vs import cpu, paired_ratio  # noqa: E402

from nas.blas import env_with_shim  # noqa: E402
from nas.malloc import find  # noqa: E402

LIBS = {"tcmalloc": "libtcmalloc_minimal.so.4", "jemalloc": "libjemalloc.so.2", "mimalloc": "libmimalloc.so.2"}


def library(name: str) -> str | None:
    p = find((LIBS[name],))
    return None if p is None else str(p)


def job(arch: str, allocator: str, lib: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "_NAS_REEXEC", "NAS_TCMALLOC")}
    extra = ["--no-tcmalloc"]
    if lib is not None:
        env = env_with_shim(env) or env  # the MKL shim first, where the command would preload it (AMD CPUs)
        env.update(LD_PRELOAD=" ".join(filter(None, [env.get("LD_PRELOAD"), lib])), _NAS_REEXEC="1")
        extra = []
    with tempfile.TemporaryDirectory() as tmp:
        out, log = Path(tmp) / "m.json", Path(tmp) / "log.txt"
        t = time.perf_counter()
        with open(log, "wb") as f:
            p = subprocess.Popen([sys.executable, "-m", "nas", "train", arch, "--proxy", "confirm", "--final",
                                  "--threads", "1", "--no-progress", "--out", str(out), *extra], cwd=ROOT, env=env,
                                 stdout=f, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(p.pid, 0)  # this child's own peak resident memory
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{arch} under {allocator} failed:\n{log.read_text()[-2000:]}")
        m = json.loads(out.read_text())
    return {"wall_s": wall, "rss_mb": usage.ru_maxrss / 1024, "test_top1": m["test_top1"],
            "tcmalloc": m["runtime"].get("tcmalloc"), "mkl_intel_path": m["runtime"].get("mkl_intel_path")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--allocators", nargs="+", default=["glibc", "tcmalloc", "jemalloc", "mimalloc"],
                    choices=["glibc", *LIBS])
    a = ap.parse_args()
    sides = [(n, None if n == "glibc" else library(n)) for n in a.allocators]
    missing = [n for n, lib in sides if n != "glibc" and lib is None]
    sides = [(n, lib) for n, lib in sides if n not in missing]
    print(f"machine: {cpu()}; load before {os.getloadavg()[0]:.1f}; allocators: "
          f"{', '.join(n for n, _ in sides)}{'; not found: ' + ', '.join(missing) if missing else ''}")
    for arch in a.archs:
        t: dict[str, list[float]] = {n: [] for n, _ in sides}
        for i in range(a.rounds):
            for name, lib in sides[i % len(sides):] + sides[:i % len(sides)]:  # rotated: each sees every slot
                load = os.getloadavg()[0]
                r = job(arch, name, lib)
                t[name].append(r["wall_s"])
                print(f"  {arch:<20} {name:<9} {r['wall_s']:6.1f} s  peak RSS {r['rss_mb']:4.0f} MB  test {r['test_top1']}  "
                      f"runtime.tcmalloc {r['tcmalloc']}  mkl_intel_path {r['mkl_intel_path']}  (load {load:.1f})", flush=True)
        for name, _ in sides:
            line = f"{arch}: {name} {statistics.median(t[name]):.1f} s (median of {a.rounds})"
            if name != "glibc" and "glibc" in t:
                line += f"; glibc/{name}: {paired_ratio(t['glibc'], t[name])}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
