"""Depthwise 3x3 convolutions (groups = in channels) of channels_last maps on the CPU, as a training step runs
them: forward, backward to the input and backward to the weight, each timed alone at every depthwise shape of
the in-band networks at 32 px (batch 16, 1 thread), against the least time the memory allows. Mobile-Former's
have a channel multiplier (out = in x dw_mult); oneDNN runs those with its generic grouped kernel, not its
depthwise one, and its weight gradient on 2x2 maps takes the generic kernel too (ONEDNN_VERBOSE=1 names the
kernel of each call).

    .venv/bin/python bench/depthwise_conv.py [--archs mobile_former_151m mobilevit_xs] [--batch 16]

Prints a Markdown table per network: each depthwise conv's shape (in channels, map side, out channels, stride),
ms per call of the three passes (median of 30 after 5 warm-up calls), their sum, and the floor: the bytes of its
input and output maps read or written once per pass at this process's copy rate (a copy of an 8 MiB map). Then
the depthwise convolutions' share of a whole training step by torch.profiler (the trainer's own step,
`bench/profile_step.py`'s set-up), with the machine load before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pointwise_conv import _ms  # noqa: E402  (bench/ is on sys.path when run as a script)
from profile_step import _load, _setup  # noqa: E402


def _depthwise(model: torch.nn.Module, batch: int, res: int, chans: int) -> list[tuple[int, int, int, int]]:
    """(in channels, map side, out channels, stride) of each distinct depthwise conv, in forward order."""
    seen: list[tuple[int, int, int, int]] = []

    def hook(m, inp, _out):
        key = (m.in_channels, inp[0].shape[-1], m.out_channels, m.stride[0])
        if key not in seen:
            seen.append(key)

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1 and m.kernel_size == (3, 3)]
    with torch.no_grad():
        model(torch.randn(batch, chans, res, res).contiguous(memory_format=torch.channels_last))
    for h in hs:
        h.remove()
    return seen


def _copy_gbs() -> float:
    a = torch.randn(2 << 20)
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / 1e6 / _ms(lambda: b.copy_(a))  # read + write, GB/s


def _passes(batch: int, ci: int, h: int, co: int, s: int) -> tuple[float, float, float, float]:
    """ms of the forward, the backward to the input and the backward to the weight of one depthwise conv, and
    the MB of its input and output maps."""
    x = torch.randn(batch, ci, h, h).contiguous(memory_format=torch.channels_last)
    w = torch.randn(co, 1, 3, 3)
    y = F.conv2d(x, w, None, s, 1, 1, ci)
    g = torch.randn_like(y)
    cb = torch.ops.aten.convolution_backward
    args = ([s, s], [1, 1], [1, 1], False, [0, 0], ci)
    f = _ms(lambda: F.conv2d(x, w, None, s, 1, 1, ci))
    d = _ms(lambda: cb(g, x, w, None, *args, [True, False, False]))
    wg = _ms(lambda: cb(g, x, w, None, *args, [False, True, False]))
    return f, d, wg, (x.numel() + y.numel()) * 4 / 1e6


def table(arch: str, batch: int, model: torch.nn.Module, prep) -> None:
    from nas.train import load_proxy

    shapes = _depthwise(model, batch, load_proxy("confirm").resolution, prep.train_x.shape[1])
    gbs = _copy_gbs()
    print(f"\n### {arch}: {len(shapes)} depthwise shapes, batch {batch}, 1 thread (copy rate {gbs:.0f} GB/s)\n")
    print("| in, side, out, stride | forward ms | backward to input ms | backward to weight ms | sum ms | floor ms |")
    print("|---|---:|---:|---:|---:|---:|")
    tot = [0.0, 0.0]
    for ci, h, co, s in shapes:
        f, d, wg, io = _passes(batch, ci, h, co, s)
        floor = 3 * io / gbs  # each pass reads or writes both maps once, at least
        tot[0] += f + d + wg
        tot[1] += floor
        print(f"| {ci}, {h}x{h}, {co}, {s} | {f:.3f} | {d:.3f} | {wg:.3f} | {f + d + wg:.3f} | {floor:.3f} |")
    print(f"| all | | | | {tot[0]:.2f} | {tot[1]:.2f} |")


def step_share(arch: str, model: torch.nn.Module, step, steps: int = 12) -> None:
    from torch.profiler import ProfilerActivity, profile

    model.train()
    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    ms = 1e3 * (time.perf_counter() - t) / steps
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    ev = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in ev)
    dw = 0.0
    for e in ev:
        if e.key in ("aten::mkldnn_convolution", "aten::convolution_backward") and e.input_shapes:
            w = e.input_shapes[2 if e.key == "aten::convolution_backward" else 1]
            if len(w) == 4 and w[1] == 1 and w[2] == 3:
                dw += e.self_cpu_time_total
    print(f"\n{arch}: {ms:.1f} ms a step unprofiled; depthwise convolutions (forward and backward) "
          f"**{100 * dw / total:.1f}%** of the profiled step's self time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load before {_load()}; {os.cpu_count()} cores")
    for arch in a.archs:
        model, _opt, _crit, prep, _bs, _batch, step = _setup(arch, a.batch, 1)  # one set-up serves both
        table(arch, a.batch, model, prep)
        step_share(arch, model, step)
    print(f"\nload after {_load()}")


if __name__ == "__main__":
    main()
