"""Early stopping by MAdds band: ASHA per band of similar MAdds, so a small network is never stopped for being
less accurate than a large one and the Pareto front keeps its small end. Off by default (`--early-stop` turns
it on): against the long reference, ASHA's 32-step snapshot ranks no better than MAdds alone (BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

METRIC = "val_top1"
TIME_ATTR = "epoch"



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


__all__ = ["MAddsBandedASHA", "TIME_ATTR"]
