"""How much a training step could gain at most from a faster implementation of one of its parts: the trainer's
step (`bench/profile_step.py`'s set-up: `nas.train.train_step` on `train_batch` batches, batch 16, 1 thread, the
default runtime) with that part replaced by a stand-in that costs about nothing, against the step as shipped.

    .venv/bin/python bench/step_ceiling.py [--archs mobile_former_151m mobilevit_xs] [--rounds 3] [--steps 40]

A ceiling, not an option: each stand-in changes the network (its numbers mean nothing). What the step loses with
it is the most any kernel, fusion or rewrite of that part could give back. The parts:

* `dyrelu`: Mobile-Former's dynamic ReLU's work on the feature map (`lo * x + (hi - lo) * relu(x)`) replaced by a
  plain ReLU; its hyper-MLP on the token still runs and gets gradients;
* `attention`: every `scaled_dot_product_attention` (Mobile-Former's bridges and Former, MobileViT's MHSA)
  replaced by its query (`q * 1`, with `k` and `v` kept in the graph through a sum);
* `silu`: every `nn.SiLU` replaced by the identity;
* `batchnorm`: every `BatchNorm2d` replaced by a per-channel scale by its weight (one pass over the map: what any
  normalisation costs at least);
* `transformer`: every MobileViT transformer layer (and Mobile-Former's Former) replaced by `x * 1`.

A stand-in that drops a part's parameters from the graph (the transformer layers; BatchNorm's bias) also drops
their optimizer update, which no faster kernel could: AdamW is 1-5% of these steps (BENCHMARKS.md, "Where a
step's time goes"), so those ceilings are a little high.

Each (network, part) runs in a fresh process started as the `nas` command starts its jobs (`nas.preload`: the MKL
shim on an AMD CPU, tcmalloc where the system has it); the parts are rotated round by round, and each process
prints the median of `--steps` steps after 5 warm-up steps. Prints per network a Markdown table: the step's ms in
each round, and as shipped over with the stand-in as a geometric mean over the rounds with a 95% t interval
(`nas.stats`), with the machine load before each process.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from profile_step import _load  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"mobile_former_151m": ["none", "dyrelu", "attention", "batchnorm", "transformer"],
         "mobilevit_xs": ["none", "silu", "attention", "batchnorm", "transformer"]}

CHILD = r"""
import json, sys
sys.path.insert(0, "bench")
import torch
import torch.nn.functional as F
from torch import nn
arch, part, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
if part == "dyrelu":
    from nas.blocks.mobile_former import DynamicReLU
    DynamicReLU.forward = lambda self, x, token: F.relu(x) + 0 * self.hyper(token).sum()
elif part == "attention":
    F.scaled_dot_product_attention = lambda q, k, v, *a, **kw: q * 1 + 0 * (k.sum() + v.sum())
elif part == "silu":
    nn.SiLU.forward = lambda self, x: x
elif part == "batchnorm":
    nn.BatchNorm2d.forward = lambda self, x: x * self.weight.view(1, -1, 1, 1)
elif part == "transformer":
    from nas.blocks.mobile_former import Former
    from nas.blocks.mobilevit import TransformerLayer
    TransformerLayer.forward = lambda self, x: x * 1
    Former.forward = lambda self, z: z * 1
from pointwise_conv import _ms
from profile_step import _setup
model, _opt, _crit, _prep, _bs, _batch, step = _setup(arch, 16, 1)
model.train()
print(json.dumps({"ms": _ms(step, steps)}))  # the median of `steps` steps after 5 warm-up steps
"""


def child(arch: str, part: str, steps: int) -> float:
    from nas.preload import env_for_jobs

    out = subprocess.run([sys.executable, "-c", CHILD, arch, part, str(steps)], cwd=ROOT, env=env_for_jobs(),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=list(PARTS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from nas.stats import summarize, t_interval

    for arch in a.archs:
        parts = PARTS.get(arch, ["none", "attention", "batchnorm", "silu", "transformer"])
        ms: dict[str, list[float]] = {p: [] for p in parts}
        for r in range(a.rounds):
            for p in parts[r % len(parts):] + parts[:r % len(parts)]:  # rotated, so no part always goes first
                load = _load()
                ms[p].append(child(arch, p, a.steps))
                print(f"  {arch} round {r + 1} {p:<11} {ms[p][-1]:7.1f} ms  (load {load})", flush=True)
        print(f"\n{arch}, batch 16, 1 thread: the step as shipped over the step with the part's stand-in\n")
        print("| part replaced | ms a step, each round | as shipped / stand-in, 95% t |\n|---|---|---:|")
        for p in parts:
            cell = ", ".join(f"{x:.1f}" for x in ms[p])
            if p == "none":
                print(f"| none (as shipped) | {cell} | |")
                continue
            logs = [math.log(b / x) for b, x in zip(ms["none"], ms[p])]
            s = summarize(logs)
            lo, hi = t_interval(s.mean, s.sd, s.n)
            ci = f" [{math.exp(lo):.2f}, {math.exp(hi):.2f}]" if s.n > 1 else " (1 round: no interval)"
            print(f"| {p} | {cell} | {math.exp(s.mean):.2f}x{ci} |")
        print()


if __name__ == "__main__":
    main()
