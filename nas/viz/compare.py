"""Several runs in one chart: each run's trials, Pareto front and budget, one colour per run."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from nas import results as R
from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import PALETTE, base_layout
from nas.viz._utils import search_run
from nas.viz.accuracy import compute_front_steps, compute_points
from nas.viz.budget import BudgetLines, compute_budget_lines
from nas.viz.tables import RunSummary, compute_summary


@dataclass(frozen=True, eq=False)
class CompareRun:
    """One run of a comparison: its budget, eligible points, front and the front's step line, summary."""

    name: str
    budget: BudgetLines
    points: pd.DataFrame
    front: pd.DataFrame
    steps: tuple[list[float], list[float]]
    summary: RunSummary


def compute_compare(runs: Sequence[R.Run]) -> list[CompareRun]:
    """Per run (its search rows): its name, budget lines, eligible points, its front and the front's steps."""
    out = []
    for run in map(search_run, runs):
        pts = compute_points(run.trials)
        budget = compute_budget_lines(run.config, run.trials)
        x_end = max([v for v in (budget.budget_m if budget.has_budget else None,
                                 float(pts["madds_m"].max()) if len(pts) else None) if v is not None],
                    default=None)
        out.append(CompareRun(name=run.name, budget=budget, points=pts, front=run.pareto,
                              steps=compute_front_steps(run.pareto, x_end=x_end), summary=compute_summary(run)))
    return out


def plot_compare(data: Sequence[CompareRun], *, title: str = "Pareto fronts of several runs") -> go.Figure:
    """Each run's trials (faint), its front (step line, bold) and its budget (dotted), one colour per run."""
    _plotly.check()
    fig = go.Figure()
    for i, d in enumerate(data):
        c = PALETTE[i % len(PALETTE)]
        pts = d.points
        fig.add_trace(go.Scatter(x=pts["madds_m"], y=pts["val_top1"], mode="markers", name=f"{d.name}: trials",
                                 legendgroup=d.name, marker={"color": c, "size": 6, "opacity": 0.35,
                                                             "symbol": pts["symbol"].tolist()},
                                 text=pts["hover"], hovertemplate="%{text}<extra>" + html.escape(d.name) + "</extra>"))
        fx, fy = d.steps
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line={"shape": "hv", "color": c, "width": 2.5},
                                 name=f"{d.name}: front", legendgroup=d.name, hoverinfo="skip"))
        f = d.front
        if len(f):
            fig.add_trace(go.Scatter(
                x=f["madds_m"], y=f["val_top1"], mode="markers", legendgroup=d.name, showlegend=False,
                marker={"color": c, "size": 10, "symbol": ["diamond" if k == "baseline" else "circle"
                                                           for k in f["kind"]], "line": {"color": "#111", "width": 1}},
                text=[f"{html.escape(d.name)}: {html.escape(str(n))}" for n in f["name"]],
                hovertemplate="%{text}<br>%{x:.1f} M, %{y:.2f}%<extra></extra>"))
        b = d.budget
        if b.has_budget:
            fig.add_vline(x=b.budget_m, line={"color": c, "dash": "dot", "width": 1.5},
                          annotation={"text": f"{html.escape(d.name)} budget", "font": {"color": c, "size": 10}},
                          annotation_position="top right" if i % 2 == 0 else "bottom right")
    fig.update_xaxes(title="MAdds (millions)")
    fig.update_yaxes(title="proxy val top-1 (%)")
    return base_layout(fig, title=title, height=600)
