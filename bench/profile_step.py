"""Where a training step and an evaluation spend their time: torch.profiler over the trainer's own step
(`nas.train.train_step` on `nas.train.train_batch` batches) and `nas.train.evaluate`, for in-band networks of
both families at the protocol sizes.

    .venv/bin/python bench/profile_step.py [--archs mobile_former_151m mobilevit_xs] [--batches 16 32] \\
        [--threads 1 2] [--steps 12] [--top 12]

Prints, per (arch, batch, threads): ms per training step and per evaluated image, then the top ops by self
CPU time as a share of the step, as Markdown tables (pasted into BENCHMARKS.md). The machine load is
printed before and after: profiles of a shared machine are not comparable.
"""

from __future__ import annotations

import argparse
import time

import torch


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def profile(arch: str, batch: int, threads: int, steps: int, top: int) -> None:
    from torch import nn
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    from nas.data import load_dataset
    from nas.train import load_proxy, train_step
    from nas.train.loop import _model, epoch_shape, evaluate, make_optimizer
    from nas.train.pipeline import prepare_data, train_batch

    torch.set_num_threads(threads)
    proxy = load_proxy("confirm").replace(batch_size=batch)
    data = load_dataset(None)
    prep = prepare_data(data, proxy, torch.device("cpu"), final=True)
    from nas.runtime import Runtime
    from nas.variants import resolve_arch

    model = _model(resolve_arch(arch), data, proxy, Runtime())
    opt = make_optimizer(model, proxy)
    crit = nn.CrossEntropyLoss(label_smoothing=proxy.label_smoothing)
    gen = torch.Generator().manual_seed(1)
    bs, _ = epoch_shape(prep, proxy)

    def step():
        idx = torch.randperm(len(prep.train_x), generator=gen)[:bs]
        xb, yb = train_batch(prep, idx, proxy, gen)
        train_step(model, xb, yb, opt, crit, lr=1e-3)

    model.train()
    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    ms_step = 1e3 * (time.perf_counter() - t) / steps
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    n_eval = 512
    evaluate(model, prep.test_x[:64], prep.test_y[:64], prep, batch_size=2 * bs)
    t = time.perf_counter()
    evaluate(model, prep.test_x[:n_eval], prep.test_y[:n_eval], prep, batch_size=2 * bs)
    ms_eval = 1e3 * (time.perf_counter() - t) / n_eval
    ev = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    print(f"\n### {arch}, batch {batch}, {threads} thread(s): {ms_step:.1f} ms/step "
          f"({1e3 * bs / ms_step:.0f} img/s), eval {ms_eval:.2f} ms/img\n")
    print("| op | self CPU % | calls/step |\n|---|---:|---:|")
    for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"| `{e.key}` | {100 * e.self_cpu_time_total / total:.1f} | {e.count / steps:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 32])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, load before: {_load()}")
    for arch in a.archs:
        for b in a.batches:
            for th in a.threads:
                profile(arch, b, th, a.steps, a.top)
    print(f"\nload after: {_load()}")


if __name__ == "__main__":
    main()
