"""Search the unified hybrid space under a multiply-add budget, then confirm what it found.

Search stage: Optuna proposes, Ray Tune trains each proposal under the short search protocol. Every
proposal is screened by the analytic MAdds count before anything is built: configs outside the band
[--min-budget x budget, budget] are told to Optuna as infeasible and recorded as over_budget rows, never
trained. The published variants inside the band are trained under the same protocol as baselines.

Confirm stage (on by default): the top --confirm-top candidates of the search front and the band's
published variants are retrained under the longer confirm protocol with --confirm-seeds paired seeds and
scored on the dataset's test split, which no search decision reads. Each candidate gets its confirmed
accuracy and its paired difference to the best published variant at <= MAdds, with a 95% interval and a
verdict; search-stage gains are shown only beside them. The HEADLINE (the best candidate against its
reference, chosen on these seeds' validation top-1, never the test split's) then gets, for both, the paired
seeds that the first seeds' noise says a 95% interval within --confirm-width points needs, at most
--confirm-max-seeds.

Each finished job is written to results/<name>/ at once; `--resume results/<name>` continues a run stopped
by Ctrl-C or a kill (in either stage) without retraining anything.

examples:
  nas search --budget 300M                              # search + confirmation ladder (about 20 min on 2 cores)
  nas search --budget 300M --dry-run                    # share of the space in band, plan, time estimate
  nas search --budget 0.3G --objective pareto --trials 24 --name mf-vit-300
  nas search --budget 300M --sampler random --no-confirm
  nas search --resume results/mf-vit-300
  nas confirm results/mf-vit-300 --confirm-seeds 5      # more seeds for an existing run
  nas confirm results/mf-vit-300 --confirm-max-seeds 24 # narrow the headline further
  nas search --budget 300M --address auto               # on an existing Ray cluster
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nas.search import DEFAULT_BUDGET, DEFAULT_MIN_BUDGET, DEFAULT_TRIALS, OBJECTIVES, SAMPLERS
    from nas.search.plan import DEFAULT_ONESHOT_TRIALS, STRATEGIES

    p.add_argument("--budget", default=DEFAULT_BUDGET,
                   help=f"MAdds budget: 300M, 0.3G, 300e6 or 300000000 (default {DEFAULT_BUDGET})")
    p.add_argument("--space", metavar="PATH", help="search-space YAML (default search_spaces/hybrid.yaml)")
    p.add_argument("--trials", type=int, default=None,
                   help=f"searched architectures to train (default {DEFAULT_TRIALS}; one-shot: to score, default "
                        f"{DEFAULT_ONESHOT_TRIALS}; refused proposals do not count)")
    p.add_argument("--strategy", choices=STRATEGIES, default="multitrial",
                   help="multitrial: train each proposal (default); oneshot: score each by the weights it inherits "
                        "from a supernet (`nas supernet train`), then confirm the front stand-alone")
    p.add_argument("--supernet", metavar="RUN_DIR", help="one-shot: the supernet run folder (default: the latest "
                   "one under --results for this space and dataset)")
    p.add_argument("--name", help="run folder name under results/ (default budget<B>-<timestamp>)")
    p.add_argument("--data", metavar="NAME|PATH", help="dataset name or directory (default fashion-mnist)")
    p.add_argument("--proxy", metavar="PATH", help="search protocol YAML (default: the shipped search protocol)")
    p.add_argument("--epochs", type=int, help="override the search protocol's epochs")
    p.add_argument("--seed", type=int, default=0, help="sampler seed: same seed, same proposals (default 0)")
    p.add_argument("--objective", choices=OBJECTIVES, default="top1",
                   help="top1: maximize val top-1; pareto: also minimize MAdds")
    p.add_argument("--sampler", choices=SAMPLERS,
                   help="Optuna sampler (default: tpe for top1, nsga2 for pareto; random is the baseline)")
    p.add_argument("--min-budget", type=float, default=DEFAULT_MIN_BUDGET, metavar="F",
                   help=f"refuse configs under F x budget too (default {DEFAULT_MIN_BUDGET}; 0 keeps everything)")
    p.add_argument("--early-stop", dest="early_stop", action="store_true", default=False,
                   help="stop trials early with ASHA within MAdds bands (default off: its first-epoch snapshot, 32 "
                        "steps, ranked no better than MAdds alone against the 512-step long reference and would "
                        "have stopped 4 of its top 8; BENCHMARKS.md, 'Fidelity against the long reference')")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                   help="train every trial to the end (the default)")
    p.add_argument("--curves", action="store_true",
                   help="validate each search job after every epoch, for the dashboard's learning curves (default: "
                        "after its last epoch only, unless --early-stop reads every epoch; the results are the same; a "
                        "resume keeps the run's setting)")
    add_confirm_arguments(p)
    add_resource_arguments(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this folder (its settings are kept; "
                   "options that would change them are refused)")
    p.add_argument("--dry-run", action="store_true", help="show the budget share, plan and time estimate; train nothing")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="do not train the published variants of the band")


def add_confirm_arguments(p: argparse.ArgumentParser) -> None:
    from nas.search.confirm import (
        DEFAULT_MAX_SEEDS,
        DEFAULT_SEEDS,
        DEFAULT_TIME_BUDGET_S,
        DEFAULT_TOP_K,
        DEFAULT_WIDTH,
    )
    from nas.search.plan import DEFAULT_TOP_SEEDS

    p.add_argument("--confirm-top", type=int, default=DEFAULT_TOP_K, metavar="K",
                   help=f"candidates of the search front to confirm (default {DEFAULT_TOP_K})")
    p.add_argument("--confirm-seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                   help=f"paired seeds per confirmed architecture (default {DEFAULT_SEEDS})")
    p.add_argument("--confirm-width", type=float, default=DEFAULT_WIDTH, metavar="POINTS",
                   help="then give the headline verdict (best candidate vs its published reference) the paired "
                        "seeds that its rung's first seeds' noise says a 95%% interval within POINTS needs, at the "
                        "rung that carries the claim (the top rung, where it gets at least 3 anyway; default "
                        f"{DEFAULT_WIDTH:g}; 0: no extra seeds)")
    p.add_argument("--confirm-max-seeds", type=int, default=DEFAULT_MAX_SEEDS, metavar="N",
                   help=f"most paired seeds the headline pair gets (default {DEFAULT_MAX_SEEDS})")
    p.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET_S / 60, metavar="MIN",
                   help="the headline pair gets no more seeds than fit this command's wall time, planned from "
                        f"its first jobs' times (default {DEFAULT_TIME_BUDGET_S / 60:g}; 0: no bound)")
    p.add_argument("--top-steps", "--steps", dest="top_steps", type=int, default=None, metavar="N",
                   help="the ladder's top rung: retrain the headline candidate, the other family's best and the "
                        "published variants that could be the best reference for N optimizer steps with paired "
                        "seeds; its verdicts are the ones printed (default: 4x the first rung's steps, at least "
                        "512; 0: no top rung). On a finished run, `nas confirm RUN --steps N` adds a rung")
    p.add_argument("--top-seeds", type=int, default=DEFAULT_TOP_SEEDS, metavar="N",
                   help=f"paired seeds of each architecture at the top rung (default {DEFAULT_TOP_SEEDS}; the "
                        "headline pair then gets at least 3, more as --confirm-width and --time-budget allow)")
    p.add_argument("--confirm-protocol", metavar="PATH|NAME",
                   help="confirm protocol YAML or shipped name (default: the shipped confirm protocol)")
    p.add_argument("--no-confirm", dest="confirm", action="store_false",
                   help="stop after the search stage (its numbers are then unconfirmed)")


def add_resource_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per job, fractions allowed (default 1 if Ray sees one)")
    p.add_argument("--cpus-per-trial", type=int, help="CPUs per job (default 1)")
    p.add_argument("--max-concurrent", type=int, help="jobs at once (default: as many as the resources allow)")
    p.add_argument("--address", metavar="HOST:PORT|auto", help="run on an existing Ray cluster")
    p.add_argument("--results", default="results", metavar="DIR", help="where run folders go (default results/)")
    from nas.runtime import add_runtime_arguments

    add_runtime_arguments(p)


def plan_confirm_options(plan: Any):
    """The confirm stage's options of a (possibly resumed) plan; None when the run has it off."""
    from nas.search.confirm import ConfirmOptions

    o = plan.opts
    return (ConfirmOptions(top_k=o.confirm_top, seeds=o.confirm_seeds, protocol=o.confirm_protocol,
                           width=o.confirm_width, max_seeds=o.confirm_max_seeds,
                           time_budget_s=60 * o.time_budget_min, top_steps=o.top_steps,
                           top_seeds=o.top_seeds, headline_only=o.headline_only) if o.confirm else None)


def confirm_options(args: argparse.Namespace):
    from nas.search.confirm import ConfirmOptions

    o = ConfirmOptions(top_k=args.confirm_top, seeds=args.confirm_seeds, protocol=args.confirm_protocol,
                       width=args.confirm_width, max_seeds=args.confirm_max_seeds,
                       time_budget_s=60 * args.time_budget, top_steps=args.top_steps, top_seeds=args.top_seeds)
    o.check()
    return o


def run(args: argparse.Namespace) -> int:
    from nas.search import SearchOptions, dry_run, plan_search, run_search
    from nas.search.plan import DEFAULT_ONESHOT_TRIALS, DEFAULT_TRIALS

    started = time.time()
    trials = args.trials if args.trials is not None else (
        DEFAULT_ONESHOT_TRIALS if args.strategy == "oneshot" else DEFAULT_TRIALS)
    opts = SearchOptions(budget=args.budget, space=args.space, trials=trials, name=args.name, data=args.data,
                         proxy=args.proxy, epochs=args.epochs, seed=args.seed, objective=args.objective,
                         sampler=args.sampler, min_budget=args.min_budget, early_stop=args.early_stop, curves=args.curves,
                         gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial,
                         max_concurrent=args.max_concurrent, address=args.address, resume=args.resume,
                         results_root=args.results, baselines=args.baselines, confirm=args.confirm,
                         confirm_top=args.confirm_top, confirm_seeds=args.confirm_seeds,
                         confirm_protocol=args.confirm_protocol, confirm_width=args.confirm_width,
                         confirm_max_seeds=args.confirm_max_seeds, time_budget_min=args.time_budget,
                         top_steps=args.top_steps, top_seeds=args.top_seeds,
                         strategy=args.strategy, supernet=args.supernet, precision=args.precision,
                         memory_format=args.memory_format, compile=args.compile,
                         keep_freed_memory=args.keep_freed_memory)
    confirm_options(args)  # checked before anything starts
    plan = plan_search(opts, command=command_line())
    copts = plan_confirm_options(plan)
    if args.dry_run:
        from nas.search.confirm import load_confirm_protocol
        from nas.search.ladder import available_images, top_steps

        cproxy = load_confirm_protocol(plan, copts) if copts else None
        available = available_images(plan.dataset, cproxy) if cproxy else None
        top = top_steps(cproxy.steps_on(available), copts.top_steps) if copts and plan.baselines else 0
        top_proxy = cproxy.stretched(top, available=available) if top else None
        for line in format_dry_run(dry_run(plan, confirm_proxy=cproxy, top_proxy=top_proxy, copts=copts), copts):
            print(line)
        return 0
    extra = (copts.top_k + len(plan.baselines)) * copts.seeds if copts else 0
    out = run_search(plan, dashboard=plan.run_dir / "dashboard.html", extra_jobs=extra, on_start=print_start,
                     on_progress=print_progress, on_note=print_note, keep_ray=copts is not None)
    conf = None
    if copts is not None and not out.interrupted:
        conf = confirm_stage(plan, copts, dashboard=out.dashboard, started=started)
        out.trials = conf.trials
        out.interrupted = conf.interrupted
        out.confirmation = conf
    print()
    for line in summary_lines(out):
        print(line)
    if out.interrupted:
        print(f"\ninterrupted: continue with `nas search --resume {out.run_dir}`")
        return 130
    return 0


def confirm_stage(plan: Any, copts: Any, *, dashboard: Any, resources: Any = None,
                  started: float | None = None) -> Any:
    """Run the confirm stage on the Ray session the search left up (or a new one), then stop Ray."""
    from nas.search.confirm import run_confirm
    from nas.search.loop import start_ray, stop_ray

    try:
        res = resources or start_ray(plan)[0]

        def on_plan(jobs: list, pending: int) -> None:
            arch = len({j.trial for j in jobs})
            print(f"confirming {arch} architectures x {copts.seeds} paired seeds under the confirm protocol, scored "
                  f"on the {plan.dataset.name} test split: {pending} of {len(jobs)} jobs to train", flush=True)
            if copts.extra_jobs:
                budget = f" and what fits {copts.time_budget_s / 60:g} min" if copts.time_budget_s else ""
                rung = "the top rung's" if copts.top_steps != 0 else f"the first {copts.seeds}"
                print(f"then the headline verdict gets the paired seeds that {rung} noise says a "
                      f"+-{copts.width:g}-point 95% interval needs (at most {copts.max_seeds}{budget})", flush=True)

        return run_confirm(plan, copts, resources=res, dashboard=dashboard, on_progress=print_progress,
                           on_note=print_note, on_plan=on_plan, started=started)
    finally:
        stop_ray(plan)


# ---------------------------------------------------------------------------------------------------------
# Terminal text


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["nas", *sys.argv[1:]]) if sys.argv else "nas search"


def fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def print_note(text: str) -> None:
    print(f"  {text}", flush=True)


def print_start(st: Any) -> None:
    from nas.results import study_location

    if st.resumed:
        print(f"resuming {st.run_dir}: {st.kept} searched trials kept, {st.rerun} interrupted to re-run, "
              f"{st.remaining} to go", flush=True)
    for name, acc in st.cached_baselines.items():
        print(f"baseline {name}: reused the cached result ({acc:.2f}%)", flush=True)
    print(f"run folder {st.run_dir}  (optuna-dashboard {study_location(st.run_dir)})", flush=True)
    if st.dashboard is not None:
        print(f"dashboard  {st.dashboard}  (rewritten as jobs finish, at most every 20 s, and at the end)", flush=True)
    r = st.resources
    gpu = f" + {r.gpus_per_trial:g} GPU" if r.gpus_per_trial else ""
    if st.supernet is not None:
        from nas.supernet.score import SCORE_IMAGES

        print(f"one-shot search: scoring by inherited weights from the supernet {st.supernet} (BatchNorm "
              f"recalibrated per subnet, top-1 on the first {SCORE_IMAGES} images of the search validation split)",
              flush=True)
        print("  trust: against the 512-step long reference the default CPU supernet's ranking is not shown to beat "
              "MAdds alone (tau difference +0.44 [-0.00, +0.83] for one training of it, tau -0.03 against MAdds' "
              "-0.10 for another, n = 33; the multi-trial search score's difference +0.61 [+0.28, +0.89]; "
              "BENCHMARKS.md, 'Fidelity against the long reference'): the confirmation decides",
              flush=True)
    verb = "to score" if st.supernet is not None else "to train"
    print(f"search stage: {st.remaining} architectures + {st.baselines_to_train} baselines {verb}; "
          f"{r.max_concurrent} at a time, {r.cpus_per_trial} CPU{gpu} each; Ray: {st.nodes} node(s)", flush=True)


def progress_line(p: Any) -> str:
    best = (f"best search {p.best_top1:.1f}% @ {p.best_madds_m:.0f}M ({p.best_trial})" if p.best_top1 is not None
            else "best -")
    eta = "ETA -" if p.eta_s is None else f"ETA {fmt_s(p.eta_s)}"
    if p.eta_s == 0:  # every planned job finished: the stage may still plan a higher rung or a seed round
        eta = "planned jobs done, planning more" if p.more_to_plan else "done"
    conf = f", {p.confirmed} confirm seeds" if p.confirmed else ""
    return (f"[{p.done:>3}/{p.total}] {p.searched} searched, {p.baselines} baselines{conf} | {best} | "
            f"pareto {p.pareto} | refused {p.refused} | {fmt_s(p.elapsed_s)} elapsed, {eta}")


def print_progress(p: Any) -> None:
    print(progress_line(p), flush=True)


def _per_family(dr: Any) -> str:
    """' (mobile_former ~16 s for 40% of the band, mobilevit ~6 s for 60%)' where the estimate weighs two or more
    macros' timed probes; '' for one."""
    if len(dr.probe_s) < 2:
        return ""
    return " (" + ", ".join(f"{m} ~{s:.0f} s for {100 * w:.0f}% of the band" for m, w, s in dr.probe_s) + ")"


def format_dry_run(dr: Any, copts: Any = None) -> list[str]:
    from nas.search.ladder import available_images
    from nas.space import format_madds

    p, sc, r = dr.plan, dr.plan.screen, dr.resources
    early = "off (one-shot: nothing trains)" if p.oneshot else ("on" if p.opts.early_stop else "off")
    out = [f"space {p.space.name} ({p.space.source}): {sc.samples} sampled architectures, analytic MAdds",
           f"  budget band [{format_madds(sc.low)}, {format_madds(p.budget)}]: {100 * sc.share_in_band:.1f}% of the "
           f"space fits ({100 * sc.share_under:.1f}% under budget); smallest reachable {format_madds(sc.min_madds)}",
           "  share in band by macro: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in dr.share_by_macro.items()),
           f"search stage: {p.opts.trials} searched trials ({p.opts.objective}, {p.sampler}, seed {p.opts.seed}) + "
           f"{len(p.baselines)} baselines ({', '.join(b.trial for b in p.baselines) or 'none in band'}"
           f"{'; cached: ' + ', '.join(dr.cached_baselines) if dr.cached_baselines else ''})",
           f"  search protocol {p.proxy.hash}: {p.proxy.epochs} epochs, {p.proxy.train_images} images at "
           f"{p.proxy.resolution}px on {p.dataset.name}, val {p.proxy.val_images} images carved from the training "
           f"set; early stop by MAdds band: {early}",
           *([f"  {short}"] if (short := p.proxy.shortfall(available_images(p.dataset, p.proxy),
                                                           what="search protocol")) and not p.oneshot else []),
           f"  ~{dr.search.job_s:.0f} s per trial{_per_family(dr)}, {dr.search.jobs} to train: "
           f"~{fmt_s(dr.search.wall_s)}"
           if not p.oneshot else
           f"  one-shot: ~{dr.search.job_s:.1f} s per architecture scored by inherited weights from {p.supernet}, "
           f"{dr.search.jobs} to score: ~{fmt_s(dr.search.wall_s)}"]
    if copts is None:
        out.append("confirm stage: off (--no-confirm): the search-stage numbers will be unconfirmed")
    elif dr.confirm is not None:
        out.append(f"confirm stage: top {copts.top_k} candidates + {len(p.baselines)} baselines x {copts.seeds} paired "
                   f"seeds, scored on the {p.dataset.name} test split")
        out.append(f"  ~{dr.confirm.job_s:.0f} s per job, {dr.confirm.jobs} jobs: ~{fmt_s(dr.confirm.wall_s)}")
    if dr.top is not None:
        from nas.search.ladder import MIN_HEADLINE_SEEDS

        then = (f", then the headline pair to {MIN_HEADLINE_SEEDS}" if copts.top_seeds < MIN_HEADLINE_SEEDS else "")
        out.append(f"top rung of the ladder: {dr.top_steps} training steps (the verdicts printed are this rung's): "
                   f"the headline candidate, the other family's best and their best published references x "
                   f"{copts.top_seeds} paired seeds{then}")
        out.append(f"  ~{dr.top.job_s:.0f} s per job, ~{dr.top.jobs} jobs: ~{fmt_s(dr.top.wall_s)}")
    if dr.headline is not None:
        fit = f" and what fits --time-budget {copts.time_budget_s / 60:g} min" if copts.time_budget_s else ""
        out.append(f"  then the headline verdict: the paired seeds a +-{copts.width:g}-point interval needs, at most "
                   f"{copts.max_seeds}{fit}: up to {dr.headline.jobs} more jobs, ~{fmt_s(dr.headline.wall_s)}")
    out.append(f"resources: {r.max_concurrent} concurrent x {r.cpus_per_trial} CPU (+{r.gpus_per_trial:g} GPU) per job")
    most = dr.max_wall_s if not (copts and copts.time_budget_s) else max(dr.est_wall_s, min(dr.max_wall_s,
                                                                                         copts.time_budget_s))
    upto = f", up to ~{fmt_s(most)} if the headline needs its most seeds" if dr.headline is not None else ""
    out.append(f"estimate: ~{fmt_s(dr.est_wall_s)} wall on this machine{upto} (timed real training steps of an "
               "in-band network of each macro and of the band's published variants; nothing trained)")
    return out


def _f(v: Any, spec: str = ".2f") -> str:
    try:
        return format(float(v), spec) if math.isfinite(float(v)) else "-"
    except (TypeError, ValueError):
        return "-"


def summary_lines(out: Any) -> list[str]:
    """The end-of-run text: confirmed verdicts with intervals first; the search front beside them."""
    from nas import results as R
    from nas import verdicts as V

    df = out.trials
    c = out.confirmation
    stages = (f"search stage {fmt_s(out.wall_s)}" + (f", confirm stage {fmt_s(c.wall_s)} ({c.trained} jobs trained, "
                                                     f"{c.cached} cached)" if c is not None else ""))
    how = "scored by inherited weights" if out.oneshot else "trained"
    # the rate counts what this invocation's jobs trained or scored, not rows kept from before a resume or reused
    rate = (f" ({60 * out.jobs_here / max(out.search_s, 1e-9):.1f} architectures/min)"
            if out.search_s and out.jobs_here else "")
    reused = f" ({out.reused} more reused from results/.cache)" if out.reused else ""
    lines = [f"{out.searched} searched + {out.baselines} baselines {how}{reused}, {out.refused} proposals refused by "
             f"the budget screen; {stages}{rate}" + ("  (interrupted)" if out.interrupted else "")]
    conf = V.compute_confirmation(df)
    if not conf.empty:
        lines += confirmation_lines(conf, run_resolution(out.run_dir), out.run_dir)
    else:
        lines.append("NOT CONFIRMED: the numbers below are single short search-stage runs on the validation split "
                     "(seed-to-seed they move by several points); run `nas confirm " + str(out.run_dir) + "`")
    lines.append("")
    lines.append("search stage (" + ("inherited supernet weights, BatchNorm recalibrated" if out.oneshot else
                                     "one short run each") + ", validation split carved from the training set):")
    front = R.compute_pareto(df)
    base = R.search_stage(df)
    base = base[(base["kind"] == "baseline") & base["status"].isin(R.FINISHED_OK)].sort_values("madds_m")
    lines.append(f"{'':2}{'trial':<20} {'family':<14} {'MAdds':>8} {'params':>7} {'val top-1':>9}")
    for _, r in front.iterrows():
        lines.append(f"* {str(r['trial']):<20} {str(r['family']):<14} {r['madds_m']:>7.1f}M {r['params_m']:>6.2f}M "
                     f"{r['val_top1']:>8.2f}%")
    for _, r in base.iterrows():
        if r["trial"] in set(front["trial"]):
            continue
        lines.append(f"  {str(r['trial']):<20} {str(r['family']):<14} {r['madds_m']:>7.1f}M {r['params_m']:>6.2f}M "
                     f"{r['val_top1']:>8.2f}%  baseline")
    lines.append("(* on the search front: max val top-1, min MAdds)")
    lines.append(f"front configs: {out.run_dir / R.VARIANTS_DIR}/  (nas train <yaml>, nas export {out.run_dir} <trial>)")
    return lines


def run_resolution(run_dir: Any) -> int | None:
    """The px a run's confirmation trained at (its confirm.yaml), for the summary's words."""
    from pathlib import Path

    from nas.config import load_yaml

    f = Path(run_dir) / "confirm.yaml"
    try:
        return int(load_yaml(f)["resolution"]) if f.is_file() else None
    except Exception:  # noqa: BLE001 - words only: a damaged file leaves them out
        return None


def training_words(steps: int, resolution: int | None = None) -> str:
    """The training length behind a number, in words a newcomer reads: "after 512 training steps at 32 px"."""
    if not steps:
        return "after the confirm protocol's training"
    return f"after {steps} training steps" + (f" at {resolution} px" if resolution else "")


def confirmation_lines(conf: Any, resolution: int | None = None, run_dir: Any = None) -> list[str]:
    t = conf.table
    ev = t["eval_set"].iloc[0] if len(t) else "test"
    ns = sorted({int(x) for x in t["n"]}) if len(t) else [0]
    seeds = (f"n = {ns[0]} paired seeds per architecture" if len(ns) == 1 else
             f"n = {ns[0]}-{ns[-1]} paired seeds per architecture, the most for the headline pair")
    when = training_words(conf.steps, resolution)
    ladder = ", ".join(str(n or s) for s, n in conf.rungs)
    lines = ["", f"confirmed ({ev} split, {seeds}, mean and 95% t interval; {when}"
             + (f"; rungs of the ladder: {ladder} steps" if len(conf.rungs) > 1 else "") + "):",
             f"{'':2}{'trial':<20} {'family':<14} {'MAdds':>8} {'top-1':>7} {'95% interval':>16} {'n':>3} {'search':>7}"]
    for r in t.to_dict("records"):
        mark = "*" if r["kind"] == "searched" else " "
        lines.append(f"{mark} {r['trial']:<20} {str(r['family']):<14} {r['madds_m']:>7.1f}M {_f(r['mean']):>7} "
                     f"[{_f(r['lo']):>6}, {_f(r['hi']):>6}] {int(r['n']):>3} {_f(r['search_top1']):>7}")
    lines.append("")
    lines.append(f"verdicts {when} (candidate - best published variant at <= MAdds, paired by seed; trend: the "
                 "same pair at each rung):")
    h = conf.headline
    if h is not None:
        from nas.verdicts import half_width

        lines.append(f"  HEADLINE {h['trial']} vs {h['reference']}: {_diff(h)}, half-width "
                     f"{_f(half_width(h))}: {str(h['verdict']).upper()}" + _trend(h))
        u = conf.headline_unchosen
        if u is not None and u.n >= 2:
            from nas.stats import diff_text

            lines.append(f"      on the {u.n} seeds that chose nothing (the first {int(h['n']) - u.n} chose the pair): "
                         + diff_text(u.mean, u.lo, u.hi, u.n, unit=" points") + f": {u.verdict.upper()}")
        lines += climb_hint(h, conf.steps, run_dir)
    for v in conf.verdicts.to_dict("records"):
        if h is not None and v["trial"] == h["trial"]:
            continue
        if not v["reference"]:
            lines.append(f"  {v['trial']}: {v['verdict']}")
            continue
        lines.append(f"  {v['trial']} vs {v['reference']}: {_diff(v)}: {v['verdict'].upper()}" + _trend(v))
    for d in conf.dominance:
        lines.append(f"  {d.text()}")
    return lines + trust_lines(conf.trust)


def _diff(v: dict[str, Any]) -> str:
    """A verdict's paired difference in points (`nas.stats.diff_text`): its gap first only where the interval
    excludes 0, else its interval, with the mean after it."""
    from nas.stats import diff_text

    return diff_text(float(v["diff"]), float(v["diff_lo"]), float(v["diff_hi"]), int(v["n"]), unit=" points")


def trust_lines(tr: Any) -> list[str]:
    """The summary's trust meter (a `nas.verdicts.Trust`): the ranking and noise of the first rung, then the
    noise of the top rung, where the printed verdicts stand."""
    lines = ["", "trust meter:", "  (read on the first rung, where every confirmed architecture is)",
             f"  {tr.rank_reading}", f"  {tr.noise_reading}"]
    if tr.top is not None:
        lines += [f"  (and on the top rung, {tr.top.steps} steps, where the verdicts above stand)",
                  f"  {tr.top.reading}"]
    return lines


def climb_hint(h: dict[str, Any], steps: int, run_dir: Any = None) -> list[str]:
    """Where the headline's gap still shrank on the last rung climbed (`last_trend`), its size is a statement at
    that training length only: one line saying so, with the command that climbs a rung (the ladder's factor)."""
    from nas.search.ladder import TOP_FACTOR

    if h.get("last_trend") != "shrinks" or not steps:
        return []
    run = str(run_dir) if run_dir is not None else "RUN"
    return [f"      its gap is still shrinking at {steps} steps, so its size holds at this training length only: "
            f"`nas confirm {run} --steps {TOP_FACTOR * steps}` climbs a rung (`--headline-only`: this pair alone)"]


def _trend(v: dict[str, Any]) -> str:
    """A verdict's trend across the ladder, as its summary line ends: "; trend SHRINKS (128: ...; 512: ...)"."""
    if not v.get("rungs") or v.get("trend") in ("", "one rung", None):
        return ""
    return f"\n      trend {str(v['trend']).upper()} by training steps: {v['rungs']}"


__all__ = ["add_arguments", "run", "summary_lines", "format_dry_run", "progress_line", "command_line"]
