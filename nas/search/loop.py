"""The search loop: start Ray, write the run folder, run the baselines and the Optuna-proposed trials
through `nas.tuning`, record every finished job the moment it ends, and say how the run ended."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas import results as R
from nas.jobs import Resources, TrialJob
from nas.search.ladder import available_images
from nas.search.plan import SearchPlan, choose_resources
from nas.search.recorder import Progress, RunRecorder, finite


@dataclass
class SearchOutcome:
    """What a finished (or interrupted) search leaves: its rows and front, and the counts of what ran."""

    run_dir: Path
    trials: Any
    pareto: Any
    searched: int
    baselines: int
    refused: int
    wall_s: float
    interrupted: bool = False
    dashboard: Path | None = None
    confirmation: Any = None
    oneshot: bool = False
    search_s: float = 0.0  # seconds the search stage's jobs ran (Ray start excluded)
    reused: int = 0  # baselines taken from the baseline cache (not in `baselines`, which this run trained)
    jobs_here: int = 0  # jobs this invocation's search stage finished (trained or scored), over search_s


@dataclass(frozen=True)
class SearchStart:
    """What the search is about to do (the CLI prints it)."""

    run_dir: Path
    dashboard: Path | None
    resumed: bool
    kept: int
    rerun: int
    remaining: int
    baselines_to_train: int
    cached_baselines: dict[str, float]
    resources: Resources
    nodes: int
    supernet: Path | None = None


def start_ray(plan: SearchPlan) -> tuple[Resources, dict[str, Any]]:
    """Start (or join) Ray and choose each job's resources from what it sees."""
    from nas import tuning

    o = plan.opts
    info = tuning.init_ray(address=o.address, num_cpus=None if o.address else os.cpu_count(),
                           log_dir=plan.run_dir / "ray")
    avail = info["resources"]
    res = choose_resources(cpus=int(avail.get("CPU", 1)), gpus=float(avail.get("GPU", 0)),
                           cpus_per_trial=o.cpus_per_trial, gpus_per_trial=o.gpus_per_trial,
                           max_concurrent=o.max_concurrent)
    return res, info


def stop_ray(plan: SearchPlan) -> None:
    from nas import tuning

    if not plan.opts.address:
        tuning.shutdown_ray(keep_logs_in=plan.run_dir / "ray" / "logs")


def run_search(plan: SearchPlan, *, dashboard: Path | None = None, extra_jobs: int = 0,
               on_start: Callable[[SearchStart], None] | None = None,
               on_progress: Callable[[Progress], None] | None = None,
               on_note: Callable[[str], None] | None = None, keep_ray: bool = False) -> SearchOutcome:
    """Run (or resume) the planned search; every finished trial is in the run folder the moment it ends.

    `extra_jobs` counts jobs a later stage adds (for the progress total); with `keep_ray` Ray stays up for
    that stage (`stop_ray` then ends it)."""
    from nas import tuning
    from nas.search.folder import oneshot_scoring, write_run_files

    t0 = time.time()
    o = plan.opts
    d = plan.run_dir
    resources, info = start_ray(plan)  # an unreachable cluster fails here, before the run folder exists
    interrupted = False
    try:
        write_run_files(plan, resources=resources.to_dict())
        rec = RunRecorder(plan, total=o.trials + len(plan.baselines) + extra_jobs, dashboard=dashboard,
                          on_progress=on_progress, on_note=on_note)
        # baselines: this run's rows, then the cross-run cache, train the rest
        pending: list[TrialJob] = []
        cached: dict[str, float] = {}
        for job in plan.baselines:
            if rec.is_trained(job):
                continue
            # one-shot baselines are scored by inherited weights: never mixed with trained figures
            hit = None if plan.oneshot else rec.cache.get(job.arch_id, plan.proxy.hash, plan.dataset.name,
                                                          seed=job.seed)
            if hit is not None:
                rec.add_cached(job, hit)
                cached[job.trial] = float(hit.get("val_top1", float("nan")))
            else:
                pending.append(job)
        storage_url = str(R.study_location(d))  # the run's Optuna journal (optuna.db for a run begun before)
        searched = [r for r in rec.rows.values() if r["kind"] == "searched" and r["stage"] == "search"]
        done_numbers = {int(r["number"]) for r in searched if r["status"] != "running"}
        results = {int(r["number"]): (float(r["val_top1"]) if finite(r["val_top1"]) else None) for r in searched}
        n_study, rerun = tuning.prepare_study(storage_url, plan.name, objective=o.objective,
                                              done_numbers=done_numbers, results=results)
        remaining = max(0, o.trials - len(rec.trained("searched")))
        rec.flush(quiet=True)
        if on_start is not None:
            on_start(SearchStart(run_dir=d, dashboard=dashboard, resumed=plan.resumed,
                                 kept=len(rec.trained("searched")), rerun=len(rerun), remaining=remaining,
                                 baselines_to_train=len(pending), cached_baselines=cached, resources=resources,
                                 nodes=int(info.get("nodes", 1)), supernet=plan.supernet))
        short = plan.proxy.shortfall(available_images(plan.dataset, plan.proxy), what="search protocol")
        if on_note is not None and short and not plan.oneshot:
            on_note(short)
        scoring = oneshot_scoring()
        spec = tuning.TuneSpec(space=plan.space, budget=plan.budget, min_budget=plan.min_budget,
                               objective=o.objective, sampler=plan.sampler, trials=remaining, seed=o.seed + n_study,
                               proxy=plan.proxy.to_dict(), data=str(o.data) if o.data else plan.dataset.name,
                               storage_url=storage_url, study_name=plan.name, storage_path=d / "ray",
                               resources=resources, jobs=pending, early_stop=o.early_stop and not plan.oneshot,
                               curves=o.curves,
                               supernet=str(plan.supernet) if plan.oneshot else None,
                               calibration=scoring["calibration_images"], score_images=scoring["score_images"],
                               runtime=plan.runtime)
        hooks = tuning.SearchHooks(on_refused=rec.on_refused, on_finished=rec.on_finished,
                                   known_result=rec.known_result)
        t_jobs = time.time()
        try:
            if remaining or pending:
                searcher = tuning.run_tune(spec, hooks, on_error=rec.on_error, on_start=rec.on_start)
                interrupted = searcher.interrupted
        except KeyboardInterrupt:
            interrupted = True
        search_s = time.time() - t_jobs if (remaining or pending) else 0.0
    except BaseException:
        stop_ray(plan)
        raise
    if not keep_ray or interrupted:
        stop_ray(plan)
    # Ray Tune catches Ctrl-C itself and returns early, so an interrupted run is also one that stopped short
    # of its targets (failed and NaN trials count as finished: Tune ends only when every sample has).
    if len(rec.trained("searched")) < o.trials or len(rec.trained("baseline")) < len(plan.baselines):
        interrupted = True
    rec.flush(quiet=True)
    rec.refresh_dashboard()
    df = rec.frame()
    search = R.search_stage(df)
    reused = rec.reused()
    return SearchOutcome(run_dir=d, trials=df, pareto=R.compute_pareto(df), searched=len(rec.trained("searched")),
                         baselines=len(rec.trained("baseline")) - reused, reused=reused,
                         refused=int((search["status"] == "over_budget").sum()),
                         wall_s=time.time() - t0, interrupted=interrupted, dashboard=dashboard, oneshot=plan.oneshot,
                         search_s=search_s, jobs_here=rec.finished_here)
