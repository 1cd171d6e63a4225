"""Search the unified hybrid space under a multiply-add budget: Optuna proposes, Ray Tune trains.

Every proposal is screened by the analytic MAdds count before anything is built: configs outside the band
[--min-budget x budget, budget] are told to Optuna as infeasible and recorded as over_budget rows, never
trained. The published variants inside the band are trained under the same proxy as baselines (cached in
results/.cache/ and reused by later runs). Each finished trial is written to results/<name>/ at once;
`--resume results/<name>` continues a run stopped by Ctrl-C or a kill without retraining anything.

examples:
  nas search --budget 300M                              # the default run (about 15 min on 2 cores)
  nas search --budget 300M --dry-run                    # share of the space in band, plan, time estimate
  nas search --budget 0.3G --objective pareto --trials 24 --name mf-vit-300
  nas search --resume results/mf-vit-300
  nas search --budget 300M --address auto               # on an existing Ray cluster
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nas.search import DEFAULT_MIN_BUDGET, DEFAULT_TRIALS, OBJECTIVES

    p.add_argument("--budget", default="300M", help="MAdds budget: 300M, 0.3G, 300e6 or 300000000 (default 300M)")
    p.add_argument("--space", metavar="PATH", help="search-space YAML (default search_spaces/hybrid.yaml)")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                   help=f"searched architectures to train (default {DEFAULT_TRIALS}; refused proposals do not count)")
    p.add_argument("--name", help="run folder name under results/ (default budget<B>-<timestamp>)")
    p.add_argument("--data", metavar="NAME|PATH", help="dataset name or directory (default fashion-mnist)")
    p.add_argument("--proxy", metavar="PATH", help="proxy protocol YAML (default nas/proxy_default.yaml)")
    p.add_argument("--epochs", type=int, help="override the proxy's epochs")
    p.add_argument("--seed", type=int, default=0, help="sampler seed: same seed, same proposals (default 0)")
    p.add_argument("--objective", choices=OBJECTIVES, default="top1",
                   help="top1: maximize val top-1 (TPE); pareto: also minimize MAdds (NSGA-II)")
    p.add_argument("--min-budget", type=float, default=DEFAULT_MIN_BUDGET, metavar="F",
                   help=f"refuse configs under F x budget too (default {DEFAULT_MIN_BUDGET}; 0 keeps everything)")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                   help="train every trial to the end (default: ASHA within MAdds bands)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (default 1 if Ray sees one)")
    p.add_argument("--cpus-per-trial", type=int, help="CPUs per trial (default 1)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the resources allow)")
    p.add_argument("--address", metavar="HOST:PORT|auto", help="run on an existing Ray cluster")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this folder (its settings are kept; options that would change them are refused)")
    p.add_argument("--dry-run", action="store_true", help="show the budget share, plan and time estimate; train nothing")
    p.add_argument("--results", default="results", metavar="DIR", help="where run folders go (default results/)")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="do not train the published variants of the band")


def run(args: argparse.Namespace) -> int:
    from nas.search import SearchOptions, command_line, dry_run, plan_search, run_search, summary_lines

    opts = SearchOptions(budget=args.budget, space=args.space, trials=args.trials, name=args.name, data=args.data,
                         proxy=args.proxy, epochs=args.epochs, seed=args.seed, objective=args.objective,
                         min_budget=args.min_budget, early_stop=args.early_stop, gpus_per_trial=args.gpus_per_trial,
                         cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
                         address=args.address, resume=args.resume, dry_run=args.dry_run, results_root=args.results,
                         baselines=args.baselines)
    plan = plan_search(opts, command=command_line())
    if args.dry_run:
        for line in dry_run(plan).lines():
            print(line)
        return 0
    out = run_search(plan, echo=lambda s: print(s, flush=True), dashboard=plan.run_dir / "dashboard.html")
    print()
    for line in summary_lines(out):
        print(line)
    if out.interrupted:
        print(f"\ninterrupted: continue with `nas search --resume {out.run_dir}`")
        return 130
    return 0


__all__ = ["add_arguments", "run", "Path"]
