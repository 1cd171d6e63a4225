"""A pointwise convolution (1x1, stride 1, no groups) of a channels_last map on the CPU: oneDNN's convolution
against `F.linear` on the map's NHWC view (what `nas.blocks.common.Conv2d` runs), forward alone and forward +
backward, at the pointwise shapes of Mobile-Former-151M and MobileViT-XS at 32 px, batch 16, 1 thread.

    LD_PRELOAD=~/.cache/hybrid-nas/mkl_intel_path.so .venv/bin/python bench/pointwise_conv.py [--batch 16]

(the preload is what `nas` itself runs with on an AMD CPU: `nas.blas`). Prints ms per call (median of 30 after 5
warm-up calls) and the largest gap between the two outputs, with the machine load before and after.

    .venv/bin/python bench/pointwise_conv.py --jobs [--archs mobile_former_151m mobilevit_xs] [--repeats 3]

`--jobs` times whole confirm-protocol jobs instead (`bench/speed_vs.py`'s job: `train_arch(..., final=True)`,
1 thread), with the shortcut on and off (`nas.blocks.common.pointwise_as_linear` forced), alternating
fresh processes so that both see the same load: the A/B of the gate on this machine's CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

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


def jobs(archs: list[str], repeats: int) -> None:
    """Whole jobs with the shortcut on and off (`speed_vs.job`, the gate forced before anything is built),
    alternating fresh processes; medians and off/on."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from speed_vs import ROOT, job

    for arch in archs:
        t: dict[str, list[float]] = {"on": [], "off": []}
        for i in range(repeats):
            for gate in ("on", "off") if i % 2 == 0 else ("off", "on"):
                load = os.getloadavg()[0]
                r = job(ROOT, arch, prelude=f"import nas.blocks.common as c; c._POINTWISE_AS_LINEAR = {gate == 'on'}\n")
                t[gate].append(r["wall_s"])
                print(f"  {arch:<20} shortcut {gate:<3} {r['wall_s']:6.1f} s, training {r['train_s']:5.1f} s, "
                      f"test {r['test_top1']}  (load {load:.1f})", flush=True)
        on, off = statistics.median(t["on"]), statistics.median(t["off"])
        print(f"{arch}: shortcut off {off:.1f} s, on {on:.1f} s (medians of {repeats}): off/on {off / on:.2f}x",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--jobs", action="store_true", help="whole confirm jobs with the shortcut on and off")
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.jobs:
        print("load before:", open("/proc/loadavg").read().split()[:3], flush=True)
        jobs(a.archs, a.repeats)
        return
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
