"""Does it hold? Each verdict's paired difference against training length (one point per rung of the
ladder, with its 95% interval), and the headline pair's learning curves overlaid (val top-1 against
training steps, mean over seeds, one line per architecture and rung). Numbers come from
`nas.verdicts.ladder_rows` and the rows' own per-epoch val curves; nothing is computed here."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from nas import verdicts as V
from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import base_layout, empty_note
from nas.viz._utils import num


def compute_ladder(trials: pd.DataFrame, conf: V.Confirmation) -> pd.DataFrame:
    """Each verdict pair at every rung: trial, reference, stage, steps, diff, diff_lo, diff_hi, n."""
    return V.ladder_rows(trials, conf.verdicts, conf.stage)


def plot_ladder(rows: pd.DataFrame, *, title: str = "Does it hold? Paired difference against training length"
                ) -> go.Figure:
    _plotly.check()
    fig = go.Figure()
    if not len(rows):
        empty_note(fig, "no verdict has a published reference yet")
        return base_layout(fig, title=title, height=420)
    for (t, ref), g in rows.groupby(["trial", "reference"], sort=False):
        g = g.sort_values("steps")
        fig.add_trace(go.Scatter(
            x=g["steps"], y=g["diff"], mode="lines+markers", name=f"{t} - {ref}",
            error_y={"type": "data", "symmetric": False, "array": (g["diff_hi"] - g["diff"]).tolist(),
                     "arrayminus": (g["diff"] - g["diff_lo"]).tolist(), "thickness": 1.5, "width": 5},
            hovertext=[f"{t} - {ref} after {s} training steps: {d:+.2f} [{lo:+.2f}, {hi:+.2f}] points, n = {n}"
                       for s, d, lo, hi, n in zip(g["steps"], g["diff"], g["diff_lo"], g["diff_hi"], g["n"])],
            hovertemplate="%{hovertext}<extra></extra>"))
    fig.add_hline(y=0, line={"color": "#888", "dash": "dot"})
    fig.update_xaxes(title="training steps (optimizer steps of each rung)", type="log")
    fig.update_yaxes(title="paired difference (points, test top-1, 95% CI)")
    return base_layout(fig, title=title, height=420)


def compute_pair_curves(trials: pd.DataFrame, conf: V.Confirmation) -> list[dict[str, Any]]:
    """The headline pair's val top-1 per epoch at each rung, mean over seeds, against training steps."""
    h = conf.headline
    if h is None or "stage" not in trials.columns:
        return []
    out = []
    for stage, steps in conf.rungs:
        for t in (h["trial"], h["reference"]):
            g = trials[(trials["trial"] == t) & (trials["stage"] == stage) & (trials["status"] == "completed")]
            curves = [[num(v) for v in json.loads(str(c or "[]"))] for c in g["val_curve"]]
            curves = [c for c in curves if c]
            if not curves or not steps:
                continue
            k = min(len(c) for c in curves)
            ys = [sum(c[i] for c in curves) / len(curves) for i in range(k)]
            out.append({"trial": t, "stage": stage, "steps": steps, "n": len(curves),
                        "x": [steps * (i + 1) / k for i in range(k)], "y": ys})
    return out


def plot_pair_curves(curves: list[dict[str, Any]], *, title: str = "The headline pair's learning curves"
                     ) -> go.Figure:
    _plotly.check()
    fig = go.Figure()
    if not curves:
        empty_note(fig, "no headline pair yet")
        return base_layout(fig, title=title, height=420)
    for c in curves:
        fig.add_trace(go.Scatter(x=c["x"], y=c["y"], mode="lines+markers",
                                 name=f"{c['trial']}, {c['steps']}-step rung (n={c['n']})",
                                 line={"dash": "solid" if c["trial"] == curves[0]["trial"] else "dash"}))
    fig.update_xaxes(title="training steps")
    fig.update_yaxes(title="val top-1 (%), mean over seeds")
    return base_layout(fig, title=title, height=420)


__all__ = ["compute_ladder", "plot_ladder", "compute_pair_curves", "plot_pair_curves"]
