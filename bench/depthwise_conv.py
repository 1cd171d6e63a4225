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
`bench/profile_step.py`'s set-up, oneDNN running all of them), with the machine load before and after.

Since 6b512ac, `nas.blocks.common.Conv2d` runs the depthwise convs with a channel multiplier, and those on maps
of at most 2x2, in `nas.dwconv`'s C kernel (at one thread). The table's last columns time the kernel's forward
and both backward passes together on each shape and say which shapes `Conv2d` routes to it. With
`--step-rounds N`, the trainer's whole step is then timed with the kernel and without it (NAS_DWCONV=0: oneDNN
for every depthwise conv), in fresh processes started as the `nas` command starts its jobs (`nas.preload`),
alternating which goes first, N rounds of 40 steps after 5 warm-up steps: the median step of each, and with
the kernel over without as a geometric mean with a 95% t interval (`nas.stats`).

    .venv/bin/python bench/depthwise_conv.py --archs mobile_former_151m --step-rounds 6
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
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


def _kernel(batch: int, ci: int, h: int, co: int, s: int) -> tuple[float | None, bool]:
    """ms of `nas.dwconv`'s forward and both backward passes together on one shape (None where it is not built),
    and whether `Conv2d` takes it there (at one thread)."""
    from nas import dwconv

    x = torch.randn(batch, ci, h, h).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(co, 1, 3, 3, requires_grad=True)
    routed = dwconv.wanted(torch.nn.Conv2d(ci, co, 3, s, 1, groups=ci, bias=False), x)
    if not dwconv.active():
        return None, routed
    g = torch.randn_like(dwconv.forward(x, w, s))
    return _ms(lambda: torch.autograd.grad(dwconv.conv(x, w, s), (x, w), g)), routed


def table(arch: str, batch: int, model: torch.nn.Module, prep) -> None:
    from nas.train import load_proxy

    shapes = _depthwise(model, batch, load_proxy("confirm").resolution, prep.train_x.shape[1])
    gbs = _copy_gbs()
    print(f"\n### {arch}: {len(shapes)} depthwise shapes, batch {batch}, 1 thread (copy rate {gbs:.0f} GB/s)\n")
    print("| in, side, out, stride | forward ms | backward to input ms | backward to weight ms | sum ms | floor ms "
          "| nas.dwconv: all three ms | Conv2d takes it |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    tot = [0.0, 0.0]
    routed_tot = [0.0, 0.0]
    for ci, h, co, s in shapes:
        f, d, wg, io = _passes(batch, ci, h, co, s)
        k, routed = _kernel(batch, ci, h, co, s)
        floor = 3 * io / gbs  # each pass reads or writes both maps once, at least
        tot[0] += f + d + wg
        tot[1] += floor
        if routed and k is not None:
            routed_tot[0] += f + d + wg
            routed_tot[1] += k
        kcell = "-" if k is None else f"{k:.3f}"
        print(f"| {ci}, {h}x{h}, {co}, {s} | {f:.3f} | {d:.3f} | {wg:.3f} | {f + d + wg:.3f} | {floor:.3f} | {kcell} "
              f"| {'yes' if routed else 'no'} |")
    print(f"| all | | | | {tot[0]:.2f} | {tot[1]:.2f} | | |")
    if routed_tot[0]:
        print(f"\nThe shapes `Conv2d` takes to the kernel: oneDNN {routed_tot[0]:.2f} ms, the kernel {routed_tot[1]:.2f} ms "
              f"({routed_tot[0] / routed_tot[1]:.2f}x)")


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


STEP = r"""
import json, sys
sys.path.insert(0, "bench")
from pointwise_conv import _ms
from profile_step import _setup
from nas import dwconv
model, _opt, _crit, _prep, _bs, _batch, step = _setup(sys.argv[1], int(sys.argv[2]), 1)
model.train()
print(json.dumps({"ms": _ms(step, 40), "kernel": dwconv.active()}))
"""


def step_rounds(arch: str, batch: int, rounds: int) -> None:
    """The trainer's step with the kernel and without (NAS_DWCONV=0), fresh processes, alternating."""
    from nas.preload import env_for_jobs
    from nas.stats import summarize, t_interval

    ms: dict[str, list[float]] = {"1": [], "0": []}
    for r in range(rounds):
        for on in (("1", "0") if r % 2 == 0 else ("0", "1")):
            load = _load()
            out = subprocess.run([sys.executable, "-c", STEP, arch, str(batch)], cwd=ROOT,
                                 env={**env_for_jobs(), "NAS_DWCONV": on}, capture_output=True, text=True, check=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            ms[on].append(got["ms"])
            print(f"  {arch} round {r + 1} {'with the kernel' if on == '1' else 'oneDNN only    '} {got['ms']:7.1f} ms "
                  f"(kernel active: {got['kernel']}; load {load})", flush=True)
    s = summarize([math.log(b / a) for a, b in zip(ms["1"], ms["0"])])
    lo, hi = t_interval(s.mean, s.sd, s.n)
    ci = f" [{math.exp(lo):.3f}, {math.exp(hi):.3f}]" if s.n > 1 else " (1 round: no interval)"
    print(f"\n{arch}, batch {batch}, 1 thread: a step with oneDNN only over a step with the kernel "
          f"{math.exp(s.mean):.3f}x{ci}, n={s.n} rounds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--step-rounds", type=int, default=0,
                    help="also time whole steps with nas.dwconv's kernel and without, in N rounds of fresh processes")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from nas import dwconv

    print(f"load before {_load()}; {os.cpu_count()} cores; nas.dwconv's kernel built: {dwconv.active()}")
    for arch in a.archs:
        model, _opt, _crit, prep, _bs, _batch, step = _setup(arch, a.batch, 1)  # one set-up serves both
        table(arch, a.batch, model, prep)
        wanted = dwconv.wanted
        dwconv.wanted = lambda *_: False  # the share of oneDNN's depthwise convolutions, all of them in oneDNN
        try:
            step_share(arch, model, step)
        finally:
            dwconv.wanted = wanted
        if a.step_rounds:
            step_rounds(arch, a.batch, a.step_rounds)
    print(f"\nload after {_load()}")


if __name__ == "__main__":
    main()
