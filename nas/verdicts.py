"""From a run's rows to the claims it may print: confirmed accuracy per architecture (mean, SD, n, 95%
interval), each candidate against the best published variant at equal or lower MAdds (a paired difference
over seeds with its interval and a verdict), Pareto dominance claims, and the trust meter (how well the
search stage ranked the confirmed set, and the seed noise floor). torch-free; pandas and scipy only.

Only rows of a confirm rung count as confirmed: ``confirm`` (the first rung) or ``confirm@<steps>`` (a
higher rung of the ladder, nas.search.ladder); their accuracy is `test_top1` (the held-out split, which no
search decision reads), or `val_top1` where a run had no test split (`eval_set` says which). The choices made
on a rung (each candidate's reference, the headline, what the next rung retrains) read the same jobs' `val_top1`
instead (`selection_scores`: the validation split carved from the training set), so the test split only ever
measures what was chosen without it. Every function
takes the rung it reads (`stage`); `compute_confirmation` reads the top rung, the one whose verdicts a run
prints, and gives each verdict its trend: the same pair's paired difference at every rung below.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas import results as R
from nas import stats as S

if TYPE_CHECKING:
    import pandas as pd

CONFIRMED_COLUMNS = ["trial", "kind", "family", "macro", "madds_m", "params_m", "search_top1", "mean", "sd", "n",
                     "lo", "hi", "eval_set", "seeds"]
VERDICT_COLUMNS = ["trial", "family", "madds_m", "mean", "reference", "reference_madds_m", "reference_mean",
                   "diff", "diff_lo", "diff_hi", "n", "verdict", "headline", "stage", "steps", "trend", "rungs",
                   "last_trend"]
FIRST_RUNG = "confirm"
TRENDS = ("holds", "shrinks", "reverses", "unresolved")


def rung_stages(df: pd.DataFrame) -> list[str]:
    """The confirm rungs a run has rows for, shortest training first (the first rung, then confirm@<steps>)."""
    from nas.jobs import is_confirm_stage

    if "stage" not in df.columns:
        return []
    present = [s for s in df["stage"].astype(str).unique() if is_confirm_stage(s)]
    return sorted(present, key=lambda s: (s != FIRST_RUNG, stage_steps(df, s)))


def stage_steps(df: pd.DataFrame, stage: str) -> int:
    """Optimizer steps of a rung's protocol, from its rows (0 where a run predates the `steps` column)."""
    from nas.jobs import RUNG_PREFIX

    if stage.startswith(RUNG_PREFIX):
        return int(stage[len(RUNG_PREFIX):])
    if "steps" not in df.columns:
        return 0
    s = df.loc[df["stage"] == stage, "steps"]
    return int(s.max()) if len(s) and s.notna().any() else 0


def top_stage(df: pd.DataFrame) -> str:
    """The rung whose verdicts a run prints: the longest training with rows (the first rung when alone)."""
    stages = rung_stages(df)
    return stages[-1] if stages else FIRST_RUNG


def _confirm_rows(df: pd.DataFrame, stage: str = FIRST_RUNG) -> pd.DataFrame:
    if "stage" not in df.columns:
        return df.iloc[0:0]
    c = df[(df["stage"] == stage) & df["status"].isin(R.FINISHED_OK)].copy()
    test = c["test_top1"] if "test_top1" in c.columns else None
    c["acc"] = test.where(test.notna(), c["val_top1"]) if test is not None else c["val_top1"]
    return c[c["acc"].notna()]


def macro_of(row: Any) -> str:
    """The family a row belongs to for the family rule: the macro of a searched trial, the published family
    of a baseline ("Mobile-Former" -> mobile_former, MobileViT* -> mobilevit)."""
    m = row.get("knob_macro") if hasattr(row, "get") else None
    if isinstance(m, str) and m:
        return m
    fam = str(row.get("family") or "").lower().replace("-", "_")
    return "mobile_former" if "former" in fam or fam.endswith("mf") else "mobilevit"


def seed_accuracies(df: pd.DataFrame, stage: str = FIRST_RUNG, column: str = "acc") -> dict[str, dict[int, float]]:
    """trial -> {seed: confirmed accuracy} at rung `stage` (`column`: another score of the same jobs, e.g.
    ``val_top1``; seeds without it are left out)."""
    out: dict[str, dict[int, float]] = {}
    rows = _confirm_rows(df, stage)
    if column not in rows.columns:
        return out
    for r in rows.to_dict("records"):
        v = r[column]
        if v is not None and v == v:
            out.setdefault(str(r["trial"]), {})[int(r["seed"])] = float(v)
    return out


def selection_scores(df: pd.DataFrame, stage: str = FIRST_RUNG) -> dict[str, dict[int, float]]:
    """trial -> {seed: validation top-1} of the confirmed jobs at rung `stage`: what every choice of a rung reads
    (`choice_mean`), so that no choice reads the test split its verdicts are measured on. Where a run has no
    test split its accuracy is this same validation score."""
    return seed_accuracies(df, stage, "val_top1")


def choice_mean(sel: dict[str, dict[int, float]], trial: str, seeds: list[int]) -> float:
    """`trial`'s mean selection score (`selection_scores`) over `seeds`; -inf where it has none, so that a
    trial without a validation score is never chosen over one with."""
    m = mean_on(sel.get(trial, {}), seeds)
    return m if math.isfinite(m) else -math.inf


def confirmed_table(df: pd.DataFrame, stage: str = FIRST_RUNG) -> pd.DataFrame:
    """One row per architecture confirmed at rung `stage`: its confirmed mean, SD, n and 95% t interval, next
    to its search-stage accuracy."""
    import pandas as pd

    c = _confirm_rows(df, stage)
    search = R.search_stage(df).drop_duplicates("trial", keep="last").set_index("trial")
    rows = []
    for trial, g in c.groupby("trial", sort=False):
        s = S.summarize(g["acc"].tolist())
        lo, hi = s.ci
        srow = search.loc[trial] if trial in search.index else g.iloc[0]
        rows.append({"trial": trial, "kind": g["kind"].iloc[0], "family": g["family"].iloc[0],
                     "macro": macro_of(srow), "madds_m": float(g["madds_m"].iloc[0]),
                     "params_m": float(g["params_m"].iloc[0]),
                     "search_top1": float(srow["val_top1"]) if trial in search.index else math.nan,
                     "mean": s.mean, "sd": s.sd, "n": s.n, "lo": lo, "hi": hi,
                     "eval_set": str(g["eval_set"].iloc[0] or "test") if "eval_set" in g.columns else "test",
                     "seeds": ",".join(str(x) for x in sorted(g["seed"].astype(int)))})
    out = pd.DataFrame(rows, columns=CONFIRMED_COLUMNS)
    return out.sort_values(["madds_m", "trial"], kind="stable").reset_index(drop=True)


def _measured(df: pd.DataFrame, table: pd.DataFrame | None, accs: dict[str, dict[int, float]] | None,
              stage: str = FIRST_RUNG) -> tuple[pd.DataFrame, dict[str, dict[int, float]]]:
    """The confirmed table and per-seed accuracies of `df` at `stage`, unless the caller already has them."""
    return ((confirmed_table(df, stage) if table is None else table),
            (seed_accuracies(df, stage) if accs is None else accs))


def base_seeds(accs: dict[str, dict[int, float]]) -> list[int]:
    """The seeds every confirmed architecture has: the confirmation's first stage. The choices behind the
    verdicts (each candidate's reference, the headline) are made on these seeds only, so the seeds the
    headline pair gets afterwards are fresh data for its verdict."""
    sets = [set(v) for v in accs.values() if v]
    return sorted(set.intersection(*sets)) if sets else []


def mean_on(acc: dict[int, float], seeds: list[int]) -> float:
    """The mean of `acc` over `seeds` (over all its seeds when there are no base seeds)."""
    vals = [acc[s] for s in seeds if s in acc] if seeds else list(acc.values())
    return sum(vals) / len(vals) if vals else math.nan


def verdict_table(df: pd.DataFrame, *, table: pd.DataFrame | None = None,
                  accs: dict[str, dict[int, float]] | None = None, stage: str = FIRST_RUNG,
                  sel: dict[str, dict[int, float]] | None = None) -> pd.DataFrame:
    """Each confirmed searched candidate against the best published variant at equal or lower MAdds (best by
    the mean validation top-1 over the base seeds, `selection_scores`): the paired difference of their
    accuracies (the test split's) over every shared seed, its 95% interval and the verdict. `headline` marks the
    verdict the run leads with: the candidate with the highest mean validation top-1 over the base seeds among
    those with a reference."""
    import pandas as pd

    table, accs = _measured(df, table, accs, stage)
    sel = selection_scores(df, stage) if sel is None else sel
    first = base_seeds(accs)
    base = table[table["kind"] == "baseline"]
    rows = []
    for r in table[table["kind"] == "searched"].to_dict("records"):
        cand = base[base["madds_m"] <= r["madds_m"]]
        row = {"trial": r["trial"], "family": r["family"], "madds_m": r["madds_m"], "mean": r["mean"],
               "reference": "", "reference_madds_m": math.nan, "reference_mean": math.nan, "diff": math.nan,
               "diff_lo": math.nan, "diff_hi": math.nan, "n": 0,
               "verdict": "no published variant at <= MAdds confirmed", "headline": False, "stage": stage,
               "steps": stage_steps(df, stage), "trend": "", "rungs": "", "last_trend": ""}
        if len(cand):
            ref = max(cand.to_dict("records"), key=lambda b: choice_mean(sel, b["trial"], first))
            d = S.paired_diff(accs[r["trial"]], accs[ref["trial"]])
            row.update(reference=ref["trial"], reference_madds_m=float(ref["madds_m"]),
                       reference_mean=float(ref["mean"]), diff=d.mean, diff_lo=d.lo, diff_hi=d.hi, n=d.n,
                       verdict=d.verdict)
        rows.append(row)
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    with_ref = [i for i, r in enumerate(rows) if r["reference"]]
    if with_ref:
        best = max(with_ref, key=lambda i: choice_mean(sel, rows[i]["trial"], first))
        out.loc[best, "headline"] = True
    return out.astype({"headline": bool})


def headline(verdicts: pd.DataFrame) -> dict[str, Any] | None:
    """The verdict a run leads with (`verdict_table`'s `headline` row; None when no candidate has a
    published reference). The confirm stage plans extra paired seeds for this pair
    (`nas.search.confirm.headline_jobs`)."""
    if not len(verdicts) or "headline" not in verdicts.columns or not verdicts["headline"].any():
        return None
    return verdicts[verdicts["headline"]].iloc[0].to_dict()


def unchosen_diff(accs: dict[str, dict[int, float]], trial: str, reference: str) -> S.PairedDiff:
    """`trial` - `reference` paired over the seeds that took part in no choice: all but the base seeds
    (`base_seeds`, on which every choice of the ladder is made, the first rung's included, whose seeds are
    the same). Their seeds are chosen on nothing, so this difference carries no selection bias, at the price
    of fewer seeds than the verdict's."""
    chose = set(base_seeds(accs))
    return S.paired_diff({s: v for s, v in accs.get(trial, {}).items() if s not in chose},
                         {s: v for s, v in accs.get(reference, {}).items() if s not in chose})


def half_width(verdict: dict[str, Any]) -> float:
    """Half the width of a verdict's 95% interval (inf when it has none: fewer than 2 shared seeds)."""
    w = (float(verdict["diff_hi"]) - float(verdict["diff_lo"])) / 2
    return w if math.isfinite(w) else math.inf


@dataclass(frozen=True)
class Dominance:
    """A dominates B: A's MAdds <= B's and the interval of A - B (paired seeds) lies above 0. The interval is
    taken at `level` = 1 - (1 - 95%) / `tests`, the `tests` candidate x published pairs of the rung tested
    together (Bonferroni), so a run's claims hold together at 95%, not each on its own."""

    a: str
    b: str
    diff: float
    lo: float
    hi: float
    n: int
    tests: int = 1
    level: float = S.LEVEL

    def text(self) -> str:
        """The claim as the summary prints it, with its n and the interval's level."""
        return (f"{self.a} dominates {self.b}: no more MAdds and {self.diff:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}] "
                f"points, n={self.n} ({correction_text(self.tests, self.level)})")


def correction_text(tests: int, level: float) -> str:
    """`95% interval` for one test; `99.38% interval, Bonferroni over 8 pairs` for several."""
    if tests <= 1:
        return f"{100 * level:g}% interval"
    return f"{100 * level:.2f}% interval, Bonferroni over {tests} pairs"


def dominance_claims(df: pd.DataFrame, *, table: pd.DataFrame | None = None,
                     accs: dict[str, dict[int, float]] | None = None, stage: str = FIRST_RUNG) -> list[Dominance]:
    """Every confirmed searched candidate that dominates a confirmed published variant (at rung `stage`). Every
    candidate x published pair at <= the candidate's MAdds is a test; each interval is taken at 1 - 5% / m over
    the m pairs with >= 2 paired seeds (Bonferroni), so the claims hold together at 95% (`Dominance`)."""
    table, accs = _measured(df, table, accs, stage)
    pairs = [(a["trial"], b["trial"]) for a in table[table["kind"] == "searched"].to_dict("records")
             for b in table[table["kind"] == "baseline"].to_dict("records") if a["madds_m"] <= b["madds_m"]]
    tests = max(1, sum(S.paired_diff(accs[a], accs[b]).n >= 2 for a, b in pairs))
    level = 1 - (1 - S.LEVEL) / tests
    out = []
    for a, b in pairs:
        d = S.paired_diff(accs[a], accs[b], level=level)
        if d.verdict == "better":
            out.append(Dominance(a, b, d.mean, d.lo, d.hi, d.n, tests, level))
    return out


@dataclass(frozen=True)
class RungNoise:
    """The seed noise floor of one rung: the pooled per-architecture SD of its accuracies, its degrees of
    freedom, the fewest and most paired seeds of its architectures, and the one-line reading."""

    stage: str
    steps: int
    sd: float
    dof: int
    seeds: int
    most_seeds: int
    reading: str


def rung_noise(df: pd.DataFrame, stage: str, *, table: pd.DataFrame | None = None,
               accs: dict[str, dict[int, float]] | None = None) -> RungNoise:
    """The seed noise floor of rung `stage`, pooled over every architecture trained there."""
    table, accs = _measured(df, table, accs, stage)
    sd, dof = S.pooled_sd([list(v.values()) for v in accs.values()])
    n = [int(x) for x in table["n"]] if len(table) else [0]
    return RungNoise(stage, stage_steps(df, stage), sd, dof, min(n), max(n),
                     S.reading_of_noise(sd, min(n), dof, most=max(n)))


@dataclass(frozen=True)
class Trust:
    """The trust meter: search-stage vs confirmed ranking over the confirmed set and the seed noise, both on
    the first rung (where every confirmed architecture is), and the seed noise of the top rung (`top`, None
    when the first rung is the top), the one its verdicts stand on."""

    rank: S.RankAgreement
    noise_sd: float
    noise_dof: int
    seeds: int
    rank_reading: str
    noise_reading: str
    top: RungNoise | None = None


def trust_meter(df: pd.DataFrame, *, resamples: int = 2000, table: pd.DataFrame | None = None,
                accs: dict[str, dict[int, float]] | None = None, stage: str = FIRST_RUNG) -> Trust:
    table, accs = _measured(df, table, accs, stage)
    rank = S.rank_agreement(table["search_top1"].tolist(), table["mean"].tolist(), resamples=resamples)
    noise = rung_noise(df, stage, table=table, accs=accs)  # its fewest seeds: the headline pair may have more
    return Trust(rank=rank, noise_sd=noise.sd, noise_dof=noise.dof, seeds=noise.seeds,
                 rank_reading=S.reading_of_tau(rank), noise_reading=S.reading_of_noise(noise.sd, noise.seeds, noise.dof))


@dataclass(frozen=True)
class Confirmation:
    """Everything the summary and the dashboard print about a run's confirmation stage."""

    table: pd.DataFrame
    verdicts: pd.DataFrame
    dominance: list[Dominance]
    trust: Trust
    stage: str = FIRST_RUNG  # the rung all of the above is measured at (the top rung)
    steps: int = 0  # its optimizer steps (0: unknown, a run from before the ladder)
    rungs: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # every rung, shortest first
    # the headline's paired difference on the seeds that chose nothing (`unchosen_diff`); None: no headline
    headline_unchosen: S.PairedDiff | None = None

    @property
    def headline(self) -> dict[str, Any] | None:
        return headline(self.verdicts)

    @property
    def empty(self) -> bool:
        return not len(self.table)


def trend_of(first: S.PairedDiff, top: S.PairedDiff) -> str:
    """The one-word reading of a verdict across the ladder, from its first rung's paired difference to its
    top rung's: ``reverses`` (opposite sign and the top interval excludes 0), ``shrinks`` (same sign, the
    top-rung difference under half the first rung's), ``holds`` (same sign, the top interval excludes 0),
    else ``unresolved``."""
    if not (math.isfinite(first.mean) and math.isfinite(top.mean)):
        return "unresolved"
    excludes0 = math.isfinite(top.lo) and math.isfinite(top.hi) and (top.lo > 0 or top.hi < 0)
    same = (first.mean > 0) == (top.mean > 0)
    if not same and excludes0:
        return "reverses"
    if same and abs(top.mean) < 0.5 * abs(first.mean):
        return "shrinks"
    if same and excludes0:
        return "holds"
    return "unresolved"


LADDER_COLUMNS = ["trial", "reference", "stage", "steps", "diff", "diff_lo", "diff_hi", "n"]


def ladder_rows(df: pd.DataFrame, verdicts: pd.DataFrame, stage: str | None = None) -> pd.DataFrame:
    """Each verdict pair of `verdicts` (candidate, reference) at every rung up to `stage` (default: the top)
    where both were trained: the paired difference with its 95% interval and n (the "does it hold?" chart)."""
    import pandas as pd

    stages = rung_stages(df)
    stage = stage or (stages[-1] if stages else FIRST_RUNG)
    upto = stages[: stages.index(stage) + 1] if stage in stages else [stage]
    accs = {s: seed_accuracies(df, s) for s in upto}
    rows = []
    for r in verdicts.to_dict("records"):
        if not r["reference"]:
            continue
        for s in upto:
            if r["trial"] in accs[s] and r["reference"] in accs[s]:
                d = S.paired_diff(accs[s][r["trial"]], accs[s][r["reference"]])
                rows.append({"trial": r["trial"], "reference": r["reference"], "stage": s,
                             "steps": stage_steps(df, s), "diff": d.mean, "diff_lo": d.lo, "diff_hi": d.hi, "n": d.n})
    return pd.DataFrame(rows, columns=LADDER_COLUMNS)


def with_trends(df: pd.DataFrame, verdicts: pd.DataFrame, stage: str) -> pd.DataFrame:
    """`verdicts` (at rung `stage`) with each pair's paired difference at every rung up to `stage`
    (`rungs`: "128: +6.92 [+4.45, +9.39] n=13; 512: +1.73 [+1.17, +2.28] n=4", each `nas.stats.diff_text`), its `trend` (first rung to
    top) and its `last_trend` (the rung below the top to the top: whether the gap still moved on the last climb)."""
    lad = ladder_rows(df, verdicts, stage)
    out = verdicts.copy()
    for i, r in out.iterrows():
        pair = lad[(lad["trial"] == r["trial"]) & (lad["reference"] == r["reference"])].to_dict("records")
        if not r["reference"] or not pair:
            continue
        diffs = [S.PairedDiff(p["diff"], p["diff_lo"], p["diff_hi"], int(p["n"]), math.nan) for p in pair]
        out.at[i, "rungs"] = "; ".join(f"{p['steps'] or p['stage']}: "
                                       + S.diff_text(p["diff"], p["diff_lo"], p["diff_hi"], int(p["n"])) for p in pair)
        out.at[i, "trend"] = trend_of(diffs[0], diffs[-1]) if len(diffs) >= 2 else "one rung"
        out.at[i, "last_trend"] = trend_of(diffs[-2], diffs[-1]) if len(diffs) >= 2 else "one rung"
    return out


def compute_confirmation(df: pd.DataFrame, stage: str | None = None) -> Confirmation:
    """What a run says at rung `stage` (default: its top rung), each verdict with its trend."""
    stage = top_stage(df) if stage is None else stage
    table, accs = confirmed_table(df, stage), seed_accuracies(df, stage)  # once, for all four parts
    verdicts = with_trends(df, verdict_table(df, table=table, accs=accs, stage=stage, sel=selection_scores(df, stage)),
                           stage)
    # the trust meter's ranking reads the first rung (every confirmed architecture is there, the top rung has a
    # few); its noise reads both, since the printed verdicts stand on the top rung's
    if stage == FIRST_RUNG:
        trust = trust_meter(df, table=table, accs=accs)
    else:
        trust = dataclasses.replace(trust_meter(df), top=rung_noise(df, stage, table=table, accs=accs))
    h = headline(verdicts)
    return Confirmation(table, verdicts, dominance_claims(df, table=table, accs=accs, stage=stage),
                        trust, stage=stage, steps=stage_steps(df, stage),
                        rungs=[(s, stage_steps(df, s)) for s in rung_stages(df)],
                        headline_unchosen=None if h is None else unchosen_diff(accs, str(h["trial"]),
                                                                                str(h["reference"])))


def mark_front(front: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """pareto.csv's confirmation columns: whether each front row was confirmed (at the first rung, where every
    candidate is), and its confirmed mean and 95% interval with n (NaN/False where it was not)."""
    table = confirmed_table(df).set_index("trial")
    out = front.copy()
    hit = out["trial"].astype(str).isin(table.index)
    out["confirmed"] = hit
    for col, src in (("confirmed_top1", "mean"), ("confirmed_lo", "lo"), ("confirmed_hi", "hi"), ("confirmed_n", "n")):
        out[col] = [table.loc[t, src] if h else math.nan for t, h in zip(out["trial"].astype(str), hit)]
    return out


__all__ = ["CONFIRMED_COLUMNS", "VERDICT_COLUMNS", "Confirmation", "Dominance", "Trust", "RungNoise", "rung_noise",
           "compute_confirmation", "unchosen_diff",
           "confirmed_table", "verdict_table", "headline", "half_width", "base_seeds", "dominance_claims", "correction_text", "trust_meter",
           "seed_accuracies", "selection_scores", "choice_mean", "mark_front", "macro_of", "mean_on", "rung_stages", "stage_steps", "top_stage",
           "trend_of", "with_trends", "ladder_rows", "FIRST_RUNG", "TRENDS", "LADDER_COLUMNS"]
