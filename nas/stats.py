"""The statistics behind every accuracy claim the tool prints: per-architecture summaries over seeds, paired
differences with 95% intervals, verdicts, dominance claims and rank agreement (Kendall tau with a bootstrap
interval). Pure functions of numbers (numpy, scipy): tested on data, used by the confirm stage, the
terminal summary, the dashboard and the benches alike.

Conventions: accuracies in percent; an interval is a (lo, hi) pair at 95%; a paired difference pairs the
two architectures' runs that share a seed (same data order and initial stream).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
VERDICTS = ("better", "not distinguishable", "worse")


@dataclass(frozen=True)
class Summary:
    """Mean, sample SD and count of one architecture's runs (SD is NaN for n < 2)."""

    mean: float
    sd: float
    n: int

    @property
    def ci(self) -> tuple[float, float]:
        return t_interval(self.mean, self.sd, self.n)


def summarize(values: Sequence[float]) -> Summary:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not len(x):
        return Summary(math.nan, math.nan, 0)
    return Summary(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, int(len(x)))


def t_interval(mean: float, sd: float, n: int, *, level: float = LEVEL) -> tuple[float, float]:
    """The t interval of a mean from n values (NaNs when n < 2)."""
    if n < 2 or not math.isfinite(sd):
        return (math.nan, math.nan)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


@dataclass(frozen=True)
class PairedDiff:
    """A - B over the seeds both ran: mean difference, its 95% t interval, n pairs and the verdict."""

    mean: float
    lo: float
    hi: float
    n: int
    sd: float

    @property
    def verdict(self) -> str:
        if self.n < 2 or not math.isfinite(self.lo):
            return "not distinguishable"
        if self.lo > 0:
            return "better"
        if self.hi < 0:
            return "worse"
        return "not distinguishable"


def paired_diff(a: Mapping[int, float], b: Mapping[int, float], *, level: float = LEVEL) -> PairedDiff:
    """A - B paired by seed (keys): only seeds both have count. t over the paired differences."""
    seeds = sorted(s for s in a if s in b and _finite(a[s]) and _finite(b[s]))
    d = np.asarray([a[s] - b[s] for s in seeds], dtype=float)
    if not len(d):
        return PairedDiff(math.nan, math.nan, math.nan, 0, math.nan)
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    lo, hi = t_interval(float(d.mean()), sd, len(d), level=level)
    return PairedDiff(float(d.mean()), lo, hi, len(d), sd)


def diff_text(mean: float, lo: float, hi: float, n: int, *, unit: str = "") -> str:
    """A paired difference as the summary prints it, led by what it can claim: ``+1.25 [+0.82, +1.68], n=3``
    where the interval excludes 0; ``interval [-4.65, +8.70] holds 0, n=2 (mean +2.02)`` where it does not, so
    a gap inside the noise is never the first number read; ``+9.07, n=1, no interval`` below two seeds.
    `unit` (e.g. " points") follows the leading number or interval."""
    if not math.isfinite(mean):
        return "n/a"
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:+.2f}{unit}, n={n}, no interval"
    if lo > 0 or hi < 0:
        return f"{mean:+.2f}{unit} [{lo:+.2f}, {hi:+.2f}], n={n}"
    return f"interval [{lo:+.2f}, {hi:+.2f}]{unit} holds 0, n={n} (mean {mean:+.2f})"


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """The pooled within-group SD (the seed noise floor) and its degrees of freedom."""
    ss, dof = 0.0, 0
    for g in groups:
        x = np.asarray([v for v in g if _finite(v)], dtype=float)
        if len(x) > 1:
            ss += float(((x - x.mean()) ** 2).sum())
            dof += len(x) - 1
    return (math.sqrt(ss / dof) if dof else math.nan, dof)


def paired_noise_sd(accs: Mapping[str, Mapping[int, float]], seeds: Sequence[int]) -> tuple[float, int]:
    """The SD of a paired difference between two architectures, pooled over every pair of `accs`
    (architecture -> {seed: accuracy}) on `seeds`, with its degrees of freedom (summed over pairs, so not
    independent: a planning figure, not a test)."""
    names = [a for a in accs if all(s in accs[a] and _finite(accs[a][s]) for s in seeds)]
    groups = [[accs[a][s] - accs[b][s] for s in seeds] for i, a in enumerate(names) for b in names[i + 1:]]
    return pooled_sd(groups)


def seeds_for_width(sd: float, width: float, *, start: int, cap: int, level: float = LEVEL) -> int:
    """The fewest paired seeds n in [start, cap] whose t interval (at `level`) has half-width <= `width`
    for a paired-difference SD `sd`; `cap` when none does (or `sd` is unknown)."""
    from scipy import stats

    if not math.isfinite(sd):
        return cap
    for n in range(max(2, start), cap + 1):
        if float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n) <= width:
            return n
    return max(cap, start)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two paired sequences (NaN with fewer than 3 pairs or no variation)."""
    from scipy import stats

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if ok.sum() < 3:
        return math.nan
    tau = stats.kendalltau(xs[ok], ys[ok]).statistic
    return float(tau) if tau == tau else math.nan


@dataclass(frozen=True)
class RankAgreement:
    """Kendall tau of two rankings over n items, with a bootstrap 95% interval (resampling the items)."""

    tau: float
    lo: float
    hi: float
    n: int


def rank_agreement(x: Sequence[float], y: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                   level: float = LEVEL) -> RankAgreement:
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    n = len(xs)
    tau = kendall_tau(xs, ys)
    lo, hi = _bootstrap_ci(lambda i: kendall_tau(xs[i], ys[i]), n, resamples=resamples, seed=seed, level=level)
    return RankAgreement(tau, lo, hi, n)


def _bootstrap_ci(stat, n: int, *, resamples: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat(indices)` over `n` items resampled with replacement (NaN
    resamples skipped; NaN bounds with fewer than 3 items or no finite resample)."""
    if n < 3:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    vals = [v for v in (stat(rng.integers(0, n, n)) for _ in range(resamples)) if math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def paired_tau_diff(a: Sequence[float], b: Sequence[float], ref: Sequence[float], *, resamples: int = 2000,
                    seed: int = 0, level: float = LEVEL) -> RankAgreement:
    """tau(a, ref) - tau(b, ref) for two scores `a` and `b` of the same items, with a paired bootstrap
    interval (the same resampled items for both taus): does score a rank like `ref` better than score b?"""
    x, z, y = (np.asarray(v, dtype=float) for v in (a, b, ref))
    n = len(y)
    diff = kendall_tau(x, y) - kendall_tau(z, y)
    lo, hi = _bootstrap_ci(lambda i: kendall_tau(x[i], y[i]) - kendall_tau(z[i], y[i]), n, resamples=resamples,
                           seed=seed, level=level)
    return RankAgreement(diff, lo, hi, n)


def reading_of_tau(r: RankAgreement) -> str:
    """One line a newcomer understands: how far the search's ranking can be trusted."""
    if r.n < 3 or not math.isfinite(r.tau):
        return f"too few confirmed architectures ({r.n}) to say how well the search ranks"
    span = f"tau {r.tau:.2f} [{r.lo:.2f}, {r.hi:.2f}] over {r.n} architectures"
    if math.isfinite(r.lo) and r.lo > 0.5:
        return f"the search ranked them as the confirmation did ({span}): its order is informative"
    if math.isfinite(r.lo) and r.lo > 0:
        return f"the search's order agrees with the confirmation's, loosely ({span}): trust confirmed numbers only"
    return (f"the search's order is not shown to agree with the confirmation's ({span}): treat search-stage "
            "accuracies as a coarse filter, and confirmed ones as the result")


def resolvable(sd: float, n: int) -> float:
    """The smallest paired difference whose 95% interval excludes 0 with `n` paired seeds, for a per-architecture
    seed SD `sd`, if the pair's runs were independent (a planning figure)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + LEVEL / 2, max(1, n - 1))) * sd * math.sqrt(2) / math.sqrt(max(1, n))


def reading_of_noise(sd: float, n: int, dof: int, *, most: int | None = None) -> str:
    """One line on the seed noise floor: how large a difference n paired seeds can resolve (and `most`
    seeds, where some pair has more, e.g. the headline pair)."""
    if not math.isfinite(sd):
        return "seed noise not measured (each architecture needs >= 2 confirm seeds)"
    more = (f"; with {most}, under ~{resolvable(sd, most):.1f}" if most is not None and most > n else "")
    return (f"seed noise: SD {sd:.2f} points per architecture ({dof} degrees of freedom); with {n} paired seeds, "
            f"differences under ~{resolvable(sd, n):.1f} points are not resolved{more}")


def _finite(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


__all__ = ["Summary", "PairedDiff", "RankAgreement", "summarize", "t_interval", "paired_diff", "diff_text", "paired_tau_diff", "pooled_sd",
           "paired_noise_sd", "seeds_for_width", "kendall_tau", "rank_agreement", "reading_of_tau", "reading_of_noise", "resolvable", "VERDICTS", "LEVEL"]
