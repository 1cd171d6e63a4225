"""How the confirm stage should give the headline verdict its extra seeds: a simulation of the coverage of
the printed 95% interval and of how often its half-width reaches the target, for two rules.

    .venv/bin/python bench/headline_coverage.py [--reps 20000]

Model: k confirmed architectures, each run's accuracy = a seed effect shared by all architectures (variance
rho x sigma^2: what pairing removes) + its own noise (variance (1 - rho) x sigma^2); every architecture has
the same true accuracy, so the headline pair's true difference is 0 and "covered" means its t interval holds
0. The first stage runs `n0` paired seeds of every architecture; the headline pair (architectures 0 and 1)
then gets more seeds, at most `cap`:

- sequential: two more seeds at a time until the pair's own interval is within `width` (or the cap);
- planned (what `nas.search.confirm.headline_jobs` does): the count comes once from the paired-difference
  SD pooled over every pair of the first stage (`nas.stats.paired_noise_sd`, `seeds_for_width`).

Defaults are the measured figures of the confirm protocol over 33 architectures x 3 seeds (BENCHMARKS.md:
seed SD 2.67 points, paired-difference SD 3.44, so rho = 1 - 3.44^2 / (2 x 2.67^2) = 0.17) and the
default run's shape (6 architectures, 3 seeds, width 2, cap 14).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from nas.stats import paired_noise_sd, seeds_for_width


def half_width(d: np.ndarray) -> float:
    return float(stats.t.ppf(0.975, len(d) - 1)) * float(d.std(ddof=1)) / np.sqrt(len(d))


def simulate(rule: str, *, sigma: float, rho: float, k: int, n0: int, width: float, cap: int, reps: int,
             rng: np.random.Generator) -> tuple[float, float, float]:
    """(coverage, mean seeds of the pair, share of runs whose half-width is <= width)."""
    covered = narrow = 0
    seeds = []
    for _ in range(reps):
        def draw(n: int) -> np.ndarray:
            return rng.normal(0, np.sqrt(rho) * sigma, (n, 1)) + rng.normal(0, np.sqrt(1 - rho) * sigma, (n, k))

        x = draw(n0)
        if rule == "planned":
            accs = {a: {s: float(x[s, a]) for s in range(n0)} for a in range(k)}
            n = seeds_for_width(paired_noise_sd(accs, list(range(n0)))[0], width, start=n0, cap=cap)
            d = np.concatenate([x[:, 0] - x[:, 1], (lambda y: y[:, 0] - y[:, 1])(draw(n - n0))]) if n > n0 \
                else x[:, 0] - x[:, 1]
        else:
            d = x[:, 0] - x[:, 1]
            while half_width(d) > width and len(d) < cap:
                y = draw(min(2, cap - len(d)))
                d = np.concatenate([d, y[:, 0] - y[:, 1]])
        hw = half_width(d)
        covered += abs(d.mean()) <= hw
        narrow += hw <= width
        seeds.append(len(d))
    return covered / reps, float(np.mean(seeds)), narrow / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20000)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[1.5, 2.16, 2.67, 3.0])
    ap.add_argument("--rho", type=float, default=0.17)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--n0", type=int, default=3)
    ap.add_argument("--width", type=float, default=2.0)
    ap.add_argument("--caps", type=int, nargs="+", default=[14, 20])
    args = ap.parse_args()
    print(f"k={args.k} architectures, n0={args.n0} first seeds, width {args.width:g}, rho {args.rho}, "
          f"{args.reps} runs per cell")
    print(f"{'seed SD':>7} {'cap':>4} {'rule':<10} {'coverage':>8} {'mean seeds':>10} {'half-width <= width':>19}")
    for sigma in args.sigmas:
        for cap in args.caps:
            for rule in ("sequential", "planned"):
                cov, n, ok = simulate(rule, sigma=sigma, rho=args.rho, k=args.k, n0=args.n0, width=args.width,
                                      cap=cap, reps=args.reps, rng=np.random.default_rng(0))
                print(f"{sigma:>7.2f} {cap:>4} {rule:<10} {cov:>8.3f} {n:>10.1f} {ok:>19.3f}", flush=True)


if __name__ == "__main__":
    main()
