"""Is the search better than chance? TPE, NSGA-II and random search at equal trial counts, several repeats.

    OMP_NUM_THREADS=1 nohup .venv/bin/python bench/samplers.py --out results/bench-samplers --repeats 3 --trials 10 \\
        --proxy bench/protocols/p1x512_b8_val1024.yaml > samplers.out 2>&1 &
    .venv/bin/python bench/samplers.py --out results/bench-samplers --summary

Each (sampler, repeat) is one real `nas search` (Ray Tune + Optuna) with `--seed repeat`, no baselines and no
confirmation, in its own run folder under --out: the bench resumes by skipping finished runs (and a killed
run continues through the search's own --resume). Per run it reports the best search-stage val top-1 and the
hypervolume of the search front in the budget band (MAdds normalized to [0, 1] over [0.5 x budget, budget],
accuracy in points above the 10-class chance level of 10%); the summary gives each sampler's mean, SD and
n, and the paired difference of each sampler against random search with a 95% t interval over repeats.
These are search-stage figures (one short run per architecture, validation split): they say whether the
sampler finds better search-stage scores than chance, not whether those architectures are better.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

SAMPLERS = ("tpe", "nsga2", "random")


def hypervolume(front: list[tuple[float, float]], *, low: float, high: float, floor: float = 10.0) -> float:
    """Area dominated by a (madds_m, top1) front inside [low, high] x [floor, 100], MAdds normalized."""
    pts = sorted((max(low, m), a) for m, a in front if m <= high and a > floor)
    hv, best = 0.0, floor
    for i, (m, a) in enumerate(pts):
        nxt = pts[i + 1][0] if i + 1 < len(pts) else high
        best = max(best, a)
        hv += (nxt - m) / (high - low) * (best - floor)
    return hv


def run_one(out: Path, sampler: str, repeat: int, args: argparse.Namespace) -> None:
    run = out / f"{sampler}-{repeat}"
    if (run / "trials.parquet").is_file():
        import pandas as pd

        df = pd.read_parquet(run / "trials.parquet")
        if (df["kind"].eq("searched") & df["status"].isin(["completed", "early_stopped", "failed", "nan"])).sum() \
                >= args.trials:
            return
        cmd = [sys.executable, "-m", "nas", "search", "--resume", str(run)]
    else:
        cmd = [sys.executable, "-m", "nas", "search", "--budget", args.budget, "--trials", str(args.trials),
               "--sampler", sampler, "--seed", str(repeat), "--name", run.name, "--results", str(out),
               "--no-baselines", "--no-confirm", "--no-early-stop", "--max-concurrent", str(args.concurrent)]
        if args.proxy:
            cmd += ["--proxy", args.proxy]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def summary(out: Path, budget_m: float) -> list[str]:
    from nas import results as R
    from nas import stats as S

    per: dict[str, dict[int, tuple[float, float]]] = {}
    for run in sorted(out.glob("*-*")):
        if not (run / "trials.parquet").is_file():
            continue
        sampler, repeat = run.name.rsplit("-", 1)
        df = R.read_trials(run)
        front = R.compute_pareto(df)
        ok = df[df["status"].isin(R.FINISHED_OK)]
        hv = hypervolume(list(zip(front["madds_m"], front["val_top1"])), low=0.5 * budget_m, high=budget_m)
        per.setdefault(sampler, {})[int(repeat)] = (hv, float(ok["val_top1"].max()) if len(ok) else float("nan"))
    lines = []
    for s, runs in per.items():
        hv = S.summarize([v[0] for v in runs.values()])
        best = S.summarize([v[1] for v in runs.values()])
        lines.append(f"{s:<7} n={hv.n}: hypervolume {hv.mean:.1f} (SD {hv.sd:.1f}), best val top-1 {best.mean:.2f}% "
                     f"(SD {best.sd:.2f}); per repeat {', '.join(f'{k}: {v[0]:.1f}/{v[1]:.1f}' for k, v in sorted(runs.items()))}")
    if "random" in per:
        for s in per:
            if s == "random":
                continue
            for i, name in enumerate(("hypervolume", "best val top-1")):
                d = S.paired_diff({k: v[i] for k, v in per[s].items()}, {k: v[i] for k, v in per["random"].items()})
                lines.append(f"{s} - random, {name}: {d.mean:+.2f} [{d.lo:+.2f}, {d.hi:+.2f}] over n={d.n} paired "
                             f"repeats (same --seed): {d.verdict}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/bench-samplers"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--budget", default="300M")
    ap.add_argument("--proxy")
    ap.add_argument("--concurrent", type=int, default=1)
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    from nas.space import parse_budget

    if not args.summary:
        args.out.mkdir(parents=True, exist_ok=True)
        for r in range(args.repeats):
            for s in args.samplers:
                run_one(args.out, s, r, args)
    print("\n".join(summary(args.out, parse_budget(args.budget) / 1e6)))


if __name__ == "__main__":
    main()
