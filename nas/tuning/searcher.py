"""The searchers Ray Tune asks for jobs: `BudgetedSearcher` (Optuna proposes, the MAdds budget screens) and
`JobQueue` (a fixed list of jobs). Both implement Ray Tune's public `Searcher` interface and hold their own
state; the Optuna study is driven through its public ask/tell API.

`BudgetedSearcher` screens every proposal with the analytic MAdds count *before* anything is built: a config
outside the budget band is told to Optuna as a completed trial that violates its constraint, recorded as an
``over_budget`` (or ``under_band``) row through the run's hooks, and never reaches Ray; Optuna is asked
again. An architecture the run trained already is told its recorded result (``duplicate``), never retrained.
Fixed jobs (`nas.jobs.TrialJob`: published baselines) are handed out before the searched ones.

Same seed, same proposals, however the jobs' times fall (`lag`): with several jobs at once, results come back in
an order that depends on each job's time, and a sampler told each result as it came would propose after what
happened to finish. So the searcher holds each result back and tells Optuna the results of the jobs it sent in
the order it sent them, all but the last `lag` before each proposal: what TPE knows at its k-th proposal is then
the same in every run. A proposal waits (Tune asks again) while a job that far back is still running.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from nas.jobs import TrialJob, trial_id
from nas.madds import count_madds
from nas.space import SearchSpace, replay, sample_arch
from nas.tuning.study import default_sampler, make_sampler, open_study, set_budget_constraint, values_of

METRIC = "val_top1"


@dataclass
class Proposal:
    """What the searcher decided about one Optuna trial (sent to Ray, refused, or a duplicate)."""

    number: int
    params: dict[str, Any]
    arch: Any
    madds: int
    status: str  # "over_budget" | "under_band" | "duplicate"


class DriverOnly:
    """Mixin for the objects that call back into the live run, whose recorder holds the loaded dataset: Ray Tune
    pickles its Tuner, search algorithm and callbacks included, into `tuner.pkl` for `Tuner.restore`, which this
    tool never uses (a run resumes from its own folder: `nas search --resume`). Pickled, they keep nothing, so
    that file no longer holds the dataset (55 MB of Fashion-MNIST per Tuner, several per run, before)."""

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class SearchHooks(DriverOnly):
    """How the searcher tells the run what happened (the run folder is written there, not here)."""

    on_refused: Callable[[Proposal], None]
    on_finished: Callable[[dict[str, Any], dict[str, Any] | None, bool], None]
    known_result: Callable[[str], float | None] = lambda _arch_id: None


class BudgetedSearcher(Searcher):
    """Optuna's proposals (ask/tell on the run's study), screened by analytic MAdds; fixed jobs first."""

    def __init__(self, *, space: SearchSpace, budget: int, min_budget: float, objective: str,
                 storage_url: str, study_name: str, seed: int, trials: int, jobs: list[TrialJob],
                 hooks: SearchHooks, sampler: str | None = None, train_seed: int = 0, trial_gpus: float = 0.0,
                 max_attempts: int = 400, lag: int | None = None):
        metric: str | list[str] = METRIC if objective == "top1" else [METRIC, "madds_m"]
        mode: str | list[str] = "max" if objective == "top1" else ["max", "min"]
        super().__init__(metric=metric, mode=mode)
        self.nas_space = space
        self.budget, self.low = budget, min_budget * budget
        self.objective = objective
        self.study_name = study_name
        self.hooks = hooks
        self.max_attempts = max_attempts
        self.train_seed, self.trial_gpus = int(train_seed), float(trial_gpus)
        self.study = open_study(storage_url, study_name, objective=objective,
                                sampler=make_sampler(sampler or default_sampler(objective), objective=objective,
                                                     seed=seed, trials=trials))
        self.pending_jobs = [j.to_config() for j in jobs]
        self.fixed: dict[str, dict[str, Any]] = {}  # Tune trial id -> fixed job config
        self.sent: dict[str, dict[str, Any]] = {}  # Tune trial id -> searched job config
        self.live: dict[str, optuna.trial.Trial] = {}  # Tune trial id -> its Optuna trial, until told
        self.reported: dict[str, set[int]] = {}  # Tune trial id -> epochs reported to Optuna
        self.refused = 0
        self.stopped: set[str] = set()  # trial ids the early-stopping scheduler stopped
        self.interrupted = False
        # ordered telling (module docstring); None: each result is told when it comes back
        self.lag = None if lag is None else max(0, int(lag))
        self.order: list[str] = []  # Tune trial ids of the searched jobs sent, in the order sent
        self.released = 0  # how many of `order` Optuna has been told
        self.held: dict[str, Callable[[], float | None]] = {}  # finished, not told yet: tells it, returns the value
        self.dups: dict[str, list[tuple[optuna.trial.Trial, int]]] = {}  # sent trial -> later proposals of its arch

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the space, metric and mode are this searcher's own

    # Ray calls suggest() once per new Tune trial.
    def suggest(self, trial_id_: str) -> dict[str, Any] | None:
        if self.pending_jobs:
            cfg = self.pending_jobs.pop(0)
            self.fixed[trial_id_] = cfg
            return cfg
        if not self._release():
            return None  # a job `lag` proposals back is still running: Tune asks again later
        for _ in range(self.max_attempts):
            ot_trial = self.study.ask()
            sample_arch(ot_trial, self.nas_space)  # define-by-run: the suggest_* calls are the space
            params = dict(ot_trial.params)
            arch = replay(params, self.nas_space)
            madds = count_madds(arch)
            n = ot_trial.number
            if madds > self.budget or madds < self.low:
                self._tell_infeasible(ot_trial, arch, madds, params)
                continue
            first = self._untold(arch.arch_id)
            if first is not None:  # sent already, its result not told yet: told that result when it is
                set_budget_constraint(ot_trial, 0.0)
                ot_trial.set_user_attr("status", "duplicate")
                self.dups.setdefault(first, []).append((ot_trial, madds))
                self.hooks.on_refused(Proposal(n, params, arch, madds, "duplicate"))
                continue
            known = self.hooks.known_result(arch.arch_id)
            if known is not None:  # this architecture was trained already: reuse, never retrain
                set_budget_constraint(ot_trial, 0.0)
                ot_trial.set_user_attr("status", "duplicate")
                self.study.tell(ot_trial, values_of(self.objective, known, madds / 1e6))
                self.hooks.on_refused(Proposal(n, params, arch, madds, "duplicate"))
                continue
            set_budget_constraint(ot_trial, 0.0)
            ot_trial.set_user_attr("arch_id", arch.arch_id)
            ot_trial.set_user_attr("madds_m", madds / 1e6)
            self.live[trial_id_] = ot_trial
            cfg = TrialJob(kind="searched", trial=trial_id(n), number=n, params=params, arch_id=arch.arch_id,
                           madds_m=madds / 1e6, seed=self.train_seed, gpus=self.trial_gpus, family=arch.family).to_config()
            self.sent[trial_id_] = cfg
            self.order.append(trial_id_)
            return cfg
        return Searcher.FINISHED

    def _untold(self, arch_id: str) -> str | None:
        """The trial id of a searched job of `arch_id` sent and not yet told to Optuna (ordered telling only)."""
        if self.lag is None:
            return None
        return next((t for t in self.order[self.released:] if self.sent[t]["arch_id"] == arch_id), None)

    def _release(self, keep: int | None = None) -> bool:
        """Tell Optuna the held results of the jobs sent, in the order sent, all but the last `keep` (default
        `lag`); False while one of those is still running."""
        if self.lag is None:
            return True
        while self.released < len(self.order) - (self.lag if keep is None else keep):
            if not self._tell_next():
                return False
        return True

    def _tell_next(self) -> bool:
        tid = self.order[self.released]
        tell = self.held.pop(tid, None)
        if tell is None:
            return False
        value = tell()
        for ot, madds in self.dups.pop(tid, []):  # the same architecture proposed again meanwhile
            if value is None:
                self.study.tell(ot, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(ot, values_of(self.objective, value, madds / 1e6))
        self.released += 1
        return True

    def release_all(self) -> None:
        """At the end of a search: tell Optuna every held result, in order (a job still running stays so)."""
        self._release(keep=0)

    def _tell_infeasible(self, ot_trial: optuna.trial.Trial, arch: Any, madds: int, params: dict[str, Any]) -> None:
        over = madds > self.budget
        violation = madds / self.budget - 1 if over else (self.low - madds) / self.budget
        set_budget_constraint(ot_trial, violation)
        ot_trial.set_user_attr("status", "over_budget" if over else "under_band")
        ot_trial.set_user_attr("madds_m", madds / 1e6)
        self.study.tell(ot_trial, values_of(self.objective, 0.0, madds / 1e6))
        self.refused += 1
        self.hooks.on_refused(Proposal(ot_trial.number, params, arch, madds, "over_budget" if over else "under_band"))

    def _fail(self, trial_id_: str, **attrs: Any) -> None:
        ot = self.live.pop(trial_id_, None)
        if ot is not None:
            for k, v in attrs.items():
                ot.set_user_attr(k, v)
            self.study.tell(ot, state=optuna.trial.TrialState.FAIL)

    # Tune checkpoints searchers; ours keeps its state in the run's study and the run folder instead.
    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"study": self.study_name, "refused": self.refused}))

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("resume through `nas search --resume RUN_DIR` (the study lives in the run folder)")

    def on_trial_result(self, trial_id_: str, result: dict[str, Any]) -> None:
        """Each epoch's val top-1 is kept as the Optuna trial's intermediate value (one objective only)."""
        ot = self.live.get(trial_id_)
        if ot is None or self.objective != "top1" or result.get(METRIC) is None or result.get("final"):
            return
        step = int(result.get("epoch") or 0)
        done = self.reported.setdefault(trial_id_, set())
        if step not in done:  # Optuna keeps the first value of a step
            done.add(step)
            ot.report(float(result[METRIC]), step)

    def on_trial_complete(self, trial_id_: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        cfg = self.fixed.get(trial_id_) or self.sent.get(trial_id_)
        result = result or {}
        if not result.get("final") and not error and trial_id_ not in self.stopped:
            # stopped by Ctrl-C mid-training: no row; the resume re-runs it with the same params
            self.interrupted = True
            self._fail(trial_id_, interrupted=True)
            self._settle(trial_id_, lambda: None)
            return
        if cfg is not None:  # write the row first: a kill after this loses nothing
            self.hooks.on_finished(cfg, result, error)
        if trial_id_ not in self.live:
            return
        status = result.get("status")
        if error or status in ("failed", "nan") or result.get(METRIC) is None:
            self._settle(trial_id_, lambda: self._fail(trial_id_, status=status or "failed"))
            return

        def tell() -> float | None:
            ot = self.live.pop(trial_id_)
            ot.set_user_attr("status", status or "completed")
            value = float(result[METRIC])
            try:
                self.study.tell(ot, values_of(self.objective, value, float(result.get("madds_m", 0.0))))
            except ValueError:  # a value Optuna refuses (NaN): the trial counts as failed
                self.study.tell(ot, state=optuna.trial.TrialState.FAIL)
                return None
            return value

        self._settle(trial_id_, tell)

    def _settle(self, trial_id_: str, tell: Callable[[], float | None]) -> None:
        """Tell a finished job's result now, or (ordered telling) hold it until `_release` reaches it."""
        if self.lag is None or trial_id_ not in self.sent:
            tell()
        else:
            self.held[trial_id_] = tell


class JobQueue(Searcher):
    """Hands out a fixed list of jobs (no Optuna): baselines or confirmation seeds run on their own."""

    def __init__(self, jobs: list[TrialJob], hooks: SearchHooks):
        super().__init__(metric=METRIC, mode="max")
        self.pending = [j.to_config() for j in jobs]
        self.hooks = hooks
        self.sent: dict[str, dict[str, Any]] = {}
        self.interrupted = False

    def suggest(self, trial_id_: str) -> dict[str, Any] | None:
        if not self.pending:
            return Searcher.FINISHED
        self.sent[trial_id_] = cfg = self.pending.pop(0)
        return cfg

    def on_trial_complete(self, trial_id_: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        cfg = self.sent.get(trial_id_)
        if not (result or {}).get("final") and not error:
            self.interrupted = True  # stopped by Ctrl-C mid-training: no row; a resume runs it again
            return
        if cfg is not None:
            self.hooks.on_finished(cfg, result, error)

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"pending": len(self.pending)}))

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("resume through the run folder: its rows say which jobs are done")


__all__ = ["BudgetedSearcher", "DriverOnly", "JobQueue", "SearchHooks", "Proposal", "METRIC"]
