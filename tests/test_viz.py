"""Dashboard data and figures (nas.viz) and the `nas dashboard` command, on hand-made run folders.

The data functions (compute_*) are checked on their own; plot_* must return go.Figure with the expected
traces; the page must be self-contained (plotly.js embedded, no CDN). No browser here (see
test_dashboard_browser.py).
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
import yaml

from nas import results as R
from nas import viz
from nas.cli import main
from nas.errors import RunError

BASELINES = ("mobile_former_294m", "mobilevit_xxs", "mobilevitv2_050", "mobilevitv3_xxs")


def write_demo_run(run_dir: Path, *, n: int = 36, seed: int = 0, budget_m: float = 300.0, min_budget: float = 0.8,
                   with_study: bool | str = False, name: str | None = None) -> pd.DataFrame:
    """A hand-made run folder through nas.results: searched trials with knobs, published baselines,
    early-stopped, failed and over-budget trials; optionally a real Optuna study: in optuna.journal as a search
    writes it (`with_study=True`), or in the sqlite optuna.db of a run begun before journals (`with_study="sqlite"`)."""
    from nas.variants import published

    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = name or run_dir.name
    (run_dir / "run.yaml").write_text(yaml.safe_dump({
        "name": name, "budget_m": budget_m, "min_budget": min_budget, "objective": "top1", "trials": n,
        "seed": seed, "data": "synthetic-10", "proxy_hash": "p1a2b3", "created_at": "2025-01-01T00:00:00"}))
    rows = []
    study = None
    if with_study:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        f = run_dir / (R.LEGACY_STUDY_DB if with_study == "sqlite" else R.STUDY_JOURNAL)
        study = optuna.create_study(study_name=name, storage=R.open_storage(f),
                                    direction="maximize")
    from optuna.distributions import CategoricalDistribution as Cat

    dists = {"num_tokens": Cat([3, 4, 6]), "width_mult": Cat([0.5, 0.75, 1.0]), "fusion": Cat(
        ["bridge", "v1", "v3", "v3_merged", "none"]), "attention": Cat(["mhsa", "separable"]),
             "depth_s3": Cat([1, 2, 3])}
    for i in range(n):
        p = {k: rng.choice(d.choices) for k, d in dists.items()}
        madds = 60 + 260 * p["width_mult"] ** 2 * (0.7 + 0.15 * p["depth_s3"]) + rng.uniform(-20, 20)
        top = 25 + 12 * math.log(madds / 60) + (2.0 if p["fusion"] in ("v3", "bridge") else 0) + rng.gauss(0, 1.2)
        status = "completed"
        epochs = 8
        if madds > budget_m * 1.05:
            status = "over_budget"
        elif i % 9 == 4:
            status, epochs = "early_stopped", 3
        elif i % 13 == 7:
            status, epochs = "failed", 2
        curve = [] if status == "over_budget" else [round(top * (1 - math.exp(-(e + 1) / 2.5)), 2)
                                                    for e in range(epochs)]
        val = curve[-1] if status in ("completed", "early_stopped") else math.nan
        t = f"t{i:04d}"
        rows.append(R.make_row(
            trial=t, number=i, kind="searched", arch_id=f"{i:012x}",
            family="hybrid-MF" if p["fusion"] == "bridge" else "hybrid-ViT", fusion=p["fusion"],
            attention=p["attention"], madds_m=madds, params_m=madds / 60, budget_m=budget_m, status=status,
            error="RuntimeError: CUDA out of memory" if status == "failed" else (
                f"MAdds {madds:.0f}M over the {budget_m:.0f}M budget" if status == "over_budget" else ""),
            val_top1=val, best_val_top1=max(curve) if curve and status != "failed" else math.nan,
            val_curve=json.dumps(curve), epochs_done=len(curve), wall_s=12.0, images_per_s=800.0,
            rebuild_cmd=f"nas train results/{name}/variants/{t}.yaml", proxy_hash="p1a2b3", dataset="synthetic-10",
            **{f"knob_{k}": v for k, v in p.items()},
            knob_dim=(None if p["fusion"] != "bridge" else rng.choice([128, 192]))))
        if study is not None:  # every trial, so Optuna's numbers are the rows' numbers (as in a search)
            import optuna

            ok = status in ("completed", "early_stopped")
            study.add_trial(optuna.trial.create_trial(
                params=p, distributions=dists, value=val if ok else None,
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL))
    for b in BASELINES:
        pub = published(b)
        madds = float(pub["madds_m"]) * (0.98 if "former" in b else 1.0)
        top = 25 + 12 * math.log(madds / 60) - 1.0
        curve = [round(top * (1 - math.exp(-(e + 1) / 2.5)), 2) for e in range(8)]
        rows.append(R.make_row(
            trial=b, number=-1, kind="baseline", name=b, arch_id=b[:12], family=pub["family"],
            fusion="bridge" if "former" in b else "v1", attention="mhsa", madds_m=madds, params_m=pub["params_m"],
            budget_m=budget_m, status="completed", val_top1=curve[-1], best_val_top1=max(curve),
            val_curve=json.dumps(curve), epochs_done=8, published_top1=pub["top1"],
            published_madds_m=pub["madds_m"], rebuild_cmd=f"nas train {b}", proxy_hash="p1a2b3",
            dataset="synthetic-10"))
    df = R.write_trials(run_dir, pd.DataFrame(rows))
    front = R.write_pareto(run_dir, df)
    for t in front.loc[front["kind"] == "searched", "trial"]:
        (run_dir / "variants").mkdir(exist_ok=True)
        (run_dir / "variants" / f"{t}.yaml").write_text(f"# {t}\n")
        df.loc[df["trial"] == t, "config_path"] = f"variants/{t}.yaml"
    return R.write_trials(run_dir, df)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> R.Run:
    d = tmp_path_factory.mktemp("runs") / "demo"
    write_demo_run(d, with_study=True)
    return R.load_run(d)


# ---------------------------------------------------------------------------------------------------------
# compute_*


def test_budget_lines_from_the_numbers_of_run_yaml():
    b = viz.compute_budget_lines({"budget_m": 300, "min_budget": 0.8})
    assert (b.budget_m, b.min_m, b.has_band) == (300.0, 240.0, True)
    b = viz.compute_budget_lines({"budget_m": 1200.0, "min_budget": 0.75})
    assert (b.budget_m, b.min_m) == (1200.0, 900.0)
    b = viz.compute_budget_lines({"budget_m": 300})
    assert b.has_budget and not b.has_band
    b = viz.compute_budget_lines({"budget_m": 300, "min_budget": 1.0})  # band of width 0: no band
    assert not b.has_band
    assert not viz.compute_budget_lines({"budget_m": 300, "min_budget": 0}).has_band
    assert not viz.compute_budget_lines({}).has_budget
    t = R.normalize_trials(pd.DataFrame([R.make_row(trial="a", budget_m=150.0)]))
    assert viz.compute_budget_lines({}, t).budget_m == 150.0


@pytest.mark.parametrize("config, match", [
    ({"budget_m": "300M"}, "budget_m = '300M' is not a number"),  # the search writes millions as a number
    ({"budget_m": True}, "budget_m = True is not a number"),
    ({"budget_m": 300, "min_budget": "0.8"}, "min_budget = '0.8' is not a number"),
    ({"budget_m": 300, "min_budget": 240}, "min_budget = 240 is not a fraction"),
])
def test_budget_lines_refuse_what_is_not_a_number(config, match):
    with pytest.raises(RunError, match=match):
        viz.compute_budget_lines(config)


def test_front_steps_sorted_and_extended():
    front = pd.DataFrame({"madds_m": [200.0, 100.0, 100.0], "val_top1": [60.0, 50.0, 40.0]})
    xs, ys = viz.compute_front_steps(front, x_end=300)
    assert xs == [100.0, 100.0, 200.0, 300.0]
    assert ys == [50.0, 40.0, 60.0, 60.0]
    assert viz.compute_front_steps(front.iloc[:0], x_end=300) == ([], [])
    xs, _ = viz.compute_front_steps(front, x_end=150)  # left of the last point: not extended
    assert xs[-1] == 200.0


def test_points_only_trained_and_front_marked(demo):
    pts = viz.compute_points(demo.trials)
    assert set(pts["status"]) <= {"completed", "early_stopped"}
    assert len(pts) == int(R.eligible_mask(demo.trials).sum())
    assert pts["on_front"].sum() == len(demo.pareto)
    es = pts[pts["status"] == "early_stopped"]
    assert len(es) and set(es["symbol"]) == {"circle-open"}
    row = pts[pts["kind"] == "searched"].iloc[0]
    assert "num_tokens=" in row["hover"] and row["rebuild_cmd"] in row["hover"] and row["arch_id"] in row["hover"]
    assert not any("reused from" in h for h in pts["hover"])
    # a baseline the run took from the cross-run cache says so on its card
    t = demo.trials.copy()
    b = t.index[(t["kind"] == "baseline") & R.eligible_mask(t)][0]
    t.loc[b, "reused_from"] = "results/.cache/baselines.parquet"
    hover = viz.compute_points(t).set_index("trial").loc[t.loc[b, "trial"], "hover"]
    assert "not trained by this run: reused from results/.cache/baselines.parquet" in hover


def test_summary_counts_and_gain(demo):
    s = viz.compute_summary(demo)
    t = demo.trials
    assert s.n_searched == int((t["kind"] == "searched").sum()) and s.n_baseline == len(BASELINES)
    assert sum(s.counts.values()) == s.n_searched
    assert s.counts["failed"] >= 1 and s.counts["early_stopped"] >= 1 and s.counts["over_budget"] >= 1
    assert s.n_trained == s.counts["completed"] + s.counts["early_stopped"]
    ok = t[R.eligible_mask(t) & (t["kind"] == "searched")]
    assert s.best_searched.val_top1 == ok["val_top1"].max()
    base = t[t["kind"] == "baseline"]
    assert s.best_baseline.val_top1 == base["val_top1"].max()
    gains = demo.pareto.loc[demo.pareto["kind"] == "searched", "gain_vs_published"].dropna()
    assert s.best_gain == pytest.approx(gains.max())
    assert (s.dataset, s.proxy_hash) == ("synthetic-10", "p1a2b3")
    assert s.front_size == len(demo.pareto)


def test_summary_of_a_run_with_no_trials_yet():
    run = R.Run(path=Path("nowhere"), config={}, trials=R.empty_trials(), pareto=R.compute_pareto(R.empty_trials()))
    s = viz.compute_summary(run)
    assert (s.n_searched, s.n_trained, s.front_size, s.best_searched, s.dataset) == (0, 0, 0, None, "")
    assert math.isnan(s.best_gain)


def test_pareto_table_names_the_baseline_beaten(demo):
    tab = viz.compute_pareto_table(demo)
    assert len(tab) == len(demo.pareto)
    base = demo.trials[demo.trials["kind"] == "baseline"]
    for r in tab.itertuples():
        if r.vs_baseline:
            b = base[base["name"] == r.vs_baseline].iloc[0]
            assert b["madds_m"] <= r.madds_m
            assert r.gain_vs_published == pytest.approx(r.val_top1 - b["val_top1"])
            below = base[(base["madds_m"] <= r.madds_m) & (base["trial"] != r.trial)]
            assert b["val_top1"] == below["val_top1"].max()
        else:
            assert math.isnan(r.gain_vs_published)
    searched = tab[tab["kind"] == "searched"]
    assert (searched["config_path"] == [f"variants/{t}.yaml" for t in searched["trial"]]).all()


def test_curves_and_problem_trials(demo):
    curves = viz.compute_curves(demo.trials)
    by = {c["trial"]: c for c in curves}
    t = demo.trials
    for r in t[t["status"] == "early_stopped"].itertuples():
        assert by[r.trial]["epochs"] == list(range(1, r.epochs_done + 1))
    assert all(tr not in by for tr in t.loc[t["status"] == "over_budget", "trial"])  # no curve, no line
    probs = viz.compute_problem_trials(t)
    assert set(probs["status"]) == {"failed", "over_budget"}
    assert (probs.loc[probs["status"] == "failed", "error"] != "").all()
    bad = t.head(1).assign(val_curve="[1, 2")
    with pytest.raises(RunError, match="not a JSON list"):
        viz.compute_curves(bad)
    # a default search validates after the last epoch only: one point a trial, and the panel says so
    once = t[t["status"] == "completed"].assign(val_curve="[null, 61.5]")
    data = viz.compute_curves(once)
    assert data and all(math.isnan(c["val_top1"][0]) and c["val_top1"][1] == 61.5 for c in data)
    assert "--curves" in viz.plot_curves(data).layout.annotations[0].text
    assert not viz.plot_curves(viz.compute_curves(t)).layout.annotations


def test_reference_has_all_23_with_our_count():
    ref, notes = viz.compute_reference()
    assert len(ref) == 23 and set(ref["family"]) == {"Mobile-Former", "MobileViT-v1", "MobileViT-v2", "MobileViT-v3"}
    assert not notes, notes
    assert (ref["our_madds_m"] > 0).all()  # every variant's own config counted (its accuracy is tested elsewhere)


def test_importance_from_study_and_from_frame(demo, tmp_path):
    imp = viz.compute_importance(demo)
    assert imp.values and imp.source == "Optuna study (optuna.journal)"
    assert set(imp.values) <= {"num_tokens", "width_mult", "fusion", "attention", "depth_s3"}
    assert sum(imp.values.values()) == pytest.approx(1.0)
    # the synthetic accuracy depends on width_mult and depth, not on attention
    assert imp.values["width_mult"] > imp.values["attention"]
    d = tmp_path / "noddb"
    write_demo_run(d, n=20, seed=1)
    imp2 = viz.compute_importance(R.load_run(d))
    assert imp2.values and imp2.source == "trials frame"
    old = tmp_path / "legacy"  # a run begun before journals: its sqlite study
    write_demo_run(old, n=20, seed=1, with_study="sqlite")
    imp3 = viz.compute_importance(R.load_run(old))
    assert imp3.values and imp3.source == "Optuna study (optuna.db)"
    one = tmp_path / "one"
    write_demo_run(one, n=1)
    assert "not enough trials" in viz.compute_importance(R.load_run(one)).note


def test_live_importance_reused_until_stale(tmp_path):
    d = tmp_path / "live"
    df = write_demo_run(d, n=20, seed=2)
    first = viz.compute_importance(R.load_run(d), max_stale=2)
    row = df.iloc[0].to_dict() | {"trial": "x1", "number": 99, "val_top1": 12.0, "status": "completed"}
    R.upsert_trial(d, row)
    run = R.load_run(d)
    assert viz.compute_importance(run, max_stale=2) is first  # one more trial: the last result stands
    fresh = viz.compute_importance(run)  # max_stale=0: recomputed on the new data
    assert fresh is not first and fresh.n_trials == first.n_trials + 1


def test_parallel_dims_categorical_and_gaps(demo):
    dims = viz.compute_parallel(demo.trials)
    labels = [d.label for d in dims]
    assert labels[-2:] == ["MAdds (M)", "val top-1 (%)"]
    assert {"fusion", "attention", "num_tokens", "dim"} <= set(labels)
    n = len(dims[-1].values)
    for d in dims:
        assert len(d.values) == n
        if d.tickvals is not None:
            assert set(d.values) <= set(d.tickvals) and len(d.ticktext) == len(d.tickvals)
    dim = next(d for d in dims if d.label == "dim")
    assert dim.ticktext[0] == "n/a" and dim.ticktext[1:] == ["128", "192"]
    assert viz.compute_parallel(R.empty_trials()) == []


# ---------------------------------------------------------------------------------------------------------
# plot_*


def test_accuracy_figure_traces_and_buttons(demo):
    pts = viz.compute_points(demo.trials)
    budget = viz.compute_budget_lines(demo.config)
    fig = viz.plot_accuracy_vs_madds(pts, demo.pareto, budget)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert {"Pareto front", "published variants", "published front (same proxy)"} <= set(names)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == [f"colour: {d}" for d in viz.COLOR_DIMS]
    searched = pts[pts["kind"] == "searched"]
    for b, dim in zip(buttons, viz.COLOR_DIMS):
        vis = b.args[0]["visible"]
        shown = [t for t, v in zip(fig.data, vis) if v and t.meta == dim]
        assert sum(len(t.x) for t in shown) == len(searched)  # every searched point once per colouring
    base = next(t for t in fig.data if t.name == "published variants")
    assert list(base.text) == list(BASELINES)
    xs = sorted(s.x0 for s in fig.layout.shapes if s.type == "line")
    assert xs == [240.0, 300.0]


def test_other_figures(demo):
    ref, _ = viz.compute_reference()
    fig = viz.plot_reference(ref, budget=viz.BudgetLines(budget_m=300.0, min_m=240.0))
    assert isinstance(fig, go.Figure) and fig.layout.xaxis.type == "log"
    # on a log axis plotly puts shapes in data units and annotations in log10 units
    assert sorted(s.x0 for s in fig.layout.shapes if s.type == "line") == [240.0, 300.0]
    assert sorted(a.x for a in fig.layout.annotations) == pytest.approx([math.log10(240), math.log10(300)])
    assert sum(len(t.x) for t in fig.data if "our count" not in t.name) == 23
    assert sum(len(t.x) for t in fig.data if "our count" in t.name) == 23
    imp = viz.plot_importance(viz.compute_importance(demo))
    assert isinstance(imp.data[0], go.Bar)
    empty = viz.plot_importance(viz.Importance(note="not enough trials"))
    assert not empty.data and "not enough trials" in empty.layout.annotations[0].text
    par = viz.plot_parallel(viz.compute_parallel(demo.trials))
    assert isinstance(par.data[0], go.Parcoords)
    data = viz.compute_curves(demo.trials)
    curves = viz.plot_curves(data)
    lines = {t.legendgroup: t for t in curves.data if t.mode == "lines" and t.legendgroup != "baselines"}
    assert {k: lines[k].line.dash for k in ("completed", "early_stopped", "failed")} == {
        "completed": "solid", "early_stopped": "dash", "failed": "dot"}
    n_es = sum(c["status"] == "early_stopped" for c in data)
    assert lines["early_stopped"].name == f"early-stopped ({n_es})"
    # one None between trials: every point of every early-stopped curve is in the trace
    assert sum(v is not None for v in lines["early_stopped"].y) == sum(
        len(c["epochs"]) for c in data if c["status"] == "early_stopped")
    assert sum(t.legendgroup == "baselines" for t in curves.data) == len(BASELINES)


# ---------------------------------------------------------------------------------------------------------
# pages and the CLI


def test_write_dashboard_self_contained_and_atomic(demo, tmp_path):
    out = viz.write_dashboard(demo.path, tmp_path / "d.html", refresh_s=30)
    text = out.read_text()
    assert not re.search(r"<script[^>]+src=", text)  # nothing loaded from outside: plotly.js is inline
    assert "plotly.js v" in text or "Plotly" in text[:20000]
    assert text.count("Plotly.newPlot") == len(viz.FIGURES)
    assert 'http-equiv="refresh" content="30"' in text
    assert text.count('data-figure="') == len(viz.FIGURES)
    assert "demo" in text and "synthetic-10" in text and "300 M" in text
    for t in demo.pareto.loc[demo.pareto["kind"] == "searched", "trial"]:
        assert f"variants/{t}.yaml" in text
    assert "CUDA out of memory" in text  # failed trials listed with their error
    assert not list(tmp_path.glob(".d.html.*"))  # no temp file left behind
    live = viz.write_dashboard(demo.path)
    assert live == demo.path / "dashboard.html" and live.is_file()


def test_dashboard_of_a_run_with_no_trials_yet(tmp_path):
    d = tmp_path / "fresh"
    d.mkdir()
    (d / "run.yaml").write_text("name: fresh\nbudget_m: 300\n")
    text = viz.write_dashboard(d).read_text()
    assert "no completed trial yet" in text and "not enough trials" in text


def test_cli_dashboard_default_output_and_compare(demo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["dashboard", str(demo.path)]) == 0
    assert (tmp_path / "dashboards" / "demo.html").is_file()
    other = tmp_path / "other"
    write_demo_run(other, n=20, seed=3, budget_m=250)
    assert main(["dashboard", "--compare", str(demo.path), str(other)]) == 0
    page = (tmp_path / "dashboards" / "compare-demo-other.html").read_text()
    assert page.count("Plotly.newPlot") == 1 and "demo: front" in page and "other: front" in page
    data = viz.compute_compare([R.load_run(demo.path), R.load_run(other)])
    fig = viz.plot_compare(data)
    assert [t.name for t in fig.data if t.name and t.name.endswith(": front")] == ["demo: front", "other: front"]
    assert sorted(s.x0 for s in fig.layout.shapes) == [250.0, 300.0]
    assert [d.name for d in data] == ["demo", "other"] and [d.budget.budget_m for d in data] == [300.0, 250.0]
    xs, ys = data[1].steps
    assert xs[-1] == max(250.0, data[1].points["madds_m"].max()) and ys == sorted(ys)  # extended to the budget
    assert data[1].summary.n_searched == 20 and data[1].summary.proxy_hash == "p1a2b3"


def test_output_places_and_write_compare_default(demo, tmp_path, monkeypatch):
    assert viz.default_output("results/a") == Path("results/a/dashboard.html")
    assert viz.export_output("a") == Path("dashboards/a.html")
    assert viz.compare_output(["a", "b"]) == Path("dashboards/compare-a-b.html")
    monkeypatch.chdir(tmp_path)
    assert viz.write_compare([demo]) == Path("dashboards/compare-demo.html")
    with pytest.raises(RunError, match="at least one run"):
        viz.write_compare([])


def test_plotly_guard_defers_an_import_error():
    from nas.errors import NasError
    from nas.viz._plotly import _DeferredImport

    with _DeferredImport() as imports:
        import nas_no_such_module  # noqa: F401
    assert not imports.is_successful()
    with pytest.raises(NasError, match="needs plotly"):
        imports.check()


def test_cli_errors_are_one_message(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no run folder at" in err and "fix:" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert main(["dashboard", str(tmp_path / "empty")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["dashboard"]) == 2
    assert "no run folder given" in capsys.readouterr().err


def test_png_without_browser_is_a_clear_error_and_html_still_written(demo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    out = tmp_path / "x.html"
    rc = main(["dashboard", str(demo.path), "-o", str(out), "--png", str(tmp_path / "png")])
    err = capsys.readouterr().err
    assert rc == 2 and "BROWSER_PATH=" in err and "fix:" in err and out.is_file()
    assert re.search(r"apt-get install chromium", err)


def test_importance_ranks_conditional_knobs_within_the_largest_family():
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from nas.viz.importance import _importance_within_largest_group

    def trial(macro: str, value: float, **knobs):
        params = {"macro": macro, **knobs}
        dists = {"macro": CategoricalDistribution(["a", "b"]),
                 **{k: FloatDistribution(0.0, 10.0) for k in knobs}}
        return optuna.trial.create_trial(params=params, distributions=dists, value=value)

    # family a: accuracy follows a.width only; a.depth is noise-free and irrelevant. family b: 2 trials.
    trials = [trial("a", 10.0 * w, **{"a.width": float(w), "a.depth": float((w * 7) % 5)}) for w in range(1, 9)]
    trials += [trial("b", 50.0, **{"b.patch": 2.0}), trial("b", 60.0, **{"b.patch": 4.0})]
    ev = optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=0)
    label, n, values = _importance_within_largest_group(trials, ev)
    assert (label, n) == ("a ", 8)
    assert set(values) == {"a.width", "a.depth"}  # macro is constant inside the group: not ranked
    assert values["a.width"] > values["a.depth"]
    # too small a group: nothing to rank
    assert _importance_within_largest_group(trials[-2:], ev) is None


# ---------------------------------------------------------------------------------------------------------
# later stages share the trials table: the search charts draw only the search rows


def with_confirm_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """`trials` plus a confirmation stage (extra `stage` and `seed` columns): three trained searched trials
    re-trained over two seeds far above every search result, and one failed re-training. A few search
    rows carry no stage (NaN or ""), which counts as search."""
    t = trials.assign(stage="search", seed=0)
    t["stage"] = t["stage"].astype(object)
    t.loc[t.index[0], "stage"] = None
    t.loc[t.index[1], "stage"] = ""
    ok = t[R.eligible_mask(t) & (t["kind"] == "searched")].head(3)
    conf = [r | {"trial": f"{r['trial']}-s{seed}", "stage": "confirm", "seed": seed, "val_top1": 99.5,
                 "madds_m": 10.0, "val_curve": "[50.0, 99.5]"}
            for r in ok.to_dict("records") for seed in (1, 2)]
    conf.append(conf[0] | {"trial": "confirm-failed", "status": "failed", "error": "confirm OOM"})
    return pd.concat([t, pd.DataFrame(conf)], ignore_index=True)


def test_search_rows_keep_missing_stage():
    from nas.viz._utils import search_rows

    t = pd.DataFrame({"stage": ["search", None, float("nan"), "", "confirm"], "x": range(5)})
    assert search_rows(t)["x"].tolist() == [0, 1, 2, 3]
    plain = pd.DataFrame({"x": [1]})
    assert search_rows(plain) is plain


def test_search_charts_ignore_other_stages(demo):
    t = with_confirm_rows(demo.trials)
    run = R.Run(path=demo.path, config=demo.config, trials=t, pareto=R.compute_pareto(t))
    assert not (run.pareto["stage"] == "confirm").any()  # results' own front is of the search stage too
    pts = viz.compute_points(t)
    assert len(pts) == len(viz.compute_points(demo.trials)) and 99.5 not in set(pts["val_top1"])
    assert {"stage", "seed"} <= set(pts.columns)  # extra columns are kept
    assert pts["on_front"].sum() == len(demo.pareto)
    assert viz.compute_summary(run) == viz.compute_summary(demo)
    assert viz.compute_pareto_table(run)["trial"].tolist() == viz.compute_pareto_table(demo)["trial"].tolist()
    assert viz.compute_problem_trials(t).equals(viz.compute_problem_trials(demo.trials))
    assert [c["trial"] for c in viz.compute_curves(t)] == [c["trial"] for c in viz.compute_curves(demo.trials)]
    assert viz.compute_parallel(t) == viz.compute_parallel(demo.trials)
    (d,) = viz.compute_compare([run])
    assert d.front["trial"].tolist() == demo.pareto["trial"].tolist()
    imp = viz.compute_importance(run)
    assert imp.n_trials == viz.compute_importance(demo).n_trials


def test_search_figure_of_a_run_with_a_confirmation_stage(tmp_path):
    d = tmp_path / "staged"
    df = write_demo_run(d, n=20, seed=4)
    R.write_trials(d, with_confirm_rows(df))
    run = R.load_run(d)
    assert "confirm" in set(run.trials["stage"])
    figs = viz.build_figures(run)
    assert list(figs) == list(viz.CONFIRM_FIGURES + viz.FIGURES)
    assert 99.5 not in [y for tr in figs["accuracy_vs_madds"].data if tr.y is not None for y in tr.y]
    text = viz.write_dashboard(d).read_text()
    # the search sections never show a confirm row; the confirmation section does (and its failed retraining)
    search_part = text[text.index("Search stage <span"):]
    assert "99.50" not in search_part and "confirm OOM" not in search_part and "-s1" not in search_part
    assert "confirm OOM" in text and "not confirmed" in text  # its confirm rows are of other trial ids


# ---------------------------------------------------------------------------------------------------------
# the confirmation stage: confirmed front, verdicts, trust meter, headline (numbers from nas.verdicts)


def confirmed_frame() -> pd.DataFrame:
    """Search rows and confirm rows (seeds 0..2, test_top1) of two published variants and three candidates,
    one unconfirmed candidate, one over-budget trial and one failed confirm retraining.

    By hand: c_mid beats b_small (paired, every seed); c_low (140 M) is below every baseline, so it has no
    reference, and it dominates b_small (150 M); c_top has the highest mean but is noisy against b_small (its
    reference; b_big is at 290 M > 280 M). Front of confirmed means: c_low, c_mid, c_top, b_big."""
    rows = []

    def add(trial, kind, madds, search, accs, family):
        base = dict(trial=trial, name=trial, kind=kind, madds_m=madds, family=family, params_m=1.0, arch_id=trial)
        rows.append(R.make_row(**base, stage="search", seed=0, status="completed", val_top1=search))
        for seed, a in enumerate(accs):
            rows.append(R.make_row(**base, stage="confirm", seed=seed, status="completed", val_top1=a - 20.0,
                                   test_top1=a, eval_set="test"))

    add("b_small", "baseline", 150.0, 40.0, [70.0, 70.4, 69.8], "Mobile-Former")
    add("b_big", "baseline", 290.0, 44.0, [74.0, 74.2, 73.9], "MobileViT-v2")
    add("c_low", "searched", 140.0, 38.0, [71.0, 71.3, 70.9], "hybrid-ViT")
    add("c_mid", "searched", 200.0, 45.0, [72.5, 73.0, 72.4], "hybrid-MF")
    add("c_top", "searched", 280.0, 46.0, [73.0, 76.0, 72.0], "hybrid-MF")
    rows.append(R.make_row(trial="c_other", kind="searched", stage="search", status="completed", madds_m=250.0,
                           val_top1=41.0, family="hybrid-ViT"))
    rows.append(R.make_row(trial="c_big", kind="searched", stage="search", status="over_budget", madds_m=400.0))
    rows.append(R.make_row(trial="c_top", kind="searched", stage="confirm", seed=3, status="failed", madds_m=280.0,
                           error="confirm retraining OOM"))
    return R.normalize_trials(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def confirmation():
    from nas.verdicts import compute_confirmation

    df = confirmed_frame()
    return df, compute_confirmation(df)


def test_confirmed_front_data(confirmation):
    df, conf = confirmation
    data = viz.compute_confirmed_front(df, conf, x_end=300.0)
    p = data.points.set_index("trial")
    assert set(p.index) == {"b_small", "b_big", "c_low", "c_mid", "c_top"}
    assert p.loc["c_mid", "mean"] == pytest.approx((72.5 + 73.0 + 72.4) / 3)  # test_top1, not the confirm val
    assert (p["err_plus"] > 0).all() and (p["err_minus"] > 0).all()
    assert p["err_plus"].tolist() == pytest.approx((p["hi"] - p["mean"]).tolist())
    assert set(p.index[p["on_front"]]) == {"c_low", "c_mid", "c_top", "b_big"}
    assert data.front_x == [140.0, 200.0, 280.0, 290.0, 300.0] and data.front_y[-1] == data.front_y[-2]
    # the faded search points: every trained search row, confirmed ones marked; no confirm row among them
    s = data.search.set_index("trial")
    assert set(s.index) == {"b_small", "b_big", "c_low", "c_mid", "c_top", "c_other"}
    assert not s.loc["c_other", "confirmed"] and s.loc["c_mid", "confirmed"]
    assert (s["stage"] == "search").all() and s.loc["c_mid", "val_top1"] == 45.0
    assert (data.eval_set, data.seeds) == ("test", "3")
    assert "test split mean ± 95% CI over n = 3 seeds" in viz.confirm.confirmed_axis_title(data)
    assert "val split" in viz.confirm.confirmed_axis_title(data)


def test_confirmed_front_of_a_run_without_confirmation(demo):
    data = viz.compute_confirmed_front(demo.trials)
    assert data.empty and data.front_x == [] and len(data.search) == int(R.eligible_mask(demo.trials).sum())
    assert not viz.has_confirm_rows(demo.trials) and viz.has_confirm_rows(confirmed_frame())


def test_verdict_rows_dominance_and_headline(confirmation):
    df, conf = confirmation
    v = viz.compute_verdict_rows(conf)
    assert v["trial"].tolist() == ["c_low", "c_mid", "c_top"]  # by MAdds
    r = v.set_index("trial")
    assert r.loc["c_mid", "reference"] == "b_small" and r.loc["c_mid", "verdict"] == "better"
    assert r.loc["c_top", "reference"] == "b_small" and r.loc["c_top", "verdict"] == "not distinguishable"
    assert r.loc["c_low", "reference"] == "" and "no published variant" in r.loc["c_low", "verdict"]
    # a join of nas.verdicts' tables: every number is theirs
    t = conf.table.set_index("trial")
    vv = conf.verdicts.set_index("trial")
    for c in ("c_mid", "c_top"):
        assert r.loc[c, "diff_lo"] == vv.loc[c, "diff_lo"] and r.loc[c, "lo"] == t.loc[c, "lo"]
        assert r.loc[c, "reference_hi"] == t.loc["b_small", "hi"] and r.loc[c, "n_seeds"] == 3
        assert r.loc[c, "search_top1"] == t.loc[c, "search_top1"]
    dom = viz.compute_dominance_rows(conf)
    assert dom[["a", "b"]].values.tolist() == [["c_low", "b_small"]]
    assert (dom.loc[0, "a_madds_m"], dom.loc[0, "b_madds_m"]) == (140.0, 150.0) and dom.loc[0, "lo"] > 0
    h = viz.compute_headline(conf)
    assert (h.trial, h.reference, h.verdict) == ("c_top", "b_small", "not distinguishable")
    assert h.lo < h.mean < h.hi and h.n_seeds == 3 and h.eval_set == "test"
    assert (h.n_candidates, h.n_better, h.n_worse) == (3, 1, 0)
    problems = viz.compute_confirm_problems(df)
    assert problems[["trial", "seed", "status"]].values.tolist() == [["c_top", 3, "failed"]]
    assert viz.compute_headline(viz.confirm.V.compute_confirmation(R.empty_trials())) is None


def test_trust_meter_from_verdicts(confirmation):
    _, conf = confirmation
    tm = viz.compute_trust_meter(conf)
    tr = conf.trust
    assert (tm.tau, tm.lo, tm.hi, tm.n) == (tr.rank.tau, tr.rank.lo, tr.rank.hi, tr.rank.n) and tm.n == 5
    assert (tm.noise_sd, tm.noise_dof, tm.seeds) == (tr.noise_sd, tr.noise_dof, 3)
    assert (tm.rank_reading, tm.noise_reading) == (tr.rank_reading, tr.noise_reading)
    assert f"{tr.rank.tau:.2f}" in tm.rank_text and "over 5 architectures" in tm.rank_text
    assert f"{tr.noise_sd:.2f}" in tm.noise_text


def test_interval_text():
    from nas.viz.confirm import interval_text

    assert interval_text(79.6, 79.1, 80.1) == "79.60 [79.10, 80.10]"
    assert interval_text(1.2, -0.4, 2.0, sign=True) == "+1.20 [-0.40, +2.00]"
    assert "n < 2" in interval_text(79.6, math.nan, math.nan) and interval_text(math.nan, 1, 2) == "n/a"


def test_confirmed_front_figure(confirmation):
    df, conf = confirmation
    data = viz.compute_confirmed_front(df, conf, x_end=300.0)
    fig = viz.plot_confirmed_front(data, viz.BudgetLines(budget_m=300.0, min_m=240.0))
    assert isinstance(fig, go.Figure)
    by = {t.name.split(" (")[0]: t for t in fig.data}
    assert set(by) == {"search stage: one short run, val split", "front of confirmed means", "searched candidates",
                       "published variants"}
    cand, pub = by["searched candidates"], by["published variants"]
    assert list(cand.text) == ["c_low", "c_mid", "c_top"] and list(pub.text) == ["b_small", "b_big"]
    assert "test mean ± 95% CI, n = 3" in cand.name
    assert list(cand.error_y.array) == pytest.approx(data.points.loc[data.points["kind"] == "searched",
                                                                     "err_plus"].tolist())
    assert set(pub.marker.symbol) == {"diamond", "diamond-open"} and set(cand.marker.symbol) == {"circle"}
    assert by["search stage: one short run, val split"].marker.opacity < 1
    assert len(by["search stage: one short run, val split"].x) == 6
    assert "val split" in fig.layout.title.text and "95% CI" in fig.layout.title.text
    empty = viz.plot_confirmed_front(viz.compute_confirmed_front(R.empty_trials()))
    assert not empty.data and "no architecture confirmed yet" in empty.layout.annotations[0].text


def write_confirmed_run(run_dir: Path) -> pd.DataFrame:
    """A run folder holding `confirmed_frame` (a search with a confirmation stage)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.yaml").write_text(yaml.safe_dump({"name": run_dir.name, "budget_m": 300, "min_budget": 0.8,
                                                      "data": "synthetic-10", "proxy_hash": "p1a2b3"}))
    return R.write_trials(run_dir, confirmed_frame())


def test_dashboard_leads_with_the_confirmation(tmp_path, confirmation):
    _, conf = confirmation
    d = tmp_path / "confirmed"
    write_confirmed_run(d)
    text = viz.write_dashboard(d).read_text()
    assert text.count("Plotly.newPlot") == len(viz.FIGURES) + len(viz.CONFIRM_FIGURES)
    assert 'data-figure="confirmed_front"' in text
    assert 'data-section="verdicts"' in text and 'data-section="trust"' in text
    h = viz.compute_headline(conf)
    headline = f"{h.mean:.2f} [{h.lo:.2f}, {h.hi:.2f}]"
    assert headline in text and "not distinguishable from" in text
    # the confirmed headline comes before any search-stage number, which is labelled unconfirmed
    first = text.index("Headline candidate")
    assert first < text.index("search stage, unconfirmed") < text.index("Largest search-stage gain")
    assert first < text.index('data-figure="confirmed_front"') < text.index('data-figure="accuracy_vs_madds"')
    assert "best gain, pts (search, unconfirmed)" in text and "Unconfirmed.</b>" not in text
    # the verdicts table, the dominance claim and the trust meter's readings and numbers
    vt = text[text.index('data-section="verdicts"'):text.index('data-section="trust"')]
    for c in ("c_low", "c_mid", "c_top", "b_small", "better", "not distinguishable", "no published variant"):
        assert c in vt
    assert "dominates the published <b>b_small</b>" in vt
    tm = viz.compute_trust_meter(conf)
    import html as _html

    assert _html.escape(tm.rank_reading) in text and _html.escape(tm.noise_reading) in text
    assert tm.rank_text in text and 'class="gauge"' in text
    assert "confirm retraining OOM" in text
    # the Pareto table carries each front row's confirmed interval (every row of this search front was confirmed)
    pareto = text[text.index("Discovered Pareto-optimal variants"):]
    assert "confirmed top-1 (%) [95% CI]" in pareto and "not confirmed" not in pareto
    lo = conf.table.set_index("trial").loc["c_low"]
    assert f"{lo['mean']:.2f} [{lo['lo']:.2f}, {lo['hi']:.2f}]" in pareto


def test_dashboard_without_confirmation_says_unconfirmed(demo, tmp_path):
    text = viz.write_dashboard(demo.path, tmp_path / "plain.html").read_text()
    assert "Unconfirmed.</b>" in text and "single short proxy run" in text and "nas confirm" in text
    assert 'data-section="verdicts"' not in text and 'data-figure="confirmed_front"' not in text
    assert "best gain, pts (unconfirmed)" in text and "Headline candidate" not in text
    assert list(viz.build_figures(demo)) == list(viz.FIGURES)


def test_dashboard_of_a_confirmation_with_nothing_finished(tmp_path):
    d = tmp_path / "started"
    df = confirmed_frame()
    df = df[(df["stage"] == "search") | (df["status"] == "failed")]
    write_confirmed_run(d)
    R.write_trials(d, df)
    text = viz.write_dashboard(d).read_text()
    assert "no architecture has finished its confirmation yet" in text and "no architecture confirmed yet" in text
    assert "confirm retraining OOM" in text


def test_dashboard_reads_the_headline_on_its_seeds_that_chose_nothing(tmp_path):
    """Seeds 0-2 are every architecture's and chose the headline; 3 more seeds of its pair chose nothing, and the
    page's first sentence gives the pair's difference on those alone, as the summary does."""
    from nas.verdicts import compute_confirmation

    df = confirmed_frame()
    h = compute_confirmation(df).headline
    more = [r for r in df.to_dict("records") if r["stage"] == "confirm" and r["seed"] == 0
            and r["trial"] in (h["trial"], h["reference"]) and r["status"] == "completed"]
    extra = [{**r, "seed": s, "test_top1": r["test_top1"] + (1.0 + 0.1 * s if r["trial"] == h["trial"] else 0.0)}
             for r in more for s in (3, 4, 5)]
    df = R.normalize_trials(pd.concat([df, pd.DataFrame(extra)], ignore_index=True))
    u = compute_confirmation(df).headline_unchosen
    assert u.n == 3 and u.verdict == "better"
    d = tmp_path / "more"
    write_confirmed_run(d)
    R.write_trials(d, df)
    text = viz.write_dashboard(d).read_text()
    assert "On its 3 seeds that chose nothing (no selection bias):" in text
    plain = tmp_path / "plain"
    write_confirmed_run(plain)
    R.write_trials(plain, confirmed_frame())
    assert "chose nothing" not in viz.write_dashboard(plain).read_text()


def laddered_frame() -> pd.DataFrame:
    """confirmed_frame plus a 512-step rung (stage confirm@512) of c_top, c_mid and both baselines, 3 seeds:
    by hand, c_top leads c_mid there and its gain over b_small shrinks from +3.6 to under +1."""
    rows = confirmed_frame().to_dict("records")
    for r in rows:
        if r["stage"] == "confirm":
            r["steps"] = 128
    top = {"b_small": [80.0, 80.2, 80.1], "b_big": [81.0, 81.1, 80.9], "c_mid": [80.4, 80.5, 80.6],
           "c_top": [80.8, 80.9, 80.9]}
    fam = {"b_small": "Mobile-Former", "b_big": "MobileViT-v2", "c_mid": "hybrid-MF", "c_top": "hybrid-MF"}
    madds = {"b_small": 150.0, "b_big": 290.0, "c_mid": 200.0, "c_top": 280.0}
    for t, accs in top.items():
        for seed, a in enumerate(accs):
            rows.append(R.make_row(trial=t, name=t, kind="baseline" if t.startswith("b_") else "searched",
                                   madds_m=madds[t], family=fam[t], params_m=1.0, arch_id=t, stage="confirm@512",
                                   seed=seed, status="completed", val_top1=a - 20.0, test_top1=a, eval_set="test",
                                   steps=512, val_curve="[70.0, 79.0]"))
    return R.normalize_trials(pd.DataFrame(rows))


def test_the_top_rung_carries_the_verdicts_with_their_trend(tmp_path):
    from nas.search.ladder import rung_trials
    from nas.verdicts import compute_confirmation, ladder_rows

    df = laddered_frame()
    conf = compute_confirmation(df)
    assert conf.stage == "confirm@512" and conf.steps == 512 and [s for s, _ in conf.rungs] == ["confirm", "confirm@512"]
    v = conf.verdicts.set_index("trial")
    assert set(v.index) == {"c_mid", "c_top"} and (v["steps"] == 512).all()
    assert v.loc["c_top", "reference"] == "b_small" and bool(v.loc["c_top", "headline"])
    # c_top - b_small: +3.6 at 128 steps (noisy), +0.77 at 512: under half, same sign
    assert v.loc["c_top", "trend"] == "shrinks" and v.loc["c_top", "rungs"].startswith("128: interval [-0.82, +8.02] holds 0, n=3 (mean +3.60); 512: +0.77")
    lad = ladder_rows(df, conf.verdicts)
    assert sorted(lad[lad["trial"] == "c_top"]["steps"]) == [128, 512]
    # the first rung's choice of what the top rung retrains: the headline (c_top), no other family among the
    # confirmed searched ones with a reference... c_low is the other family (hybrid-ViT) but has no baseline
    # at <= its MAdds, so only c_top's two best references come with it
    picks = rung_trials(df)
    assert picks[0] == "c_top" and "b_small" in picks and "c_low" in picks
    # the trust meter's noise reads the top rung too: pooled over its 4 architectures x 3 seeds by hand,
    # sums of squares 0.02 + 0.02 + 0.02 + 0.02/3 over 8 degrees of freedom
    top = conf.trust.top
    assert (top.stage, top.steps, top.dof, top.seeds, top.most_seeds) == ("confirm@512", 512, 8, 3, 3)
    assert math.isclose(top.sd, math.sqrt((0.06 + 0.02 / 3) / 8), rel_tol=1e-6)
    assert f"SD {top.sd:.2f}" in top.reading and "with 3 paired seeds" in top.reading
    assert conf.trust.noise_dof != top.dof  # the first rung's noise is another reading
    from nas.cli.search import trust_lines

    lines = trust_lines(conf.trust)
    assert lines[-1].strip() == top.reading and "512 steps" in lines[-2]
    assert compute_confirmation(confirmed_frame()).trust.top is None  # one rung: nothing more to read
    assert trust_lines(compute_confirmation(confirmed_frame()).trust)[-1].strip().startswith("seed noise")
    tm = viz.compute_trust_meter(conf)
    assert tm.top == top and "at 512 steps" in tm.top_noise_text and f"{top.sd:.2f}" in tm.top_noise_text
    # the dashboard draws the ladder and the pair's curves
    figs = viz.build_figures(R.Run(path=tmp_path, config={"name": "ladder"}, trials=df,
                                   pareto=R.compute_pareto(df)), confirmation=conf)
    assert "ladder" in figs and "pair_curves" in figs
    ys = sorted(round(float(y), 2) for tr in figs["ladder"].data for y in tr.y)
    assert 0.77 in ys and 3.6 in ys
    # and the page shows the top rung's noise beside the first rung's
    d = tmp_path / "laddered"
    d.mkdir()
    (d / "run.yaml").write_text(yaml.safe_dump({"name": "laddered", "budget_m": 300, "data": "synthetic-10"}))
    R.write_trials(d, df)
    page = viz.write_dashboard(d).read_text()
    import html as _html

    trust = page[page.index('data-section="trust"'):]
    assert "seed noise floor at the top rung" in trust and _html.escape(top.reading) in trust
    assert _html.escape(tm.top_noise_text) in trust and _html.escape(tm.noise_reading) in trust


def test_the_headline_says_when_its_gap_still_shrank_on_the_last_climb():
    """The summary's hint to climb a rung reads the last climb, not the first rung: c_top - b_small is +3.6 at
    128 steps and +0.77 at 512 (shrinks on the last climb: hint), then +0.80 at 2,048 (trend first-to-top still
    'shrinks', but the last climb held: no hint)."""
    from nas.cli.search import climb_hint, confirmation_lines
    from nas.verdicts import compute_confirmation

    df = laddered_frame()
    conf = compute_confirmation(df)
    h = conf.headline
    assert h["trial"] == "c_top" and h["trend"] == h["last_trend"] == "shrinks"
    hint = climb_hint(h, conf.steps, "results/r1")
    assert len(hint) == 1 and "`nas confirm results/r1 --steps 2048`" in hint[0] and "at 512 steps" in hint[0]
    assert hint[0] in confirmation_lines(conf, 32, "results/r1")
    rows = df.to_dict("records")
    for t, accs in {"b_small": [80.0, 80.2, 80.1], "c_top": [80.8, 81.0, 80.9]}.items():
        for seed, a in enumerate(accs):
            rows.append(R.make_row(trial=t, name=t, kind="baseline" if t.startswith("b_") else "searched",
                                   madds_m={"b_small": 150.0, "c_top": 280.0}[t], family="hybrid-MF", params_m=1.0,
                                   arch_id=t, stage="confirm@2048", seed=seed, status="completed", val_top1=60.0,
                                   test_top1=a, eval_set="test", steps=2048, val_curve="[70.0, 79.0]"))
    conf3 = compute_confirmation(R.normalize_trials(pd.DataFrame(rows)))
    h3 = conf3.headline
    assert conf3.steps == 2048 and h3["trial"] == "c_top" and h3["rungs"].count(";") == 2
    assert h3["trend"] == "shrinks" and h3["last_trend"] == "holds"
    assert climb_hint(h3, conf3.steps) == []
    assert not any("climbs a rung" in line for line in confirmation_lines(conf3, 32, "results/r1"))


def test_an_unresolved_difference_leads_with_its_interval():
    """Where a paired difference's interval holds 0 the summary and the rung trend print the interval first and
    the mean after it, so a gap inside the noise is never the first number read; a resolved one keeps its gap
    first. By hand: c_mid - b_small at 512 steps pairs to +0.9, -0.6, +0.3 (mean +0.20, SD 0.755, 95% t half-width 4.303 x 0.755 / sqrt 3 = 1.88)."""
    from nas.cli.search import confirmation_lines
    from nas.stats import diff_text
    from nas.verdicts import compute_confirmation

    assert diff_text(1.25, 0.82, 1.68, 3) == "+1.25 [+0.82, +1.68], n=3"
    assert diff_text(2.02, -4.65, 8.70, 2, unit=" points") == "interval [-4.65, +8.70] points holds 0, n=2 (mean +2.02)"
    assert diff_text(-3.0, -5.0, -1.0, 4) == "-3.00 [-5.00, -1.00], n=4"
    assert diff_text(9.07, math.nan, math.nan, 1) == "+9.07, n=1, no interval"
    df = laddered_frame()
    noisy = (df["trial"] == "c_mid") & (df["stage"] == "confirm@512")
    df.loc[noisy, "test_top1"] = [80.9 if s == 0 else 79.6 if s == 1 else 80.4 for s in df.loc[noisy, "seed"]]
    conf = compute_confirmation(df)
    lines = confirmation_lines(conf, 32, "results/r1")
    mid = [ln for ln in lines if ln.startswith("  c_mid vs b_small: ")]
    assert len(mid) == 1 and mid[0].startswith("  c_mid vs b_small: interval [-1.68, +2.08] points holds 0, n=3 (mean +0.20)")
    assert mid[0].split("\n")[0].endswith(": NOT DISTINGUISHABLE")
    head = [ln for ln in lines if ln.startswith("  HEADLINE c_top vs b_small: +0.77 points [")]
    assert len(head) == 1 and ", n=3, half-width " in head[0]
    rungs = conf.verdicts.set_index("trial").loc["c_mid", "rungs"]
    assert "512: interval [-1.68, +2.08] holds 0, n=3 (mean +0.20)" in rungs
