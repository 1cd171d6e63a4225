"""Runtime options side by side in one run: training-step time per image of the trainer's own step
(`nas.train.time_steps`, the confirm protocol at 32 px) under each `nas.runtime.Runtime` setting, and the
thread layout of a 2-core machine (1 job x 2 threads against 2 jobs x 1 thread, in images/s for the machine).

    .venv/bin/python bench/runtime_options.py [--archs mobile_former_151m mobilevit_xs] [--steps 8] [--rounds 2]

Each setting runs in a fresh process, settings interleaved round by round so that all see the same load;
the machine load (1-minute average) is printed before each. Per setting the median over rounds of the
fastest-step time is reported, relative to the default (fp32, channels_last, 1 thread).
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
arch, rt, steps = sys.argv[1], Runtime.of(json.loads(sys.argv[2])), int(sys.argv[3])
p = load_proxy("confirm")
s = time_steps(arch, p, load_dataset(None), steps=steps, runtime=rt)
print(json.dumps({"s_per_img": s}))
"""
SETTINGS = {
    "fp32 channels_last 1 thread (default)": {"threads": 1},
    "fp32 contiguous 1 thread": {"threads": 1, "memory_format": "contiguous"},
    "bf16 autocast 1 thread": {"threads": 1, "precision": "bf16"},
    "fp32 channels_last 2 threads": {"threads": 2},
}


def once(arch: str, rt: dict, steps: int) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, arch, json.dumps(rt), str(steps)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["s_per_img"]


def pair(arch: str, steps: int) -> float:
    """Two 1-thread jobs at once: the machine's images/s is the sum of both jobs' rates."""
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, arch, json.dumps({"threads": 1}), str(steps)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    rates = [1 / json.loads(p.communicate()[0].strip().splitlines()[-1])["s_per_img"] for p in procs]
    return sum(rates)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per probe (the fastest counts)")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    for arch in a.archs:
        got: dict[str, list[float]] = {k: [] for k in SETTINGS}
        pairs: list[float] = []
        for r in range(a.rounds):
            for name, rt in SETTINGS.items():
                load = os.getloadavg()[0]
                got[name].append(once(arch, rt, a.steps))
                print(f"  {arch} round {r}: {name}: {1000 * got[name][-1]:.2f} ms/img (load {load:.1f})", flush=True)
            load = os.getloadavg()[0]
            pairs.append(pair(arch, a.steps))
            print(f"  {arch} round {r}: 2 jobs x 1 thread: {pairs[-1]:.1f} img/s for the machine (load {load:.1f})",
                  flush=True)
        base = statistics.median(got["fp32 channels_last 1 thread (default)"])
        print(f"{arch}:")
        for name, v in got.items():
            m = statistics.median(v)
            print(f"  {name:<40} {1000 * m:7.2f} ms/img  {1 / m:6.1f} img/s  x{base / m:.2f} vs default")
        print(f"  {'2 jobs x 1 thread (machine)':<40} {'':>7}         {statistics.median(pairs):6.1f} img/s  "
              f"x{statistics.median(pairs) * base:.2f} vs one default job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
