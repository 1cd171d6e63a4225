"""Dashboards of a run: accuracy against MAdds, Pareto fronts against the published variants.

Every chart is a pair: a pure ``compute_*`` function that turns a run (or its trials frame) into plain
data, tested on its own, and a ``plot_*`` function that turns that data into a ``go.Figure``.
`render_dashboard` stacks the figures into one self-contained HTML page (plotly.js embedded once, no
CDN, works offline); `write_dashboard` writes it atomically and is cheap enough to call after every
trial. Plotly, pandas and Optuna are imported lazily; this module is the only one that imports plotly.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas import results as R
from nas.errors import NasError, RunError

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

COLOR_DIMS: tuple[str, ...] = ("family", "fusion", "attention")
"""Columns the accuracy-vs-MAdds scatter can be coloured by (switchable in the page)."""
FAMILY_COLORS: dict[str, str] = {
    "Mobile-Former": "#1f77b4", "MobileViT-v1": "#ff7f0e", "MobileViT-v2": "#2ca02c",
    "MobileViT-v3": "#d62728", "hybrid-MF": "#9467bd", "hybrid-ViT": "#17becf",
}
_PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880",
            "#ff97ff", "#fecb52", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
STATUS_STYLE: dict[str, dict[str, str]] = {
    "completed": {"dash": "solid", "symbol": "circle"},
    "early_stopped": {"dash": "dash", "symbol": "circle-open"},
    "failed": {"dash": "dot", "symbol": "x"},
    "nan": {"dash": "dot", "symbol": "x"},
    "over_budget": {"dash": "dot", "symbol": "x"},
    "running": {"dash": "dashdot", "symbol": "circle-dot"},
}
FIGURES: tuple[str, ...] = ("accuracy_vs_madds", "reference", "importance", "parallel", "curves")
"""The main figures, in page order; also the PNG file stems of ``--png``."""
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def color_for(value: str, domain: Sequence[str] = ()) -> str:
    """A stable colour: the family colours first, else a palette slot by position in `domain` (or hash)."""
    if value in FAMILY_COLORS:
        return FAMILY_COLORS[value]
    others = [v for v in domain if v not in FAMILY_COLORS]
    if value in others:
        return _PALETTE[others.index(value) % len(_PALETTE)]
    return _PALETTE[sum(map(ord, value)) % len(_PALETTE)]


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _fmt(v: Any, nd: int = 1, unit: str = "") -> str:
    f = _num(v)
    return "n/a" if not math.isfinite(f) else f"{f:.{nd}f}{unit}"


def parse_millions(v: Any, *, what: str = "budget_m") -> float:
    """A MAdds figure in millions from run.yaml: a number (millions) or a string like "300M" / "1.2G".

    Missing -> NaN. Anything else raises RunError naming the value.
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return math.nan
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    s = str(v).strip().upper().replace(" ", "")
    mult = {"K": 1e-3, "M": 1.0, "G": 1e3}
    try:
        if s and s[-1] in mult:
            return float(s[:-1]) * mult[s[-1]]
        return float(s)
    except ValueError:
        raise RunError(f"run.yaml: {what} = {v!r} is not a MAdds figure",
                       'write millions as a number (300) or a string like "300M" / "1.2G"') from None


# ---------------------------------------------------------------------------------------------------------
# Data: budget lines, points, fronts, summary


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


def compute_budget_lines(config: dict[str, Any], trials: pd.DataFrame | None = None) -> BudgetLines:
    """Budget and min-budget edge from run.yaml (`budget_m`, `min_budget`), falling back to the trials.

    `min_budget` is a fraction of the budget in (0, 1]; a value above 1 is read as millions of MAdds.
    A fraction of 0 or 1 (or none) means no band.
    """
    budget = parse_millions(config.get("budget_m", config.get("budget")))
    if not math.isfinite(budget) and trials is not None and len(trials):
        vals = trials["budget_m"].dropna()
        budget = float(vals.iloc[-1]) if len(vals) else math.nan
    mb = config.get("min_budget")
    min_m = math.nan
    if mb is not None and math.isfinite(budget):
        f = _num(mb) if not isinstance(mb, str) else parse_millions(mb, what="min_budget")
        if math.isfinite(f) and f > 0:
            min_m = f * budget if f <= 1 else f
    return BudgetLines(budget_m=budget, min_m=min_m)


def compute_front_steps(front: pd.DataFrame, *, x: str = "madds_m", y: str = "val_top1",
                        x_end: float | None = None) -> tuple[list[float], list[float]]:
    """The Pareto front as a step line (plot with line_shape="hv"): points by x ascending, best y first
    at equal x, extended flat to `x_end` when it lies right of the last point."""
    pts = front[[x, y]].dropna().sort_values([x, y], ascending=[True, False])
    xs, ys = pts[x].astype(float).tolist(), pts[y].astype(float).tolist()
    if xs and x_end is not None and math.isfinite(x_end) and x_end > xs[-1]:
        xs.append(float(x_end))
        ys.append(ys[-1])
    return xs, ys


def _knob_text(row: pd.Series, knobs: Sequence[str]) -> str:
    parts = []
    for k in knobs:
        v = row[k]
        if R._missing(v):
            continue
        f = _num(v)
        s = (f"{int(f)}" if f.is_integer() else f"{f:g}") if isinstance(v, float) and math.isfinite(f) else str(v)
        parts.append(f"{k[len(R.KNOB_PREFIX):]}={s}")
    lines = [", ".join(parts[i:i + 4]) for i in range(0, len(parts), 4)]
    return "<br>".join(html.escape(s) for s in lines)


def hover_text(row: pd.Series, knobs: Sequence[str]) -> str:
    """The hover card of one trial: status, accuracy, cost, knobs, arch id, and how to rebuild it."""
    e = html.escape
    title = e(str(row["name"] or row["trial"]))
    lines = [f"<b>{title}</b> ({e(str(row['family']))}, {e(str(row['status']).replace('_', '-'))})",
             f"val top-1 {_fmt(row['val_top1'], 2, '%')} (best {_fmt(row['best_val_top1'], 2, '%')}), "
             f"{int(row['epochs_done'])} epochs",
             f"MAdds {_fmt(row['madds_m'], 1, ' M')}, params {_fmt(row['params_m'], 2, ' M')}",
             f"fusion {e(str(row['fusion']) or '-')}, attention {e(str(row['attention']) or '-')}"]
    if math.isfinite(_num(row.get("published_top1"))):
        lines.append(f"published ImageNet top-1 {_fmt(row['published_top1'], 1, '%')} at "
                     f"{_fmt(row['published_madds_m'], 0, ' M')} MAdds")
    kt = _knob_text(row, knobs)
    if kt:
        lines.append(kt)
    if row["arch_id"]:
        lines.append(f"arch {e(str(row['arch_id']))}")
    if row["rebuild_cmd"]:
        lines.append(f"<i>{e(str(row['rebuild_cmd']))}</i>")
    return "<br>".join(lines)


def compute_points(trials: pd.DataFrame) -> pd.DataFrame:
    """The plottable trials: completed/early-stopped with finite MAdds and val top-1, plus hover text,
    marker symbol and whether each is on the Pareto front (computed over searched and baseline rows)."""
    df = R.normalize_trials(trials)
    knobs = R.knob_columns(df)
    on_front = R.pareto_mask(df)
    pts = df[R.eligible_mask(df)].copy()
    pts["on_front"] = on_front[pts.index].astype(bool)
    pts["hover"] = [hover_text(r, knobs) for _, r in pts.iterrows()]
    pts["symbol"] = [STATUS_STYLE[s]["symbol"] for s in pts["status"]]
    for dim in COLOR_DIMS:
        pts[dim] = pts[dim].replace("", "n/a")
    return pts.reset_index(drop=True)


def compute_summary(run: R.Run) -> dict[str, Any]:
    """Headline numbers of a run: trial counts by status, the best searched and baseline results, the front."""
    df = run.trials
    searched, base = df[df["kind"] == "searched"], df[df["kind"] == "baseline"]
    counts = {s: int((searched["status"] == s).sum()) for s in R.STATUSES}
    ok = R.eligible_mask(df)
    best = {}
    for label, part in (("searched", searched), ("baseline", base)):
        p = part[ok[part.index]]
        if len(p):
            r = p.loc[p["val_top1"].idxmax()]
            best[label] = {"trial": str(r["name"] or r["trial"]), "val_top1": float(r["val_top1"]),
                           "madds_m": float(r["madds_m"])}
    front = run.pareto
    gains = front.loc[front["kind"] == "searched", R.PARETO_EXTRA].dropna() if len(front) else front
    return {
        "n_searched": len(searched), "n_baseline": len(base), "counts": counts,
        "best": best, "front_size": len(front),
        "front_searched": int((front["kind"] == "searched").sum()) if len(front) else 0,
        "best_gain": float(gains.max()) if len(gains) else math.nan,
    }


def compute_pareto_table(run: R.Run) -> pd.DataFrame:
    """The Pareto-optimal rows for the table: cost, accuracy, gain over the best baseline at equal or
    lower MAdds (and which baseline that is), the exported YAML and the rebuild command."""
    import pandas as pd

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
    """Failed, NaN and over-budget trials with their error, for the page's list."""
    df = trials[trials["status"].isin(("failed", "nan", "over_budget"))]
    return df[["trial", "status", "madds_m", "epochs_done", "error"]].reset_index(drop=True)


def compute_curves(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """Per trial with a val curve: its epochs, per-epoch val top-1, status, kind and error.

    A malformed `val_curve` string raises RunError naming the trial.
    """
    out = []
    for _, r in trials.iterrows():
        text = str(r["val_curve"] or "[]")
        try:
            vals = json.loads(text)
        except json.JSONDecodeError:
            raise RunError(f"trial {r['trial']}: val_curve {text[:40]!r} is not a JSON list",
                           "write val_curve as a JSON list of per-epoch val top-1 (e.g. [10.5, 21.0])") from None
        if not isinstance(vals, list):
            raise RunError(f"trial {r['trial']}: val_curve is {type(vals).__name__}, not a list",
                           "write val_curve as a JSON list of per-epoch val top-1")
        ys = [_num(v) for v in vals]
        if not ys:
            continue
        out.append({"trial": str(r["trial"]), "name": str(r["name"] or r["trial"]), "kind": str(r["kind"]),
                    "status": str(r["status"]), "family": str(r["family"]), "error": str(r["error"]),
                    "epochs": list(range(1, len(ys) + 1)), "val_top1": ys})
    return out


# ---------------------------------------------------------------------------------------------------------
# Data: the published reference, knob importance, parallel coordinates


@lru_cache(maxsize=1)
def _reference_cached() -> tuple[tuple[dict[str, Any], ...], tuple[str, ...]]:
    from nas.madds import count_madds
    from nas.variants import ZOO, get_variant, list_variants, published

    rows, notes = [], []
    for name in list_variants():
        p = published(name)
        ours = math.nan
        if not (ZOO / f"{name}.yaml").is_file():
            notes.append(f"{name}: no config yet (nas/zoo/{name}.yaml)")
        else:
            try:
                ours = count_madds(get_variant(name)) / 1e6
            except Exception as e:  # shown on the page, never silently dropped
                notes.append(f"{name}: our count failed ({type(e).__name__}: {e})")
        rows.append({"name": name, "display_name": str(p.get("display_name", name)), "family": p["family"],
                     "published_madds_m": float(p["madds_m"]), "our_madds_m": ours,
                     "top1": float(p["top1"]), "params_m": float(p["params_m"])})
    return tuple(rows), tuple(notes)


def compute_reference() -> tuple[pd.DataFrame, list[str]]:
    """The published variants: family, ImageNet top-1, published MAdds and our analytic count (millions).

    A variant whose config is missing keeps its published point, with our count NaN and a note.
    Cached per process (the zoo does not change while a search runs).
    """
    import pandas as pd

    rows, notes = _reference_cached()
    return pd.DataFrame(list(rows)), list(notes)


@dataclass
class Importance:
    """Knob importances for val top-1 (sum to 1), where they came from, or why there are none."""

    values: dict[str, float] = field(default_factory=dict)
    source: str = ""
    note: str = ""
    n_trials: int = 0


_IMPORTANCE_CACHE: dict[Any, Importance] = {}
_LAST_IMPORTANCE: dict[str, Importance] = {}
_STORAGES: dict[str, Any] = {}


def _study_distributions(run_dir: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """Params and distributions of the complete trials of the run's Optuna study, by trial number."""
    import optuna

    db = run_dir / "optuna.db"
    if not db.is_file():
        return {}, {}
    url = f"sqlite:///{db.resolve()}"
    if url not in _STORAGES:  # opening an RDB storage costs ~1 s; the live dashboard reopens it every trial
        _STORAGES[url] = optuna.storages.RDBStorage(url)
    storage = _STORAGES[url]
    names = [s.study_name for s in storage.get_all_studies()]
    if not names:
        return {}, {}
    name = next((n for n in names if n == run_dir.name), names[0])
    study = optuna.load_study(study_name=name, storage=storage)
    params, dists = {}, {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        params[t.number], dists[t.number] = dict(t.params), dict(t.distributions)
    return params, dists


def compute_importance(run: R.Run, *, n_trees: int = 32, seed: int = 0, max_stale: int = 0) -> Importance:
    """fANOVA importance of each knob for val top-1 over the completed/early-stopped searched trials.

    Parameter distributions come from the run's Optuna study (optuna.db) when it has them, else from
    the knob columns (each column's observed choices); the target is always the trials' val top-1.
    Needs at least 2 such trials with some spread in val top-1; otherwise `note` says why there are none.
    Cached on the (trial, accuracy) data. `max_stale` > 0 (the live dashboard) reuses this run's last
    result while at most that many trained trials were added since (fANOVA costs seconds at 500 trials).
    """
    df = run.trials
    ok = df[R.eligible_mask(df) & (df["kind"] == "searched")]
    knobs = R.knob_columns(df)
    if len(ok) < 2:
        return Importance(note=f"not enough trials for knob importance: {len(ok)} completed, need at least 2")
    if not knobs:
        return Importance(note="no knob_* columns in the trials: nothing to rank")
    key = (str(run.path), n_trees, seed,
           tuple(ok[["number", "val_top1"]].itertuples(index=False, name=None)),
           (run.path / "optuna.db").stat().st_mtime if (run.path / "optuna.db").is_file() else 0.0)
    if key in _IMPORTANCE_CACHE:
        return _IMPORTANCE_CACHE[key]
    last = _LAST_IMPORTANCE.get(str(run.path))
    if last is not None and last.values and 0 <= len(ok) - last.n_trials <= max_stale:
        return last
    if ok["val_top1"].nunique() < 2:
        return Importance(note="all completed trials have the same val top-1: no importance to attribute")
    import optuna
    from optuna.distributions import CategoricalDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        s_params, s_dists = _study_distributions(run.path)
    except Exception as e:  # a locked or foreign db: fall back to the frame, and say so
        s_params, s_dists, why = {}, {}, f" (optuna.db unreadable: {type(e).__name__})"
    else:
        why = ""
    choices = {k: sorted({str(v) if isinstance(v, str) else float(v) for v in df[k].dropna()}, key=str)
               for k in knobs}
    trials = []
    from_study = all(s_params.get(int(n)) for n in ok["number"])  # one source for all, never a mix
    for _, r in ok.iterrows():
        n = int(r["number"])
        if from_study:
            params, dists = s_params[n], s_dists[n]
        else:
            params, dists = {}, {}
            for k in knobs:
                v = r[k]
                if R._missing(v):
                    continue
                name = k[len(R.KNOB_PREFIX):]
                v = str(v) if isinstance(v, str) else float(v)
                params[name] = v
                dists[name] = CategoricalDistribution(choices[k])
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=float(r["val_top1"])))
    source = "Optuna study (optuna.db)" if from_study else "trials frame"
    study = optuna.create_study(direction="maximize")
    try:
        study.add_trials(trials)
        ev = optuna.importance.FanovaImportanceEvaluator(n_trees=n_trees, seed=seed)
        values = optuna.importance.get_param_importances(study, evaluator=ev, normalize=True)
    except (ValueError, RuntimeError, ImportError) as e:  # ImportError: fANOVA needs scikit-learn
        imp = Importance(note=f"knob importance unavailable: {e}", source=source, n_trials=len(ok))
    else:
        imp = Importance(values={k: float(v) for k, v in values.items()}, source=source + why, n_trials=len(ok))
        sub = _importance_within_largest_group(trials, ev) if len(values) <= 1 else None
        if sub is not None:  # conditional knobs: rank the knobs of the largest family of trials instead
            label, n, sub_values = sub
            shared = ", ".join(f"{k} {v:.2f}" for k, v in values.items()) or "none"
            imp = Importance(values=sub_values, source=source + why, n_trials=n,
                             note=f"knobs are conditional, so they are ranked within the {n} {label}trials that share "
                                  f"them (the largest such group); over all {len(ok)} trials only the shared knobs "
                                  f"can be ranked: {shared}")
        elif not values:
            imp.note = "no knob is shared by all completed trials (conditional knobs): nothing to rank"
    _IMPORTANCE_CACHE[key] = imp
    _LAST_IMPORTANCE[str(run.path)] = imp
    return imp


def _importance_within_largest_group(trials: list, evaluator: Any) -> tuple[str, int, dict[str, float]] | None:
    """fANOVA over the largest group of trials that share the same knob names (one macro-family of a space
    with conditional knobs); None when that group is too small or flat to rank anything."""
    import optuna

    groups: dict[frozenset, list] = {}
    for t in trials:
        groups.setdefault(frozenset(t.params), []).append(t)
    best = max(groups.values(), key=len)
    if len(best) < 3 or len({t.value for t in best}) < 2 or len(best[0].params) < 2:
        return None
    varied = [k for k in best[0].params if len({repr(t.params[k]) for t in best}) > 1]
    if not varied:
        return None
    study = optuna.create_study(direction="maximize")
    study.add_trials(best)
    values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied, normalize=True)
    macro = best[0].params.get("macro")
    return (f"{macro} " if isinstance(macro, str) else ""), len(best), {k: float(v) for k, v in values.items()}


@dataclass
class ParallelDim:
    """One parallel-coordinates axis: label, values, and tick labels when categorical."""

    label: str
    values: list[float]
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None


def compute_parallel(trials: pd.DataFrame, *, max_continuous_levels: int = 12) -> list[ParallelDim]:
    """Axes of the parallel-coordinates view: each knob of the searched trials with a val top-1, then
    MAdds and val top-1. String knobs, knobs with few levels and knobs with gaps (conditional, NaN ->
    "n/a") are categorical; the rest continuous. Knobs that are missing everywhere are left out."""
    df = trials[R.eligible_mask(trials) & (trials["kind"] == "searched")]
    dims: list[ParallelDim] = []
    if not len(df):
        return dims
    for k in R.knob_columns(df):
        col = df[k]
        if col.isna().all():
            continue
        label = k[len(R.KNOB_PREFIX):]
        numeric = col.dtype.kind == "f"
        levels = col.dropna().unique().tolist()
        if numeric and not col.isna().any() and len(levels) > max_continuous_levels:
            dims.append(ParallelDim(label, col.astype(float).tolist()))
            continue
        levels = sorted(levels, key=(lambda v: float(v)) if numeric else str)
        text = [(f"{int(v)}" if float(v).is_integer() else f"{v:g}") if numeric else str(v) for v in levels]
        if col.isna().any():
            levels, text = [None, *levels], ["n/a", *text]
        pos = {lv: i for i, lv in enumerate(levels)}
        vals = [float(pos[None if R._missing(v) else v]) for v in col.tolist()]
        dims.append(ParallelDim(label, vals, list(map(float, range(len(levels)))), text))
    dims.append(ParallelDim("MAdds (M)", df["madds_m"].astype(float).tolist()))
    dims.append(ParallelDim("val top-1 (%)", df["val_top1"].astype(float).tolist()))
    return dims


# ---------------------------------------------------------------------------------------------------------
# Figures


def _base_layout(fig: go.Figure, *, title: str, height: int = 480) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}},
                      template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      hoverlabel={"align": "left"}, font={"size": 12})
    return fig


def _add_budget(fig: go.Figure, lines: BudgetLines, *, log_x: bool = False) -> None:
    """Budget line, min-budget edge and the band between them, each labelled at the top.

    plotly.js 3+/4 places shapes in data units on a log axis but annotations in log10 units.
    """
    def label(x: float, text: str, color: str, anchor: str) -> None:
        fig.add_annotation(x=math.log10(x) if log_x else x, y=1, xref="x", yref="paper", text=text,
                           showarrow=False, xanchor=anchor, yanchor="bottom", font={"color": color, "size": 11})

    if lines.has_band:
        fig.add_vrect(x0=lines.min_m, x1=lines.budget_m, fillcolor="#2ca02c", opacity=0.07, line_width=0,
                      layer="below")
        fig.add_vline(x=lines.min_m, line={"color": "#2ca02c", "dash": "dot", "width": 1.5})
        label(lines.min_m, f"min {lines.min_m:.0f} M", "#2ca02c", "right")
    if lines.has_budget:
        fig.add_vline(x=lines.budget_m, line={"color": "#d62728", "dash": "dash", "width": 2})
        label(lines.budget_m, f"budget {lines.budget_m:.0f} M", "#d62728", "left")


def _label_positions(xs: Sequence[float]) -> list[str]:
    """Text positions that alternate above/below between neighbours along x, so close labels do not overlap."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    pos = [""] * len(xs)
    for rank, i in enumerate(order):
        pos[i] = "top center" if rank % 2 == 0 else "bottom center"
    return pos


def plot_accuracy_vs_madds(points: pd.DataFrame, front: pd.DataFrame, budget: BudgetLines, *,
                           title: str = "Proxy val top-1 against MAdds") -> go.Figure:
    """Every trial's val top-1 against MAdds, colourable by family / fusion / attention (buttons), the
    Pareto front as a step line, the baselines as labelled diamonds, the budget (and band) as lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    searched = points[points["kind"] == "searched"]
    base = points[points["kind"] == "baseline"]
    n_per_dim = []
    for i, dim in enumerate(COLOR_DIMS):
        cats = sorted(searched[dim].unique().tolist(), key=str)
        n_per_dim.append(len(cats))
        for c in cats:
            p = searched[searched[dim] == c]
            fig.add_trace(go.Scatter(
                x=p["madds_m"], y=p["val_top1"], mode="markers", name=str(c), legendgroup=dim,
                legendgrouptitle={"text": dim} if c == cats[0] else None, visible=i == 0,
                marker={"color": color_for(str(c), cats), "symbol": p["symbol"].tolist(), "size": 9,
                        "line": {"width": 1.5, "color": color_for(str(c), cats)}, "opacity": 0.85},
                text=p["hover"], hovertemplate="%{text}<extra></extra>", meta=dim))
    n_search_traces = sum(n_per_dim)
    x_end = budget.budget_m if budget.has_budget else None
    if len(points):
        x_end = max(v for v in (x_end, float(points["madds_m"].max())) if v is not None)
    if len(base):
        bx, by = compute_front_steps(R.compute_pareto(base), x_end=x_end)
        fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line={"shape": "hv", "color": "#888", "dash": "dot"},
                                 name="published front (same proxy)", hoverinfo="skip"))
        fig.add_trace(go.Scatter(
            x=base["madds_m"], y=base["val_top1"], mode="markers+text", name="published variants",
            text=base["name"], textposition=_label_positions(base["madds_m"].tolist()), textfont={"size": 10, "color": "#333"},
            marker={"symbol": "diamond", "size": 12, "color": [color_for(f) for f in base["family"]],
                    "line": {"width": 1.5, "color": "#222"}},
            hovertext=base["hover"], hovertemplate="%{hovertext}<extra></extra>"))
    if len(front):
        fx, fy = compute_front_steps(front, x_end=x_end)
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line={"shape": "hv", "color": "#111", "width": 2},
                                 name="Pareto front", hoverinfo="skip"))
        fig.add_trace(go.Scatter(
            x=front["madds_m"], y=front["val_top1"], mode="markers", name="Pareto-optimal",
            marker={"symbol": "circle-open", "size": 16, "color": "#111", "line": {"width": 2}},
            hoverinfo="skip", showlegend=False))
    n_fixed = len(fig.data) - n_search_traces
    buttons = []
    for i, dim in enumerate(COLOR_DIMS):
        vis = []
        for j, n in enumerate(n_per_dim):
            vis += [j == i] * n
        buttons.append({"label": f"colour: {dim}", "method": "restyle", "args": [{"visible": vis + [True] * n_fixed}]})
    fig.update_layout(updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                                    "x": 1.0, "xanchor": "right", "y": 1.09, "yanchor": "bottom",
                                    "pad": {"r": 4, "t": 4}, "showactive": True}])
    _add_budget(fig, budget)
    fig.update_xaxes(title="MAdds (millions, analytic, target resolution)")
    fig.update_yaxes(title="proxy val top-1 (%)")
    _base_layout(fig, title=title, height=560)
    fig.update_layout(margin={"t": 90}, legend={"groupclick": "toggleitem"})
    return fig


def plot_reference(ref: pd.DataFrame, *, budget: BudgetLines | None = None,
                   title: str = "Published variants: ImageNet top-1 against MAdds") -> go.Figure:
    """One line per family through the published points; our analytic count of the same networks as
    open markers on a dotted line of the same colour (log MAdds axis)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for fam in sorted(ref["family"].unique(), key=str):
        d = ref[ref["family"] == fam].sort_values("published_madds_m")
        c = color_for(fam)
        hover = [f"<b>{html.escape(r.display_name)}</b><br>ImageNet top-1 {r.top1:.2f}%<br>"
                 f"published {r.published_madds_m:.0f} M MAdds, ours {_fmt(r.our_madds_m, 1, ' M')}"
                 + (f" ({(r.our_madds_m / r.published_madds_m - 1) * 100:+.1f}%)"
                    if math.isfinite(r.our_madds_m) else "")
                 + f"<br>params {r.params_m:.1f} M" for r in d.itertuples()]
        fig.add_trace(go.Scatter(x=d["published_madds_m"], y=d["top1"], mode="lines+markers", name=f"{fam}",
                                 legendgroup=fam, line={"color": c, "width": 2}, marker={"size": 8, "color": c},
                                 text=hover, hovertemplate="%{text}<extra>published</extra>"))
        o = d[d["our_madds_m"].notna()].sort_values("our_madds_m")
        if len(o):
            fig.add_trace(go.Scatter(
                x=o["our_madds_m"], y=o["top1"], mode="lines+markers", name=f"{fam} (our count)", legendgroup=fam,
                line={"color": c, "width": 1, "dash": "dot"}, marker={"size": 9, "color": c, "symbol": "circle-open"},
                text=[hover[list(d["name"]).index(n)] for n in o["name"]],
                hovertemplate="%{text}<extra>our count</extra>", showlegend=True))
    if budget is not None:
        _add_budget(fig, budget, log_x=True)
    fig.update_xaxes(type="log", title="MAdds (millions, log scale)")
    fig.update_yaxes(title="ImageNet-1k top-1 (%)")
    _base_layout(fig, title=title, height=480)
    return fig


def plot_importance(imp: Importance, *, title: str = "Knob importance for val top-1 (fANOVA)") -> go.Figure:
    """Horizontal bars, most important knob on top; an empty figure with the reason when there are none."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if imp.values:
        items = sorted(imp.values.items(), key=lambda kv: kv[1])
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                             marker={"color": "#636efa"}, text=[f"{v:.2f}" for _, v in items],
                             textposition="auto", hovertemplate="%{y}: %{x:.3f}<extra></extra>", name="importance"))
        fig.update_xaxes(title=f"importance (sums to 1; from {imp.source})", range=[0, 1])
    else:
        fig.add_annotation(text=html.escape(imp.note or "no importance"), x=0.5, y=0.5, xref="paper",
                           yref="paper", showarrow=False, font={"size": 14, "color": "#666"})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return _base_layout(fig, title=title, height=480)


def plot_parallel(dims: Sequence[ParallelDim], *, title: str = "Knobs against val top-1") -> go.Figure:
    """Parallel coordinates of the knobs, MAdds and val top-1, lines coloured by val top-1."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if len(dims) >= 2:
        acc = dims[-1].values
        pdims = []
        for d in dims:
            dd: dict[str, Any] = {"label": d.label, "values": d.values}
            if d.tickvals is not None:
                dd.update(tickvals=d.tickvals, ticktext=d.ticktext,
                          range=[min(d.tickvals) - 0.25, max(d.tickvals) + 0.25])
            pdims.append(dd)
        fig.add_trace(go.Parcoords(dimensions=pdims, line={"color": acc, "colorscale": "Viridis", "showscale": True,
                                                           "colorbar": {"title": {"text": "top-1"}}}))
        fig.update_layout(margin={"l": 60, "r": 60, "t": 90, "b": 30})
    else:
        fig.add_annotation(text="no completed searched trial yet", x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, font={"size": 14, "color": "#666"})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    _base_layout(fig, title=title, height=460)
    if len(dims) >= 2:
        fig.update_layout(margin={"l": 70, "r": 70, "t": 100, "b": 30})
    return fig


_CURVE_COLORS = {"completed": "#636efa", "early_stopped": "#ff7f0e", "failed": "#d62728", "nan": "#d62728",
                 "running": "#7f7f7f", "over_budget": "#9a5b00"}


def plot_curves(curves: Sequence[dict[str, Any]], *, title: str = "Learning curves (proxy val top-1 per epoch)"
                ) -> go.Figure:
    """Searched trials as one line trace per status (solid completed, dashed early-stopped, dotted red
    failed; one trace per status keeps the page light with hundreds of trials) plus a marker on each
    last epoch (x where a trial was stopped or failed); published baselines thicker in their family colour."""
    import plotly.graph_objects as go

    fig = go.Figure()
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in curves:
        if c["kind"] != "baseline":
            groups.setdefault(c["status"], []).append(c)
    for st in sorted(groups, key=lambda k: R.STATUSES.index(k) if k in R.STATUSES else 99):
        xs: list[Any] = []
        ys: list[Any] = []
        text: list[Any] = []
        for c in groups[st]:
            err = f"<br>error: {html.escape(c['error'][:200])}" if c["error"] else ""
            label = f"<b>{html.escape(c['name'])}</b> ({st.replace('_', '-')}){err}"
            xs += [*c["epochs"], None]
            ys += [*c["val_top1"], None]
            text += [label] * len(c["epochs"]) + [None]
        color, name = _CURVE_COLORS.get(st, "#7f7f7f"), st.replace("_", "-")
        style = STATUS_STYLE.get(st, STATUS_STYLE["completed"])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{name} ({len(groups[st])})", legendgroup=st,
                                 line={"color": color, "dash": style["dash"], "width": 1.3}, opacity=0.55,
                                 text=text, hovertemplate="%{text}<br>epoch %{x}: %{y:.2f}%<extra></extra>"))
        ends = groups[st]
        fig.add_trace(go.Scatter(
            x=[c["epochs"][-1] for c in ends], y=[c["val_top1"][-1] for c in ends], mode="markers",
            legendgroup=st, showlegend=False, hoverinfo="skip",
            marker={"color": color, "size": 7, "symbol": "x" if st in ("early_stopped", "failed", "nan") else "circle",
                    "opacity": 0.8}))
    for c in curves:
        if c["kind"] == "baseline":
            color = color_for(c["family"])
            fig.add_trace(go.Scatter(
                x=c["epochs"], y=c["val_top1"], mode="lines", name=c["name"], legendgroup="baselines",
                legendgrouptitle={"text": "published (same proxy)"}, line={"color": color, "width": 3},
                hovertemplate=f"<b>{html.escape(c['name'])}</b> (published)<br>epoch %{{x}}: %{{y:.2f}}%<extra></extra>"))
    if not curves:
        fig.add_annotation(text="no learning curve yet", x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, font={"size": 14, "color": "#666"})
    fig.update_xaxes(title="epoch", dtick=1 if curves and max(len(c["epochs"]) for c in curves) <= 20 else None)
    fig.update_yaxes(title="val top-1 (%)")
    return _base_layout(fig, title=title, height=460)


# ---------------------------------------------------------------------------------------------------------
# Compare runs


def compute_compare(runs: Sequence[R.Run]) -> list[dict[str, Any]]:
    """Per run: its name, budget lines, eligible points, its front and its front's step line."""
    out = []
    for run in runs:
        pts = compute_points(run.trials)
        budget = compute_budget_lines(run.config, run.trials)
        x_end = max([v for v in (budget.budget_m if budget.has_budget else None,
                                 float(pts["madds_m"].max()) if len(pts) else None) if v is not None],
                    default=None)
        out.append({"name": run.name, "budget": budget, "points": pts, "front": run.pareto,
                    "steps": compute_front_steps(run.pareto, x_end=x_end), "summary": compute_summary(run),
                    "dataset": str(run.config.get("data", "")) or _first(run.trials, "dataset"),
                    "proxy_hash": str(run.config.get("proxy_hash", "")) or _first(run.trials, "proxy_hash")})
    return out


def plot_compare(data: Sequence[dict[str, Any]], *, title: str = "Pareto fronts of several runs") -> go.Figure:
    """Each run's trials (faint), its front (step line, bold) and its budget (dotted), one colour per run."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, d in enumerate(data):
        c = _PALETTE[i % len(_PALETTE)]
        pts = d["points"]
        fig.add_trace(go.Scatter(x=pts["madds_m"], y=pts["val_top1"], mode="markers", name=f"{d['name']}: trials",
                                 legendgroup=d["name"], marker={"color": c, "size": 6, "opacity": 0.35,
                                                                "symbol": pts["symbol"].tolist()},
                                 text=pts["hover"], hovertemplate="%{text}<extra>" + html.escape(d["name"]) + "</extra>"))
        fx, fy = d["steps"]
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line={"shape": "hv", "color": c, "width": 2.5},
                                 name=f"{d['name']}: front", legendgroup=d["name"], hoverinfo="skip"))
        f = d["front"]
        if len(f):
            fig.add_trace(go.Scatter(
                x=f["madds_m"], y=f["val_top1"], mode="markers", legendgroup=d["name"], showlegend=False,
                marker={"color": c, "size": 10, "symbol": ["diamond" if k == "baseline" else "circle"
                                                           for k in f["kind"]], "line": {"color": "#111", "width": 1}},
                text=[f"{html.escape(d['name'])}: {html.escape(str(n))}" for n in f["name"]],
                hovertemplate="%{text}<br>%{x:.1f} M, %{y:.2f}%<extra></extra>"))
        b = d["budget"]
        if b.has_budget:
            fig.add_vline(x=b.budget_m, line={"color": c, "dash": "dot", "width": 1.5},
                          annotation={"text": f"{html.escape(d['name'])} budget", "font": {"color": c, "size": 10}},
                          annotation_position="top right" if i % 2 == 0 else "bottom right")
    fig.update_xaxes(title="MAdds (millions)")
    fig.update_yaxes(title="proxy val top-1 (%)")
    return _base_layout(fig, title=title, height=600)


# ---------------------------------------------------------------------------------------------------------
# HTML page

_CSS = """
:root { --fg:#1d2430; --muted:#5b6573; --line:#e3e7ee; --bg:#f6f7f9; --accent:#1f4e8c; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 28px 14px; }
header h1 { margin:0 0 4px; font-size:22px; }
header .meta { color:var(--muted); font-size:13px; }
header .meta code { background:#eef1f5; padding:1px 5px; border-radius:4px; }
.summary { margin:10px 0 0; font-size:15px; }
main { max-width:1500px; margin:0 auto; padding:18px 24px 40px; }
.cards { display:flex; gap:12px; flex-wrap:wrap; margin-bottom:16px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 16px; min-width:150px; }
.card .v { font-size:22px; font-weight:600; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:8px 10px; margin-bottom:16px; }
.grid2 { display:grid; grid-template-columns: minmax(0,1fr) minmax(0,1fr); gap:16px; }
@media (max-width: 1100px) { .grid2 { grid-template-columns: 1fr; } }
h2 { font-size:17px; margin:6px 6px 10px; }
.note { color:var(--muted); font-size:12px; margin:4px 8px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f3f7; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
td code { font-size:12px; }
.pos { color:#1a7f37; font-weight:600; } .neg { color:#b42318; }
.badge { display:inline-block; padding:0 6px; border-radius:9px; font-size:11px; background:#eef1f5; }
.badge.failed, .badge.nan { background:#fde8e8; color:#b42318; }
.badge.over_budget { background:#fff4e5; color:#9a5b00; }
details { margin:8px 6px; } pre { background:#f4f6f9; padding:8px; border-radius:6px; overflow:auto; font-size:12px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px; }
"""

# Runs first in <head>: records every JavaScript error so a headless browser (and a reader) can see it.
_ERROR_HOOK = """<script>window.__nasErrors=[];window.addEventListener('error',function(e){
window.__nasErrors.push(String(e.message||e));});</script>"""

# Runs last: waits until every plot has drawn, then stamps the result onto <body> (used by the tests).
_READY_HOOK = """<script>(function(){var t0=Date.now();function done(){
var gds=document.querySelectorAll('.js-plotly-plot');var ok=true;
gds.forEach(function(gd){if(!gd._fullLayout||!gd.querySelector('.main-svg')){ok=false;}});
if(!ok&&Date.now()-t0<15000){setTimeout(done,50);return;}
gds.forEach(function(gd){var c=gd.closest('[data-figure]')||gd;
c.setAttribute('data-traces',String((gd.data||[]).length));
c.setAttribute('data-points',String(gd.querySelectorAll('.scatterlayer path.point').length));
c.setAttribute('data-bars',String(gd.querySelectorAll('.barlayer .point').length));
c.setAttribute('data-parcoords',String(gd.querySelectorAll('.parcoords .axis').length));});
document.body.setAttribute('data-figures',String(gds.length));
document.body.setAttribute('data-js-errors',String(window.__nasErrors.length));
document.body.setAttribute('data-js-error-text',window.__nasErrors.join(' | ').slice(0,2000));
document.body.setAttribute('data-rendered',ok?'ok':'timeout');}
window.addEventListener('load',function(){setTimeout(done,0);});})();</script>"""


def _fig_html(fig: go.Figure, key: str) -> str:
    inner = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}", config=_PLOT_CONFIG,
                        default_width="100%")
    return f'<div class="panel" data-figure="{key}">{inner}</div>'


def _page(title: str, body: str, *, refresh_s: int | None = None) -> str:
    from plotly.offline import get_plotlyjs

    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{refresh}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>{_ERROR_HOOK}"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
            f"<body>{body}{_READY_HOOK}</body></html>\n")


def _first(df: pd.DataFrame, col: str) -> str:
    vals = [v for v in df[col].tolist() if v] if len(df) else []
    return str(vals[0]) if vals else ""


def _card(value: str, key: str) -> str:
    return f'<div class="card"><div class="v">{value}</div><div class="k">{html.escape(key)}</div></div>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool]) -> str:
    head = "".join(f'<th class="num">{html.escape(h)}</th>' if n else f"<th>{html.escape(h)}</th>"
                   for h, n in zip(headers, numeric))
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if n else f"<td>{c}</td>"
                                    for c, n in zip(r, numeric)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _link(target: Path, out: Path | None, text: str) -> str:
    if out is None:
        return f"<code>{html.escape(text)}</code>"
    rel = os.path.relpath(target.resolve(), out.resolve().parent)
    return f'<a href="{html.escape(rel)}"><code>{html.escape(text)}</code></a>'


def _gain_html(v: float) -> str:
    if not math.isfinite(v):
        return '<span class="note">no baseline at or below</span>'
    return f'<span class="{"pos" if v > 0 else "neg" if v < 0 else ""}">{v:+.2f}</span>'


def build_figures(run: R.Run, *, importance: Importance | None = None) -> dict[str, go.Figure]:
    """The dashboard's main figures of a run, by name (see `FIGURES`)."""
    budget = compute_budget_lines(run.config, run.trials)
    ref, _ = compute_reference()
    name = html.escape(run.name)
    return {
        "accuracy_vs_madds": plot_accuracy_vs_madds(compute_points(run.trials), run.pareto, budget,
                                                    title=f"{name}: proxy val top-1 against MAdds"),
        "reference": plot_reference(ref, budget=budget),
        "importance": plot_importance(importance or compute_importance(run)),
        "parallel": plot_parallel(compute_parallel(run.trials)),
        "curves": plot_curves(compute_curves(run.trials)),
    }


def render_dashboard(run: R.Run, *, out: Path | None = None, refresh_s: int | None = None,
                     importance_max_stale: int = 0) -> str:
    """The whole dashboard of one run as one self-contained HTML string (`out` sets relative links)."""
    cfg, e = run.config, html.escape
    s = compute_summary(run)
    budget = compute_budget_lines(cfg, run.trials)
    imp = compute_importance(run, max_stale=importance_max_stale)
    figs = build_figures(run, importance=imp)
    _, ref_notes = compute_reference()
    dataset = str(cfg.get("data", "")) or _first(run.trials, "dataset")
    proxy = str(cfg.get("proxy_hash", "")) or _first(run.trials, "proxy_hash")
    c = s["counts"]
    n_done = c["completed"] + c["early_stopped"]
    budget_txt = f"{budget.budget_m:.0f} M MAdds" if budget.has_budget else "no budget"
    if budget.has_band:
        budget_txt += f" (band {budget.min_m:.0f}-{budget.budget_m:.0f} M)"
    meta = [f"budget <b>{e(budget_txt)}</b>", f"dataset <b>{e(dataset or '?')}</b>",
            f"objective <b>{e(str(cfg.get('objective', '?')))}</b>", f"proxy <code>{e(proxy or '?')}</code>",
            f"seed {e(str(cfg.get('seed', '?')))}", f"created {e(str(cfg.get('created_at', '?')))}"]
    best = s["best"].get("searched")
    bbest = s["best"].get("baseline")
    summ = [f"{s['n_searched']} searched trials ({n_done} trained, {c['early_stopped']} early-stopped, "
            f"{c['failed'] + c['nan']} failed, {c['over_budget']} over budget, {c['running']} running)"
            f" and {s['n_baseline']} published baselines under the same proxy. "]
    if best:
        summ.append(f"Best found: <b>{e(best['trial'])}</b> at <b>{best['val_top1']:.2f}%</b> for "
                    f"{best['madds_m']:.0f} M MAdds")
        if bbest:
            summ.append(f"; best baseline {e(bbest['trial'])} {bbest['val_top1']:.2f}% at {bbest['madds_m']:.0f} M")
        summ.append(".")
    if math.isfinite(s["best_gain"]):
        summ.append(f" Largest gain of a discovered Pareto variant over the best published one at equal or lower "
                    f"MAdds: <b>{s['best_gain']:+.2f} pts</b>.")
    cards = "".join([
        _card(str(s["n_searched"]), "trials"), _card(str(n_done), "trained"),
        _card(f"{best['val_top1']:.2f}%" if best else "–", "best val top-1"),
        _card(str(s["front_searched"]), "Pareto variants found"),
        _card(f"{s['best_gain']:+.2f}" if math.isfinite(s["best_gain"]) else "–", "best gain (pts)"),
        _card(f"{c['failed'] + c['nan'] + c['over_budget']}", "failed / over budget"),
    ])
    header = (f"<header><h1>hybrid-nas run <code>{e(run.name)}</code></h1><div class='meta'>{' · '.join(meta)}"
              f"</div><p class='summary'>{''.join(summ)}</p></header>")
    # Pareto table
    pt = compute_pareto_table(run)
    rows = []
    for r in pt.itertuples():
        cfg_cell = _link(run.path / r.config_path, out, r.config_path) if r.config_path else "–"
        rows.append([f"<b>{e(str(r.name))}</b>" + (' <span class="badge">published</span>'
                                                  if r.kind == "baseline" else ""),
                     e(str(r.family)), _fmt(r.madds_m, 1), _fmt(r.params_m, 2), _fmt(r.val_top1, 2),
                     _gain_html(_num(getattr(r, R.PARETO_EXTRA))), e(r.vs_baseline or "–"), cfg_cell,
                     f"<code>{e(r.rebuild_cmd)}</code>" if r.rebuild_cmd else "–"])
    pareto_html = (_table(["variant", "family", "MAdds (M)", "params (M)", "val top-1 (%)", "gain (pts)",
                           "vs published", "exported YAML", "rebuild"], rows,
                          [False, False, True, True, True, True, False, False, False])
                   if rows else '<p class="note">no completed trial yet: the front is empty.</p>')
    probs = compute_problem_trials(run.trials)
    prob_rows = [[e(r.trial), f'<span class="badge {e(r.status)}">{e(r.status.replace("_", "-"))}</span>',
                  _fmt(r.madds_m, 1), str(r.epochs_done),
                  f'<span title="{e(r.error)}">{e(r.error[:300]) or "–"}</span>'] for r in probs.itertuples()]
    prob_html = (_table(["trial", "status", "MAdds (M)", "epochs", "error"], prob_rows,
                        [False, False, True, True, False]) if prob_rows else '<p class="note">none.</p>')
    notes = "".join(f"<li>{e(n)}</li>" for n in ref_notes)
    ref_note = f'<ul class="note">{notes}</ul>' if notes else ""
    imp_note = f'<p class="note">{e(imp.note)}</p>' if imp.note else (
        f'<p class="note">fANOVA over {imp.n_trials} trained searched trials (of {n_done}); parameter '
        f"distributions from {e(imp.source)}.</p>")
    body = (
        header + "<main>" + f'<div class="cards">{cards}</div>'
        + _fig_html(figs["accuracy_vs_madds"], "accuracy_vs_madds")
        + '<p class="note">Circles: completed; open circles: early-stopped; diamonds: published variants trained '
          "under the same proxy; ringed: Pareto-optimal. Buttons switch the colour between family, fusion and "
          "attention. Hover a point for its knobs and the command that rebuilds it.</p>"
        + '<div class="panel"><h2>Discovered Pareto-optimal variants</h2>' + pareto_html
        + '<p class="note">gain = val top-1 minus the best published variant at equal or lower MAdds, both '
          "trained under this run's proxy.</p></div>"
        + '<div class="grid2">' + _fig_html(figs["reference"], "reference") + _fig_html(figs["importance"], "importance")
        + "</div>" + ref_note + imp_note
        + _fig_html(figs["parallel"], "parallel") + _fig_html(figs["curves"], "curves")
        + f'<div class="panel"><h2>Failed and over-budget trials</h2>{prob_html}</div>'
        + "<details><summary>run.yaml</summary><pre>" + e(_yaml(cfg)) + "</pre></details>"
        + "</main>"
        + f"<footer>written {_dt.datetime.now().isoformat(timespec='seconds')} by <code>nas dashboard</code> from "
          f"{e(str(run.path))}</footer>")
    return _page(f"hybrid-nas: {run.name}", body, refresh_s=refresh_s)


def render_compare(runs: Sequence[R.Run], *, out: Path | None = None) -> str:
    """One page overlaying the Pareto fronts of several runs, with a per-run summary table."""
    e = html.escape
    data = compute_compare(runs)
    fig = plot_compare(data, title="Pareto fronts: " + " vs ".join(e(d["name"]) for d in data))
    rows = []
    for d in data:
        s = d["summary"]
        best = s["best"].get("searched")
        b = d["budget"]
        rows.append([f"<b>{e(d['name'])}</b>", _fmt(b.budget_m, 0) if b.has_budget else "–", e(d["dataset"] or "?"),
                     f"<code>{e(d['proxy_hash'] or '?')}</code>", str(s["n_searched"]),
                     f"{best['val_top1']:.2f}" if best else "–", f"{best['madds_m']:.1f}" if best else "–",
                     str(s["front_searched"]), _gain_html(s["best_gain"])])
    proxies = {d["proxy_hash"] for d in data}
    warn = ('<p class="note"><b>Note:</b> these runs used different proxy protocols (or datasets); their '
            "accuracies are not directly comparable.</p>" if len(proxies) > 1 else "")
    table = _table(["run", "budget (M)", "dataset", "proxy", "trials", "best top-1", "at MAdds (M)",
                    "Pareto variants", "best gain"], rows, [False, True, False, False, True, True, True, True, True])
    body = (f"<header><h1>hybrid-nas: {len(data)} runs compared</h1><div class='meta'>"
            + " · ".join(f"<code>{e(d['name'])}</code>" for d in data) + "</div></header><main>"
            + _fig_html(fig, "compare") + warn + f'<div class="panel"><h2>Runs</h2>{table}</div></main>'
            + f"<footer>written {_dt.datetime.now().isoformat(timespec='seconds')} by <code>nas dashboard "
              "--compare</code></footer>")
    return _page("hybrid-nas: " + " vs ".join(d["name"] for d in data), body)


def _yaml(d: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False, default_flow_style=False) if d else "(no run.yaml)"


# ---------------------------------------------------------------------------------------------------------
# Writers


def default_output(run_dir: str | Path) -> Path:
    """The live dashboard's place: inside the run folder (``results/<name>/dashboard.html``)."""
    return Path(run_dir) / "dashboard.html"


def write_dashboard(run_dir: str | Path, out: str | Path | None = None, *, refresh_s: int | None = None) -> Path:
    """Render the run's dashboard and write it atomically to `out` (default: run_dir/dashboard.html).

    Cheap enough to call after every trial: the reference panel is cached, and the knob importance is
    recomputed only once the trained trials grew by 10% (its note says over how many trials it ran);
    `refresh_s` adds a meta refresh so an open browser tab follows a live search.
    """
    run = R.load_run(run_dir)
    path = Path(out) if out is not None else default_output(run_dir)
    n_ok = int((R.eligible_mask(run.trials) & (run.trials["kind"] == "searched")).sum())
    text = render_dashboard(run, out=path, refresh_s=refresh_s, importance_max_stale=n_ok // 10)
    return R.atomic_write_text(path, text)


def write_compare(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Overlay the fronts of several runs in one page written atomically to `out`."""
    if len(run_dirs) < 1:
        raise RunError("--compare needs at least one run folder", "nas dashboard --compare results/A results/B")
    runs = [R.load_run(d) for d in run_dirs]
    path = Path(out)
    return R.atomic_write_text(path, render_compare(runs, out=path))


CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROME_HINT = ("install Chromium (e.g. `apt-get install chromium`) or set BROWSER_PATH=/path/to/chrome; "
               "the HTML dashboard needs no browser")


def find_chrome() -> str:
    """The Chrome/Chromium binary kaleido will drive: $BROWSER_PATH when set, else the first on PATH."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        raise NasError(f"BROWSER_PATH={env!r} is not an executable browser", CHROME_HINT)
    for n in CHROME_NAMES:
        p = shutil.which(n)
        if p:
            return p
    raise NasError("PNG export needs Chrome or Chromium, and none was found on PATH", CHROME_HINT)


def write_pngs(figs: dict[str, go.Figure], out_dir: str | Path, *, width: int = 1200, height: int | None = None,
               scale: float = 1.0) -> list[Path]:
    """Write each figure as ``<out_dir>/<name>.png`` with kaleido (one browser for all of them)."""
    import importlib.util

    import plotly.io as pio

    if importlib.util.find_spec("kaleido") is None:
        raise NasError("PNG export needs the kaleido package, which is not installed",
                       "pip install 'kaleido>=1' (or install this project with its [png] extra); "
                       "the HTML dashboard needs neither")
    chrome = find_chrome()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / f"{k}.png" for k in figs]
    old = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = chrome  # kaleido (choreographer) reads it
    try:
        pio.write_images(list(figs.values()), [str(p) for p in paths], width=width,
                         height=height, scale=scale)
    except Exception as e:  # kaleido/choreographer raise their own types for a browser that will not start
        raise NasError(f"PNG export with {chrome} failed: {type(e).__name__}: {str(e)[:300]}", CHROME_HINT) from None
    finally:
        if old is None:
            os.environ.pop("BROWSER_PATH", None)
        else:
            os.environ["BROWSER_PATH"] = old
    return paths


__all__ = [
    "COLOR_DIMS", "FIGURES", "BudgetLines", "Importance", "ParallelDim", "compute_budget_lines",
    "compute_front_steps", "compute_points", "compute_summary", "compute_pareto_table", "compute_problem_trials",
    "compute_curves", "compute_reference", "compute_importance", "compute_parallel", "compute_compare",
    "plot_accuracy_vs_madds", "plot_reference", "plot_importance", "plot_parallel", "plot_curves", "plot_compare",
    "build_figures", "render_dashboard", "render_compare", "write_dashboard", "write_compare", "write_pngs",
    "find_chrome", "default_output", "parse_millions", "hover_text", "color_for",
]
