"""The confirmation stage as the user sees it: the confirmed front with its intervals over the faded
search-stage points, the verdicts (each candidate against the best published variant at <= MAdds) and
dominance claims, the trust meter, and the headline numbers the page leads with.

Every number here comes from `nas.verdicts.compute_confirmation`: this module selects, joins and formats
its tables, and computes no statistic of its own. The search stage's accuracy is one short run on the
validation split; the confirmed accuracy is a mean over paired seeds on the held-out split (`eval_set`):
the two are never drawn or labelled as the same quantity.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from nas import results as R
from nas import verdicts as V
from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import add_budget, base_layout, color_for, empty_note
from nas.viz._utils import fmt, num, search_rows
from nas.viz.accuracy import _label_positions, compute_front_steps

if TYPE_CHECKING:
    from nas.viz.budget import BudgetLines

CONFIRM_STAGE = "confirm"
SEARCHED_COLOR = "#1f4e8c"
SEARCH_FADED = "#b8bec8"
VERDICT_ROW_COLUMNS = ["trial", "family", "madds_m", "search_top1", "mean", "lo", "hi", "n_seeds", "reference",
                       "reference_madds_m", "reference_mean", "reference_lo", "reference_hi", "diff", "diff_lo",
                       "diff_hi", "n", "verdict", "steps", "trend", "rungs"]


def has_confirm_rows(trials: pd.DataFrame) -> bool:
    """Whether a trials frame has any row of the confirmation stage (finished or not)."""
    return "stage" in trials.columns and bool((trials["stage"] == CONFIRM_STAGE).any())


def _eval_sets(table: pd.DataFrame) -> str:
    sets = sorted({str(v) or "test" for v in table["eval_set"]}) if len(table) else []
    return "/".join(sets) or "test"


def _seeds_text(table: pd.DataFrame) -> str:
    """The number of seeds per architecture: "3", or "2-3" where they differ."""
    if not len(table):
        return "0"
    lo, hi = int(table["n"].min()), int(table["n"].max())
    return str(hi) if lo == hi else f"{lo}-{hi}"


def interval_text(mean: float, lo: float, hi: float, *, nd: int = 2, sign: bool = False) -> str:
    """``79.60 [79.10, 80.10]`` (``+1.20 [+0.40, +2.00]`` with `sign`); the interval is left out when it is
    not defined (fewer than two seeds)."""
    f = f"+.{nd}f" if sign else f".{nd}f"
    if not math.isfinite(num(mean)):
        return "n/a"
    if not (math.isfinite(num(lo)) and math.isfinite(num(hi))):
        return f"{mean:{f}} [no interval: n < 2]"
    return f"{mean:{f}} [{lo:{f}}, {hi:{f}}]"


# ---------------------------------------------------------------------------------------------------------
# The confirmed front


@dataclass(frozen=True, eq=False)
class ConfirmedFront:
    """The chart's data: the confirmed architectures (`points`: the confirmed table plus `on_front`,
    `err_plus`, `err_minus` and `hover`), the step line of the front of confirmed means, and the
    search-stage points drawn faded underneath (`search`: eligible search rows plus `confirmed` and `hover`)."""

    points: pd.DataFrame
    front_x: list[float]
    front_y: list[float]
    search: pd.DataFrame
    eval_set: str
    seeds: str
    search_label: str = "one short run"  # what a search-stage number is ("inherited supernet weights")

    @property
    def empty(self) -> bool:
        return not len(self.points)


def search_label_of(config: dict) -> str:
    """What a run's search-stage accuracy measures, from its run.yaml."""
    return "inherited supernet weights" if config.get("strategy") == "oneshot" else "one short run"


def _confirmed_hover(r: dict, search_label: str = "one short run") -> str:
    e = html.escape
    kind = "published variant" if r["kind"] == "baseline" else "searched candidate"
    lines = [f"<b>{e(str(r['trial']))}</b> ({e(kind)}, {e(str(r['family']))})",
             f"confirmed {e(str(r['eval_set']))} top-1 {interval_text(r['mean'], r['lo'], r['hi'])} %",
             f"n = {int(r['n'])} seeds ({e(str(r['seeds']))}), SD {fmt(r['sd'], 2)}",
             f"MAdds {fmt(r['madds_m'], 1, ' M')}, params {fmt(r['params_m'], 2, ' M')}",
             f"search stage ({e(search_label)}, val split): {fmt(r['search_top1'], 2, '%')}"]
    if r["on_front"]:
        lines.append("on the front of confirmed means")
    return "<br>".join(lines)


def compute_confirmed_front(trials: pd.DataFrame, conf: V.Confirmation | None = None, *,
                            x_end: float | None = None, search_label: str = "one short run") -> ConfirmedFront:
    """The confirmed architectures with their 95% intervals, the Pareto front of their confirmed means
    (minimum MAdds, maximum mean; a step line extended to `x_end`), and the search-stage points."""
    conf = conf if conf is not None else V.compute_confirmation(trials)
    pts = conf.table.copy()
    pts["on_front"] = R.pareto_mask(pts, y="mean").astype(bool) if len(pts) else pd.Series(dtype=bool)
    pts["err_plus"] = pts["hi"] - pts["mean"]
    pts["err_minus"] = pts["mean"] - pts["lo"]
    pts["hover"] = [_confirmed_hover(r, search_label) for r in pts.to_dict("records")]
    fx, fy = compute_front_steps(pts[pts["on_front"]], y="mean", x_end=x_end) if len(pts) else ([], [])
    s = R.normalize_trials(search_rows(trials))
    s = s[R.eligible_mask(s)].copy()
    s["confirmed"] = s["trial"].astype(str).isin(set(pts["trial"].astype(str)))
    s["hover"] = [f"<b>{html.escape(str(r['name'] or r['trial']))}</b> (search stage, "
                  f"{'published variant' if r['kind'] == 'baseline' else 'searched'})<br>"
                  f"{html.escape(search_label)}, val split: {fmt(r['val_top1'], 2, '%')}<br>"
                  f"MAdds {fmt(r['madds_m'], 1, ' M')}"
                  + ("<br>confirmed: see its interval" if r["confirmed"] else "") for r in s.to_dict("records")]
    return ConfirmedFront(points=pts.reset_index(drop=True), front_x=fx, front_y=fy,
                          search=s.reset_index(drop=True), eval_set=_eval_sets(pts), seeds=_seeds_text(pts),
                          search_label=search_label)


def confirmed_axis_title(data: ConfirmedFront) -> str:
    """The y axis, honest about what each marker measures."""
    return (f"top-1 (%): confirmed = {data.eval_set} split mean ± 95% CI over n = {data.seeds} seeds; "
            "search = one short run, val split")


def plot_confirmed_front(data: ConfirmedFront, budget: BudgetLines | None = None, *,
                         title: str = "Confirmed accuracy against MAdds") -> go.Figure:
    """Confirmed means with 95% error bars (searched candidates as circles, published variants as labelled
    diamonds), the front of confirmed means as a step line, over the faded search-stage points."""
    _plotly.check()
    fig = go.Figure()
    if data.empty:
        empty_note(fig, "no architecture confirmed yet: run <code>nas confirm</code> on this run")
        return base_layout(fig, title=title, height=560)
    s = data.search
    if len(s):
        fig.add_trace(go.Scatter(
            x=s["madds_m"], y=s["val_top1"], mode="markers", name=f"search stage: {data.search_label}, val split",
            marker={"color": SEARCH_FADED, "size": 7, "opacity": 0.55,
                    "symbol": ["diamond-open" if k == "baseline" else "circle-open" for k in s["kind"]]},
            text=s["hover"], hovertemplate="%{text}<extra></extra>"))
    if data.front_x:
        fig.add_trace(go.Scatter(x=data.front_x, y=data.front_y, mode="lines", hoverinfo="skip",
                                 line={"shape": "hv", "color": "#111", "width": 2},
                                 name="front of confirmed means"))
    p = data.points
    label = f"{data.eval_set} mean ± 95% CI, n = {data.seeds}"
    for kind, name, symbol in (("searched", f"searched candidates ({label})", "circle"),
                               ("baseline", f"published variants ({label})", "diamond")):
        part = p[p["kind"] == kind]
        if not len(part):
            continue
        colors = ([SEARCHED_COLOR] * len(part) if kind == "searched"
                  else [color_for(str(f)) for f in part["family"]])
        fig.add_trace(go.Scatter(
            x=part["madds_m"], y=part["mean"], mode="markers+text", name=name,
            text=part["trial"], textposition=_label_positions(part["madds_m"].tolist()), textfont={"size": 10, "color": "#333"},
            error_y={"type": "data", "symmetric": False, "array": part["err_plus"].tolist(),
                     "arrayminus": part["err_minus"].tolist(), "thickness": 1.5, "width": 5, "color": "#444"},
            marker={"symbol": [f"{symbol}" if f else f"{symbol}-open" for f in part["on_front"]], "size": 11,
                    "color": colors, "line": {"width": 1.5, "color": "#222"}},
            hovertext=part["hover"], hovertemplate="%{hovertext}<extra></extra>"))
    if budget is not None:
        add_budget(fig, budget)
    fig.update_xaxes(title="MAdds (millions, analytic, target resolution)")
    fig.update_yaxes(title="top-1 (%)")
    base_layout(fig, title=f"{title}<br><sup>{html.escape(confirmed_axis_title(data))}. Filled: on the front of "
                           "confirmed means; open: off it.</sup>", height=560)
    fig.update_layout(margin={"t": 90}, legend={"orientation": "h", "y": -0.15, "yanchor": "top", "x": 0})
    return fig


def plot_search_vs_confirmed(data: ConfirmedFront, *, title: str = "Search-stage against confirmed accuracy"
                             ) -> go.Figure:
    """Each confirmed architecture at (its search-stage val top-1, its confirmed mean ± 95% CI): how well
    the search stage's numbers (a short run, or inherited supernet weights) predict the confirmed ones."""
    _plotly.check()
    fig = go.Figure()
    p = data.points
    if data.empty:
        empty_note(fig, "no architecture confirmed yet: run <code>nas confirm</code> on this run")
        return base_layout(fig, title=title, height=480)
    for kind, name, symbol in (("searched", "searched candidates", "circle"), ("baseline", "published variants",
                                                                                 "diamond")):
        part = p[p["kind"] == kind]
        if not len(part):
            continue
        fig.add_trace(go.Scatter(
            x=part["search_top1"], y=part["mean"], mode="markers+text", name=name, text=part["trial"],
            textposition="top center", textfont={"size": 10, "color": "#333"},
            error_y={"type": "data", "symmetric": False, "array": part["err_plus"].tolist(),
                     "arrayminus": part["err_minus"].tolist(), "thickness": 1.5, "width": 5, "color": "#444"},
            marker={"symbol": symbol, "size": 11, "line": {"width": 1.5, "color": "#222"},
                    "color": SEARCHED_COLOR if kind == "searched" else [color_for(str(f)) for f in part["family"]]},
            hovertext=part["hover"], hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_xaxes(title=f"search stage top-1 (%): {data.search_label}, val split")
    fig.update_yaxes(title=f"confirmed top-1 (%): {data.eval_set} split, mean ± 95% CI")
    return base_layout(fig, title=title, height=480)


# ---------------------------------------------------------------------------------------------------------
# Verdicts and dominance


def compute_verdict_rows(conf: V.Confirmation) -> pd.DataFrame:
    """One row per confirmed searched candidate: its confirmed mean and interval (and seed count), its
    search-stage accuracy, the reference published variant with its own interval, and the paired
    difference with its interval, n pairs and verdict (all from `conf`), sorted by MAdds."""
    v, t = conf.verdicts, conf.table.set_index("trial")
    if not len(v):
        return pd.DataFrame(columns=VERDICT_ROW_COLUMNS)
    out = v.copy()

    def of(trial: str, col: str) -> float:
        return float(t.loc[trial, col]) if trial in t.index else math.nan

    out["search_top1"] = [of(x, "search_top1") for x in out["trial"]]
    out["lo"] = [of(x, "lo") for x in out["trial"]]
    out["hi"] = [of(x, "hi") for x in out["trial"]]
    out["n_seeds"] = [int(of(x, "n")) for x in out["trial"]]
    out["reference_lo"] = [of(x, "lo") if x else math.nan for x in out["reference"]]
    out["reference_hi"] = [of(x, "hi") if x else math.nan for x in out["reference"]]
    return out[VERDICT_ROW_COLUMNS].sort_values(["madds_m", "trial"], kind="stable").reset_index(drop=True)


def compute_dominance_rows(conf: V.Confirmation) -> pd.DataFrame:
    """The dominance claims of `conf` with both architectures' MAdds: a, a_madds_m, b, b_madds_m, diff, lo,
    hi, n, and the pairs tested together with the interval's level (`nas.verdicts.Dominance`)."""
    madds = dict(zip(conf.table["trial"], conf.table["madds_m"]))
    rows = [{"a": d.a, "a_madds_m": madds.get(d.a, math.nan), "b": d.b, "b_madds_m": madds.get(d.b, math.nan),
             "diff": d.diff, "lo": d.lo, "hi": d.hi, "n": d.n, "tests": d.tests, "level": d.level}
            for d in conf.dominance]
    return pd.DataFrame(rows, columns=["a", "a_madds_m", "b", "b_madds_m", "diff", "lo", "hi", "n", "tests", "level"])


# ---------------------------------------------------------------------------------------------------------
# The trust meter and the headline


@dataclass(frozen=True)
class TrustMeter:
    """The trust meter's numbers and its two one-line readings, as `nas.verdicts.Trust` gives them."""

    tau: float
    lo: float
    hi: float
    n: int
    noise_sd: float
    noise_dof: int
    seeds: int
    rank_reading: str
    noise_reading: str
    top: V.RungNoise | None = None  # the top rung's noise, where the verdicts stand (None: the first rung is the top)

    @property
    def top_noise_text(self) -> str:
        t = self.top
        if t is None:
            return ""
        if not math.isfinite(t.sd):
            return f"seed noise SD n/a at {t.steps} steps"
        seeds = f"{t.seeds}-{t.most_seeds}" if t.most_seeds > t.seeds else f"{t.seeds}"
        return f"seed noise SD {t.sd:.2f} points ({t.dof} dof, {seeds} seeds) at {t.steps} steps"

    @property
    def rank_text(self) -> str:
        if not math.isfinite(self.tau):
            return f"Kendall tau n/a over {self.n} architectures"
        ci = f" [{self.lo:.2f}, {self.hi:.2f}]" if math.isfinite(self.lo) else " [no interval]"
        return f"Kendall tau {self.tau:.2f}{ci} over {self.n} architectures"

    @property
    def noise_text(self) -> str:
        if not math.isfinite(self.noise_sd):
            return "seed noise SD n/a"
        return f"seed noise SD {self.noise_sd:.2f} points ({self.noise_dof} dof, {self.seeds} seeds)"


def compute_trust_meter(conf: V.Confirmation) -> TrustMeter:
    """The trust meter of `conf` (search-stage vs confirmed ranking, seed noise) as flat numbers."""
    tr = conf.trust
    return TrustMeter(tau=tr.rank.tau, lo=tr.rank.lo, hi=tr.rank.hi, n=tr.rank.n, noise_sd=tr.noise_sd,
                      noise_dof=tr.noise_dof, seeds=tr.seeds, rank_reading=tr.rank_reading,
                      noise_reading=tr.noise_reading, top=tr.top)


@dataclass(frozen=True)
class ConfirmedHeadline:
    """What the page leads with: the confirmed searched candidate of highest confirmed mean, its interval
    and its verdict against the best published variant at <= MAdds, and the verdicts counted."""

    trial: str
    family: str
    madds_m: float
    mean: float
    lo: float
    hi: float
    n_seeds: int
    eval_set: str
    reference: str
    diff: float
    diff_lo: float
    diff_hi: float
    verdict: str
    n_candidates: int
    n_better: int
    n_worse: int
    n_pairs: int = 0  # paired seeds behind diff's interval


def compute_headline(conf: V.Confirmation) -> ConfirmedHeadline | None:
    """The headline of a confirmation (None when no searched candidate has been confirmed)."""
    rows = compute_verdict_rows(conf)
    if not len(rows):
        return None
    h = conf.headline  # the verdict the run leads with (and gives its extra seeds)
    best = rows.set_index("trial", drop=False).loc[h["trial"]] if h is not None else rows.loc[rows["mean"].idxmax()]
    ev = conf.table.set_index("trial").loc[best["trial"], "eval_set"]
    return ConfirmedHeadline(
        trial=str(best["trial"]), family=str(best["family"]), madds_m=float(best["madds_m"]),
        mean=float(best["mean"]), lo=float(best["lo"]), hi=float(best["hi"]), n_seeds=int(best["n_seeds"]),
        eval_set=str(ev or "test"), reference=str(best["reference"]), diff=float(best["diff"]),
        diff_lo=float(best["diff_lo"]), diff_hi=float(best["diff_hi"]), verdict=str(best["verdict"]),
        n_candidates=len(rows), n_better=int((rows["verdict"] == "better").sum()),
        n_worse=int((rows["verdict"] == "worse").sum()), n_pairs=int(num(best["n"]) if math.isfinite(num(best["n"])) else 0))


def compute_confirm_problems(trials: pd.DataFrame) -> pd.DataFrame:
    """Confirmation retrainings without a usable accuracy (failed, NaN, still running): trial, seed, status,
    error."""
    cols = ["trial", "seed", "status", "error"]
    if not has_confirm_rows(trials):
        return pd.DataFrame(columns=cols)
    c = trials[trials["stage"] == CONFIRM_STAGE]
    return c[~c["status"].isin(R.FINISHED_OK)][cols].reset_index(drop=True)


__all__ = ["ConfirmedFront", "ConfirmedHeadline", "TrustMeter", "compute_confirmed_front", "plot_confirmed_front",
           "compute_verdict_rows", "compute_dominance_rows", "compute_trust_meter", "compute_headline",
           "compute_confirm_problems", "has_confirm_rows", "interval_text", "confirmed_axis_title"]
