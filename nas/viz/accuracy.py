"""The main chart: every trial's proxy val top-1 against its MAdds, the Pareto front as a step line,
the published variants trained under the same proxy, and the budget (with its band) as lines."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nas import results as R
from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import STATUS_STYLE, add_budget, base_layout, color_for
from nas.viz._utils import fmt, knob_name, num, search_rows

if TYPE_CHECKING:
    import pandas as pd

    from nas.viz.budget import BudgetLines

COLOR_DIMS: tuple[str, ...] = ("family", "fusion", "attention")
"""Columns the accuracy-vs-MAdds scatter can be coloured by (switchable in the page)."""


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
        f = num(v)
        s = (f"{int(f)}" if f.is_integer() else f"{f:g}") if isinstance(v, float) and math.isfinite(f) else str(v)
        parts.append(f"{knob_name(k)}={s}")
    lines = [", ".join(parts[i:i + 4]) for i in range(0, len(parts), 4)]
    return "<br>".join(html.escape(s) for s in lines)


def hover_text(row: pd.Series, knobs: Sequence[str]) -> str:
    """The hover card of one trial: status, accuracy, cost, knobs, arch id, and how to rebuild it."""
    e = html.escape
    title = e(str(row["name"] or row["trial"]))
    lines = [f"<b>{title}</b> ({e(str(row['family']))}, {e(str(row['status']).replace('_', '-'))})",
             f"val top-1 {fmt(row['val_top1'], 2, '%')} (best {fmt(row['best_val_top1'], 2, '%')}), "
             f"{int(row['epochs_done'])} epochs",
             f"MAdds {fmt(row['madds_m'], 1, ' M')}, params {fmt(row['params_m'], 2, ' M')}",
             f"fusion {e(str(row['fusion']) or '-')}, attention {e(str(row['attention']) or '-')}"]
    if str(row.get("reused_from") or ""):
        lines.append(f"not trained by this run: reused from {e(str(row['reused_from']))}")
    if math.isfinite(num(row.get("published_top1"))):
        lines.append(f"published ImageNet top-1 {fmt(row['published_top1'], 1, '%')} at "
                     f"{fmt(row['published_madds_m'], 0, ' M')} MAdds")
    kt = _knob_text(row, knobs)
    if kt:
        lines.append(kt)
    if row["arch_id"]:
        lines.append(f"arch {e(str(row['arch_id']))}")
    if row["rebuild_cmd"]:
        lines.append(f"<i>{e(str(row['rebuild_cmd']))}</i>")
    return "<br>".join(lines)


def compute_points(trials: pd.DataFrame) -> pd.DataFrame:
    """The plottable search trials: completed/early-stopped with finite MAdds and val top-1, plus hover
    text, marker symbol and whether each is on the Pareto front (computed over searched and baseline rows).
    Rows of a later stage (see `search_rows`) are left out; extra columns are kept."""
    df = R.normalize_trials(search_rows(trials))
    knobs = R.knob_columns(df)
    on_front = R.pareto_mask(df)
    pts = df[R.eligible_mask(df)].copy()
    pts["on_front"] = on_front[pts.index].astype(bool)
    pts["hover"] = [hover_text(r, knobs) for _, r in pts.iterrows()]
    pts["symbol"] = [STATUS_STYLE[s]["symbol"] for s in pts["status"]]
    for dim in COLOR_DIMS:
        pts[dim] = pts[dim].replace("", "n/a")
    return pts.reset_index(drop=True)


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
    _plotly.check()
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
            text=base["name"], textposition=_label_positions(base["madds_m"].tolist()),
            textfont={"size": 10, "color": "#333"},
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
    add_budget(fig, budget)
    fig.update_xaxes(title="MAdds (millions, analytic, target resolution)")
    fig.update_yaxes(title="proxy val top-1 (%)")
    base_layout(fig, title=title, height=560)
    fig.update_layout(margin={"t": 90}, legend={"groupclick": "toggleitem"})
    return fig
