"""Parallel coordinates: each knob of the trained searched trials, then MAdds and val top-1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas import results as R
from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import base_layout, empty_note
from nas.viz._utils import knob_name, search_rows

if TYPE_CHECKING:
    import pandas as pd


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
    trials = search_rows(trials)
    df = trials[R.eligible_mask(trials) & (trials["kind"] == "searched")]
    dims: list[ParallelDim] = []
    if not len(df):
        return dims
    for k in R.knob_columns(df):
        col = df[k]
        if col.isna().all():
            continue
        label = knob_name(k)
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


def plot_parallel(dims: Sequence[ParallelDim], *, title: str = "Knobs against val top-1") -> go.Figure:
    """Parallel coordinates of the knobs, MAdds and val top-1, lines coloured by val top-1."""
    _plotly.check()
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
        base_layout(fig, title=title, height=460)
        fig.update_layout(margin={"l": 70, "r": 70, "t": 100, "b": 30})
    else:
        empty_note(fig, "no completed searched trial yet")
        base_layout(fig, title=title, height=460)
    return fig
