"""fp32 matrix products at 1 thread: MKL as torch calls it, MKL with its vendor check answered "Intel" (the
shim the `nas` command preloads on AMD CPUs, `nas.blas`), and oneDNN (which picks kernels by CPU features), at
the shapes of the hybrid networks' linear layers (rows = batch x tokens). Each setting runs in a fresh process;
GFLOP/s is the best of 7 rounds of 20 products after 5 warm-up ones.

    .venv/bin/python bench/mkl_on_amd.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(4096, 144, 288), (4096, 288, 144), (2048, 192, 384), (256, 768, 192), (96, 192, 192), (8192, 96, 192)]
PROBE = """
import json, sys, time, torch
torch.set_num_threads(1)
onednn = sys.argv[1] == "onednn"
out = {}
for m, k, n in json.loads(sys.argv[2]):
    x, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
    if onednn:
        xm, wm = x.to_mkldnn(), w.to_mkldnn()
        fn = lambda: torch._C._nn.mkldnn_linear(xm, wm, b)
    else:
        fn = lambda: torch.nn.functional.linear(x, w, b)
    for _ in range(5):
        fn()
    best = 1e9
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(20):
            fn()
        best = min(best, (time.perf_counter() - t) / 20)
    out[f"{m}x{k}x{n}"] = 2 * m * k * n / best / 1e9
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from nas.blas import amd_x86, env_with_shim

    base = {**os.environ, "OMP_NUM_THREADS": "1"}
    base.pop("LD_PRELOAD", None)
    shim = env_with_shim(base)
    settings = [("MKL (torch's default)", "mkl", base), ("oneDNN", "onednn", base)]
    if shim is not None:
        settings.insert(1, ("MKL, Intel kernels (shim)", "mkl", shim))
    print(f"AMD x86-64: {amd_x86()}; shim: {'yes' if shim else 'not available here'}; load {os.getloadavg()[0]:.1f}")
    res: dict[str, list[dict]] = {}
    for _ in range(a.rounds):
        for name, kind, env in settings:
            out = subprocess.run([sys.executable, "-c", PROBE, kind, json.dumps(SHAPES)], env=env, capture_output=True,
                                 text=True, check=True).stdout
            res.setdefault(name, []).append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'rows x in x out':<16}" + "".join(f"{n:>28}" for n, _, _ in settings) + "   GFLOP/s, best of rounds")
    for m, k, n in SHAPES:
        key = f"{m}x{k}x{n}"
        print(f"{key:<16}" + "".join(f"{max(r[key] for r in res[s]):28.1f}" for s, _, _ in settings))
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
