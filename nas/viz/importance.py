"""Knob importance for val top-1 (Optuna's fANOVA): the only Optuna code of the dashboard.

The live dashboard is redrawn after every trial, so this module keeps three per-process caches: the
opened storage of each run's Optuna study (optuna.journal; optuna.db in older runs), the result per
(trials, accuracy) data, and each run's last result (reused while few trials were added since; fANOVA costs
seconds at 500 trials).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution

from nas import results as R
from nas.viz import _plotly
from nas.viz._plotly import go
from nas.viz._style import base_layout, empty_note
from nas.viz._utils import knob_name, search_run


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


def _study_distributions(run_dir: Path, f: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """Params and distributions of the complete trials of the run's Optuna study (file `f`), by trial number."""
    if not f.is_file() or not f.stat().st_size:
        return {}, {}
    if str(f) not in _STORAGES:  # opening an RDB storage costs ~1 s; the live dashboard reopens it every trial
        _STORAGES[str(f)] = R.open_storage(f)
    storage = _STORAGES[str(f)]
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

    Parameter distributions come from the run's Optuna study (`nas.results.study_location`) when it has them,
    else from the knob columns (each column's observed choices); the target is always the trials' val top-1.
    Needs at least 2 such trials with some spread in val top-1; otherwise `note` says why there are none.
    Cached on the (trial, accuracy) data. `max_stale` > 0 (the live dashboard) reuses this run's last
    result while at most that many trained trials were added since (fANOVA costs seconds at 500 trials).
    """
    run = search_run(run)
    df = run.trials
    ok = df[R.eligible_mask(df) & (df["kind"] == "searched")]
    knobs = R.knob_columns(df)
    if len(ok) < 2:
        return Importance(note=f"not enough trials for knob importance: {len(ok)} completed, need at least 2")
    if not knobs:
        return Importance(note="no knob_* columns in the trials: nothing to rank")
    study_file = R.study_location(run.path)
    key = (str(run.path), n_trees, seed,
           tuple(ok[["number", "val_top1"]].itertuples(index=False, name=None)),
           study_file.stat().st_mtime if study_file.is_file() else 0.0)
    if key in _IMPORTANCE_CACHE:
        return _IMPORTANCE_CACHE[key]
    last = _LAST_IMPORTANCE.get(str(run.path))
    if last is not None and last.values and 0 <= len(ok) - last.n_trials <= max_stale:
        return last
    if ok["val_top1"].nunique() < 2:
        return Importance(note="all completed trials have the same val top-1: no importance to attribute")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        s_params, s_dists = _study_distributions(run.path, study_file)
    except Exception as e:  # a locked or foreign db: fall back to the frame, and say so
        s_params, s_dists, why = {}, {}, f" ({study_file.name} unreadable: {type(e).__name__})"
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
                name = knob_name(k)
                v = str(v) if isinstance(v, str) else float(v)
                params[name] = v
                dists[name] = CategoricalDistribution(choices[k])
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=float(r["val_top1"])))
    source = f"Optuna study ({study_file.name})" if from_study else "trials frame"
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


def plot_importance(imp: Importance, *, title: str = "Knob importance for val top-1 (fANOVA)") -> go.Figure:
    """Horizontal bars, most important knob on top; an empty figure with the reason when there are none."""
    _plotly.check()
    fig = go.Figure()
    if imp.values:
        items = sorted(imp.values.items(), key=lambda kv: kv[1])
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                             marker={"color": "#636efa"}, text=[f"{v:.2f}" for _, v in items],
                             textposition="auto", hovertemplate="%{y}: %{x:.3f}<extra></extra>", name="importance"))
        fig.update_xaxes(title=f"importance (sums to 1; from {imp.source})", range=[0, 1])
    else:
        empty_note(fig, html.escape(imp.note or "no importance"))
    return base_layout(fig, title=title, height=480)
