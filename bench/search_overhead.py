"""Search overheads on this machine: threads per trial (1x2 vs 2x1 cores) and a tiny end-to-end search.

    OMP_NUM_THREADS=1 python bench/search_overhead.py            # prints the figures for BENCHMARKS.md "Search"
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path


def throughput(threads: int, steps: int = 3) -> float:
    """Training images/s of an in-band (150-300M) network under the default proxy: the trainer's own step
    (`nas.train.time_steps`) on Fashion-MNIST."""
    from nas.data import load_dataset
    from nas.space import load_space, replay, screen_budget
    from nas.train import load_proxy, time_steps

    space = load_space()
    sc = screen_budget(space, 300_000_000, min_budget=0.5, samples=500)
    arch = replay(sc.in_band_params[len(sc.in_band_params) // 2], space)
    return 1.0 / time_steps(arch, load_proxy(), load_dataset(), steps=steps, threads=threads)


def tiny_search() -> float:
    root = Path(tempfile.mkdtemp())
    (root / "proxy.yaml").write_text("resolution: 16\nepochs: 2\ntrain_images: 256\nval_images: 128\nbatch_size: 64\n")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nas", "search", "--budget", "3M", "--space", "search_spaces/tiny.yaml",
                    "--proxy", str(root / "proxy.yaml"), "--trials", "3", "--results", str(root)], check=True,
                   capture_output=True)
    return time.perf_counter() - t


if __name__ == "__main__":
    for th in (1, 2):
        print(f"{th} thread(s): {throughput(th):.1f} train images/s")
    print(f"tiny search (3 trials, 2 epochs of 256 images, Ray start included): {tiny_search():.1f} s")
