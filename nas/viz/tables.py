"""The data of the page's text: the run's headline numbers, the Pareto table and the problem trials."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd

from nas import results as R
from nas.viz._utils import first_value, search_rows, search_run


class BestTrial(NamedTuple):
    """The most accurate trained trial of one kind (searched or baseline)."""

    trial: str
    val_top1: float
    madds_m: float


class RunSummary(NamedTuple):
    """Headline numbers of a run's search: trial counts by status, the best results, the front."""

    n_searched: int
    n_baseline: int
    counts: dict[str, int]
    """Searched trials by status, every status of `results.STATUSES` present (0 when none)."""
    best_searched: BestTrial | None
    best_baseline: BestTrial | None
    front_size: int
    front_searched: int
    best_gain: float
    """The largest `gain_vs_published` of a searched Pareto variant (NaN when none has a baseline below)."""
    dataset: str
    proxy_hash: str

    @property
    def n_trained(self) -> int:
        return self.counts["completed"] + self.counts["early_stopped"]

    @property
    def n_failed(self) -> int:
        return self.counts["failed"] + self.counts["nan"]


def _best(part: pd.DataFrame) -> BestTrial | None:
    p = part[R.eligible_mask(part)]
    if not len(p):
        return None
    r = p.loc[p["val_top1"].idxmax()]
    return BestTrial(trial=str(r["name"] or r["trial"]), val_top1=float(r["val_top1"]), madds_m=float(r["madds_m"]))


def compute_summary(run: R.Run) -> RunSummary:
    """Headline numbers of a run: trial counts by status, the best searched and baseline results, the
    front, and the dataset and proxy it was trained on (run.yaml first, else the trials)."""
    run = search_run(run)
    df, front = run.trials, run.pareto
    searched, base = df[df["kind"] == "searched"], df[df["kind"] == "baseline"]
    gains = front.loc[front["kind"] == "searched", R.PARETO_EXTRA].dropna() if len(front) else front
    return RunSummary(
        n_searched=len(searched), n_baseline=len(base),
        counts={s: int((searched["status"] == s).sum()) for s in R.STATUSES},
        best_searched=_best(searched), best_baseline=_best(base),
        front_size=len(front), front_searched=int((front["kind"] == "searched").sum()) if len(front) else 0,
        best_gain=float(gains.max()) if len(gains) else math.nan,
        dataset=str(run.config.get("data", "")) or first_value(df, "dataset"),
        proxy_hash=str(run.config.get("proxy_hash", "")) or first_value(df, "proxy_hash"),
    )


def compute_pareto_table(run: R.Run) -> pd.DataFrame:
    """The Pareto-optimal rows for the table: cost, accuracy, gain over the best baseline at equal or
    lower MAdds (and which baseline that is), the exported YAML and the rebuild command."""
    run = search_run(run)
    front = run.pareto
    cols = ["trial", "name", "kind", "family", "madds_m", "params_m", "val_top1", R.PARETO_EXTRA,
            "vs_baseline", "config_path", "rebuild_cmd"]
    if not len(front):
        return pd.DataFrame(columns=cols)
    df = run.trials
    base = df[R.eligible_mask(df) & (df["kind"] == "baseline")]
    vs = []
    for _, r in front.iterrows():
        cand = base[(base["madds_m"] <= r["madds_m"]) & (base["trial"] != r["trial"])]
        vs.append(str(cand.loc[cand["val_top1"].idxmax(), "name"]) if len(cand) else "")
    out = front.copy()
    out["vs_baseline"] = vs
    return out[cols].reset_index(drop=True)


def compute_problem_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Failed, NaN and over-budget search trials with their error, for the page's list."""
    trials = search_rows(trials)
    df = trials[trials["status"].isin(("failed", "nan", "over_budget"))]
    return df[["trial", "status", "madds_m", "epochs_done", "error"]].reset_index(drop=True)
