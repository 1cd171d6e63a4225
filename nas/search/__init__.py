"""`nas search`: plan a budgeted search, run it through `nas.tuning` (Ray + Optuna), keep the run folder.

The run folder ``results/<name>/`` is the run's whole memory: run.yaml, space.yaml, proxy.yaml,
environment.json, trials.parquet/csv (one row per job, keyed by trial, stage and seed, written the moment
the job finishes), pareto.csv, variants/<trial>.yaml, optuna.journal (the Optuna study) and ray/ (Tune's
folder). `--resume` rebuilds everything from it: finished jobs are kept and never retrained, jobs a kill
interrupted run again with their own parameters, the study continues where it stopped.

One job per file:
- `plan`: options, their checks, what a resume keeps, the baselines of the band, resources;
- `folder`: the run folder's files besides the rows, the baseline cache, knobs read back from a row;
- `recorder`: the run's rows (built by `nas.results`), written after every change;
- `loop`: the search itself (Ray, Optuna, the baselines);
- `dry_run`: the plan and a time estimate, nothing trained.

This package never imports Ray: `nas.tuning` is imported only when a search really runs.
"""

from nas.search.dry_run import DryRun, StageEstimate, dry_run
from nas.search.loop import SearchOutcome, SearchStart, run_search
from nas.search.plan import (
    DEFAULT_BUDGET,
    DEFAULT_MIN_BUDGET,
    DEFAULT_TRIALS,
    OBJECTIVES,
    SAMPLERS,
    SearchOptions,
    SearchPlan,
    baselines_in_band,
    choose_resources,
    plan_search,
)
from nas.search.recorder import Progress, RunRecorder

__all__ = ["DEFAULT_BUDGET", "DEFAULT_MIN_BUDGET", "DEFAULT_TRIALS", "OBJECTIVES", "SAMPLERS", "DryRun",
           "StageEstimate", "Progress", "RunRecorder", "SearchOptions", "SearchOutcome", "SearchPlan", "SearchStart",
           "baselines_in_band", "choose_resources", "dry_run", "plan_search", "run_search"]
