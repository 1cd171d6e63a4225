"""The Optuna side of a search, through Optuna's public API only: the run's study in its storage (an Optuna
journal file, `nas.results.study_location`), the samplers, the budget constraint, and the resume bookkeeping of a
killed search. No Ray here."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from nas import results as R
from nas.errors import RunError
from nas.search.plan import SAMPLERS  # the --sampler choices, checked when the plan is made

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


def default_sampler(objective: str) -> str:
    """TPE for one objective, NSGA-II for the Pareto objective."""
    return "nsga2" if objective == "pareto" else "tpe"


def make_sampler(name: str, *, objective: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler `name` (tpe, nsga2, random). TPE and NSGA-II are constraint-aware (infeasible
    proposals rank last); random search is the baseline a search must beat."""
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


def directions(objective: str) -> list[str]:
    """The study's directions: top-1 up; for ``pareto`` also MAdds down."""
    return ["maximize"] if objective == "top1" else ["maximize", "minimize"]


def open_study(storage_url: str, study_name: str, *, objective: str, sampler: optuna.samplers.BaseSampler
               ) -> optuna.Study:
    """The run's study (created on the first call, loaded on a resume) at `storage_url`: a journal file, or a
    database URL (`nas.results.open_storage`)."""
    return optuna.create_study(storage=R.open_storage(storage_url), sampler=sampler, pruner=optuna.pruners.NopPruner(),
                               study_name=study_name, load_if_exists=True, directions=directions(objective))


def values_of(objective: str, top1: float, madds_m: float) -> float | list[float]:
    """What the study is told for a trained trial."""
    return top1 if objective == "top1" else [top1, madds_m]


def prepare_study(storage_url: str, study_name: str, *, objective: str, done_numbers: set[int],
                  results: dict[int, float | None]) -> tuple[int, list[dict[str, Any]]]:
    """Resume bookkeeping in the Optuna study: trials left RUNNING by a killed search are closed
    (told their recorded result, or failed and queued again with the same params).
    A journal a kill cut mid-line is mended first (`nas.results.repair_journal`).
    Returns (trials in the study, params queued for a re-run)."""
    R.repair_journal(storage_url)
    try:
        study = optuna.load_study(study_name=study_name, storage=R.open_storage(storage_url))
        trials = study.get_trials(deepcopy=False)
    except KeyError:
        return 0, []
    except Exception as e:  # noqa: BLE001 - json, sqlite and Optuna's own errors alike: a damaged study file
        why = (str(e).strip().splitlines() or [""])[0][:200]  # SQLAlchemy's text has a second, "Background" line
        raise RunError(f"cannot read the run's Optuna study {storage_url}: {type(e).__name__}: {why}",
                       "restore that file from a copy, or start a new run (another --name); the finished jobs' "
                       "rows in trials.csv stay as they are") from None
    rerun: list[tuple[int, dict[str, Any]]] = []
    requeued = {t.user_attrs.get("rerun_of") for t in trials}
    for t in trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            if t.number in done_numbers and results.get(t.number) is not None:
                study.tell(t.number, values_of(objective, float(results[t.number]), t.user_attrs.get("madds_m", 0.0)))
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


__all__ = ["SAMPLERS", "constraint_of", "set_budget_constraint", "default_sampler", "make_sampler", "directions",
           "open_study", "values_of", "prepare_study"]
