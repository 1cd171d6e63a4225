"""Learning curves: each trial's proxy val top-1 per epoch, searched trials grouped by status."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nas import results as R
from nas.errors import RunError
from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import STATUS_STYLE, base_layout, color_for, empty_note
from nas.viz._utils import num, search_rows

if TYPE_CHECKING:
    import pandas as pd

_CURVE_COLORS = {"completed": "#636efa", "early_stopped": "#ff7f0e", "failed": "#d62728", "nan": "#d62728",
                 "running": "#7f7f7f", "over_budget": "#9a5b00"}


def compute_curves(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """Per search trial with a val curve: its epochs, per-epoch val top-1, status, kind and error.

    A malformed `val_curve` string raises RunError naming the trial.
    """
    out = []
    for _, r in search_rows(trials).iterrows():
        text = str(r["val_curve"] or "[]")
        try:
            vals = json.loads(text)
        except json.JSONDecodeError:
            raise RunError(f"trial {r['trial']}: val_curve {text[:40]!r} is not a JSON list",
                           "write val_curve as a JSON list of per-epoch val top-1 (e.g. [10.5, 21.0])") from None
        if not isinstance(vals, list):
            raise RunError(f"trial {r['trial']}: val_curve is {type(vals).__name__}, not a list",
                           "write val_curve as a JSON list of per-epoch val top-1")
        ys = [num(v) for v in vals]
        if not ys:
            continue
        out.append({"trial": str(r["trial"]), "name": str(r["name"] or r["trial"]), "kind": str(r["kind"]),
                    "status": str(r["status"]), "family": str(r["family"]), "error": str(r["error"]),
                    "epochs": list(range(1, len(ys) + 1)), "val_top1": ys})
    return out


def plot_curves(curves: Sequence[dict[str, Any]], *, title: str = "Learning curves (proxy val top-1 per epoch)"
                ) -> go.Figure:
    """Searched trials as one line trace per status (solid completed, dashed early-stopped, dotted red
    failed; one trace per status keeps the page light with hundreds of trials) plus a marker on each
    last epoch (x where a trial was stopped or failed); published baselines thicker in their family colour."""
    _plotly.check()
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
        empty_note(fig, "no learning curve yet", hide_axes=False)
    elif all(sum(v == v for v in c["val_top1"]) <= 1 for c in curves):
        empty_note(fig, "each job was validated after its last epoch only: `nas search --curves` draws the curves",
                   hide_axes=False)
    fig.update_xaxes(title="epoch", dtick=1 if curves and max(len(c["epochs"]) for c in curves) <= 20 else None)
    fig.update_yaxes(title="val top-1 (%)")
    return base_layout(fig, title=title, height=460)
