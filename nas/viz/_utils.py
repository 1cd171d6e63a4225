"""Small helpers shared by the charts: number parsing and formatting, knob names, the search rows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nas import results as R

if TYPE_CHECKING:
    import pandas as pd

SEARCH_STAGE = "search"
"""The `stage` of the rows the search charts draw; a frame without a `stage` column is all search."""


def num(v: Any) -> float:
    """`v` as a float, NaN when it is not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def fmt(v: Any, nd: int = 1, unit: str = "") -> str:
    """`v` with `nd` decimals and `unit`, or "n/a" when it is not a finite number."""
    f = num(v)
    return "n/a" if not math.isfinite(f) else f"{f:.{nd}f}{unit}"


def knob_name(col: str) -> str:
    """``knob_width_mult`` -> ``width_mult``."""
    return col[len(R.KNOB_PREFIX):] if col.startswith(R.KNOB_PREFIX) else col


def first_value(df: pd.DataFrame, col: str) -> str:
    """The first non-empty value of `col`, as text ("" when none)."""
    vals = [v for v in df[col].tolist() if v] if len(df) and col in df.columns else []
    return str(vals[0]) if vals else ""


def search_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The rows of the search itself: those whose `stage` is "search" or missing (no column, NaN, "").

    Later stages (a confirmation's re-trainings over seeds) share the trials table but not these charts.
    """
    if "stage" not in trials.columns:
        return trials
    stage = trials["stage"]
    keep = stage.isna() | stage.astype(str).isin(("", SEARCH_STAGE))
    return trials if bool(keep.all()) else trials[keep]


def search_run(run: R.Run) -> R.Run:
    """`run` restricted to its search rows, its front recomputed from them (the same run when all are)."""
    trials = search_rows(run.trials)
    if trials is run.trials:
        return run
    trials = trials.reset_index(drop=True)
    return R.Run(path=run.path, config=run.config, trials=trials, pareto=R.compute_pareto(trials))
