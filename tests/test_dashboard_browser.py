"""The dashboard in a real browser: write a run folder through nas.results, run `nas dashboard`, open the
page in headless Chromium and check that every figure drew, with no JavaScript error and the expected
points (also for a run with a confirmation stage); save a screenshot (under the test's tmp dir, and under $NAS_SCREENSHOT_DIR when set).

The page stamps its own state onto <body> once every plot has drawn (data-rendered, data-js-errors, and
per figure data-traces / data-points / data-bars / data-parcoords); Chromium's --dump-dom after a
virtual-time budget returns that DOM. Skipped only when no Chromium is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nas import results as R
from nas import viz

sys.path.insert(0, str(Path(__file__).parent))
from test_viz import write_confirmed_run, write_demo_run  # noqa: E402

CHROMIUM = next((p for p in (os.environ.get("NAS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and os.path.isfile(p)), None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed "
                                                   "(/usr/bin/chromium): cannot render the dashboard in a browser")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def chromium(page: Path, tmp: Path, *args: str) -> str:
    """Run headless Chromium on `page` with a fresh profile; return its stdout."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=30000", *args, page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


def figure_attrs(dom: str) -> dict[str, dict[str, str]]:
    out = {}
    for m in re.finditer(r'<div class="panel" data-figure="(\w+)"([^>]*)>', dom):
        out[m.group(1)] = dict(re.findall(r'data-([\w-]+)="([^"]*)"', m.group(2)))
    return out


def screenshot(page: Path, tmp: Path, name: str, size: str = "1400,3300") -> Path:
    shot = tmp / f"{name}.png"
    chromium(page, tmp, f"--window-size={size}", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 50_000  # a drawn page, not a blank one
    if os.environ.get("NAS_SCREENSHOT_DIR"):
        d = Path(os.environ["NAS_SCREENSHOT_DIR"])
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, d / shot.name)
    return shot


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nas", "dashboard", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_dashboard_renders_in_chromium(tmp_path):
    run_dir = tmp_path / "results" / "mf300"
    write_demo_run(run_dir, n=40, with_study=True)
    res = run_cli(str(run_dir), "--png", "png", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    page = tmp_path / "dashboards" / "mf300.html"
    assert page.is_file() and str(page.relative_to(tmp_path)) in res.stdout
    # --png: one image per main figure, written by kaleido through the same Chromium
    for name in viz.FIGURES:
        png = tmp_path / "png" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name

    dom = chromium(page, tmp_path, "--dump-dom")
    body = body_attrs(dom)
    assert body.get("data-rendered") == "ok", body
    assert body["data-js-errors"] == "0", body["data-js-error-text"]
    assert body["data-figures"] == str(len(viz.FIGURES))
    figs = figure_attrs(dom)
    assert set(figs) == set(viz.FIGURES)

    run = R.load_run(run_dir)
    t = run.trials
    ok = R.eligible_mask(t)
    # every trained trial once (coloured by family), each baseline diamond, and a ring on each Pareto point
    assert int(figs["accuracy_vs_madds"]["points"]) == int(ok.sum()) + len(run.pareto)
    assert int(figs["reference"]["points"]) == 23 + 23  # published and our count of every variant
    imp = viz.compute_importance(run)
    assert int(figs["importance"]["bars"]) == len(imp.values) > 0
    assert int(figs["parallel"]["parcoords"]) == len(viz.compute_parallel(t))
    curves = viz.compute_curves(t)
    searched = [c for c in curves if c["kind"] == "searched"]
    # one line trace + one end-marker trace per status, one trace per baseline; a marker per searched curve
    n_status = len({c["status"] for c in searched})
    assert int(figs["curves"]["traces"]) == 2 * n_status + len(curves) - len(searched)
    assert int(figs["curves"]["points"]) == len(searched)
    # the tables made it into the rendered page
    for trial in run.pareto.loc[run.pareto["kind"] == "searched", "trial"]:
        assert f"variants/{trial}.yaml" in dom
    assert "CUDA out of memory" in dom

    screenshot(page, tmp_path, "dashboard_mf300")


def test_compare_page_renders_in_chromium(tmp_path):
    a, b = tmp_path / "results" / "a300", tmp_path / "results" / "b250"
    write_demo_run(a, n=24, seed=0)
    write_demo_run(b, n=24, seed=5, budget_m=250)
    res = run_cli("--compare", str(a), str(b), "-o", "cmp.html", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    page = tmp_path / "cmp.html"
    dom = chromium(page, tmp_path, "--dump-dom")
    body = body_attrs(dom)
    assert body.get("data-rendered") == "ok" and body["data-js-errors"] == "0", body
    fig = figure_attrs(dom)["compare"]
    runs = [R.load_run(a), R.load_run(b)]
    n_points = sum(int(R.eligible_mask(r.trials).sum()) + len(r.pareto) for r in runs)
    assert int(fig["points"]) == n_points
    screenshot(page, tmp_path, "dashboard_compare", size="1400,1100")


def test_confirmed_dashboard_renders_in_chromium(tmp_path):
    """A run with a confirmation stage: the confirmed front draws first (search points faded under the
    confirmed means), the verdicts table and the trust meter are on the page."""
    run_dir = tmp_path / "results" / "confirmed"
    write_confirmed_run(run_dir)
    page = viz.write_dashboard(run_dir, tmp_path / "confirmed.html")
    dom = chromium(page, tmp_path, "--dump-dom")
    body = body_attrs(dom)
    assert body.get("data-rendered") == "ok", body
    assert body["data-js-errors"] == "0", body["data-js-error-text"]
    assert body["data-figures"] == str(len(viz.FIGURES) + len(viz.CONFIRM_FIGURES))
    figs = figure_attrs(dom)
    data = viz.compute_confirmed_front(R.load_run(run_dir).trials)
    assert int(figs["confirmed_front"]["points"]) == len(data.search) + len(data.points)
    assert 'data-section="verdicts"' in dom and 'data-section="trust"' in dom
    screenshot(page, tmp_path, "dashboard_confirmed", size="1400,1900")
