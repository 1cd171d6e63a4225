"""The HTML pages: one run's dashboard and the comparison of several runs, and where they are written.

A page is self-contained (plotly.js embedded once, no CDN, works offline). `write_dashboard` writes it
atomically and is cheap enough to call after every trial (the search does).
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from nas import results as R
from nas.errors import RunError
from nas.viz import _plotly
from nas.viz._plotly import get_plotlyjs, go
from nas.viz._utils import fmt, num, search_run
from nas.viz.accuracy import compute_points, plot_accuracy_vs_madds
from nas.viz.budget import BudgetLines, compute_budget_lines
from nas.viz.compare import compute_compare, plot_compare
from nas.viz.curves import compute_curves, plot_curves
from nas.viz.importance import Importance, compute_importance, plot_importance
from nas.viz.parallel import compute_parallel, plot_parallel
from nas.viz.reference import compute_reference, plot_reference
from nas.viz.tables import RunSummary, compute_pareto_table, compute_problem_trials, compute_summary

FIGURES: tuple[str, ...] = ("accuracy_vs_madds", "reference", "importance", "parallel", "curves")
"""The main figures, in page order; also the PNG file stems of ``--png``."""
DASHBOARDS_DIR = Path("dashboards")
"""Where `nas dashboard` writes its pages by default (relative to the working directory)."""
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}

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
    _plotly.check()
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{refresh}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>{_ERROR_HOOK}"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
            f"<body>{body}{_READY_HOOK}</body></html>\n")


def _footer(command: str, source: str = "") -> str:
    return (f"<footer>written {_dt.datetime.now().isoformat(timespec='seconds')} by <code>{command}</code>"
            f"{source}</footer>")


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


def _yaml(d: dict[str, Any]) -> str:
    return yaml.safe_dump(d, sort_keys=False, default_flow_style=False) if d else "(no run.yaml)"


# ---------------------------------------------------------------------------------------------------------
# One run


def build_figures(run: R.Run, *, importance: Importance | None = None) -> dict[str, go.Figure]:
    """The dashboard's main figures of a run's search, by name (see `FIGURES`)."""
    run = search_run(run)
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


def _header_html(run: R.Run, s: RunSummary, budget: BudgetLines) -> str:
    """The title, the run's settings in one line, and the summary sentence."""
    cfg, e = run.config, html.escape
    c = s.counts
    budget_txt = f"{budget.budget_m:.0f} M MAdds" if budget.has_budget else "no budget"
    if budget.has_band:
        budget_txt += f" (band {budget.min_m:.0f}-{budget.budget_m:.0f} M)"
    meta = [f"budget <b>{e(budget_txt)}</b>", f"dataset <b>{e(s.dataset or '?')}</b>",
            f"objective <b>{e(str(cfg.get('objective', '?')))}</b>", f"proxy <code>{e(s.proxy_hash or '?')}</code>",
            f"seed {e(str(cfg.get('seed', '?')))}", f"created {e(str(cfg.get('created_at', '?')))}"]
    best, bbest = s.best_searched, s.best_baseline
    summ = [f"{s.n_searched} searched trials ({s.n_trained} trained, {c['early_stopped']} early-stopped, "
            f"{s.n_failed} failed, {c['over_budget']} over budget, {c['running']} running)"
            f" and {s.n_baseline} published baselines under the same proxy. "]
    if best:
        summ.append(f"Best found: <b>{e(best.trial)}</b> at <b>{best.val_top1:.2f}%</b> for "
                    f"{best.madds_m:.0f} M MAdds")
        if bbest:
            summ.append(f"; best baseline {e(bbest.trial)} {bbest.val_top1:.2f}% at {bbest.madds_m:.0f} M")
        summ.append(".")
    if math.isfinite(s.best_gain):
        summ.append(f" Largest gain of a discovered Pareto variant over the best published one at equal or lower "
                    f"MAdds: <b>{s.best_gain:+.2f} pts</b>.")
    return (f"<header><h1>hybrid-nas run <code>{e(run.name)}</code></h1><div class='meta'>{' · '.join(meta)}"
            f"</div><p class='summary'>{''.join(summ)}</p></header>")


def _cards_html(s: RunSummary) -> str:
    best = s.best_searched
    return '<div class="cards">' + "".join([
        _card(str(s.n_searched), "trials"), _card(str(s.n_trained), "trained"),
        _card(f"{best.val_top1:.2f}%" if best else "–", "best val top-1"),
        _card(str(s.front_searched), "Pareto variants found"),
        _card(f"{s.best_gain:+.2f}" if math.isfinite(s.best_gain) else "–", "best gain (pts)"),
        _card(f"{s.n_failed + s.counts['over_budget']}", "failed / over budget"),
    ]) + "</div>"


def _pareto_html(run: R.Run, out: Path | None) -> str:
    """The table of the Pareto-optimal variants, with links to their exported YAMLs."""
    e = html.escape
    rows = []
    for r in compute_pareto_table(run).itertuples():
        cfg_cell = _link(run.path / r.config_path, out, r.config_path) if r.config_path else "–"
        rows.append([f"<b>{e(str(r.name))}</b>" + (' <span class="badge">published</span>'
                                                  if r.kind == "baseline" else ""),
                     e(str(r.family)), fmt(r.madds_m, 1), fmt(r.params_m, 2), fmt(r.val_top1, 2),
                     _gain_html(num(getattr(r, R.PARETO_EXTRA))), e(r.vs_baseline or "–"), cfg_cell,
                     f"<code>{e(r.rebuild_cmd)}</code>" if r.rebuild_cmd else "–"])
    if not rows:
        return '<p class="note">no completed trial yet: the front is empty.</p>'
    return _table(["variant", "family", "MAdds (M)", "params (M)", "val top-1 (%)", "gain (pts)",
                   "vs published", "exported YAML", "rebuild"], rows,
                  [False, False, True, True, True, True, False, False, False])


def _problems_html(run: R.Run) -> str:
    """The failed, NaN and over-budget trials with their errors."""
    e = html.escape
    rows = [[e(r.trial), f'<span class="badge {e(r.status)}">{e(r.status.replace("_", "-"))}</span>',
             fmt(r.madds_m, 1), str(r.epochs_done),
             f'<span title="{e(r.error)}">{e(r.error[:300]) or "–"}</span>']
            for r in compute_problem_trials(run.trials).itertuples()]
    if not rows:
        return '<p class="note">none.</p>'
    return _table(["trial", "status", "MAdds (M)", "epochs", "error"], rows, [False, False, True, True, False])


def _notes_html(ref_notes: Sequence[str], imp: Importance, n_trained: int) -> str:
    """The reference chart's notes (variants without a count) and where the knob importance came from."""
    e = html.escape
    notes = "".join(f"<li>{e(n)}</li>" for n in ref_notes)
    ref_note = f'<ul class="note">{notes}</ul>' if notes else ""
    imp_note = f'<p class="note">{e(imp.note)}</p>' if imp.note else (
        f'<p class="note">fANOVA over {imp.n_trials} trained searched trials (of {n_trained}); parameter '
        f"distributions from {e(imp.source)}.</p>")
    return ref_note + imp_note


def render_dashboard(run: R.Run, *, out: Path | None = None, refresh_s: int | None = None,
                     importance_max_stale: int = 0) -> str:
    """The whole dashboard of one run as one self-contained HTML string (`out` sets relative links)."""
    e = html.escape
    run = search_run(run)
    s = compute_summary(run)
    imp = compute_importance(run, max_stale=importance_max_stale)
    figs = build_figures(run, importance=imp)
    _, ref_notes = compute_reference()
    body = (
        _header_html(run, s, compute_budget_lines(run.config, run.trials)) + "<main>" + _cards_html(s)
        + _fig_html(figs["accuracy_vs_madds"], "accuracy_vs_madds")
        + '<p class="note">Circles: completed; open circles: early-stopped; diamonds: published variants trained '
          "under the same proxy; ringed: Pareto-optimal. Buttons switch the colour between family, fusion and "
          "attention. Hover a point for its knobs and the command that rebuilds it.</p>"
        + '<div class="panel"><h2>Discovered Pareto-optimal variants</h2>' + _pareto_html(run, out)
        + '<p class="note">gain = val top-1 minus the best published variant at equal or lower MAdds, both '
          "trained under this run's proxy.</p></div>"
        + '<div class="grid2">' + _fig_html(figs["reference"], "reference") + _fig_html(figs["importance"], "importance")
        + "</div>" + _notes_html(ref_notes, imp, s.n_trained)
        + _fig_html(figs["parallel"], "parallel") + _fig_html(figs["curves"], "curves")
        + f'<div class="panel"><h2>Failed and over-budget trials</h2>{_problems_html(run)}</div>'
        + "<details><summary>run.yaml</summary><pre>" + e(_yaml(run.config)) + "</pre></details>"
        + "</main>" + _footer("nas dashboard", f" from {e(str(run.path))}"))
    return _page(f"hybrid-nas: {run.name}", body, refresh_s=refresh_s)


# ---------------------------------------------------------------------------------------------------------
# Several runs


def render_compare(runs: Sequence[R.Run], *, out: Path | None = None) -> str:
    """One page overlaying the Pareto fronts of several runs, with a per-run summary table."""
    e = html.escape
    data = compute_compare(runs)
    fig = plot_compare(data, title="Pareto fronts: " + " vs ".join(e(d.name) for d in data))
    rows = []
    for d in data:
        s, b = d.summary, d.budget
        best = s.best_searched
        rows.append([f"<b>{e(d.name)}</b>", fmt(b.budget_m, 0) if b.has_budget else "–", e(s.dataset or "?"),
                     f"<code>{e(s.proxy_hash or '?')}</code>", str(s.n_searched),
                     f"{best.val_top1:.2f}" if best else "–", f"{best.madds_m:.1f}" if best else "–",
                     str(s.front_searched), _gain_html(s.best_gain)])
    proxies = {d.summary.proxy_hash for d in data}
    warn = ('<p class="note"><b>Note:</b> these runs used different proxy protocols (or datasets); their '
            "accuracies are not directly comparable.</p>" if len(proxies) > 1 else "")
    table = _table(["run", "budget (M)", "dataset", "proxy", "trials", "best top-1", "at MAdds (M)",
                    "Pareto variants", "best gain"], rows, [False, True, False, False, True, True, True, True, True])
    body = (f"<header><h1>hybrid-nas: {len(data)} runs compared</h1><div class='meta'>"
            + " · ".join(f"<code>{e(d.name)}</code>" for d in data) + "</div></header><main>"
            + _fig_html(fig, "compare") + warn + f'<div class="panel"><h2>Runs</h2>{table}</div></main>'
            + _footer("nas dashboard --compare"))
    return _page("hybrid-nas: " + " vs ".join(d.name for d in data), body)


# ---------------------------------------------------------------------------------------------------------
# Where pages go, and the writers


def default_output(run_dir: str | Path) -> Path:
    """The live dashboard's place: inside the run folder (``results/<name>/dashboard.html``)."""
    return Path(run_dir) / "dashboard.html"


def export_output(run_name: str) -> Path:
    """Where `nas dashboard` writes one run's page unless told: ``dashboards/<name>.html``."""
    return DASHBOARDS_DIR / f"{run_name}.html"


def compare_output(run_names: Sequence[str]) -> Path:
    """Where `nas dashboard --compare` writes unless told: ``dashboards/compare-<A>-<B>.html``."""
    return DASHBOARDS_DIR / ("compare-" + "-".join(run_names) + ".html")


def _as_run(run: str | Path | R.Run) -> R.Run:
    return run if isinstance(run, R.Run) else R.load_run(run)


def write_dashboard(run: str | Path | R.Run, out: str | Path | None = None, *,
                    refresh_s: int | None = None) -> Path:
    """Render a run's dashboard (a run folder, or a run already loaded) and write it atomically to `out`
    (default: `default_output`, inside the run folder).

    Cheap enough to call after every trial: the reference panel is cached, and the knob importance is
    recomputed only once the trained trials grew by 10% (its note says over how many trials it ran);
    `refresh_s` adds a meta refresh so an open browser tab follows a live search.
    """
    run = search_run(_as_run(run))
    path = Path(out) if out is not None else default_output(run.path)
    n_ok = int((R.eligible_mask(run.trials) & (run.trials["kind"] == "searched")).sum())
    text = render_dashboard(run, out=path, refresh_s=refresh_s, importance_max_stale=n_ok // 10)
    return R.atomic_write_text(path, text)


def write_compare(runs: Sequence[str | Path | R.Run], out: str | Path | None = None) -> Path:
    """Overlay the fronts of several runs (folders, or runs already loaded) in one page written
    atomically to `out` (default: `compare_output` of their names)."""
    if len(runs) < 1:
        raise RunError("--compare needs at least one run folder", "nas dashboard --compare results/A results/B")
    loaded = [_as_run(r) for r in runs]
    path = Path(out) if out is not None else compare_output([r.name for r in loaded])
    return R.atomic_write_text(path, render_compare(loaded, out=path))
