"""From a run's rows to the claims it may print: confirmed accuracy per architecture (mean, SD, n, 95%
interval), each candidate against the best published variant at equal or lower MAdds (a paired difference
over seeds with its interval and a verdict), Pareto dominance claims, and the trust meter (how well the
search stage ranked the confirmed set, and the seed noise floor). torch-free; pandas and scipy only.

Only ``stage == "confirm"`` rows count as confirmed; their accuracy is `test_top1` (the held-out split,
which no search decision reads), or `val_top1` where a run had no test split (`eval_set` says which).
"""

from __future__ import annotations

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
                   "diff", "diff_lo", "diff_hi", "n", "verdict", "headline"]


def _confirm_rows(df: pd.DataFrame) -> pd.DataFrame:
    if "stage" not in df.columns:
        return df.iloc[0:0]
    c = df[(df["stage"] == "confirm") & df["status"].isin(R.FINISHED_OK)].copy()
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


def seed_accuracies(df: pd.DataFrame) -> dict[str, dict[int, float]]:
    """trial -> {seed: confirmed accuracy}."""
    out: dict[str, dict[int, float]] = {}
    for r in _confirm_rows(df).to_dict("records"):
        out.setdefault(str(r["trial"]), {})[int(r["seed"])] = float(r["acc"])
    return out


def confirmed_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per confirmed architecture: its confirmed mean, SD, n and 95% t interval, next to its
    search-stage accuracy."""
    import pandas as pd

    c = _confirm_rows(df)
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


def _measured(df: pd.DataFrame, table: pd.DataFrame | None, accs: dict[str, dict[int, float]] | None
              ) -> tuple[pd.DataFrame, dict[str, dict[int, float]]]:
    """The confirmed table and per-seed accuracies of `df`, unless the caller already has them."""
    return (confirmed_table(df) if table is None else table), (seed_accuracies(df) if accs is None else accs)


def base_seeds(accs: dict[str, dict[int, float]]) -> list[int]:
    """The seeds every confirmed architecture has: the confirmation's first stage. The choices behind the
    verdicts (each candidate's reference, the headline) are made on these seeds only, so the seeds the
    headline pair gets afterwards are fresh data for its verdict."""
    sets = [set(v) for v in accs.values() if v]
    return sorted(set.intersection(*sets)) if sets else []


def _mean_on(acc: dict[int, float], seeds: list[int]) -> float:
    """The mean of `acc` over `seeds` (over all its seeds when there are no base seeds)."""
    vals = [acc[s] for s in seeds if s in acc] if seeds else list(acc.values())
    return sum(vals) / len(vals) if vals else math.nan


def verdict_table(df: pd.DataFrame, *, table: pd.DataFrame | None = None,
                  accs: dict[str, dict[int, float]] | None = None) -> pd.DataFrame:
    """Each confirmed searched candidate against the best published variant at equal or lower MAdds (best by
    the mean over the base seeds): the paired difference over every shared seed, its 95% interval and the
    verdict. `headline` marks the verdict the run leads with: the candidate with the highest mean over the
    base seeds among those with a reference."""
    import pandas as pd

    table, accs = _measured(df, table, accs)
    first = base_seeds(accs)
    base = table[table["kind"] == "baseline"]
    rows = []
    for r in table[table["kind"] == "searched"].to_dict("records"):
        cand = base[base["madds_m"] <= r["madds_m"]]
        row = {"trial": r["trial"], "family": r["family"], "madds_m": r["madds_m"], "mean": r["mean"],
               "reference": "", "reference_madds_m": math.nan, "reference_mean": math.nan, "diff": math.nan,
               "diff_lo": math.nan, "diff_hi": math.nan, "n": 0,
               "verdict": "no published variant at <= MAdds confirmed", "headline": False}
        if len(cand):
            ref = max(cand.to_dict("records"), key=lambda b: _mean_on(accs[b["trial"]], first))
            d = S.paired_diff(accs[r["trial"]], accs[ref["trial"]])
            row.update(reference=ref["trial"], reference_madds_m=float(ref["madds_m"]),
                       reference_mean=float(ref["mean"]), diff=d.mean, diff_lo=d.lo, diff_hi=d.hi, n=d.n,
                       verdict=d.verdict)
        rows.append(row)
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    with_ref = [i for i, r in enumerate(rows) if r["reference"]]
    if with_ref:
        best = max(with_ref, key=lambda i: _mean_on(accs[rows[i]["trial"]], first))
        out.loc[best, "headline"] = True
    return out.astype({"headline": bool})


def headline(verdicts: pd.DataFrame) -> dict[str, Any] | None:
    """The verdict a run leads with (`verdict_table`'s `headline` row; None when no candidate has a
    published reference). The confirm stage plans extra paired seeds for this pair
    (`nas.search.confirm.headline_jobs`)."""
    if not len(verdicts) or "headline" not in verdicts.columns or not verdicts["headline"].any():
        return None
    return verdicts[verdicts["headline"]].iloc[0].to_dict()


def half_width(verdict: dict[str, Any]) -> float:
    """Half the width of a verdict's 95% interval (inf when it has none: fewer than 2 shared seeds)."""
    w = (float(verdict["diff_hi"]) - float(verdict["diff_lo"])) / 2
    return w if math.isfinite(w) else math.inf


@dataclass(frozen=True)
class Dominance:
    """A dominates B: A's MAdds <= B's and the 95% interval of A - B (paired seeds) lies above 0."""

    a: str
    b: str
    diff: float
    lo: float
    hi: float
    n: int


def dominance_claims(df: pd.DataFrame, *, table: pd.DataFrame | None = None,
                     accs: dict[str, dict[int, float]] | None = None) -> list[Dominance]:
    """Every confirmed searched candidate that dominates a confirmed published variant."""
    table, accs = _measured(df, table, accs)
    out = []
    for a in table[table["kind"] == "searched"].to_dict("records"):
        for b in table[table["kind"] == "baseline"].to_dict("records"):
            if a["madds_m"] <= b["madds_m"]:
                d = S.paired_diff(accs[a["trial"]], accs[b["trial"]])
                if d.verdict == "better":
                    out.append(Dominance(a["trial"], b["trial"], d.mean, d.lo, d.hi, d.n))
    return out


@dataclass(frozen=True)
class Trust:
    """The trust meter: search-stage vs confirmed ranking over the confirmed set, and the seed noise."""

    rank: S.RankAgreement
    noise_sd: float
    noise_dof: int
    seeds: int
    rank_reading: str
    noise_reading: str


def trust_meter(df: pd.DataFrame, *, resamples: int = 2000, table: pd.DataFrame | None = None,
                accs: dict[str, dict[int, float]] | None = None) -> Trust:
    table, accs = _measured(df, table, accs)
    rank = S.rank_agreement(table["search_top1"].tolist(), table["mean"].tolist(), resamples=resamples)
    groups = [list(v.values()) for v in accs.values()]
    sd, dof = S.pooled_sd(groups)
    seeds = int(table["n"].min()) if len(table) else 0  # the headline pair may have more
    return Trust(rank=rank, noise_sd=sd, noise_dof=dof, seeds=seeds, rank_reading=S.reading_of_tau(rank),
                 noise_reading=S.reading_of_noise(sd, seeds, dof))


@dataclass(frozen=True)
class Confirmation:
    """Everything the summary and the dashboard print about a run's confirmation stage."""

    table: pd.DataFrame
    verdicts: pd.DataFrame
    dominance: list[Dominance]
    trust: Trust

    @property
    def headline(self) -> dict[str, Any] | None:
        return headline(self.verdicts)

    @property
    def empty(self) -> bool:
        return not len(self.table)


def compute_confirmation(df: pd.DataFrame) -> Confirmation:
    table, accs = confirmed_table(df), seed_accuracies(df)  # once, for all four parts
    return Confirmation(table, verdict_table(df, table=table, accs=accs), dominance_claims(df, table=table, accs=accs),
                        trust_meter(df, table=table, accs=accs))


def mark_front(front: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """pareto.csv's confirmation columns: whether each front row was confirmed, and its confirmed mean and
    95% interval with n (NaN/False where it was not)."""
    table = confirmed_table(df).set_index("trial")
    out = front.copy()
    hit = out["trial"].astype(str).isin(table.index)
    out["confirmed"] = hit
    for col, src in (("confirmed_top1", "mean"), ("confirmed_lo", "lo"), ("confirmed_hi", "hi"), ("confirmed_n", "n")):
        out[col] = [table.loc[t, src] if h else math.nan for t, h in zip(out["trial"].astype(str), hit)]
    return out


__all__ = ["CONFIRMED_COLUMNS", "VERDICT_COLUMNS", "Confirmation", "Dominance", "Trust", "compute_confirmation",
           "confirmed_table", "verdict_table", "headline", "half_width", "base_seeds", "dominance_claims", "trust_meter",
           "seed_accuracies", "mark_front", "macro_of"]
