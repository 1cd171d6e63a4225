"""Runtime options side by side in one run: training-step time per image of the trainer's own step
(`nas.train.time_steps`, the confirm protocol at 32 px) and evaluation time per image (`evaluate_metrics` on
test images, the trainer's batch of 32) under each `nas.runtime.Runtime` setting, and the thread layout of a
2-core machine (1 job x 2 threads against 2 jobs x 1 thread, in images/s for the machine).

    .venv/bin/python bench/runtime_options.py [--archs mobile_former_151m mobilevit_xs] [--steps 8] [--rounds 2]
        [--settings default malloc bf16 ...] [--no-pairs]

Each setting runs in a fresh process (the allocator setting lasts for a process's life), settings interleaved
round by round so that all see the same load; the machine load (1-minute average) is printed before each.
Per setting the median over rounds of the fastest-step time, and of the faster of two evaluation passes, is
reported relative to the default (fp32, channels_last, 1 thread, freed memory kept); each probe line also
gives the minor page faults of one evaluation pass (`getrusage`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = r"""
import json, sys, torch
from nas.data import load_dataset
from nas.runtime import Runtime
from nas.train import load_proxy, time_steps
arch, rt, steps, n_eval = sys.argv[1], Runtime.of(json.loads(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4])
p = load_proxy("confirm")
data = load_dataset(None)
s = time_steps(arch, p, data, steps=steps, runtime=rt)
ev = float("nan")
if n_eval:
    import resource, time
    from nas.train.loop import _model, _runtime, evaluate_metrics
    from nas.train.pipeline import prepare_data
    from nas.variants import resolve_arch
    r = _runtime(rt, None, None)
    with r.applied():
        prep = prepare_data(data, p, r.torch_device, final=True)
        model = _model(resolve_arch(arch), data, p, r)
        x, y = prep.test_x[:n_eval], prep.test_y[:n_eval]
        evaluate_metrics(model, x[:64], y[:64], prep, batch_size=2 * p.batch_size, runtime=r)
        best, faults = [], []
        for _ in range(2):
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = time.perf_counter()
            evaluate_metrics(model, x, y, prep, batch_size=2 * p.batch_size, runtime=r)
            best.append((time.perf_counter() - t) / len(x))
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        ev = min(best)
print(json.dumps({"s_per_img": s, "eval_s_per_img": ev, "eval_faults": max(faults) if n_eval else 0}))
"""
SETTINGS = {
    "default": ("fp32 channels_last 1 thread (default)", {"threads": 1}),
    "malloc": ("fp32 channels_last 1 thread, glibc's own malloc thresholds", {"threads": 1, "keep_freed_memory": False}),
    "contiguous": ("fp32 contiguous 1 thread", {"threads": 1, "memory_format": "contiguous"}),
    "bf16": ("bf16 autocast 1 thread", {"threads": 1, "precision": "bf16"}),
    "2threads": ("fp32 channels_last 2 threads", {"threads": 2}),
}


def once(arch: str, rt: dict, steps: int, n_eval: int) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, arch, json.dumps(rt), str(steps), str(n_eval)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["s_per_img"], r["eval_s_per_img"], r["eval_faults"]


def pair(arch: str, steps: int) -> float:
    """Two 1-thread jobs at once: the machine's images/s is the sum of both jobs' rates."""
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, arch, json.dumps({"threads": 1}), str(steps), "0"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    rates = [1 / json.loads(p.communicate()[0].strip().splitlines()[-1])["s_per_img"] for p in procs]
    return sum(rates)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per probe (the fastest counts)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--eval-images", type=int, default=512, help="test images per evaluation pass (0: no eval)")
    ap.add_argument("--no-pairs", action="store_true", help="skip the 2 jobs x 1 thread probe")
    a = ap.parse_args()
    chosen = ["default"] + [k for k in a.settings if k != "default"]
    for arch in a.archs:
        got: dict[str, list[tuple[float, float, int]]] = {k: [] for k in chosen}
        pairs: list[float] = []
        for r in range(a.rounds):
            for key in chosen:
                name, rt = SETTINGS[key]
                load = os.getloadavg()[0]
                got[key].append(once(arch, rt, a.steps, a.eval_images))
                tr, ev, flt = got[key][-1]
                print(f"  {arch} round {r}: {name}: train {1000 * tr:.2f} ms/img, eval {1000 * ev:.2f} ms/img "
                      f"({flt} minor page faults in one pass) (load {load:.1f})", flush=True)
            if not a.no_pairs:
                load = os.getloadavg()[0]
                pairs.append(pair(arch, a.steps))
                print(f"  {arch} round {r}: 2 jobs x 1 thread: {pairs[-1]:.1f} img/s for the machine (load {load:.1f})",
                      flush=True)
        base = statistics.median(t for t, _, _ in got["default"])
        base_ev = statistics.median(e for _, e, _ in got["default"])
        print(f"{arch}:")
        for key, v in got.items():
            m, e = statistics.median(t for t, _, _ in v), statistics.median(e for _, e, _ in v)
            print(f"  {SETTINGS[key][0]:<58} train {1000 * m:7.2f} ms/img {1 / m:6.1f} img/s x{base / m:.2f}"
                  f" | eval {1000 * e:5.2f} ms/img x{base_ev / e:.2f}   (vs default)")
        if pairs:
            print(f"  {'2 jobs x 1 thread (machine)':<58} {statistics.median(pairs):6.1f} img/s  "
                  f"x{statistics.median(pairs) * base:.2f} vs one default job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
