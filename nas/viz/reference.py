"""The published variants: ImageNet top-1 against MAdds per family, beside our analytic count of each."""

from __future__ import annotations

import html
import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pandas as pd

from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import add_budget, base_layout, color_for
from nas.viz._utils import fmt

if TYPE_CHECKING:
    from nas.viz.budget import BudgetLines


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
    rows, notes = _reference_cached()
    return pd.DataFrame(list(rows)), list(notes)


def plot_reference(ref: pd.DataFrame, *, budget: BudgetLines | None = None,
                   title: str = "Published variants: ImageNet top-1 against MAdds") -> go.Figure:
    """One line per family through the published points; our analytic count of the same networks as
    open markers on a dotted line of the same colour (log MAdds axis)."""
    _plotly.check()
    fig = go.Figure()
    for fam in sorted(ref["family"].unique(), key=str):
        d = ref[ref["family"] == fam].sort_values("published_madds_m")
        c = color_for(fam)
        hover = [f"<b>{html.escape(r.display_name)}</b><br>ImageNet top-1 {r.top1:.2f}%<br>"
                 f"published {r.published_madds_m:.0f} M MAdds, ours {fmt(r.our_madds_m, 1, ' M')}"
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
        add_budget(fig, budget, log_x=True)
    fig.update_xaxes(type="log", title="MAdds (millions, log scale)")
    fig.update_yaxes(title="ImageNet-1k top-1 (%)")
    base_layout(fig, title=title, height=480)
    return fig
