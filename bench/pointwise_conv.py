"""A pointwise convolution (1x1, stride 1, no groups) of a channels_last map on the CPU: oneDNN's convolution
against `F.linear` on the map's NHWC view (what `nas.blocks.common.Conv2d` runs), forward alone and forward +
backward, at the pointwise shapes of Mobile-Former-151M and MobileViT-XS at 32 px, batch 16, 1 thread.

    LD_PRELOAD=~/.cache/hybrid-nas/mkl_intel_path.so .venv/bin/python bench/pointwise_conv.py [--batch 16]

(the preload is what `nas` itself runs with on an AMD CPU: `nas.blas`). Prints ms per call (median of 30 after 5
warm-up calls) and the largest gap between the two outputs, with the machine load before and after.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# (in channels, map side, out channels): MobileViT-XS's expansions and projections at 32 px (stem stride 1),
# Mobile-Former-151M's at its 16x16 and 8x8 stages
SHAPES = [(32, 32, 128), (128, 32, 32), (16, 32, 64), (64, 32, 32), (48, 16, 192), (192, 16, 48), (128, 16, 48),
          (96, 8, 384)]


def _ms(f, n: int = 30) -> float:
    for _ in range(5):
        f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return 1e3 * sorted(ts)[n // 2]


def shape_row(batch: int, ci: int, h: int, co: int) -> str:
    """One table row: both ways of one pointwise conv, timed."""
    x = torch.randn(batch, ci, h, h).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (0.1 * torch.randn(co, ci, 1, 1)).requires_grad_()
    g = torch.randn(batch, co, h, h).contiguous(memory_format=torch.channels_last)

    def conv() -> torch.Tensor:
        return F.conv2d(x, w)

    def lin() -> torch.Tensor:
        return F.linear(x.permute(0, 2, 3, 1), w.view(co, ci)).permute(0, 3, 1, 2)

    with torch.no_grad():
        gap = float((conv() - lin()).abs().max())
        fc, fl = _ms(conv), _ms(lin)
    bc, bl = _ms(lambda: conv().backward(g)), _ms(lambda: lin().backward(g))
    return f"| {ci}, {h}x{h}, {co} | {fc:.3f} / {fl:.3f} | {bc:.3f} / {bl:.3f} | {bc / bl:.2f}x | {gap:.1e} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from nas.runtime import Runtime

    Runtime(threads=1).apply()  # the trainer's allocator setting
    print("load before:", open("/proc/loadavg").read().split()[:3])
    print("| in, map, out | forward: conv / linear ms | forward + backward: conv / linear ms | ratio | max gap |")
    print("|---|---:|---:|---:|---:|")
    for ci, h, co in SHAPES:
        print(shape_row(a.batch, ci, h, co), flush=True)
    print("load after:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
