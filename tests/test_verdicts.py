"""The statistics behind the printed claims (nas.stats) and the run-level verdicts (nas.verdicts), on data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nas import results as R
from nas import stats as S
from nas import verdicts as V


def test_t_interval_matches_the_textbook():
    # mean 1, sd 1, n 4: t(0.975, 3) = 3.182 -> half-width 1.591
    lo, hi = S.t_interval(1.0, 1.0, 4)
    assert math.isclose(hi - 1.0, 3.1824 / 2, rel_tol=1e-3) and math.isclose(lo, 2 - hi)
    assert all(math.isnan(v) for v in S.t_interval(1.0, float("nan"), 1))


def test_paired_diff_pairs_by_seed_and_gives_verdicts():
    a = {0: 80.0, 1: 81.0, 2: 82.0}
    b = {0: 78.0, 1: 78.5, 2: 80.5, 7: 99.0}  # seed 7 has no partner: ignored
    d = S.paired_diff(a, b)
    assert d.n == 3 and math.isclose(d.mean, 2.0)
    assert d.lo > 0 and d.verdict == "better"
    assert S.paired_diff(b, a).verdict == "worse"
    noisy = S.paired_diff({0: 80.0, 1: 75.0, 2: 85.0}, {0: 79.0, 1: 80.0, 2: 78.0})
    assert noisy.lo < 0 < noisy.hi and noisy.verdict == "not distinguishable"
    one = S.paired_diff({0: 90.0}, {0: 10.0})
    assert one.n == 1 and one.verdict == "not distinguishable" and math.isnan(one.lo)


def test_pairing_removes_the_shared_seed_effect():
    """Two architectures that share a large per-seed effect: paired, the interval is narrow; unpaired it
    would span zero."""
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 5, 6)
    a = {s: 80 + seed_effect[s] + 1.0 + rng.normal(0, 0.1) for s in range(6)}
    b = {s: 80 + seed_effect[s] + rng.normal(0, 0.1) for s in range(6)}
    assert S.paired_diff(a, b).verdict == "better"
    sa, sb = S.summarize(list(a.values())), S.summarize(list(b.values()))
    assert sa.ci[0] < sb.ci[1]  # the per-architecture intervals overlap


def test_kendall_tau_and_bootstrap_interval():
    x = list(range(10))
    r = S.rank_agreement(x, x, resamples=300)
    assert math.isclose(r.tau, 1.0) and r.n == 10 and r.lo > 0.8
    r = S.rank_agreement(x, x[::-1], resamples=300)
    assert math.isclose(r.tau, -1.0)
    assert math.isnan(S.kendall_tau([1, 2], [1, 2]))
    rng = np.random.default_rng(1)
    noise = S.rank_agreement(rng.normal(size=30), rng.normal(size=30), resamples=500)
    assert noise.lo < 0 < noise.hi
    assert "not shown to agree" in S.reading_of_tau(noise)


def test_pooled_sd():
    sd, dof = S.pooled_sd([[1.0, 3.0], [10.0, 12.0, 14.0]])
    assert dof == 3 and math.isclose(sd, math.sqrt((2 + 8) / 3))
    assert "SD" in S.reading_of_noise(sd, 3, dof)


def _rows() -> pd.DataFrame:
    rows = []

    def add(trial, kind, madds, search, accs, family="hybrid-MF", macro="mobile_former"):
        base = dict(trial=trial, kind=kind, madds_m=madds, family=family, params_m=1.0, arch_id=trial)
        if kind == "searched":
            base["knob_macro"] = macro
        rows.append(R.make_row(**base, stage="search", seed=0, status="completed", val_top1=search))
        for s, a in enumerate(accs):
            rows.append(R.make_row(**base, stage="confirm", seed=s, status="completed", val_top1=a - 20.0,
                                   test_top1=a, eval_set="test"))

    add("mf_small", "baseline", 150.0, 60.0, [78.0, 78.4, 77.8], family="Mobile-Former")
    add("mf_big", "baseline", 290.0, 62.0, [80.0, 80.2, 79.9], family="Mobile-Former")
    add("t0001", "searched", 200.0, 70.0, [79.5, 79.9, 79.4])           # better than mf_small (150M)
    add("t0002", "searched", 280.0, 65.0, [78.0, 81.0, 77.0])           # noisy vs mf_small
    add("t0003", "searched", 140.0, 55.0, [80.5, 80.9, 80.6], family="hybrid-ViT", macro="mobilevit")
    rows.append(R.make_row(trial="t0004", kind="searched", stage="search", status="over_budget", madds_m=400.0))
    return R.normalize_trials(pd.DataFrame(rows))


def test_confirmed_table_verdicts_and_dominance():
    df = _rows()
    conf = V.compute_confirmation(df)
    t = conf.table.set_index("trial")
    assert set(t.index) == {"mf_small", "mf_big", "t0001", "t0002", "t0003"}
    assert t.loc["t0001", "n"] == 3 and math.isclose(t.loc["t0001", "mean"], np.mean([79.5, 79.9, 79.4]))
    assert t.loc["t0001", "lo"] < t.loc["t0001", "mean"] < t.loc["t0001", "hi"]
    assert t.loc["t0001", "search_top1"] == 70.0 and t.loc["t0003", "macro"] == "mobilevit"
    v = conf.verdicts.set_index("trial")
    assert v.loc["t0001", "reference"] == "mf_small" and v.loc["t0001", "verdict"] == "better"
    assert v.loc["t0002", "reference"] == "mf_small" and v.loc["t0002", "verdict"] == "not distinguishable"
    assert v.loc["t0003", "reference"] == "" and "no published variant" in v.loc["t0003", "verdict"]
    claims = {(d.a, d.b) for d in conf.dominance}
    # t0003 (140M) beats both baselines with fewer MAdds; t0001 (200M) is below mf_big's 290M but not above it
    assert claims == {("t0003", "mf_small"), ("t0003", "mf_big")}
    # the search front is unchanged by confirm rows; pareto.csv marks what was confirmed
    front = V.mark_front(R.compute_pareto(df), df)
    assert front["confirmed"].all() and (front["confirmed_n"] == 3).all()
    assert len(R.compute_pareto(df)) == len(R.compute_pareto(R.search_stage(df)))


def test_dominance_claims_hold_together_at_95_percent():
    """Four candidate x published pairs are tested on one rung, so each interval is taken at 1 - 5%/4
    (Bonferroni): c1's +1.0 over b1 (95% interval [+0.25, +1.75] on its own) is not claimed, c2's +5.0 is."""
    rows = []
    for trial, kind, madds, accs in (("b1", "baseline", 150.0, [70.0, 70.0, 70.0]),
                                     ("b2", "baseline", 300.0, [80.0, 80.0, 80.0]),
                                     ("c1", "searched", 100.0, [70.7, 71.0, 71.3]),
                                     ("c2", "searched", 120.0, [75.0, 75.2, 74.8])):
        base = dict(trial=trial, kind=kind, madds_m=madds, family="f", params_m=1.0, arch_id=trial)
        rows.append(R.make_row(**base, stage="search", seed=0, status="completed", val_top1=50.0))
        rows += [R.make_row(**base, stage="confirm", seed=s, status="completed", val_top1=50.0, test_top1=a,
                            eval_set="test") for s, a in enumerate(accs)]
    df = R.normalize_trials(pd.DataFrame(rows))
    alone = S.paired_diff({0: 70.7, 1: 71.0, 2: 71.3}, {0: 70.0, 1: 70.0, 2: 70.0})
    assert alone.verdict == "better" and alone.lo == pytest.approx(0.255, abs=0.01)
    [d] = V.compute_confirmation(df).dominance
    assert (d.a, d.b, d.tests, d.level) == ("c2", "b1", 4, pytest.approx(0.9875))
    assert d.lo > 0 and d.hi - d.lo > 2 * (S.paired_diff({0: 75.0, 1: 75.2, 2: 74.8}, {0: 70.0, 1: 70.0, 2: 70.0}).hi - 5.0)
    assert d.text() == ("c2 dominates b1: no more MAdds and +5.00 [+3.98, +6.02] points, n=3 "
                        "(98.75% interval, Bonferroni over 4 pairs)")


def test_headline_is_the_best_candidate_with_a_published_reference():
    """t0003 has the highest confirmed mean but no published variant at <= its MAdds: the headline is
    t0001 (79.6 vs t0002's 78.7), with its interval's half-width."""
    conf = V.compute_confirmation(_rows())
    h = conf.headline
    assert h["trial"] == "t0001" and h["reference"] == "mf_small" and h["n"] == 3
    assert math.isclose(V.half_width(h), (h["diff_hi"] - h["diff_lo"]) / 2) and V.half_width(h) > 0
    assert V.headline(conf.verdicts.iloc[0:0]) is None
    assert V.half_width({"diff_lo": math.nan, "diff_hi": math.nan}) == math.inf


def test_choices_read_validation_never_the_test_split():
    """Each reference, the headline and what the top rung retrains are chosen on the confirm jobs' val_top1; the
    verdicts are measured on test_top1. Here validation and test disagree: by test, mf_big (82) would be t0002's
    reference and t0002 (83.5) the headline; by validation, mf_small (61) is the reference and t0001 (62) the
    headline, and the diff printed is still the test split's."""
    from nas.search.ladder import rung_trials

    rows = []

    def add(trial, kind, madds, vals, tests, family="hybrid-MF"):
        base = dict(trial=trial, kind=kind, madds_m=madds, family=family, params_m=1.0, arch_id=trial)
        if kind == "searched":
            base["knob_macro"] = "mobile_former"
        rows.append(R.make_row(**base, stage="search", seed=0, status="completed", val_top1=40.0))
        rows.extend(R.make_row(**base, stage="confirm", seed=s, status="completed", val_top1=v, test_top1=t,
                               eval_set="test") for s, (v, t) in enumerate(zip(vals, tests)))

    add("mf_small", "baseline", 150.0, [61.0, 61.2], [80.0, 80.4], family="Mobile-Former")
    add("mf_big", "baseline", 250.0, [59.0, 59.4], [82.0, 82.2], family="Mobile-Former")
    add("t0001", "searched", 260.0, [62.0, 62.4], [81.0, 81.6])
    add("t0002", "searched", 270.0, [58.0, 58.2], [83.5, 83.7])
    df = R.normalize_trials(pd.DataFrame(rows))
    assert V.selection_scores(df)["t0001"] == {0: 62.0, 1: 62.4}
    v = V.compute_confirmation(df).verdicts.set_index("trial")
    assert v.loc["t0001", "reference"] == "mf_small" and v.loc["t0002", "reference"] == "mf_small"
    assert bool(v.loc["t0001", "headline"]) and not bool(v.loc["t0002", "headline"])
    assert v.loc["t0001", "diff"] == pytest.approx(1.1)  # test: (81.0 - 80.0 + 81.6 - 80.4) / 2
    assert rung_trials(df) == ["t0001", "mf_small", "mf_big"]  # the references ordered by validation too
    # a run without a test split measures on validation, and chooses on it as before
    no_test = df.assign(test_top1=float("nan"), eval_set="val")
    h = V.compute_confirmation(no_test).headline
    assert h["trial"] == "t0001" and h["reference"] == "mf_small" and h["diff"] == pytest.approx(1.1)


def test_the_headline_is_also_read_on_the_seeds_that_chose_nothing():
    """Seeds 0 and 1 (every architecture's) choose the headline; the pair's seeds 2-4 choose nothing, so the summary
    also gives the pair's difference on those alone: by hand (81.0 - 80.0 + 81.5 - 80.0 + 80.5 - 80.0) / 3 = +1.0."""
    from nas.cli.search import confirmation_lines

    rows = []

    def add(trial, kind, madds, tests):
        base = dict(trial=trial, kind=kind, madds_m=madds, family="hybrid-MF", params_m=1.0, arch_id=trial)
        if kind == "searched":
            base["knob_macro"] = "mobile_former"
        rows.append(R.make_row(**base, stage="search", seed=0, status="completed", val_top1=40.0))
        rows.extend(R.make_row(**base, stage="confirm", seed=s, status="completed", val_top1=t - 20.0, test_top1=t,
                               eval_set="test") for s, t in enumerate(tests))

    add("ref", "baseline", 150.0, [78.0, 78.5, 80.0, 80.0, 80.0])
    add("t0001", "searched", 200.0, [84.0, 85.0, 81.0, 81.5, 80.5])  # +6.5 on the choosing seeds
    add("t0002", "searched", 210.0, [79.0, 79.0])
    df = R.normalize_trials(pd.DataFrame(rows))
    conf = V.compute_confirmation(df)
    h, u = conf.headline, conf.headline_unchosen
    assert h["trial"] == "t0001" and h["n"] == 5
    assert u.n == 3 and u.mean == pytest.approx(1.0) and u.lo < u.mean < u.hi
    line = next(x for x in confirmation_lines(conf) if "chose nothing" in x)
    assert "on the 3 seeds that chose nothing (the first 2 chose the pair)" in line and "n=3" in line
    # without seeds beyond the base ones there is nothing to print
    two = V.compute_confirmation(df[df["seed"] < 2])
    assert two.headline_unchosen.n == 0 and not [x for x in confirmation_lines(two) if "chose nothing" in x]


def test_trust_meter_reads_rank_agreement_and_noise():
    tr = V.trust_meter(_rows(), resamples=200)
    assert tr.rank.n == 5 and -1 <= tr.rank.tau <= 1
    assert tr.seeds == 3 and tr.noise_dof == 10 and tr.noise_sd > 0
    assert "architectures" in tr.rank_reading and "seed noise" in tr.noise_reading


def test_family_rule_of_candidate_selection():
    from nas.search.confirm import select_candidates

    df = _rows()
    df = df[df["stage"] == "search"]
    # by search accuracy the MF-like t0001, t0002 lead; with k=2 the ViT-like family still gets its best
    picks = select_candidates(df, 2)
    assert len(picks) == 2 and "t0003" in picks
    only_mf = df[df["trial"] != "t0003"]
    assert "t0003" not in select_candidates(only_mf, 2)
    assert select_candidates(df, 0) == []


@pytest.mark.parametrize("key", [("t1", "search", 0), ("t1", "confirm", 2)])
def test_rows_are_keyed_by_trial_stage_and_seed(tmp_path, key):
    R.upsert_trial(tmp_path, R.make_row(trial="t1", stage="search", seed=0, status="completed", val_top1=1.0))
    for s in range(3):
        R.upsert_trial(tmp_path, R.make_row(trial="t1", stage="confirm", seed=s, status="completed", val_top1=2.0))
    df = R.upsert_trial(tmp_path, R.make_row(trial=key[0], stage=key[1], seed=key[2], status="completed",
                                             val_top1=9.0))
    assert len(df) == 4
    assert df[[R.row_key(r) == key for r in df.to_dict("records")]]["val_top1"].tolist() == [9.0]


def test_old_run_folders_load_as_search_stage(tmp_path):
    old = pd.DataFrame([{"trial": "t0", "kind": "searched", "status": "completed", "val_top1": 5.0, "madds_m": 1.0}])
    old.to_csv(tmp_path / "trials.csv", index=False)
    (tmp_path / "run.yaml").write_text("name: old\n")
    df = R.read_trials(tmp_path)
    assert df.loc[0, "stage"] == "search" and df.loc[0, "seed"] == 0 and len(R.compute_pareto(df)) == 1


def test_trend_reads_the_same_pair_across_rungs():
    from nas.stats import PairedDiff
    from nas.verdicts import trend_of

    first = PairedDiff(9.9, 1.85, 17.93, 5, 6.5)
    assert trend_of(first, PairedDiff(1.73, 1.17, 2.28, 4, 0.35)) == "shrinks"  # the issue's own example
    assert trend_of(first, PairedDiff(8.0, 6.0, 10.0, 4, 1.0)) == "holds"
    assert trend_of(first, PairedDiff(-2.0, -3.0, -1.0, 4, 0.6)) == "reverses"
    assert trend_of(first, PairedDiff(6.0, -1.0, 13.0, 4, 4.0)) == "unresolved"
    assert trend_of(PairedDiff(-4.0, -6.0, -2.0, 3, 1.0), PairedDiff(-3.5, -4.0, -3.0, 3, 0.3)) == "holds"


def test_headline_seeds_that_fit_the_time_left_pack_both_slots():
    """The headline's extra seeds are planned as one round of the pair's jobs, longest first onto the least
    loaded slot: two seeds of a 137 s + 61 s pair fill 2 slots in 198 s where one seed alone takes 137 s."""
    from nas.search.confirm import seeds_that_fit
    from nas.search.dry_run import schedule_s

    assert schedule_s([137.0, 61.0], 2) == 137.0
    assert schedule_s([137.0, 61.0] * 2, 2) == 198.0
    assert schedule_s([137.0, 61.0] * 3, 2) == 320.0
    assert seeds_that_fit([137.0, 61.0], 282.0, slots=2, most=10) == 2  # 198 s x 1.1 margin fits, 320 does not
    assert seeds_that_fit([137.0, 61.0], 217.0, slots=2, most=10) == 1  # 198 s x 1.1 = 217.8 does not fit
    assert seeds_that_fit([137.0, 61.0], 282.0, slots=1, most=10) == 1
    assert seeds_that_fit([137.0, 61.0], 282.0, slots=2, most=1) == 1
    assert seeds_that_fit([137.0, 61.0], 100.0, slots=2, most=10) == 0
    assert seeds_that_fit([137.0, 61.0], -5.0, slots=2, most=10) == 0


def test_a_climb_is_timed_from_each_trials_longest_finished_job():
    """Before a rung trains, `nas confirm` says about how long it takes: each trial's longest finished confirm job
    scaled by steps, plus Ray's overhead, queued longest first. By hand, at 2,048 steps on 2 slots: a's 512-step
    jobs took 100 and 120 s -> 440 s (+3), b's 128-step job took 30 s -> 480 s (+3); two jobs of a and one of b:
    slots 483 and 443 + 443 = 886 s. The failed 512-step row of b is not read; c has no job: no estimate."""
    from nas.jobs import TrialJob
    from nas.search.confirm import JOB_OVERHEAD_S, rung_estimate

    rows = []
    for trial, stage, steps, seed, wall, status in [("a", "confirm", 128, 0, 20.0, "completed"),
                                                    ("a", "confirm@512", 512, 0, 100.0, "completed"),
                                                    ("a", "confirm@512", 512, 1, 120.0, "completed"),
                                                    ("b", "confirm", 128, 0, 30.0, "completed"),
                                                    ("b", "confirm@512", 512, 0, 5.0, "failed"),
                                                    ("a", "search", 0, 0, 9.0, "completed")]:
        rows.append(R.make_row(trial=trial, name=trial, kind="searched", madds_m=1.0, family="hybrid-MF",
                               params_m=1.0, arch_id=trial, stage=stage, seed=seed, status=status, val_top1=50.0,
                               test_top1=50.0, eval_set="test", steps=steps, wall_s=wall))
    df = R.normalize_trials(pd.DataFrame(rows))

    def job(t: str, seed: int) -> TrialJob:
        return TrialJob(kind="searched", trial=t, stage="confirm@2048", seed=seed, arch_id=t, madds_m=1.0)

    assert JOB_OVERHEAD_S == 3.0
    sec, base = rung_estimate(df, [job("a", 0), job("a", 1), job("b", 0)], 2048, 2)
    assert sec == pytest.approx(886.0) and base == 128
    assert rung_estimate(df, [job("a", 0)], 2048, 1) == (pytest.approx(443.0), 512)
    assert rung_estimate(df, [job("a", 0), job("c", 0)], 2048, 2) is None
    assert rung_estimate(df, [], 2048, 2) is None
