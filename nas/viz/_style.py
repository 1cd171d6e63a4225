"""Colours, marker styles and the shared layout of every chart, and the budget drawn as lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nas.viz._plotly import go
    from nas.viz.budget import BudgetLines

FAMILY_COLORS: dict[str, str] = {
    "Mobile-Former": "#1f77b4", "MobileViT-v1": "#ff7f0e", "MobileViT-v2": "#2ca02c",
    "MobileViT-v3": "#d62728", "hybrid-MF": "#9467bd", "hybrid-ViT": "#17becf",
}
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880",
           "#ff97ff", "#fecb52", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
STATUS_STYLE: dict[str, dict[str, str]] = {
    "completed": {"dash": "solid", "symbol": "circle"},
    "early_stopped": {"dash": "dash", "symbol": "circle-open"},
    "failed": {"dash": "dot", "symbol": "x"},
    "nan": {"dash": "dot", "symbol": "x"},
    "over_budget": {"dash": "dot", "symbol": "x"},
    "running": {"dash": "dashdot", "symbol": "circle-dot"},
}
EMPTY_NOTE_FONT = {"size": 14, "color": "#666"}
"""The font of the grey note an empty chart shows in its middle."""


def color_for(value: str, domain: Sequence[str] = ()) -> str:
    """A stable colour: the family colours first, else a palette slot by position in `domain` (or hash)."""
    if value in FAMILY_COLORS:
        return FAMILY_COLORS[value]
    others = [v for v in domain if v not in FAMILY_COLORS]
    if value in others:
        return PALETTE[others.index(value) % len(PALETTE)]
    return PALETTE[sum(map(ord, value)) % len(PALETTE)]


def base_layout(fig: go.Figure, *, title: str, height: int = 480) -> go.Figure:
    """The title, template, size, margins and fonts every chart shares."""
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}},
                      template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      hoverlabel={"align": "left"}, font={"size": 12})
    return fig


def empty_note(fig: go.Figure, text: str, *, hide_axes: bool = True) -> None:
    """A grey note in the middle of a chart that has nothing to draw (the text is shown as given)."""
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=EMPTY_NOTE_FONT)
    if hide_axes:
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)


def add_budget(fig: go.Figure, lines: BudgetLines, *, log_x: bool = False) -> None:
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
