"""The run's MAdds budget as numbers for the charts: the budget line and the lower edge of the band.

The budget is parsed once, by `nas search`, which writes it to run.yaml as ``budget_m`` (millions of
MAdds) beside ``min_budget`` (a fraction of the budget); this module only reads those two numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.errors import RunError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class BudgetLines:
    """The budget as vertical lines: `budget_m` (upper edge) and `min_m` (lower edge of the band), millions."""

    budget_m: float
    min_m: float

    @property
    def has_budget(self) -> bool:
        return math.isfinite(self.budget_m)

    @property
    def has_band(self) -> bool:
        return self.has_budget and math.isfinite(self.min_m) and 0 < self.min_m < self.budget_m


def _number(config: dict[str, Any], key: str, hint: str) -> float:
    """run.yaml's `key` as a float: NaN when missing, RunError when it is not a number."""
    v = config.get(key)
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RunError(f"run.yaml: {key} = {v!r} is not a number", hint)
    return float(v)


def compute_budget_lines(config: dict[str, Any], trials: pd.DataFrame | None = None) -> BudgetLines:
    """Budget and min-budget edge from run.yaml's `budget_m` (millions) and `min_budget` (a fraction).

    Without `budget_m` the trials' own `budget_m` stands in. A `min_budget` of 0 or 1 (or none) means no
    band. A value that is not a number, or a `min_budget` outside [0, 1], raises RunError naming it.
    """
    budget = _number(config, "budget_m", "budget_m is the MAdds budget in millions, as `nas search` writes it "
                                         "(e.g. budget_m: 300.0)")
    if not math.isfinite(budget) and trials is not None and len(trials):
        vals = trials["budget_m"].dropna()
        budget = float(vals.iloc[-1]) if len(vals) else math.nan
    frac = _number(config, "min_budget", "min_budget is a fraction of the budget (e.g. min_budget: 0.8)")
    if math.isfinite(frac) and not 0 <= frac <= 1:
        raise RunError(f"run.yaml: min_budget = {frac:g} is not a fraction in [0, 1]",
                       "min_budget is a fraction of the budget (e.g. min_budget: 0.8 for 80%)")
    min_m = frac * budget if math.isfinite(budget) and frac > 0 else math.nan
    return BudgetLines(budget_m=budget, min_m=min_m)
