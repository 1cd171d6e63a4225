"""Ray Tune drivers: a search (`run_tune`), fixed jobs (`run_jobs`) and the supernet training
(`run_supernet_training`), each one `tune.Tuner` over the Ray-free jobs (`nas.tuning.trainables`); a one-shot
search scores on a pool of Ray actors instead (`nas.tuning.scoring`).

Every job gets one `nas.runtime.Runtime` (device, threads = the CPUs Ray gives each trial, memory format,
precision, compile); its rows are written by the caller's hooks, never here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from nas.errors import RunError
from nas.jobs import Resources, TrialJob
from nas.runtime import Runtime
from nas.space import SearchSpace
from nas.tuning.schedulers import MAddsBandedASHA
from nas.tuning.scoring import QUEUE_DEPTH, score_with_pool
from nas.tuning.searcher import BudgetedSearcher, DriverOnly, JobQueue, SearchHooks
from nas.tuning.trainables import supernet_trainable, trainable


class _Progress(DriverOnly, tune.Callback):
    def __init__(self, on_result: Callable[[dict[str, Any]], None]):
        self.on_result = on_result

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self.on_result(dict(result))


def run_supernet_training(settings: dict[str, Any], run_dir: Path, *, cpus: int, gpus: float,
                          on_result: Callable[[dict[str, Any]], None], runtime: Runtime | None = None
                          ) -> dict[str, Any]:
    """Train a supernet as one Ray Tune trial (all the CPUs it is given as its threads, a GPU when Ray sees
    one); returns its last result. The trial checkpoints into `run_dir` itself, so a resume needs no Tune
    state."""
    last: dict[str, Any] = {}

    def keep(result: dict[str, Any]) -> None:
        last.clear()
        last.update(result)
        on_result(result)

    rt = Runtime.of(runtime).replace(threads=max(1, int(cpus)))
    fn = tune.with_parameters(supernet_trainable, settings=settings, run_dir=str(run_dir.resolve()),
                              runtime=rt.to_dict())
    fn = tune.with_resources(fn, {"cpu": cpus, "gpu": gpus})
    tuner = tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(name=f"supernet-{int(time.time())}", storage_path=str((run_dir / "ray").resolve()),
                                  verbose=0, callbacks=[_Progress(keep)],
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    )
    grid = tuner.fit()
    if grid.errors and not last.get("final"):
        raise RunError(f"the supernet training job failed: {str(grid.errors[0]).strip().splitlines()[-1][:300]}",
                       f"see {run_dir / 'ray'} for Ray's logs; `nas supernet train --resume {run_dir}` continues "
                       "from the last checkpoint")
    return last


# ---------------------------------------------------------------------------------------------------------
# Callback for trials Ray itself lost (actor died) and the progress view


class _Watch(DriverOnly, tune.Callback):
    def __init__(self, on_error: Callable[[dict[str, Any], str], None], on_start: Callable[[dict[str, Any]], None]):
        self.on_error_cb, self.on_start_cb = on_error, on_start

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_start_cb(dict(trial.config))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        msg = ""
        try:
            if trial.error_file and Path(trial.error_file).is_file():
                msg = Path(trial.error_file).read_text().strip().splitlines()[-1]
        except Exception:  # pragma: no cover
            pass
        self.on_error_cb(dict(trial.config), msg or "the Ray worker died")


@dataclass
class TuneSpec:
    """Everything `run_tune` needs for a search: the space, budget band, sampler, protocol and resources."""

    space: SearchSpace
    budget: int
    min_budget: float
    objective: str
    trials: int
    seed: int
    proxy: dict[str, Any]
    data: str
    storage_url: str
    study_name: str
    storage_path: Path
    resources: Resources
    jobs: list[TrialJob] = field(default_factory=list)
    early_stop: bool = True
    curves: bool = True  # validate every epoch (False: the last only; early stopping reads every epoch's)
    sampler: str | None = None
    supernet: str | None = None  # one-shot: score by inherited weights from this supernet instead of training
    calibration: int = 256  # one-shot: training images that recalibrate BatchNorm
    score_images: int = 0  # one-shot: validation images each score reads (0: the whole split)
    runtime: Runtime = field(default_factory=Runtime)  # threads: each trial's CPUs (set in `_fit`)

    @property
    def epochs(self) -> int:
        return int(self.proxy["epochs"])


def run_tune(spec: TuneSpec, hooks: SearchHooks, *, on_error: Callable[[dict[str, Any], str], None],
             on_start: Callable[[dict[str, Any]], None]) -> BudgetedSearcher:
    """Run the fixed jobs, then the searched trials, through one Ray Tune `Tuner`; returns the searcher."""
    res = spec.resources
    jobs = [j.replace(gpus=res.gpus_per_trial) for j in spec.jobs]
    # results are told to Optuna in the order the jobs were sent, all but as many as can be in flight at once
    # (`BudgetedSearcher`): the same seed gives the same proposals however the jobs' times fall
    in_flight = res.max_concurrent * (QUEUE_DEPTH if spec.supernet else 1)
    searcher = BudgetedSearcher(space=spec.space, budget=spec.budget, min_budget=spec.min_budget,
                                objective=spec.objective, storage_url=spec.storage_url, study_name=spec.study_name,
                                seed=spec.seed, trials=spec.trials, jobs=jobs, hooks=hooks, sampler=spec.sampler,
                                train_seed=int(spec.proxy["seed"]), trial_gpus=res.gpus_per_trial, lag=in_flight)
    scheduler = (MAddsBandedASHA(budget=spec.budget, max_t=spec.epochs, stopped=searcher.stopped)
                 if spec.early_stop else FIFOScheduler())
    try:
        if spec.supernet:  # one-shot: scored by a pool of workers that hold the supernet, no Tune trial per job
            rt = spec.runtime.replace(threads=max(1, int(res.cpus_per_trial)))
            score_with_pool(searcher, spec.trials + len(jobs), workers=res.max_concurrent,
                            cpus_per_worker=res.cpus_per_trial,
                            worker_kw=dict(space=spec.space.raw, proxy=spec.proxy, data=spec.data,
                                           supernet=spec.supernet, calibration=spec.calibration,
                                           images=spec.score_images, runtime=rt.to_dict()),
                            on_error=on_error, on_start=on_start)
        else:
            _fit(searcher, scheduler, spec.trials + len(jobs), space=spec.space, proxy=spec.proxy, data=spec.data,
                 resources=res, storage_path=spec.storage_path, on_error=on_error, on_start=on_start,
                 runtime=spec.runtime, curve=spec.curves or spec.early_stop)
    finally:
        searcher.release_all()
    return searcher


def run_jobs(jobs: list[TrialJob], hooks: SearchHooks, *, space: SearchSpace, proxy: dict[str, Any], data: str,
             resources: Resources, storage_path: Path, on_error: Callable[[dict[str, Any], str], None],
             on_start: Callable[[dict[str, Any]], None], runtime: Runtime | None = None,
             checkpoint_dir: Path | None = None) -> JobQueue:
    """Run fixed jobs (no search) through Ray Tune with the same trainable, resources and GPU shares as a
    search; each finished job goes to `hooks.on_finished`. Returns the queue (`interrupted` says whether
    Ctrl-C cut it short). With `checkpoint_dir`, each job saves its state there between epochs and a killed
    job resumes from it (`nas.train.checkpoint`)."""
    queue = JobQueue([j.replace(gpus=resources.gpus_per_trial) for j in jobs], hooks)
    _fit(queue, FIFOScheduler(), len(jobs), space=space, proxy=proxy, data=data, resources=resources,
         storage_path=storage_path, on_error=on_error, on_start=on_start, runtime=runtime,
         checkpoint_dir=checkpoint_dir)
    return queue


def _fit(searcher: Searcher, scheduler: TrialScheduler, n: int, *, space: SearchSpace, proxy: dict[str, Any],
         data: str, resources: Resources, storage_path: Path, on_error: Callable[[dict[str, Any], str], None],
         on_start: Callable[[dict[str, Any]], None], runtime: Runtime | None = None,
         checkpoint_dir: Path | None = None, curve: bool = True) -> None:
    """Train `n` jobs from `searcher` as Tune trials; each runs in `runtime` with as many torch threads as Ray
    gives it CPUs (and checkpoints under `checkpoint_dir`, where one is given), validating after every epoch or,
    where `curve` is False, after the last only."""
    if n <= 0:
        return
    rt = Runtime.of(runtime).replace(threads=max(1, int(resources.cpus_per_trial)))
    fn = tune.with_parameters(trainable, space=space.raw, proxy=proxy, data=data, runtime=rt.to_dict(),
                              checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir.resolve()),
                              curve=curve)
    fn = tune.with_resources(fn, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    tuner = tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=n,
                                    max_concurrent_trials=resources.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=f"tune-{int(time.time())}", storage_path=str(storage_path.resolve()),
                                  verbose=0, callbacks=[_Watch(on_error, on_start)],
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    )
    tuner.fit()


__all__ = ["TuneSpec", "run_tune", "run_jobs", "run_supernet_training"]
