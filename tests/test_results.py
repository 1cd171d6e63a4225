"""The run folder and trials schema (nas.results): round trips, atomic writes, the Pareto mask on
hand-made frames (ties, everything dominated, one point, NaN rows, failed trials), the gain over the
published variants, and load_run's errors."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pandas as pd
import pytest

from nas import results as R
from nas.errors import RunError


def frame(points, **common) -> pd.DataFrame:
    """Trials from (trial, madds_m, val_top1[, status[, kind]]) tuples, through make_row."""
    rows = []
    for p in points:
        t, m, v, *rest = p
        status = rest[0] if rest else "completed"
        kind = rest[1] if len(rest) > 1 else "searched"
        rows.append(R.make_row(trial=t, madds_m=m, val_top1=v, status=status, kind=kind, **common))
    return R.normalize_trials(pd.DataFrame(rows))


def front(points) -> list[str]:
    df = frame(points)
    return sorted(df.loc[R.pareto_mask(df), "trial"])


# ---------------------------------------------------------------------------------------------------------
# schema


def test_schema_columns_and_statuses():
    assert R.TRIAL_COLUMNS[:6] == ["trial", "stage", "seed", "number", "kind", "name"]
    assert len(R.TRIAL_COLUMNS) == len(set(R.TRIAL_COLUMNS))
    for c in ("arch_id", "family", "fusion", "attention", "madds_m", "params_m", "budget_m", "status", "error",
              "val_top1", "best_val_top1", "val_curve", "epochs_done", "wall_s", "images_per_s", "published_top1",
              "published_madds_m", "config_path", "rebuild_cmd", "proxy_hash", "dataset", "started_at",
              "finished_at", "test_top1", "eval_set"):
        assert c in R.TRIAL_COLUMNS
    assert set(R.STATUSES) == {"completed", "early_stopped", "failed", "over_budget", "nan", "running"}
    e = R.empty_trials(knobs=["num_tokens", "knob_dim"])
    assert len(e) == 0 and list(e.columns[10:12]) == ["knob_num_tokens", "knob_dim"]
    assert e["number"].dtype == "int64" and e["madds_m"].dtype == "float64"


def test_make_row_defaults_and_typo():
    r = R.make_row(trial="t0001", knob_dim=64)
    assert r["name"] == "t0001" and r["number"] == -1 and r["status"] == "running" and r["val_curve"] == "[]"
    assert math.isnan(r["val_top1"]) and r["error"] == ""
    with pytest.raises(RunError, match="unknown trial column 'val_top'"):
        R.make_row(trial="t", val_top=3.0)


def test_normalize_orders_knobs_types_and_keeps_extra():
    df = pd.DataFrame([{"trial": "a", "knob_fusion": "v1", "knob_dim": 64, "madds_m": "12.5", "extra": 1},
                       {"trial": "b", "knob_fusion": None, "knob_dim": None, "number": 3}])
    n = R.normalize_trials(df)
    pos = R.TRIAL_COLUMNS.index("attention") + 1
    assert list(n.columns[pos:pos + 2]) == ["knob_fusion", "knob_dim"] and n.columns[-1] == "extra"
    assert n["knob_dim"].dtype == "float64" and n["knob_fusion"].tolist() == ["v1", None]
    assert n["madds_m"].tolist()[0] == 12.5 and n["number"].tolist() == [-1, 3]
    assert n["kind"].tolist() == ["searched", "searched"] and n["error"].tolist() == ["", ""]


def test_write_read_round_trip_parquet_and_csv(tmp_path):
    df = frame([("t0", 100.0, 50.0), ("t1", 120.0, math.nan, "failed"), ("t2", 90.0, math.nan, "nan")],
               dataset="synthetic-10")
    df["knob_fusion"] = ["v3", None, "none"]  # the strings "nan" and "none" must survive the CSV
    df["knob_num_tokens"] = [6, np.nan, 4]
    df.loc[1, "error"] = 'RuntimeError: "quoted", with commas\nand a newline'
    written = R.write_trials(tmp_path, df)
    assert (tmp_path / "trials.parquet").is_file() and (tmp_path / "trials.csv").is_file()
    back = R.read_trials(tmp_path)
    pd.testing.assert_frame_equal(back, written)
    (tmp_path / "trials.parquet").unlink()  # CSV alone gives the same frame
    pd.testing.assert_frame_equal(R.read_trials(tmp_path), written)
    assert written["status"].tolist()[2] == "nan" and written["knob_fusion"].tolist()[2] == "none"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def _rewrite(run_dir: str, stop) -> None:
    i = 0
    while not stop.is_set():
        R.write_trials(run_dir, frame([(f"t{k}", 100.0 + k, 50.0) for k in range(5 + i % 50)]))
        i += 1


def test_read_trials_while_a_run_rewrites_them(tmp_path):
    """A dashboard or export reads trials.parquet while a search replaces it after every job: each read sees
    one whole file (a path read that opens the file twice mixed two of them ~1 read in 7 here)."""
    import multiprocessing as mp

    R.write_trials(tmp_path, frame([("t0", 100.0, 50.0)]))
    ctx = mp.get_context("spawn")  # no fork of a process that may hold torch's threads
    stop = ctx.Event()
    writer = ctx.Process(target=_rewrite, args=(str(tmp_path), stop))
    writer.start()
    try:
        t, reads = time.time(), 0
        while time.time() - t < 4 or reads < 200:
            assert len(R.read_trials(tmp_path)) >= 1
            reads += 1
    finally:
        stop.set()
        writer.join(30)


def test_write_is_atomic_on_failure(tmp_path):
    R.write_trials(tmp_path, frame([("t0", 1.0, 2.0)]))
    before = (tmp_path / "trials.parquet").read_bytes()

    class Boom(pd.DataFrame):
        def to_parquet(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError):
        R.atomic_write(tmp_path / "trials.parquet", lambda t: Boom(frame([("t9", 1.0, 2.0)])).to_parquet(t))
    assert (tmp_path / "trials.parquet").read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_upsert_replaces_by_trial(tmp_path):
    (tmp_path / "run.yaml").write_text("name: r\n")
    R.upsert_trial(tmp_path, R.make_row(trial="t0", status="running"))
    R.upsert_trial(tmp_path, R.make_row(trial="t1", status="running"))
    df = R.upsert_trial(tmp_path, R.make_row(trial="t0", status="completed", val_top1=40.0, madds_m=10.0))
    assert sorted(df["trial"]) == ["t0", "t1"]
    assert df.set_index("trial").loc["t0", "status"] == "completed"
    assert len(R.read_trials(tmp_path)) == 2


def test_pending_rows_are_read_with_the_files_and_cleared_by_the_next_write(tmp_path):
    """A one-shot stage appends each finished row to trials.pending.jsonl between rewrites of the trials files:
    a reader sees them (a pending row replaces the file's row of the same trial, stage and seed), a line a kill
    cut short is skipped, and the next rewrite, which holds them, removes the file."""
    (tmp_path / "run.yaml").write_text("name: r\n")
    R.write_trials(tmp_path, frame([("t0", 100.0, 50.0, "running"), ("t1", 120.0, 55.0)]))
    R.append_pending(tmp_path, R.make_row(trial="t0", madds_m=100.0, val_top1=61.5, status="completed",
                                          params_m=np.float64(1.25), seed=np.int64(0)))
    R.append_pending(tmp_path, R.make_row(trial="t2", madds_m=90.0, val_top1=float("nan"), status="over_budget"))
    with open(tmp_path / R.TRIALS_PENDING, "a") as f:
        f.write('{"trial": "t3", "status": "compl')  # the kill's cut line: that job was never told to Optuna
    df = R.read_trials(tmp_path).set_index("trial")
    assert sorted(df.index) == ["t0", "t1", "t2"]
    assert df.loc["t0", "status"] == "completed" and df.loc["t0", "val_top1"] == 61.5
    assert df.loc["t0", "params_m"] == 1.25 and math.isnan(df.loc["t2", "val_top1"])
    assert len(pd.read_parquet(tmp_path / "trials.parquet")) == 2  # the files themselves are as written
    R.write_trials(tmp_path, df.reset_index())
    assert not (tmp_path / R.TRIALS_PENDING).exists()
    assert sorted(R.read_trials(tmp_path)["trial"]) == ["t0", "t1", "t2"]
    assert sorted(pd.read_csv(tmp_path / "trials.csv")["trial"]) == ["t0", "t1", "t2"]


def test_a_row_appended_after_a_cut_line_is_kept(tmp_path):
    """A resumed stage appends its next row after the line a kill cut short: the row starts a line of its own
    (glued to the cut line it would be skipped with it), and the cut line stays skipped."""
    R.append_pending(tmp_path, R.make_row(trial="t0", madds_m=100.0, val_top1=40.0, status="completed"))
    with open(tmp_path / R.TRIALS_PENDING, "a") as f:
        f.write('{"trial": "t1", "status": "compl')
    R.append_pending(tmp_path, R.make_row(trial="t1", madds_m=90.0, val_top1=45.0, status="completed"))
    R.append_pending(tmp_path, R.make_row(trial="t2", madds_m=80.0, val_top1=50.0, status="completed"))
    df = R.read_trials(tmp_path).set_index("trial")
    assert sorted(df.index) == ["t0", "t1", "t2"] and df.loc["t1", "val_top1"] == 45.0
    assert len((tmp_path / R.TRIALS_PENDING).read_text().splitlines()) == 4


def test_a_run_with_pending_rows_only_is_a_run(tmp_path):
    """A one-shot stage killed before its first rewrite leaves rows in the pending file alone: they are read."""
    R.append_pending(tmp_path, R.make_row(trial="t0", madds_m=100.0, val_top1=40.0, status="completed"))
    assert list(R.read_trials(tmp_path)["trial"]) == ["t0"]


# ---------------------------------------------------------------------------------------------------------
# Pareto mask


def test_pareto_basic_staircase():
    pts = [("a", 100, 50), ("b", 200, 60), ("c", 150, 55), ("d", 180, 54), ("e", 300, 59)]
    assert front(pts) == ["a", "b", "c"]


def test_pareto_identical_points_are_all_kept():
    assert front([("a", 100, 50), ("b", 100, 50), ("c", 200, 40)]) == ["a", "b"]


def test_pareto_ties_on_one_axis():
    # same MAdds: only the more accurate; same accuracy: only the cheaper
    assert front([("a", 100, 50), ("b", 100, 45), ("c", 150, 50), ("d", 150, 60)]) == ["a", "d"]


def test_pareto_one_point_and_all_dominated_by_one():
    assert front([("solo", 10, 1)]) == ["solo"]
    assert front([("best", 10, 90), ("x", 20, 80), ("y", 30, 70), ("z", 10, 80)]) == ["best"]


def test_pareto_nan_failed_and_running_rows_never_on_front():
    pts = [("ok", 200, 50), ("nan_acc", 100, math.nan, "completed"), ("nan_madds", math.nan, 99),
           ("failed", 50, 99, "failed"), ("over", 10, 99, "over_budget"), ("run", 10, 99, "running"),
           ("nan_status", 10, 99, "nan"), ("es", 150, 45, "early_stopped"), ("inf", math.inf, 100)]
    assert front(pts) == ["es", "ok"]


def test_pareto_empty_and_all_ineligible():
    assert R.pareto_mask(R.empty_trials()).tolist() == []
    df = frame([("a", 1, math.nan), ("b", 2, 3, "failed")])
    assert R.pareto_mask(df).tolist() == [False, False]


def test_pareto_is_pure_and_keeps_index():
    df = frame([("a", 100, 50), ("b", 200, 40)]).set_axis([7, 3])
    before = df.copy()
    m = R.pareto_mask(df)
    assert m.index.tolist() == [7, 3] and m.tolist() == [True, False]
    pd.testing.assert_frame_equal(df, before)


def test_pareto_matches_brute_force_on_random_frames():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 40))
        m = rng.integers(1, 8, n).astype(float) * 10  # coarse grid: many ties
        v = rng.integers(1, 8, n).astype(float)
        v[rng.random(n) < 0.1] = np.nan
        st = np.where(rng.random(n) < 0.15, "failed", "completed")
        df = frame([(f"t{i}", m[i], v[i], st[i]) for i in range(n)])
        ok = (st != "failed") & np.isfinite(v)
        brute = [bool(ok[i] and not any(ok[j] and m[j] <= m[i] and v[j] >= v[i] and (m[j] < m[i] or v[j] > v[i])
                                        for j in range(n))) for i in range(n)]
        assert R.pareto_mask(df).tolist() == brute


# ---------------------------------------------------------------------------------------------------------
# gain over the published variants


def test_gain_vs_published():
    df = frame([("b1", 100, 40, "completed", "baseline"), ("b2", 200, 50, "completed", "baseline"),
                ("b3", 250, 70, "failed", "baseline"),  # a failed baseline is no reference
                ("s_cheap", 50, 45), ("s_mid", 150, 44), ("s_eq", 200, 53), ("s_big", 400, 49),
                ("s_nan", 300, math.nan)])
    g = dict(zip(df["trial"], R.gain_vs_published(df)))
    assert math.isnan(g["s_cheap"])  # no baseline at or below 50 M
    assert g["s_mid"] == pytest.approx(4.0)  # vs b1
    assert g["s_eq"] == pytest.approx(3.0)  # equal MAdds counts: vs b2
    assert g["s_big"] == pytest.approx(-1.0)
    assert math.isnan(g["s_nan"])
    assert math.isnan(g["b1"]) and g["b2"] == pytest.approx(10.0)  # a baseline never against itself


def test_write_pareto_rows_sorted_with_gain(tmp_path):
    df = frame([("b1", 100, 40, "completed", "baseline"), ("s1", 90, 41), ("s2", 150, 50), ("s3", 160, 45)])
    f = R.write_pareto(tmp_path, df)
    assert f["trial"].tolist() == ["s1", "s2"]  # b1 is dominated by s1 (cheaper and better)
    assert math.isnan(f.loc[0, "gain_vs_published"]) and f.loc[1, "gain_vs_published"] == pytest.approx(10.0)
    back = pd.read_csv(tmp_path / "pareto.csv")
    assert back["trial"].tolist() == ["s1", "s2"] and "gain_vs_published" in back.columns
    assert list(back.columns[: len(R.TRIAL_COLUMNS)]) == R.TRIAL_COLUMNS


# ---------------------------------------------------------------------------------------------------------
# load_run


def test_load_run(tmp_path):
    (tmp_path / "run.yaml").write_text("name: mf300\nbudget_m: 300\nobjective: top1\n")
    r = R.load_run(tmp_path)
    assert r.name == "mf300" and r.config["budget_m"] == 300 and len(r.trials) == 0 and len(r.pareto) == 0
    R.write_trials(tmp_path, frame([("a", 100, 50), ("b", 200, 40)]))
    r = R.load_run(tmp_path)
    assert len(r.trials) == 2 and r.pareto["trial"].tolist() == ["a"]


def test_load_run_errors(tmp_path):
    with pytest.raises(RunError, match="no run folder at") as e:
        R.load_run(tmp_path / "missing")
    assert "results/<name>" in e.value.hint
    with pytest.raises(RunError, match="is not a run folder"):
        R.load_run(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        R.load_run(tmp_path / "f.txt")
    (tmp_path / "run.yaml").write_text("name: [unclosed\n")
    with pytest.raises(RunError, match="malformed"):
        R.load_run(tmp_path)
    (tmp_path / "run.yaml").write_text("- a list\n")
    with pytest.raises(RunError, match="must be a mapping"):
        R.load_run(tmp_path)
    (tmp_path / "run.yaml").write_text("name: x\n")
    (tmp_path / "trials.parquet").write_bytes(b"not parquet")
    with pytest.raises(RunError, match="cannot read the trials"):
        R.load_run(tmp_path)
