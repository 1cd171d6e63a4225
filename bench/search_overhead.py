"""Search overheads on this machine: threads per trial (1x2 vs 2x1 cores) and a tiny end-to-end search.

    OMP_NUM_THREADS=1 python bench/search_overhead.py            # prints the figures for BENCHMARKS.md "Search"
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def throughput(threads: int, steps: int = 4) -> float:
    """Training images/s of an in-band (150-300M) network at the default proxy resolution."""
    from nas.builder import build_model
    from nas.proxy import load_proxy
    from nas.space import load_space, replay, screen_budget

    space = load_space()
    sc = screen_budget(space, 300_000_000, min_budget=0.5, samples=500)
    arch = replay(sc.in_band_params[len(sc.in_band_params) // 2], space)
    p = load_proxy()
    torch.set_num_threads(threads)
    model = build_model(arch, num_classes=10, in_chans=1, input_size=p.resolution)
    opt = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(p.batch_size, 1, p.resolution, p.resolution), torch.randint(0, 10, (p.batch_size,))
    best = float("inf")
    for _ in range(steps):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t)
    return p.batch_size / best


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
