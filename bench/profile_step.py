"""Where a training step and an evaluation spend their time: torch.profiler over the trainer's own step
(`nas.train.train_step` on `nas.train.train_batch` batches) and `nas.train.evaluate`, for in-band networks of
both families at the protocol sizes.

    .venv/bin/python bench/profile_step.py [--archs mobile_former_151m mobilevit_xs] [--batches 16 32] \\
        [--threads 1 2] [--steps 12] [--top 12]

Prints, per (arch, batch, threads): ms per training step and per evaluated image, then the top ops by self
CPU time as a share of the step, as Markdown tables (pasted into BENCHMARKS.md). The machine load is
printed before and after: profiles of a shared machine are not comparable.

    .venv/bin/python bench/profile_step.py --hooks [--archs ...] [--batches 16] [--threads 1]

`--hooks` times the same step without torch.profiler, as a cross-check of its shares: forward hooks on every
leaf module, pre/post hooks on every autograd node of the step's graph, and the optimizer step by the clock.
Prints ms per step of each module type (forward) and node type (backward), each the median over the steps,
with what the hooks do not cover (functional code between modules). The hooks add their own overhead (about
1,000 of them a step for Mobile-Former), so read shares, not the total.

    .venv/bin/python bench/profile_step.py --matmuls [--archs ...] [--batches 16] [--threads 1] [--steps 10]

`--matmuls` lists the step's matrix products (`mm`, `addmm`, `bmm`) by input shape: ms a step, calls a step and
GFLOP/s (2 x M x K x N over the profiler's self time), to see how far each runs from the core's peak.

    .venv/bin/python bench/profile_step.py --fixed-cost [--archs ...] [--batches 2 4 8 16 32] [--threads 1]

`--fixed-cost` times the step at each batch size (the median of `--steps` steps after 3 warm-up steps) and fits
ms = fixed + per-image x batch by least squares: the fixed part is what a step costs whatever its batch (op
dispatch, autograd, the optimizer over every parameter). The optimizer step alone is timed on the last step's
gradients, its median over `--steps` calls.

Every mode runs under the default runtime with its allocator setting applied (`Runtime.apply`);
`--no-keep-freed-memory` leaves glibc's thresholds as they are, for an A/B. Profiles of one network differ from
process to process (BENCHMARKS.md, "The step timed by hooks"): compare shares across runs with care.
"""

from __future__ import annotations

import argparse
import time

import torch


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


KEEP = {"freed": True}  # --no-keep-freed-memory turns the runtime's allocator setting off, for an A/B


def _setup(arch: str, batch: int, threads: int):
    """The trainer's model, optimizer, loss and a step function under the default runtime (its allocator
    setting applied), at `batch` images and `threads` threads."""
    from torch import nn

    from nas.data import load_dataset
    from nas.runtime import Runtime
    from nas.train import load_proxy, train_step
    from nas.train.loop import _model, epoch_shape, make_optimizer
    from nas.train.pipeline import prepare_data, train_batch
    from nas.variants import resolve_arch

    rt = Runtime(threads=threads, keep_freed_memory=KEEP["freed"])
    rt.apply()
    proxy = load_proxy("confirm").replace(batch_size=batch)
    data = load_dataset(None)
    prep = prepare_data(data, proxy, torch.device("cpu"), final=True)
    model = _model(resolve_arch(arch), data, proxy, rt)
    opt = make_optimizer(model, proxy)
    crit = nn.CrossEntropyLoss(label_smoothing=proxy.label_smoothing)
    gen = torch.Generator().manual_seed(1)
    bs, _ = epoch_shape(prep, proxy)

    def batch_():
        return train_batch(prep, torch.randperm(len(prep.train_x), generator=gen)[:bs], proxy, gen)

    def step():
        xb, yb = batch_()
        train_step(model, xb, yb, opt, crit, lr=1e-3)

    return model, opt, crit, prep, bs, batch_, step


def profile(arch: str, batch: int, threads: int, steps: int, top: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    from nas.train.loop import evaluate

    model, _opt, _crit, prep, bs, _batch, step = _setup(arch, batch, threads)
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


def matmuls(arch: str, batch: int, threads: int, steps: int, top: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    model, _opt, _crit, _prep, _bs, _batch, step = _setup(arch, batch, threads)
    model.train()
    for _ in range(3):
        step()
    with tprofile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        shapes = e.input_shapes
        if e.key == "aten::mm":
            (m, k), (_k, n) = shapes[0], shapes[1]
        elif e.key == "aten::addmm":
            (m, k), (_k, n) = shapes[1], shapes[2]
        elif e.key == "aten::bmm":
            (b, m, k), (_b, _k, n) = shapes[0], shapes[1]
            m *= b
        else:
            continue
        ms = e.self_cpu_time_total / 1e3 / steps
        rows.append((ms, e.key, shapes[:3], e.count / steps, 2 * m * k * n * e.count / steps / (ms / 1e3) / 1e9))
    rows.sort(key=lambda r: -r[0])
    print(f"\n### {arch}, batch {batch}, {threads} thread(s): matrix products {sum(r[0] for r in rows):.1f} ms a step\n")
    print("| op | input shapes | ms/step | calls/step | GFLOP/s |\n|---|---|---:|---:|---:|")
    for ms, key, shapes, calls, gflops in rows[:top]:
        print(f"| `{key}` | {shapes} | {ms:.2f} | {calls:g} | {gflops:.0f} |")


def _time_node(node, into: dict[str, float]) -> None:
    """Add the seconds autograd spends in `node` to into["backward <its type>"]."""
    st: dict[str, float] = {}
    key = "backward " + node.name()

    def pre(_grads):
        st["t"] = time.perf_counter()

    def post(_grad_in, _grad_out):
        into[key] = into.get(key, 0.0) + time.perf_counter() - st["t"]

    node.register_prehook(pre)
    node.register_hook(post)


def hooks(arch: str, batch: int, threads: int, steps: int, top: int) -> None:
    """The step timed by hooks instead of the profiler (see the module docstring)."""
    import statistics
    from collections import defaultdict

    model, opt, crit, _prep, bs, batch_, _step = _setup(arch, batch, threads)
    model.train()
    fwd: dict[str, float] = defaultdict(float)
    started: dict[str, float] = {}
    for name, m in model.named_modules():
        if next(m.children(), None) is None:
            kind = type(m).__name__
            m.register_forward_pre_hook(lambda _m, _i, n=name: started.__setitem__(n, time.perf_counter()))
            m.register_forward_hook(lambda _m, _i, _o, n=name, k=kind: fwd.__setitem__(
                k, fwd[k] + time.perf_counter() - started[n]))
    rows: list[dict[str, float]] = []
    for i in range(3 + steps):
        xb, yb = batch_()
        fwd.clear()
        t0 = time.perf_counter()
        loss = crit(model(xb), yb)
        t1 = time.perf_counter()
        bwd: dict[str, float] = {}
        seen, todo = set(), [loss.grad_fn]
        while todo:  # every node of this step's graph (AccumulateGrad nodes persist: timed as one sum below)
            node = todo.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            todo.extend(f for f, _ in node.next_functions)
            if "AccumulateGrad" in node.name():
                continue
            _time_node(node, bwd)
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= 3:
            row = {"step": t4 - t0, "forward": t1 - t0, "backward": t3 - t2, "optimizer step": t4 - t3,
                   **{f"forward {k}": v for k, v in fwd.items()}, **bwd}
            row["forward, outside leaf modules"] = row["forward"] - sum(fwd.values())
            row["backward, other nodes and gradient accumulation"] = row["backward"] - sum(bwd.values())
            rows.append(row)
    med = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in rows[0]}
    total = med["step"]
    print(f"\n### {arch}, batch {batch}, {threads} thread(s), timed by hooks: {1e3 * total:.1f} ms/step "
          f"({bs / total:.0f} img/s; median of {steps}): forward {1e3 * med['forward']:.1f}, backward "
          f"{1e3 * med['backward']:.1f}, optimizer {1e3 * med['optimizer step']:.1f} ms\n")
    print("| part | ms/step | % of the step |\n|---|---:|---:|")
    parts = {k: v for k, v in med.items() if k not in ("step", "forward", "backward")}
    for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| {k} | {1e3 * v:.2f} | {100 * v / total:.1f} |")


def fixed_cost(arch: str, batches: list[int], threads: int, steps: int) -> None:
    import statistics

    rows, opt_ms = [], []
    for b in batches:
        _model, opt, _crit, _prep, bs, _batch, step = _setup(arch, b, threads)
        times = []
        for i in range(3 + steps):
            t = time.perf_counter()
            step()
            if i >= 3:
                times.append(time.perf_counter() - t)
        rows.append((bs, 1e3 * statistics.median(times)))
        for _ in range(steps):
            t = time.perf_counter()
            opt.step()
            opt_ms.append(1e3 * (time.perf_counter() - t))
    slope, fixed = statistics.linear_regression([r[0] for r in rows], [r[1] for r in rows])
    opt_med = statistics.median(opt_ms)
    print(f"\n### {arch}, {threads} thread(s): fixed {fixed:.1f} ms a step + {slope:.2f} ms an image; "
          f"the optimizer step alone {opt_med:.1f} ms\n")
    print("| batch | ms/step | fit ms | fixed share |\n|---:|---:|---:|---:|")
    for x, y in rows:
        print(f"| {x} | {y:.1f} | {fixed + slope * x:.1f} | {100 * fixed / y:.0f}% |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 32])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--hooks", action="store_true", help="time by hooks instead of torch.profiler")
    ap.add_argument("--matmuls", action="store_true", help="list the step's matrix products by shape, with GFLOP/s")
    ap.add_argument("--fixed-cost", action="store_true", help="fit a step's ms against its batch: fixed + per image")
    ap.add_argument("--no-keep-freed-memory", action="store_true", help="leave glibc's malloc thresholds as they are")
    a = ap.parse_args()
    KEEP["freed"] = not a.no_keep_freed_memory
    print(f"torch {torch.__version__}, load before: {_load()}")
    for arch in a.archs:
        if a.fixed_cost:
            for th in a.threads:
                fixed_cost(arch, a.batches, th, a.steps)
            continue
        for b in a.batches:
            for th in a.threads:
                (hooks if a.hooks else matmuls if a.matmuls else profile)(arch, b, th, a.steps, a.top)
    print(f"\nload after: {_load()}")


if __name__ == "__main__":
    main()
