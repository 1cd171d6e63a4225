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
from nas import verdicts as V
from nas.errors import RunError
from nas.stats import diff_text
from nas.viz import _plotly
from nas.viz._plotly import get_plotlyjs, go
from nas.viz._utils import fmt, num, search_run
from nas.viz.accuracy import compute_points, plot_accuracy_vs_madds
from nas.viz.budget import BudgetLines, compute_budget_lines
from nas.viz.compare import compute_compare, plot_compare
from nas.viz.confirm import (
    ConfirmedHeadline,
    compute_confirm_problems,
    compute_confirmed_front,
    compute_dominance_rows,
    compute_headline,
    compute_trust_meter,
    compute_verdict_rows,
    has_confirm_rows,
    interval_text,
    plot_confirmed_front,
    plot_search_vs_confirmed,
    search_label_of,
)
from nas.viz.curves import compute_curves, plot_curves
from nas.viz.importance import Importance, compute_importance, plot_importance
from nas.viz.parallel import compute_parallel, plot_parallel
from nas.viz.reference import compute_reference, plot_reference
from nas.viz.tables import RunSummary, compute_pareto_table, compute_problem_trials, compute_summary

FIGURES: tuple[str, ...] = ("accuracy_vs_madds", "reference", "importance", "parallel", "curves")
"""The main figures of the search, in page order; also the PNG file stems of ``--png``."""
CONFIRM_FIGURES: tuple[str, ...] = ("confirmed_front", "search_vs_confirmed")
"""The figures of the confirmation stage, drawn (first) only when a run has confirm rows."""
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
.card.search { background:#fafbfc; } .card.search .v { font-size:18px; color:var(--muted); font-weight:500; }
.card.confirmed { border-color:#9db7dc; } .card.confirmed .k { text-transform:none; letter-spacing:0; font-size:13px; } .card .v small { font-size:14px; font-weight:500; color:var(--muted); }
.card .k { max-width:260px; }
.stage { display:inline-block; padding:1px 7px; border-radius:9px; font-size:11px; font-weight:600;
         letter-spacing:.03em; vertical-align:1px; }
.stage.confirmed { background:#e3ecf8; color:#1f4e8c; } .stage.unconfirmed { background:#fff4e5; color:#9a5b00; }
.unconfirmed-note { background:#fff8ec; border:1px solid #f3d9a8; border-radius:8px; padding:8px 12px;
                    margin:10px 0 0; font-size:13px; }
h2.section { font-size:18px; margin:22px 4px 10px; border-bottom:1px solid var(--line); padding-bottom:4px; }
.verdict { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; font-weight:600;
           background:#eef1f5; white-space:nowrap; }
.verdict.better { background:#e6f4ea; color:#1a7f37; } .verdict.worse { background:#fde8e8; color:#b42318; }
.trust { display:grid; grid-template-columns: minmax(0,1fr) minmax(0,1fr); gap:16px; margin:4px 6px 8px; }
@media (max-width: 1100px) { .trust { grid-template-columns: 1fr; } }
.trust .num { font-size:16px; font-weight:600; margin:2px 0; }
.trust .reading { margin:4px 0 0; }
.gauge { position:relative; height:14px; background:#eef1f5; border-radius:7px; margin:8px 0 2px; }
.gauge .ci { position:absolute; top:0; bottom:0; background:#9db7dc; border-radius:7px; }
.gauge .tau { position:absolute; top:-4px; bottom:-4px; width:3px; margin-left:-1px; background:#1f4e8c; }
.gauge .zero { position:absolute; left:50%; top:-2px; bottom:-2px; width:1px; background:#5b6573; }
.gauge-scale { display:flex; justify-content:space-between; color:var(--muted); font-size:11px; }
ul.claims { margin:4px 6px 8px; padding-left:22px; }
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


def _card(value: str, key: str, cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="v">{value}</div>'
            f'<div class="k">{html.escape(key)}</div></div>')


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


def build_figures(run: R.Run, *, importance: Importance | None = None,
                  confirmation: V.Confirmation | None = None) -> dict[str, go.Figure]:
    """The dashboard's main figures by name: the confirmed front first when the run has confirm rows
    (see `CONFIRM_FIGURES`), then the figures of its search (see `FIGURES`)."""
    full, run = run, search_run(run)
    budget = compute_budget_lines(run.config, run.trials)
    ref, _ = compute_reference()
    name = html.escape(run.name)
    figs: dict[str, go.Figure] = {}
    if has_confirm_rows(full.trials):
        conf = confirmation if confirmation is not None else V.compute_confirmation(full.trials)
        x_end = budget.budget_m if budget.has_budget else None
        front = compute_confirmed_front(full.trials, conf, x_end=x_end, search_label=search_label_of(run.config))
        figs["confirmed_front"] = plot_confirmed_front(front, budget, title=f"{name}: confirmed top-1 against MAdds")
        figs["search_vs_confirmed"] = plot_search_vs_confirmed(
            front, title=f"{name}: {front.search_label} (search stage) against confirmed top-1")
        if len(conf.rungs) > 1:  # the ladder: does each verdict hold as training gets longer?
            from nas.viz.ladder import compute_ladder, compute_pair_curves, plot_ladder, plot_pair_curves

            figs["ladder"] = plot_ladder(compute_ladder(full.trials, conf),
                                         title=f"{name}: does it hold? Paired difference against training length")
            figs["pair_curves"] = plot_pair_curves(compute_pair_curves(full.trials, conf),
                                                   title=f"{name}: the headline pair's learning curves")
    figs.update({
        "accuracy_vs_madds": plot_accuracy_vs_madds(compute_points(run.trials), run.pareto, budget,
                                                    title=f"{name}: search stage (unconfirmed), proxy val "
                                                          "top-1 against MAdds"),
        "reference": plot_reference(ref, budget=budget),
        "importance": plot_importance(importance or compute_importance(run)),
        "parallel": plot_parallel(compute_parallel(run.trials)),
        "curves": plot_curves(compute_curves(run.trials)),
    })
    return figs


_UNCONFIRMED = ('<span class="stage unconfirmed">search stage, unconfirmed</span>')
_CONFIRMED = '<span class="stage confirmed">confirmed</span>'


def _verdict_html(verdict: str) -> str:
    cls = verdict if verdict in ("better", "worse") else ""
    return f'<span class="verdict {cls}">{html.escape(verdict)}</span>'


def _verdict_phrase(h: ConfirmedHeadline) -> str:
    """The verdict of the headline in words a newcomer reads ("better than the best published variant ...")."""
    e = html.escape
    if not h.reference:
        return e(h.verdict)
    rel = {"better": "better than", "worse": "worse than"}.get(h.verdict, "not distinguishable from")
    cls = h.verdict if h.verdict in ("better", "worse") else ""
    return (f'<span class="verdict {cls}">{e(rel)}</span> the best published variant at &le; its '
            f"MAdds, <b>{e(h.reference)}</b>: paired difference "
            f"{e(diff_text(h.diff, h.diff_lo, h.diff_hi, h.n_pairs, unit=' points'))}")


def _confirmed_summary_html(head: ConfirmedHeadline | None, conf: V.Confirmation) -> str:
    """The page's first sentence when a run has confirm rows: the headline candidate (the best confirmed one
    with a published reference, `nas.verdicts.headline`), its interval
    and its verdict."""
    e = html.escape
    if head is None:
        what = ("no architecture has finished its confirmation yet" if conf.empty else
                f"{len(conf.table)} published variants confirmed, but no searched candidate yet")
        return f"<p class='summary'>{_CONFIRMED} {e(what)}.</p>"
    return (f"<p class='summary'>{_CONFIRMED} Headline candidate <b>{e(head.trial)}</b> "
            f"({e(head.family)}, {head.madds_m:.0f} M MAdds): <b>{interval_text(head.mean, head.lo, head.hi)} %"
            f"</b> top-1 on the held-out {e(head.eval_set)} split "
            + (f"after {conf.steps} training steps " if conf.steps else "")
            + f"(mean and 95% interval over {head.n_seeds} seeds), {_verdict_phrase(head)}."
            + _unchosen_html(conf) + f" Of {head.n_candidates} confirmed candidates, {head.n_better} "
            f"are better than their published reference and {head.n_worse} worse.</p>")


def _unchosen_html(conf: V.Confirmation) -> str:
    """The headline pair on its seeds that chose nothing (`nas.verdicts.unchosen_diff`), where it has 2 or more."""
    u = conf.headline_unchosen
    if u is None or u.n < 2:
        return ""
    return (f" On its {u.n} seeds that chose nothing (no selection bias): "
            f"{html.escape(diff_text(u.mean, u.lo, u.hi, u.n, unit=' points'))}, {_verdict_html(u.verdict)}.")


def _header_html(run: R.Run, s: RunSummary, budget: BudgetLines, *, confirmed: bool = False,
                 head: ConfirmedHeadline | None = None, conf: V.Confirmation | None = None) -> str:
    """The title, the run's settings in one line, and the summary: the confirmed headline first when the run
    has confirm rows; else a plain note that every number is an unconfirmed single short run."""
    cfg, e = run.config, html.escape
    c = s.counts
    budget_txt = f"{budget.budget_m:.0f} M MAdds" if budget.has_budget else "no budget"
    if budget.has_band:
        budget_txt += f" (band {budget.min_m:.0f}-{budget.budget_m:.0f} M)"
    meta = [f"budget <b>{e(budget_txt)}</b>", f"dataset <b>{e(s.dataset or '?')}</b>",
            f"objective <b>{e(str(cfg.get('objective', '?')))}</b>", f"proxy <code>{e(s.proxy_hash or '?')}</code>",
            f"seed {e(str(cfg.get('seed', '?')))}", f"created {e(str(cfg.get('created_at', '?')))}"]
    best, bbest = s.best_searched, s.best_baseline
    summ = [f"{_UNCONFIRMED} {s.n_searched} searched trials ({s.n_trained} trained, {c['early_stopped']} "
            f"early-stopped, {s.n_failed} failed, {c['over_budget']} over budget, {c['running']} running)"
            f" and {s.n_baseline} published baselines under the same proxy, one short run each on the val split. "]
    if best:
        summ.append(f"Best found: <b>{e(best.trial)}</b> at {best.val_top1:.2f}% for "
                    f"{best.madds_m:.0f} M MAdds")
        if bbest:
            summ.append(f"; best baseline {e(bbest.trial)} {bbest.val_top1:.2f}% at {bbest.madds_m:.0f} M")
        summ.append(".")
    if math.isfinite(s.best_gain):
        summ.append(f" Largest search-stage gain of a discovered Pareto variant over the best published one at "
                    f"equal or lower MAdds: {s.best_gain:+.2f} pts (unconfirmed).")
    lead = _confirmed_summary_html(head, conf) if confirmed and conf is not None else ""
    note = "" if confirmed else (
        "<p class='unconfirmed-note'><b>Unconfirmed.</b> Every accuracy on this page is a single short proxy run "
        "(one seed) on the validation split that the search selects on, so a gain of a point or two may be seed "
        f"noise. <code>nas confirm {e(str(run.path))}</code> retrains the top candidates and the published "
        "variants over paired seeds on the held-out test split, and this page then leads with those numbers.</p>")
    return (f"<header><h1>hybrid-nas run <code>{e(run.name)}</code></h1><div class='meta'>{' · '.join(meta)}"
            f"</div>{lead}<p class='summary'>{''.join(summ)}</p>{note}</header>")


def _cards_html(s: RunSummary, head: ConfirmedHeadline | None = None, *, confirmed: bool = False) -> str:
    """The summary cards: confirmed numbers first when the run has them, the search stage's after, labelled
    unconfirmed."""
    best = s.best_searched
    lead = []
    if head is not None:
        verdict = head.verdict if head.reference else "no reference"
        diff = html.escape(diff_text(head.diff, head.diff_lo, head.diff_hi, head.n_pairs)) if head.reference else ""
        lead = [
            _card(f"{head.mean:.2f}% <small>[{fmt(head.lo, 2)}, {fmt(head.hi, 2)}]</small>",
                  f"headline candidate {head.trial} ({head.eval_set}, n = {head.n_seeds})", "confirmed"),
            _card(f"{html.escape(verdict)} <small>{diff}</small>",
                  f"vs {head.reference or 'published'} at <= MAdds (paired, pts)", "confirmed"),
            _card(f"{head.n_better} / {head.n_candidates}", "candidates confirmed better", "confirmed"),
        ]
    tag = "search, unconfirmed" if confirmed else "unconfirmed"
    cls = "search" if confirmed else ""
    return '<div class="cards">' + "".join(lead + [
        _card(str(s.n_searched), "trials", cls), _card(str(s.n_trained), "trained", cls),
        _card(f"{best.val_top1:.2f}%" if best else "–", f"best val top-1 ({tag})", cls),
        _card(str(s.front_searched), "Pareto variants found", cls),
        _card(f"{s.best_gain:+.2f}" if math.isfinite(s.best_gain) else "–", f"best gain, pts ({tag})", cls),
        _card(f"{s.n_failed + s.counts['over_budget']}", "failed / over budget", cls),
    ]) + "</div>"


def _pareto_html(run: R.Run, out: Path | None, conf: V.Confirmation | None = None) -> str:
    """The table of the Pareto-optimal variants, with links to their exported YAMLs (and each one's
    confirmed top-1 and interval when the run has a confirmation)."""
    e = html.escape
    confirmed = conf.table.set_index("trial") if conf is not None else None
    rows = []
    for r in compute_pareto_table(run).itertuples():
        cfg_cell = _link(run.path / r.config_path, out, r.config_path) if r.config_path else "–"
        row = [f"<b>{e(str(r.name))}</b>" + (' <span class="badge">published</span>'
                                            if r.kind == "baseline" else ""),
               e(str(r.family)), fmt(r.madds_m, 1), fmt(r.params_m, 2), fmt(r.val_top1, 2),
               _gain_html(num(getattr(r, R.PARETO_EXTRA))), e(r.vs_baseline or "–")]
        if confirmed is not None:
            c = confirmed.loc[r.trial] if r.trial in confirmed.index else None
            row.append(interval_text(c["mean"], c["lo"], c["hi"]) + f" <span class='note'>n={int(c['n'])}</span>"
                       if c is not None else '<span class="note">not confirmed</span>')
        row += [cfg_cell, f"<code>{e(r.rebuild_cmd)}</code>" if r.rebuild_cmd else "–"]
        rows.append(row)
    if not rows:
        return '<p class="note">no completed trial yet: the front is empty.</p>'
    heads = ["variant", "family", "MAdds (M)", "params (M)", "val top-1 (%, search)", "gain (pts, unconfirmed)",
             "vs published"] + (["confirmed top-1 (%) [95% CI]"] if confirmed is not None else []) + [
        "exported YAML", "rebuild"]
    numeric = [False, False, True, True, True, True, False] + ([True] if confirmed is not None else []) + [
        False, False]
    return _table(heads, rows, numeric)


def _verdicts_html(conf: V.Confirmation) -> str:
    """The verdicts table (one row per confirmed candidate) and the dominance claims."""
    e = html.escape
    rows = []
    for r in compute_verdict_rows(conf).to_dict("records"):
        ref = (f"<b>{e(r['reference'])}</b> <span class='note'>{fmt(r['reference_madds_m'], 1)} M · "
               f"{interval_text(r['reference_mean'], r['reference_lo'], r['reference_hi'])}</span>"
               if r["reference"] else '<span class="note">none at &le; MAdds</span>')
        rows.append([f"<b>{e(str(r['trial']))}</b> <span class='note'>{e(str(r['family']))}</span>",
                     fmt(r["madds_m"], 1), interval_text(r["mean"], r["lo"], r["hi"]), fmt(r["search_top1"], 2),
                     ref, interval_text(r["diff"], r["diff_lo"], r["diff_hi"], sign=True) if r["reference"] else "–",
                     str(int(r["n"])) if r["reference"] else "–", _verdict_html(str(r["verdict"])),
                     f'{e(str(r["trend"] or "–"))} <span class="note">{e(str(r["rungs"] or ""))}</span>'])
    table = _table(["candidate", "MAdds (M)", "confirmed top-1 (%) [95% CI]", "search val top-1 (%)",
                    "reference: best published at ≤ MAdds (M · confirmed [95% CI])",
                    "paired difference (pts) [95% CI]", "n pairs", "verdict",
                    "trend (paired difference by training steps)"], rows,
                   [False, True, True, True, False, True, True, False, False]) if rows else (
        '<p class="note">no searched candidate confirmed yet.</p>')
    dom = compute_dominance_rows(conf)
    claims = "".join(
        f"<li><b>{e(str(d['a']))}</b> ({fmt(d['a_madds_m'], 1)} M) dominates the published <b>{e(str(d['b']))}</b> "
        f"({fmt(d['b_madds_m'], 1)} M): no more MAdds and {interval_text(d['diff'], d['lo'], d['hi'], sign=True)} "
        f"points, paired over {int(d['n'])} seeds ({e(V.correction_text(int(d['tests']), float(d['level'])))})</li>"
        for d in dom.to_dict("records"))
    claims_html = (f'<h2>Dominance claims</h2><ul class="claims">{claims}</ul>' if claims else
                   '<p class="note">Dominance claims: none (no confirmed candidate has both no more MAdds than a '
                   "confirmed published variant and a paired interval above it, each of the m candidate x "
                   "published pairs tested at 1 - 5%/m so that the claims hold together at 95%).</p>")
    when = f" after {conf.steps} training steps" if conf.steps else ""
    return ('<div class="panel" data-section="verdicts"><h2>Verdicts' + e(when) + ': each confirmed candidate '
            "against the best published variant at equal or lower MAdds</h2>" + table
            + '<p class="note">Confirmed top-1: mean and 95% t interval over seeds on the held-out split. Paired '
              "difference: candidate minus reference over the seeds both ran (same data order and initial weights), "
              "with its 95% t interval; <i>better</i> / <i>worse</i> only when that interval excludes 0. The search "
              "val top-1 is one short run on the validation split, shown for comparison only.</p>"
            + claims_html + "</div>")


def _trust_html(conf: V.Confirmation) -> str:
    """The trust meter: how well the search ranked the confirmed set (tau and its interval on a -1..1 gauge),
    and the seed noise floor of the first rung and of the top rung; each with its one-line reading."""
    e = html.escape
    t = compute_trust_meter(conf)

    def pos(v: float) -> float:
        return max(0.0, min(100.0, (v + 1) * 50))

    gauge = ""
    if math.isfinite(t.tau):
        ci = (f'<div class="ci" style="left:{pos(t.lo):.1f}%;width:{pos(t.hi) - pos(t.lo):.1f}%"></div>'
              if math.isfinite(t.lo) and math.isfinite(t.hi) else "")
        gauge = (f'<div class="gauge" title="{e(t.rank_text)}">{ci}<div class="zero"></div>'
                 f'<div class="tau" style="left:{pos(t.tau):.1f}%"></div></div>'
                 '<div class="gauge-scale"><span>-1 reversed</span><span>0 unrelated</span>'
                 "<span>+1 same order</span></div>")
    top = ("" if t.top is None else
           f'<div><div class="k note">seed noise floor at the top rung, where the verdicts stand</div>'
           f'<div class="num">{e(t.top_noise_text)}</div><p class="reading">{e(t.top.reading)}</p></div>')
    return ('<div class="panel" data-section="trust"><h2>Trust meter</h2><div class="trust">'
            f'<div><div class="k note">search-stage ranking vs confirmed ranking</div>'
            f'<div class="num">{e(t.rank_text)}</div>{gauge}<p class="reading">{e(t.rank_reading)}</p></div>'
            f'<div><div class="k note">seed noise floor (first rung)</div><div class="num">{e(t.noise_text)}</div>'
            f'<p class="reading">{e(t.noise_reading)}</p></div>{top}</div></div>')


def _confirm_problems_html(trials: Any) -> str:
    e = html.escape
    probs = compute_confirm_problems(trials)
    if not len(probs):
        return ""
    items = "".join(f"<li><code>{e(str(r['trial']))}</code> seed {int(r['seed'])}: "
                    f'<span class="badge {e(str(r["status"]))}">{e(str(r["status"]).replace("_", "-"))}</span> '
                    f"{e(str(r['error'])[:300])}</li>" for r in probs.to_dict("records"))
    return (f'<p class="note">{len(probs)} confirmation retraining(s) without an accuracy (not counted '
            f'above):</p><ul class="note">{items}</ul>')


def _confirm_section_html(figs: dict[str, go.Figure], conf: V.Confirmation, trials: Any,
                          label: str = "one short run each") -> str:
    return ('<h2 class="section">Confirmation <span class="stage confirmed">held-out split, paired seeds</span>'
            "</h2>" + _fig_html(figs["confirmed_front"], "confirmed_front")
            + '<p class="note">Error bars: 95% t interval of the mean over the confirmation seeds. Grey open '
              f"markers underneath: the search stage ({html.escape(label)}, val split): a different split and "
              "protocol, so their level is not comparable with the confirmed one, only their order.</p>"
            + _verdicts_html(conf)
            + "".join(_fig_html(figs[k], k) for k in ("ladder", "pair_curves") if k in figs)
            + _trust_html(conf)
            + (_fig_html(figs["search_vs_confirmed"], "search_vs_confirmed") if "search_vs_confirmed" in figs else "")
            + _confirm_problems_html(trials))


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
    """The whole dashboard of one run as one self-contained HTML string (`out` sets relative links).

    A run with confirm rows leads with its confirmation (headline, cards, confirmed front, verdicts, trust
    meter); its search stage follows, labelled unconfirmed. A run without says that its numbers are
    unconfirmed single short runs."""
    e = html.escape
    full = run
    confirmed = has_confirm_rows(full.trials)
    conf = V.compute_confirmation(full.trials) if confirmed else None
    head = compute_headline(conf) if conf is not None else None
    run = search_run(run)
    s = compute_summary(run)
    imp = compute_importance(run, max_stale=importance_max_stale)
    figs = build_figures(full, importance=imp, confirmation=conf)
    _, ref_notes = compute_reference()
    header = _header_html(run, s, compute_budget_lines(run.config, run.trials), confirmed=confirmed, head=head,
                          conf=conf)
    label = search_label_of(run.config)
    confirm_html = _confirm_section_html(figs, conf, full.trials, label) if conf is not None else ""
    search_title = (f'<h2 class="section">Search stage <span class="stage unconfirmed">unconfirmed: {e(label)} '
                    "per architecture, val split</span></h2>" if confirmed else "")
    body = (
        header + "<main>" + _cards_html(s, head, confirmed=confirmed) + confirm_html + search_title
        + _fig_html(figs["accuracy_vs_madds"], "accuracy_vs_madds")
        + '<p class="note">Circles: completed; open circles: early-stopped; diamonds: published variants trained '
          "under the same proxy; ringed: Pareto-optimal. Buttons switch the colour between family, fusion and "
          "attention. Hover a point for its knobs and the command that rebuilds it.</p>"
        + '<div class="panel"><h2>Discovered Pareto-optimal variants</h2>' + _pareto_html(run, out, conf)
        + '<p class="note">gain = val top-1 minus the best published variant at equal or lower MAdds, both '
          "trained under this run's proxy: one short run each (search stage, unconfirmed)"
        + ("; the confirmed column is the held-out mean and 95% interval over seeds" if confirmed else "")
        + ".</p></div>"
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
    table = _table(["run", "budget (M)", "dataset", "proxy", "trials", "best val top-1 (search)", "at MAdds (M)",
                    "Pareto variants", "best gain (search, unconfirmed)"], rows, [False, True, False, False, True, True, True, True, True])
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
    run = _as_run(run)
    path = Path(out) if out is not None else default_output(run.path)
    search = search_run(run).trials
    n_ok = int((R.eligible_mask(search) & (search["kind"] == "searched")).sum())
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
