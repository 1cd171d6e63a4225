"""One-shot search without a Tune trial per architecture: a pool of Ray actors, each holding the supernet, the
search protocol's data and the calibration images once, scores the proposals the `BudgetedSearcher` hands
out (one Ray actor call each, a few milliseconds of turnaround instead of a Tune trial's second or more).

The driver loop is the one Ray Tune runs, made small: ask the searcher while a worker is free, hand the job
to it, tell the searcher each result as it comes back (the run's row is written there, first). Ctrl-C leaves
the jobs in flight unrecorded and their Optuna trials marked interrupted, so `nas search --resume` scores
them again; a SIGKILL leaves them RUNNING in the study, which the resume's `prepare_study` closes and queues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray
from ray.tune.search import Searcher

from nas.jobs import TrialJob
from nas.tuning.searcher import BudgetedSearcher

QUEUE_DEPTH = 2


@ray.remote
class ScoreWorker:
    """One scoring process: the Ray-free `nas.supernet.score.score_job`, its state loaded once."""

    def __init__(self, *, space: dict[str, Any], proxy: dict[str, Any], data: str, supernet: str,
                 calibration: int, images: int, runtime: dict[str, Any]):
        self.kw = dict(space=space, proxy=proxy, data=data, supernet=supernet, calibration=calibration,
                       images=images, runtime=runtime)

    def score(self, config: dict[str, Any]) -> dict[str, Any]:
        from nas.supernet.score import score_job

        out: list[dict[str, Any]] = []
        score_job(TrialJob.from_config(config), out.append, **self.kw)
        return out[-1]


def score_with_pool(searcher: BudgetedSearcher, n: int, *, workers: int, cpus_per_worker: float,
                    worker_kw: dict[str, Any], on_error: Callable[[dict[str, Any], str], None],
                    on_start: Callable[[dict[str, Any]], None]) -> None:
    """Score up to `n` jobs from `searcher` on `workers` actors of `cpus_per_worker` CPUs each."""
    if n <= 0:
        return

    def new_worker() -> Any:
        actors.append(ScoreWorker.options(num_cpus=cpus_per_worker).remote(**worker_kw))
        return actors[-1]

    actors: list[Any] = []
    replaced: dict[Any, Any] = {}  # a dead worker -> the fresh one that took its place
    # QUEUE_DEPTH calls in flight per worker: a worker finds its next architecture queued when it finishes one,
    # while the driver records the result and asks the searcher (BENCHMARKS.md, "Supernet and one-shot search")
    idle = [a for a in (new_worker() for _ in range(max(1, workers))) for _ in range(QUEUE_DEPTH)]
    flying: dict[Any, tuple[str, dict[str, Any], Any]] = {}  # ObjectRef -> (job id, config, actor)
    asked, exhausted = 0, False
    try:
        while True:
            while idle and not exhausted and asked < n:
                tid = f"score-{asked:05d}"
                cfg = searcher.suggest(tid)
                if cfg == Searcher.FINISHED or (cfg is None and not flying):
                    exhausted = True
                    break
                if cfg is None:  # the searcher waits for a result still in flight (ordered telling)
                    break
                asked += 1
                on_start(cfg)
                actor = idle.pop()
                flying[actor.score.remote(cfg)] = (tid, cfg, actor)
            if not flying:
                return
            (ref,), _ = ray.wait(list(flying), num_returns=1)
            tid, cfg, actor = flying.pop(ref)
            try:
                result, error = ray.get(ref), False
            except ray.exceptions.RayError as e:  # the worker died: recorded, a fresh worker takes its place
                result, error = None, True
                on_error(cfg, str(e).strip().splitlines()[-1][:300] if str(e).strip() else "the Ray worker died")
                if actor not in replaced:
                    replaced[actor] = new_worker()
                actor = replaced[actor]
            searcher.on_trial_complete(tid, result, error=error)
            idle.append(actor)
    except KeyboardInterrupt:
        for tid, _cfg, _actor in flying.values():  # not recorded; their Optuna trials are marked interrupted
            searcher.on_trial_complete(tid, None, error=False)
        searcher.interrupted = True
    finally:
        for a in actors:
            ray.kill(a)


__all__ = ["ScoreWorker", "score_with_pool"]
