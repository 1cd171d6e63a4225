"""Analytic MAdds: agreement with fvcore and screening speed.

    .venv/bin/python bench/madds_speed.py [--points 200] [--seconds 3]

1. Agreement: every published variant and `--points` random points of search_spaces/hybrid.yaml, analytic
   count (nas.madds) against fvcore (nas.profile) at the target resolution; prints the worst relative gap.
2. Speed on one core (torch threads 1): configs screened per second, (a) counting prebuilt configs,
   (b) the whole screen the search runs: sample knobs -> ArchConfig -> analytic count -> budget check.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from nas.madds import count_madds
from nas.profile import profile_arch
from nas.space import RandomTrial, load_space, sample_arch
from nas.variants import get_variant, list_variants


def rate(fn, items, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for it in items:
            fn(it)
        n += len(items)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--skip-agreement", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = load_space()
    variants = [get_variant(n) for n in list_variants()]
    points = [sample_arch(RandomTrial(seed), space) for seed in range(args.points)]
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, torch {torch.__version__}")

    if not args.skip_agreement:
        worst = {"variants": (0.0, ""), "random": (0.0, "")}
        for group, cfgs in (("variants", variants), ("random", points)):
            for cfg in cfgs:
                f = profile_arch(cfg).madds
                a = count_madds(cfg)
                gap = abs(a - f) / f
                if gap >= worst[group][0]:
                    worst[group] = (gap, f"{cfg.name} {cfg.arch_id}")
            print(f"agreement {group:8s}: {len(cfgs)} configs, worst |analytic - fvcore| / fvcore = "
                  f"{100 * worst[group][0]:.4f}% ({worst[group][1]})")

    r_var = rate(count_madds, variants, args.seconds)
    r_pts = rate(count_madds, points, args.seconds)
    budget = 300e6

    def screen(seed: int) -> bool:
        return count_madds(sample_arch(RandomTrial(seed), space)) <= budget

    r_screen = rate(screen, list(range(1000)), args.seconds)
    print(f"count_madds on prebuilt configs: {r_var:,.0f}/s (23 variants), {r_pts:,.0f}/s (random points)")
    print(f"full screen (sample -> ArchConfig -> count -> budget check): {r_screen:,.0f} configs/s")


if __name__ == "__main__":
    main()
