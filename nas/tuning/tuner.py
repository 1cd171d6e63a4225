"""Ray Tune at the edge: the only module that imports Ray.

Optuna proposes through Ray's `OptunaSearch` (TPE for one objective, NSGA-II for ``pareto``), with the study
in the run folder's sqlite storage. `BudgetedOptunaSearch` screens every proposal with the analytic MAdds
count *before* anything is built: a config outside the budget band is told to Optuna as a completed trial
that violates its constraint (``constraints_func``), recorded as an ``over_budget`` row, and never reaches
Ray; Optuna is asked again. Fixed jobs (`nas.jobs.TrialJob`: published baselines, confirmation seeds) run
through the same trainable, resources and Ray session: handed out before the searched ones in a search
(`run_tune`), or on their own (`run_jobs`).

`MAddsBandedASHA` early-stops a trial only against trials of similar MAdds (one ASHA per MAdds band), so a
small network is never killed for being less accurate than a large one: the Pareto front keeps its small end.

The trainable loads the dataset once per worker process, replays the trial's Optuna parameters into the
same ArchConfig (a FixedTrial through `sample_arch`), and reports each proxy epoch to Tune.

Files: `init_ray` notes Ray's session folder in the run's ray/ folder and `shutdown_ray` copies Ray's logs
there; the run's rows are written by the caller's hooks, not here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from nas.errors import RunError
from nas.jobs import Resources, TrialJob, trial_id
from nas.madds import count_madds
from nas.space import SearchSpace, parse_space, replay

METRIC = "val_top1"
TIME_ATTR = "epoch"
_DATA_CACHE: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------------------
# Ray session


def init_ray(*, address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             log_dir: Path | None = None) -> dict[str, Any]:
    """Start (or connect to) Ray quietly: no dashboard, workers' logs not streamed to the terminal."""
    if ray.is_initialized():
        return {"address": "existing", "resources": ray.cluster_resources()}
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "2")
    _quiet()
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if address:  # an existing cluster: its own resources and dashboard settings stand
        _check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
            raise RunError(f"no Ray cluster at --address {address}: {str(e).splitlines()[0][:200]}",
                           _ADDRESS_FIX) from None
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **kwargs)
    info = {"address": address or "local", "resources": ray.cluster_resources(),
            "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
    try:
        info["session_dir"] = ray.get_runtime_context().get_node_id() and _session_dir()
    except Exception:  # pragma: no cover - informational only
        pass
    if log_dir is not None and info.get("session_dir"):
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "ray_session.txt").write_text(f"{info['session_dir']}/logs\n")
    return info


_ADDRESS_FIX = ("start one there (`ray start --head` prints its address), pass the address it printed, "
                "or drop --address to run on this machine")


def _check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT where nothing listens (ray.init would retry for minutes, logging each try)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--address {address!r} is not HOST:PORT", f"e.g. --address 10.0.0.5:6379; or {_ADDRESS_FIX}")
    import socket

    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise RunError(f"no Ray cluster answers at --address {address} ({e.strerror or type(e).__name__})",
                       _ADDRESS_FIX) from None


def _quiet() -> None:
    """One progress line instead of Ray's and Optuna's log flood (their logs stay in Ray's session folder)."""
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna\..*")
    for name in ("ray", "ray.tune", "ray.train", "ray._private", "ray.util"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _session_dir() -> str:
    from ray._private.worker import global_worker

    return str(global_worker.node.get_session_dir_path()) if global_worker.node else ""


def shutdown_ray(*, keep_logs_in: Path | None = None) -> None:
    """Stop the local Ray session; with `keep_logs_in`, first copy its logs there (they live under Ray's
    temp dir, whose socket paths are too long to put inside a run folder)."""
    if not ray.is_initialized():
        return
    session = _session_dir() if keep_logs_in is not None else None
    ray.shutdown()
    if session:
        import shutil

        src = Path(session) / "logs"
        try:
            shutil.copytree(src, keep_logs_in, dirs_exist_ok=True,
                            ignore=lambda _d, names: [n for n in names if n.endswith((".sock", ".lock"))])
        except (OSError, shutil.Error) as e:  # logs are a convenience: never fail a finished run over them
            logging.getLogger(__name__).warning("could not copy Ray's logs from %s: %s", src, e)


# ---------------------------------------------------------------------------------------------------------
# The trainable (runs in a Ray worker process)


def _dataset(spec: str):
    if spec not in _DATA_CACHE:
        from nas.data import load_dataset

        _DATA_CACHE[spec] = load_dataset(spec)
    return _DATA_CACHE[spec]


def _job_arch(job: TrialJob, space: dict[str, Any]) -> Any:
    """The architecture of a job: its published variant, or its knobs replayed in the run's space."""
    from nas.variants import get_variant

    return get_variant(job.variant) if job.kind == "baseline" else replay(job.params, parse_space(space, source="run"))


def trainable(config: dict[str, Any], *, space: dict[str, Any], proxy: dict[str, Any], data: str,
              cpus: int) -> None:
    """One training job (`config` is a TrialJob): reports each epoch to Tune (with the curve so far), then a
    final report. The job's seed replaces the protocol's; a confirm job is also scored on the test split."""
    import torch

    from nas.train import proxy_from_dict, train_arch

    torch.set_num_threads(max(1, int(cpus)))
    job = TrialJob.from_config(config)
    pc = proxy_from_dict(proxy)
    if job.seed != pc.seed:
        pc = pc.replace(seed=int(job.seed))
    arch = _job_arch(job, space)
    curve: list[float] = []
    base = {"trial": job.trial, "stage": job.stage, "seed": job.seed, "madds_m": job.madds_m, "arch_id": arch.arch_id}
    t0 = time.time()
    if arch.arch_id != job.arch_id:
        tune.report({**base, "status": "failed", "final": True, "epoch": 0, "val_top1": None,
                     "error": f"replay gave arch {arch.arch_id}, proposal was {job.arch_id}"})
        return
    use_gpu = job.gpus > 0 and torch.cuda.is_available()

    def report(m: dict[str, Any]) -> None:
        v = m.get("val_top1")
        curve.append(float(v) if v is not None else math.nan)
        tune.report({**base, "epoch": int(m["epoch"]), METRIC: v, "train_loss": m.get("train_loss"),
                     "images_per_s": m.get("images_per_s"), "val_curve": json.dumps(curve),
                     "best_val_top1": _nanmax(curve), "wall_s": time.time() - t0})

    try:
        res = train_arch(arch, _dataset(data), pc, device="cuda" if use_gpu else "cpu", report=report,
                         threads=max(1, int(cpus)), final=job.evaluate_test)
        out = {"status": res.status, METRIC: res.val_top1, "best_val_top1": res.best_val_top1,
               "epoch": res.epochs_run, "images_per_s": res.train_images_per_s, "wall_s": res.wall_s,
               "params_m": (res.params or 0) / 1e6, "error": res.error or "",
               "val_curve": json.dumps([h.get("val_top1") for h in res.history]),
               "test_top1": res.test_top1, "eval_set": _eval_set(job.evaluate_test, data)}
    except Exception as e:  # a trial that raises is recorded, the search goes on
        out = {"status": "failed", METRIC: None, "epoch": len(curve), "error": f"{type(e).__name__}: {e}"[:2000],
               "wall_s": time.time() - t0, "val_curve": json.dumps(curve)}
    if out["status"] in ("nan", "failed"):
        out[METRIC] = None
    tune.report({**base, **out, "final": True})


_SUPERNET_CACHE: dict[str, Any] = {}


def _scorer_state(supernet: str, proxy: dict[str, Any], data: str, calibration: int) -> tuple[Any, Any, Any]:
    """The supernet, the search protocol's data and the calibration images, loaded once per worker
    process (Tune reuses the worker for the next trial, so each scorer holds the supernet once)."""
    key = (supernet, json.dumps(proxy, sort_keys=True), data, calibration)
    if _SUPERNET_CACHE.get("key") != key:
        from nas.supernet.score import calibration_batch, load_supernet
        from nas.train import proxy_from_dict
        from nas.train.pipeline import prepare_data

        _SUPERNET_CACHE.clear()
        net, _ = load_supernet(supernet)
        prep = prepare_data(_dataset(data), proxy_from_dict(proxy))
        _SUPERNET_CACHE.update(key=key, state=(net, prep, calibration_batch(prep, calibration)))
    return _SUPERNET_CACHE["state"]


def scorer(config: dict[str, Any], *, space: dict[str, Any], proxy: dict[str, Any], data: str, cpus: int,
           supernet: str, calibration: int) -> None:
    """One-shot job (`config` is a TrialJob): the architecture's inherited-weight top-1 on the search
    validation split, after BatchNorm recalibration; one final report."""
    import torch

    from nas.errors import NasError
    from nas.supernet.score import score_subnet

    torch.set_num_threads(max(1, int(cpus)))
    job = TrialJob.from_config(config)
    t0 = time.time()
    arch = _job_arch(job, space)
    base = {"trial": job.trial, "stage": job.stage, "seed": job.seed, "madds_m": job.madds_m, "arch_id": arch.arch_id,
            "final": True, "epoch": 1, "eval_set": "val"}
    try:
        net, prep, cal = _scorer_state(supernet, proxy, data, calibration)
        top1 = score_subnet(net, arch, prep, calibration=cal)
        out = {"status": "completed", METRIC: top1, "best_val_top1": top1, "val_curve": json.dumps([top1]),
               "error": ""}
    except NasError as e:  # e.g. an architecture the supernet does not hold: recorded, the search goes on
        out = {"status": "failed", METRIC: None, "error": e.message[:2000], "val_curve": "[]"}
    except (RuntimeError, ValueError) as e:
        out = {"status": "failed", METRIC: None, "error": f"{type(e).__name__}: {e}"[:2000], "val_curve": "[]"}
    tune.report({**base, **out, "wall_s": time.time() - t0})


def supernet_trainable(config: dict[str, Any], *, settings: dict[str, Any], run_dir: str, cpus: int) -> None:
    """The supernet training job: reports progress every 10 steps, then a final report."""
    import torch

    from nas.supernet.train import SupernetSettings, train_supernet

    s = SupernetSettings(**settings)
    device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
    try:
        last = train_supernet(s, Path(run_dir), report=lambda m: tune.report({**m, "final": False}), device=device,
                              threads=max(1, int(cpus)))
        tune.report({**last, "final": True, "status": "completed", "device": device})
    except (RuntimeError, FloatingPointError, ValueError) as e:
        tune.report({"final": True, "status": "failed", "error": f"{type(e).__name__}: {e}"[:2000]})


class _Progress(tune.Callback):
    def __init__(self, on_result: Callable[[dict[str, Any]], None]):
        self.on_result = on_result

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self.on_result(dict(result))


def run_supernet_training(settings: dict[str, Any], run_dir: Path, *, cpus: int, gpus: float,
                          on_result: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Train a supernet as one Ray Tune trial (all the CPUs it is given, a GPU when Ray sees one); returns
    its last result. The trial checkpoints into `run_dir` itself, so a resume needs no Tune state."""
    last: dict[str, Any] = {}

    def keep(result: dict[str, Any]) -> None:
        last.clear()
        last.update(result)
        on_result(result)

    fn = tune.with_parameters(supernet_trainable, settings=settings, run_dir=str(run_dir.resolve()), cpus=cpus)
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


def _eval_set(test: bool, data: str) -> str:
    if not test:
        return "val"
    return "test" if _dataset(data).test_source == "test split" else "held-out"


def _nanmax(xs: list[float]) -> float | None:
    ok = [x for x in xs if x == x]
    return max(ok) if ok else None


# ---------------------------------------------------------------------------------------------------------
# The searcher


@dataclass
class Proposal:
    """What the searcher decided about one Optuna trial (sent to Ray, refused, or a duplicate)."""

    number: int
    params: dict[str, Any]
    arch: Any
    madds: int
    status: str  # "over_budget" | "under_band" | "duplicate"


@dataclass
class SearchHooks:
    """How the searcher tells the run what happened (the run folder is written there, not here)."""

    on_refused: Callable[[Proposal], None]
    on_finished: Callable[[dict[str, Any], dict[str, Any] | None, bool], None]
    known_result: Callable[[str], float | None] = lambda _arch_id: None


_HAS_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")  # Optuna >= 5


def constraint_of(trial: optuna.trial.FrozenTrial) -> list[float]:
    """The budget constraint of a trial (<= 0 feasible), for Optuna < 5's `constraints_func`."""
    return list(trial.user_attrs.get("constraint", [0.0]))


def set_budget_constraint(trial: optuna.trial.Trial, violation: float) -> None:
    """Tell the sampler how far outside the budget band a proposal is (<= 0: inside)."""
    if _HAS_SET_CONSTRAINT:
        trial.set_constraint("madds_band", float(violation))
    else:  # pragma: no cover - Optuna 4
        trial.set_user_attr("constraint", [float(violation)])


SAMPLERS = ("tpe", "nsga2", "random")


def default_sampler(objective: str) -> str:
    """TPE for one objective, NSGA-II for the Pareto objective."""
    return "nsga2" if objective == "pareto" else "tpe"


def make_sampler(name: str, *, objective: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler `name` (tpe, nsga2, random). TPE and NSGA-II are constraint-aware (infeasible
    proposals rank last); random search is the baseline a search must beat."""
    import warnings

    extra: dict[str, Any] = {} if _HAS_SET_CONSTRAINT else {"constraints_func": constraint_of}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(16, trials // 2)), **extra)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, trials // 2)),
                                              multivariate=True, group=True, **extra)
    raise ValueError(f"unknown sampler {name!r}; one of {SAMPLERS}")


class BudgetedOptunaSearch(OptunaSearch):
    """OptunaSearch that screens each proposal by analytic MAdds and hands out the fixed jobs first."""

    def __init__(self, *, space: SearchSpace, budget: int, min_budget: float, objective: str,
                 storage_url: str, study_name: str, seed: int, trials: int, jobs: list[TrialJob],
                 hooks: SearchHooks, sampler: str | None = None, train_seed: int = 0, trial_gpus: float = 0.0,
                 max_attempts: int = 400):
        metric: str | list[str] = METRIC if objective == "top1" else [METRIC, "madds_m"]
        mode: str | list[str] = "max" if objective == "top1" else ["max", "min"]
        storage = optuna.storages.RDBStorage(storage_url, engine_kwargs={"connect_args": {"timeout": 30}})
        self.nas_space = space
        self.budget, self.low = budget, min_budget * budget
        self.objective = objective
        self.hooks = hooks
        self.max_attempts = max_attempts
        self.train_seed, self.trial_gpus = int(train_seed), float(trial_gpus)
        self.pending_jobs = [j.to_config() for j in jobs]
        self.fixed: dict[str, dict[str, Any]] = {}  # Tune trial id -> fixed job config
        self.sent: dict[str, dict[str, Any]] = {}
        self.refused = 0
        self.stopped: set[str] = set()  # trial ids the early-stopping scheduler stopped
        self.interrupted = False
        super().__init__(space=lambda t: _define(t, space), metric=metric, mode=mode,
                         sampler=make_sampler(sampler or default_sampler(objective), objective=objective, seed=seed,
                                              trials=trials), study_name=study_name,
                         storage=storage)

    # Ray calls suggest() once per new Tune trial.
    def suggest(self, tune_id: str) -> dict[str, Any] | None:
        if self.pending_jobs:
            cfg = self.pending_jobs.pop(0)
            self.fixed[tune_id] = cfg
            return cfg
        for _ in range(self.max_attempts):
            params = super().suggest(tune_id)
            ot_trial = self._ot_trials.pop(tune_id)
            arch = replay(params, self.nas_space)
            madds = count_madds(arch)
            n = ot_trial.number
            if madds > self.budget or madds < self.low:
                self._tell_infeasible(ot_trial, arch, madds, params)
                continue
            known = self.hooks.known_result(arch.arch_id)
            if known is not None:  # this architecture was trained already: reuse, never retrain
                set_budget_constraint(ot_trial, 0.0)
                ot_trial.set_user_attr("status", "duplicate")
                self._tell(ot_trial, known, madds)
                self.hooks.on_refused(Proposal(n, params, arch, madds, "duplicate"))
                continue
            set_budget_constraint(ot_trial, 0.0)
            ot_trial.set_user_attr("arch_id", arch.arch_id)
            ot_trial.set_user_attr("madds_m", madds / 1e6)
            self._ot_trials[tune_id] = ot_trial
            cfg = TrialJob(kind="searched", trial=trial_id(n), number=n, params=params, arch_id=arch.arch_id,
                           madds_m=madds / 1e6, seed=self.train_seed, gpus=self.trial_gpus, family=arch.family).to_config()
            self.sent[tune_id] = cfg
            return cfg
        return Searcher.FINISHED

    def _tell(self, ot_trial: optuna.trial.Trial, top1: float, madds: int) -> None:
        values: float | list[float] = top1 if self.objective == "top1" else [top1, madds / 1e6]
        self._ot_study.tell(ot_trial, values)

    def _tell_infeasible(self, ot_trial: optuna.trial.Trial, arch: Any, madds: int, params: dict[str, Any]) -> None:
        over = madds > self.budget
        violation = madds / self.budget - 1 if over else (self.low - madds) / self.budget
        set_budget_constraint(ot_trial, violation)
        ot_trial.set_user_attr("status", "over_budget" if over else "under_band")
        ot_trial.set_user_attr("madds_m", madds / 1e6)
        self._tell(ot_trial, 0.0, madds)
        self.refused += 1
        self.hooks.on_refused(Proposal(ot_trial.number, params, arch, madds, "over_budget" if over else "under_band"))

    # Tune checkpoints searchers; ours keeps its state in the sqlite study and the run folder instead.
    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"study": self._study_name, "refused": self.refused}))

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("resume through `nas search --resume RUN_DIR` (the study lives in optuna.db)")

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self.fixed or trial_id not in self._ot_trials:
            return
        if result.get(METRIC) is None or result.get("final"):
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        cfg = self.fixed.get(trial_id) or self.sent.get(trial_id)
        final = bool((result or {}).get("final"))
        if not final and not error and trial_id not in self.stopped:
            # stopped by Ctrl-C mid-training: no row; the resume re-runs it with the same params
            self.interrupted = True
            ot = self._ot_trials.pop(trial_id, None)
            if ot is not None:
                ot.set_user_attr("interrupted", True)
                self._ot_study.tell(ot, state=optuna.trial.TrialState.FAIL)
                self._completed_trials.add(trial_id)
            return
        if cfg is not None:  # write the row first: a kill after this loses nothing
            self.hooks.on_finished(cfg, result, error)
        if trial_id in self.fixed or trial_id not in self._ot_trials:
            return
        status = (result or {}).get("status")
        if error or status in ("failed", "nan") or (result or {}).get(METRIC) is None:
            ot = self._ot_trials.pop(trial_id)
            ot.set_user_attr("status", status or "failed")
            self._ot_study.tell(ot, state=optuna.trial.TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return
        self._ot_trials[trial_id].set_user_attr("status", status or "completed")
        super().on_trial_complete(trial_id, result=result, error=error)


def _define(trial: Any, space: SearchSpace) -> None:
    from nas.space import sample_arch

    sample_arch(trial, space)  # define-by-run: the suggest_* calls are the space


# ---------------------------------------------------------------------------------------------------------
# Early stopping by MAdds band


class MAddsBandedASHA(FIFOScheduler):
    """ASHA on val top-1, one bracket set per MAdds band: a trial is stopped only by trials of similar MAdds.

    Bands are `band_frac` of the budget wide (e.g. 0.1 -> 270-300M, 240-270M ...). Baselines join the band of
    their own MAdds, so they are a yardstick for searched trials of the same size.
    """

    def __init__(self, *, budget: int, max_t: int, stopped: set[str], band_frac: float = 0.1,
                 grace_period: int = 1, reduction_factor: float = 2):
        super().__init__()
        self.stopped = stopped
        self.budget, self.band_frac = budget, band_frac
        self.kw = dict(time_attr=TIME_ATTR, metric=METRIC, mode="max", max_t=max_t, grace_period=grace_period,
                       reduction_factor=reduction_factor)
        self.bands: dict[int, AsyncHyperBandScheduler] = {}
        self.trial_band: dict[str, int] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def band_of(self, madds_m: float) -> int:
        return int(madds_m * 1e6 / (self.band_frac * self.budget))

    def _asha(self, trial: Any) -> AsyncHyperBandScheduler:
        b = self.band_of(float(trial.config.get("madds_m", 0.0)))
        self.trial_band[trial.trial_id] = b
        if b not in self.bands:
            self.bands[b] = AsyncHyperBandScheduler(**self.kw)
        return self.bands[b]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if result.get(METRIC) is None or result.get("final"):
            return TrialScheduler.CONTINUE
        decision = self._asha(trial).on_trial_result(tune_controller, trial, result)
        if trial.config.get("kind") == "baseline" or int(result.get(TIME_ATTR, 0)) >= self.kw["max_t"]:
            # baselines are yardsticks (recorded in their band, never stopped); a trial at its last epoch
            # finishes and sends its final report
            return TrialScheduler.CONTINUE
        if decision == TrialScheduler.STOP:
            self.stopped.add(trial.trial_id)
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if result and result.get(METRIC) is not None and TIME_ATTR in result:
            self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"MAddsBandedASHA: {len(self.bands)} bands"


# ---------------------------------------------------------------------------------------------------------
# Callback for trials Ray itself lost (actor died) and the progress view


class _Watch(tune.Callback):
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
    sampler: str | None = None
    supernet: str | None = None  # one-shot: score by inherited weights from this supernet instead of training
    calibration: int = 256  # one-shot: training images that recalibrate BatchNorm

    @property
    def epochs(self) -> int:
        return int(self.proxy["epochs"])


def prepare_study(storage_url: str, study_name: str, *, objective: str, done_numbers: set[int],
                  results: dict[int, float | None]) -> tuple[int, list[dict[str, Any]]]:
    """Resume bookkeeping in the Optuna study: trials left RUNNING by a killed search are closed
    (told their recorded result, or failed and queued again with the same params).
    Returns (trials in the study, params queued for a re-run)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return 0, []
    rerun: list[tuple[int, dict[str, Any]]] = []
    trials = study.get_trials(deepcopy=False)
    requeued = {t.user_attrs.get("rerun_of") for t in trials}
    for t in trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            if t.number in done_numbers and results.get(t.number) is not None:
                v = results[t.number]
                study.tell(t.number, v if objective == "top1" else [v, t.user_attrs.get("madds_m", 0.0)])
                continue
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            if t.number not in done_numbers and t.params and t.number not in requeued:
                rerun.append((t.number, dict(t.params)))
        elif (t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("interrupted")
              and t.number not in done_numbers and t.number not in requeued and t.params):
            rerun.append((t.number, dict(t.params)))
    for n, p in rerun:
        study.enqueue_trial(p, user_attrs={"rerun_of": n}, skip_if_exists=False)
    return len(study.trials), [p for _, p in rerun]


def run_tune(spec: TuneSpec, hooks: SearchHooks, *, on_error: Callable[[dict[str, Any], str], None],
             on_start: Callable[[dict[str, Any]], None]) -> BudgetedOptunaSearch:
    """Run the fixed jobs, then the searched trials, through one Ray Tune `Tuner`; returns the searcher."""
    res = spec.resources
    jobs = [j.replace(gpus=res.gpus_per_trial) for j in spec.jobs]
    searcher = BudgetedOptunaSearch(space=spec.space, budget=spec.budget, min_budget=spec.min_budget,
                                    objective=spec.objective, storage_url=spec.storage_url,
                                    study_name=spec.study_name, seed=spec.seed, trials=spec.trials, jobs=jobs,
                                    hooks=hooks, sampler=spec.sampler, train_seed=int(spec.proxy["seed"]),
                                    trial_gpus=res.gpus_per_trial)
    scheduler = (MAddsBandedASHA(budget=spec.budget, max_t=spec.epochs, stopped=searcher.stopped)
                 if spec.early_stop else FIFOScheduler())
    _fit(searcher, scheduler, spec.trials + len(jobs), space=spec.space, proxy=spec.proxy, data=spec.data,
         resources=res, storage_path=spec.storage_path, on_error=on_error, on_start=on_start,
         scoring=({"supernet": spec.supernet, "calibration": spec.calibration} if spec.supernet else None))
    return searcher


class JobQueue(Searcher):
    """Hands out a fixed list of jobs (no Optuna): baselines or confirmation seeds run on their own."""

    def __init__(self, jobs: list[TrialJob], hooks: SearchHooks):
        super().__init__(metric=METRIC, mode="max")
        self.pending = [j.to_config() for j in jobs]
        self.hooks = hooks
        self.sent: dict[str, dict[str, Any]] = {}
        self.interrupted = False

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self.pending:
            return Searcher.FINISHED
        self.sent[trial_id] = cfg = self.pending.pop(0)
        return cfg

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        cfg = self.sent.get(trial_id)
        if not (result or {}).get("final") and not error:
            self.interrupted = True  # stopped by Ctrl-C mid-training: no row; a resume runs it again
            return
        if cfg is not None:
            self.hooks.on_finished(cfg, result, error)

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"pending": len(self.pending)}))

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("resume through the run folder: its rows say which jobs are done")


def run_jobs(jobs: list[TrialJob], hooks: SearchHooks, *, space: SearchSpace, proxy: dict[str, Any], data: str,
             resources: Resources, storage_path: Path, on_error: Callable[[dict[str, Any], str], None],
             on_start: Callable[[dict[str, Any]], None]) -> JobQueue:
    """Run fixed jobs (no search) through Ray Tune with the same trainable, resources and GPU shares as a
    search; each finished job goes to `hooks.on_finished`. Returns the queue (`interrupted` says whether
    Ctrl-C cut it short)."""
    queue = JobQueue([j.replace(gpus=resources.gpus_per_trial) for j in jobs], hooks)
    _fit(queue, FIFOScheduler(), len(jobs), space=space, proxy=proxy, data=data, resources=resources,
         storage_path=storage_path, on_error=on_error, on_start=on_start)
    return queue


def _fit(searcher: Searcher, scheduler: TrialScheduler, n: int, *, space: SearchSpace, proxy: dict[str, Any],
         data: str, resources: Resources, storage_path: Path, on_error: Callable[[dict[str, Any], str], None],
         on_start: Callable[[dict[str, Any]], None], scoring: dict[str, Any] | None = None) -> None:
    """`scoring` ({supernet, calibration}): jobs are scored by inherited weights (`scorer`), not trained."""
    if n <= 0:
        return
    fn = tune.with_parameters(scorer if scoring else trainable, space=space.raw, proxy=proxy, data=data,
                              cpus=max(1, int(resources.cpus_per_trial)), **(scoring or {}))
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


__all__ = ["BudgetedOptunaSearch", "JobQueue", "MAddsBandedASHA", "SearchHooks", "TuneSpec", "Proposal", "init_ray",
           "shutdown_ray", "run_tune", "run_jobs", "prepare_study", "trainable", "make_sampler", "default_sampler",
           "SAMPLERS", "scorer", "run_supernet_training"]
