"""Confirm (or extend the confirmation of) an existing run: retrain its top candidates of the search front
and the band's published variants under the confirm protocol with paired seeds, scored on the test split.

Seeds and candidates already confirmed are kept, never retrained: `--confirm-seeds 5` on a run confirmed
with 3 trains seeds 3 and 4 only; `--confirm-max-seeds 24` lets the headline pair (best candidate and its
published reference) have up to 24 seeds if its planned interval within `--confirm-width` needs them; a
run killed during confirmation continues where it stopped. `--steps N` (or `--top-steps N`) climbs the ladder:
the headline pair, the other family's best and their references retrained for N optimizer steps, with only
the missing jobs trained; the verdicts printed are that rung's, each with its trend. `--headline-only` retrains
just the headline pair there (the claim's check at the next length: 6 jobs where the default run's full rung trained 10).

examples:
  nas confirm results/budget300M-20261201-120000
  nas confirm results/mf300 --confirm-top 5 --confirm-seeds 5
  nas confirm results/mf300 --confirm-width 1 --confirm-max-seeds 24
  nas confirm results/mf300 --steps 2048            # a longer top rung on a finished run
  nas confirm results/mf300 --steps 8192 --headline-only   # only the headline pair, 4x longer
"""

from __future__ import annotations

import argparse
import dataclasses
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nas.cli.search import add_confirm_arguments, add_resource_arguments

    p.add_argument("run_dir", metavar="RUN", help="a run folder written by `nas search` (results/<name>)")
    add_confirm_arguments(p)
    p.add_argument("--headline-only", action="store_true",
                   help="with --steps N: the new rung retrains only the run's headline pair (its best candidate "
                        "and published reference on the longest rung below N) with paired seeds, not the other "
                        "family's best and every candidate reference: the cheapest check that the claim holds "
                        "when training gets longer; its verdict is the one printed")
    add_resource_arguments(p)


def run(args: argparse.Namespace) -> int:
    from nas.cli.search import (
        command_line,
        confirm_options,
        confirm_stage,
        confirmation_lines,
        run_resolution,
    )
    from nas.errors import ConfigError
    from nas.search import SearchOptions, plan_search
    from nas.verdicts import compute_confirmation

    started = time.time()
    copts = confirm_options(args)
    if args.headline_only and not args.top_steps:
        raise ConfigError("--headline-only climbs the headline pair to a longer rung, and no rung was given",
                          f"add --steps N, e.g. `nas confirm {args.run_dir} --steps 32768 --headline-only`")
    plan = plan_search(SearchOptions(resume=args.run_dir, gpus_per_trial=args.gpus_per_trial,
                                     cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
                                     address=args.address, precision=args.precision,
                                     memory_format=args.memory_format, compile=args.compile,
                                     keep_freed_memory=args.keep_freed_memory), command=command_line())
    if args.top_steps is None:  # the run's own ladder (run.yaml), unless --steps climbs it
        copts = dataclasses.replace(copts, top_steps=plan.opts.top_steps, headline_only=plan.opts.headline_only)
    else:
        copts = dataclasses.replace(copts, headline_only=args.headline_only)
    out = confirm_stage(plan, copts, dashboard=plan.run_dir / "dashboard.html", started=started)
    for line in confirmation_lines(compute_confirmation(out.trials), run_resolution(plan.run_dir), plan.run_dir):
        print(line)
    if out.interrupted:
        print(f"\ninterrupted: continue with `nas confirm {plan.run_dir}`")
        return 130
    return 0
