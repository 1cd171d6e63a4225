"""`nas search` end to end through real Ray Tune and real Optuna on the tiny space and a tiny proxy.

One search is killed with SIGKILL after its first trained row and resumed: nothing finished is lost or
retrained. Bad inputs give one message with the fix, a non-zero exit and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from nas import results as R
from nas.cli import main
from nas.errors import RunError
from nas.export import export_trial, trial_arch
from nas.space import SPACES_DIR

TINY = str(SPACES_DIR / "tiny.yaml")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
NAS = [sys.executable, "-m", "nas"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    (d / "proxy.yaml").write_text("resolution: 16\nepochs: 2\ntrain_images: 256\nval_images: 128\nbatch_size: 64\n")
    (d / "nan_proxy.yaml").write_text("resolution: 16\ntrain_images: 256\nval_images: 128\n"
                                      "batch_size: 64\nepochs: 1\noptimizer: sgd\nlr: 1.0e+12\nwarmup_epochs: 0.0\n")
    return d


def _search(work: Path, *extra: str) -> list[str]:
    return [*NAS, "search", "--budget", "3M", "--space", TINY, "--proxy", str(work / "proxy.yaml"),
            "--results", str(work / "results"), "--max-concurrent", "1", "--no-confirm", *extra]


def _trials(run: Path) -> pd.DataFrame:
    with open(run / "trials.parquet", "rb") as f:  # one handle: the run may replace the file meanwhile
        return pd.read_parquet(f)


@pytest.mark.slow
def test_kill_then_resume_loses_and_retrains_nothing(work):
    run = work / "results" / "killme"
    proc = subprocess.Popen(_search(work, "--trials", "2", "--name", "killme", "--no-early-stop"), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    before = None
    while time.time() < deadline:
        if (run / "trials.parquet").is_file():
            df = _trials(run)
            done = df[df["status"] == "completed"]
            if len(done):
                before = done
                break
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    assert before is not None, proc.communicate()[0].decode()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)  # the search process itself, mid-run
    proc.wait()
    time.sleep(1)
    try:  # leftovers of our own process group (Ray's reaper normally takes them down)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

    r = subprocess.run([*NAS, "search", "--resume", str(run)], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resuming" in r.stdout and "Traceback" not in r.stderr
    after = _trials(run)
    trained = after[(after["kind"] == "searched") & after["status"].isin(["completed", "early_stopped"])]
    assert len(trained) == 2
    assert trained["trial"].is_unique and trained["arch_id"].is_unique and after["trial"].is_unique
    # the rows finished before the kill are there unchanged: not retrained
    for _, row in before.iterrows():
        now = after[after["trial"] == row["trial"]].iloc[0]
        assert now["finished_at"] == row["finished_at"] and now["val_top1"] == row["val_top1"]
    # nothing trained over budget or under the band; refused proposals are rows with their reason
    assert (trained["madds_m"] <= 3.0).all() and (trained["madds_m"] >= 1.5).all()
    refused = after[after["status"] == "over_budget"]
    assert refused["val_top1"].isna().all() and (refused["epochs_done"] == 0).all()
    assert ((refused["madds_m"] > 3.0) | (refused["madds_m"] < 1.5)).all()
    # the run folder of the schema
    for f in ("run.yaml", "space.yaml", "proxy.yaml", "environment.json", "trials.csv", "pareto.csv",
              "optuna.journal"):
        assert (run / f).is_file(), f
    assert (run / "ray").is_dir()
    assert (run / "ray" / "logs").is_dir() and any((run / "ray" / "logs").iterdir()), "Ray's logs belong in the run folder"
    # Tune pickles each Tuner with its searcher and callbacks (tuner.pkl); they call back into the run, whose
    # recorder holds the loaded Fashion-MNIST: 55 MB a Tuner, several per run, until they pickled to nothing
    pkls = list((run / "ray").glob("tune-*/tuner.pkl"))
    assert len(pkls) == 2 and all(p.stat().st_size < 1_000_000 for p in pkls), [p.stat().st_size for p in pkls]
    assert len(pd.read_csv(run / "trials.csv")) == len(after)
    pareto = pd.read_csv(run / "pareto.csv")
    assert len(pareto) >= 1 and "gain_vs_published" in pareto.columns
    for _, p in pareto.iterrows():
        assert (run / p["config_path"]).is_file()
        assert p["rebuild_cmd"].startswith("nas train ")
    curve = json.loads(trained.iloc[0]["val_curve"])
    assert len(curve) == 2 and trained.iloc[0]["epochs_done"] == 2
    # no scheduler reads the first epoch (--no-early-stop) and no --curves: validated after the last epoch only
    assert curve[0] is None and curve[1] == pytest.approx(trained.iloc[0]["val_top1"])
    assert {"knob_fusion", "knob_attention", "knob_width_mult"} <= set(after.columns)
    # the Optuna study holds every proposal, none left RUNNING
    import optuna

    study = optuna.load_study(study_name="killme", storage=R.open_storage(run / "optuna.journal"))
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    # a searched trial rebuilds from the run folder alone, and a Pareto config is a plain ArchConfig YAML
    t = trained.iloc[0]["trial"]
    assert trial_arch(run, t).arch_id == trained.iloc[0]["arch_id"]
    paths = export_trial(run, t, out=work / "exp", onnx=False)
    assert paths["yaml"].is_file()
    assert main(["flops", str(run / pareto.iloc[0]["config_path"]), "--format", "json"]) == 0
    # a proposal the budget screen refused was never trained: export says so instead of exporting silently
    never = refused.iloc[0]["trial"]
    with pytest.raises(RunError, match=f"trial {never} .* was never trained"):
        export_trial(run, never, out=work / "exp", onnx=False)
    assert export_trial(run, never, out=work / "exp", onnx=False, untrained=True)["yaml"].is_file()


@pytest.mark.slow
def test_nan_trials_are_recorded_and_the_search_goes_on(work):
    r = subprocess.run([*NAS, "search", "--budget", "3M", "--space", TINY, "--proxy", str(work / "nan_proxy.yaml"),
                        "--results", str(work / "results"), "--trials", "1", "--name", "nan", "--seed", "3",
                        "--confirm-top", "1", "--confirm-seeds", "1"],
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    df = _trials(work / "results" / "nan")
    searched = df[(df["kind"] == "searched") & (df["status"] != "over_budget")]
    assert len(searched) == 1
    assert set(searched["status"]) <= {"nan", "failed"} and searched["val_top1"].isna().all()
    assert all(e for e in searched["error"])
    assert not (work / "results" / "nan" / "pareto.csv").read_text().strip().count("\n")  # empty front


def _cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_bad_budget(capsys):
    code, err = _cli(["search", "--budget", "300X"], capsys)
    assert code != 0 and "cannot read the budget '300X'" in err and "fix:" in err and "Traceback" not in err


def test_headline_only_needs_a_rung_to_climb(tmp_path, capsys):
    code, err = _cli(["confirm", str(tmp_path), "--headline-only"], capsys)
    assert code == 2 and "--headline-only climbs the headline pair" in err and "--steps N" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2, err


def test_a_bad_top_rung_names_both_spellings_of_its_flag():
    from nas.errors import ConfigError
    from nas.search.ladder import top_steps

    with pytest.raises(ConfigError, match=r"--top-steps \(--steps\) -5 is invalid"):
        top_steps(128, -5)
    with pytest.raises(ConfigError, match=r"--top-steps \(--steps\) 100 is not longer than the first rung"):
        top_steps(128, 100)
    assert top_steps(128, None) == 512 and top_steps(128, 0) == 0


def test_negative_budget_gets_the_budgets_own_error(capsys):
    code, err = _cli(["search", "--budget", "-5M"], capsys)
    assert code == 2 and "budget" in err and "fix:" in err and "usage:" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 2


def test_unreachable_cluster_is_one_message(tmp_path):
    r = subprocess.run([*NAS, "search", "--budget", "3M", "--space", TINY, "--address", "127.0.0.1:1", "--no-confirm",
                        "--results", str(tmp_path / "results")], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "127.0.0.1:1" in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 2
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("trials.*"))


def test_budget_nothing_fits(capsys):
    code, err = _cli(["search", "--budget", "1M", "--dry-run"], capsys)
    assert code != 0 and "smallest it can reach" in err and "fix: raise --budget" in err
    # a band above the largest networks of the space: the fix names a budget that reaches them
    code, err = _cli(["search", "--budget", "20G", "--dry-run"], capsys)
    assert code == 2 and "falls in the band [10G, 20G]" in err and "fix: give a --budget of at most" in err
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err


def test_unknown_knob_and_malformed_space(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((SPACES_DIR / "tiny.yaml").read_text().replace("      patch: 2", "      pach: 2"))
    code, err = _cli(["search", "--space", str(bad), "--budget", "3M"], capsys)
    assert code != 0 and "unknown key 'pach'" in err and "did you mean 'patch'" in err
    bad.write_text("macros: {mobilevit: [\n")
    code, err = _cli(["search", "--space", str(bad), "--budget", "3M"], capsys)
    assert code != 0 and "malformed YAML" in err


def test_missing_dataset(tmp_path, capsys):
    code, err = _cli(["search", "--space", TINY, "--budget", "3M", "--data", str(tmp_path / "nowhere"),
                      "--results", str(tmp_path)], capsys)
    assert code != 0 and "dataset" in err and "fix:" in err
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


def test_existing_run_is_never_overwritten(work, capsys):
    (work / "results" / "exists").mkdir(parents=True, exist_ok=True)
    (work / "results" / "exists" / "run.yaml").write_text("name: exists\n")
    code, err = _cli(["search", "--space", TINY, "--budget", "3M", "--name", "exists", "--results",
                      str(work / "results")], capsys)
    assert code != 0 and "already exists" in err and "--resume" in err
    assert (work / "results" / "exists" / "run.yaml").read_text() == "name: exists\n"


def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.yaml").write_text("name: r\nbudget_m: 3.0\nseed: 0\ndata: fashion-mnist\n")
    code, err = _cli(["search", "--resume", str(run), "--budget", "300X"], capsys)
    assert code == 2 and "--budget 300X would change them" in err and "fix:" in err
    code, err = _cli(["search", "--resume", str(run), "--seed", "5", "--space", TINY], capsys)
    assert code == 2 and "--space" in err and "--seed 5" in err
    assert (run / "run.yaml").read_text() == "name: r\nbudget_m: 3.0\nseed: 0\ndata: fashion-mnist\n"
    # `nas confirm` reads its runtime flags too, and refuses those that would change the run's runtime (run.yaml)
    for flag, shown in ((["--precision", "bf16"], "--precision bf16"), (["--no-keep-freed-memory"], "--no-keep-freed-memory"),
                        (["--compile"], "--compile")):
        code, err = _cli(["confirm", str(run), *flag], capsys)
        assert code == 2 and f"; {shown} would change them" in err and "fix:" in err, (flag, err)
    assert (run / "run.yaml").read_text() == "name: r\nbudget_m: 3.0\nseed: 0\ndata: fashion-mnist\n"
    # the run's own values, however written, are no change
    code, err = _cli(["search", "--resume", str(run), "--budget", "0.003G", "--data", "fashion-mnist"], capsys)
    assert "would change" not in err


def test_dry_run_plans_without_training(work, capsys):
    code = main(["search", "--space", TINY, "--budget", "3M", "--proxy", str(work / "proxy.yaml"), "--dry-run",
                 "--results", str(work / "dry")])
    out = capsys.readouterr().out
    assert code == 0 and "of the space fits" in out and "estimate:" in out and "search stage: 12 searched" in out
    assert "confirm stage: top 3 candidates + 0 baselines x 2 paired seeds" in out
    assert not (work / "dry").exists()


def test_the_dry_run_times_networks_of_each_macro_weighted_by_its_share_of_the_band(tmp_path):
    """The shipped space at 300M has both macros in its band, and their jobs train at different speeds: the
    estimate times up to 3 in-band networks of each (at the quartiles of their MAdds), weighted so that each
    macro's weights add up to its share of the screen's in-band draws."""
    from nas.madds import count_madds
    from nas.search.dry_run import PROBES_PER_MACRO, family_probes
    from nas.search.plan import SearchOptions, plan_search

    plan = plan_search(SearchOptions(budget="300M", results_root=str(tmp_path), name="r", screen_samples=400))
    probes = family_probes(plan)
    kept = [p.get("macro") for p in plan.screen.in_band_params]
    assert [m for m, _a, _w in probes] == [m for m in dict.fromkeys(kept) for _ in range(PROBES_PER_MACRO)]
    for macro in set(kept):
        mine = [(a, w) for m, a, w in probes if m == macro]
        assert sum(w for _a, w in mine) == pytest.approx(kept.count(macro) / len(kept))
        madds = [count_madds(a) for a, _w in mine]
        assert madds == sorted(madds) and len(set(madds)) == len(madds)
        assert all(plan.screen.low <= x <= plan.budget for x in madds)
    assert {a.family for _m, a, _w in probes} == {"hybrid-MF", "hybrid-ViT"}


def _short_data(tmp_path: Path) -> list[str]:
    """A 200-image dataset (168 training images beside the protocol's 32 of validation) and a search protocol
    asking 400: the options of a search on them."""
    from tests.test_data import make_idx_dir

    (tmp_path / "big.yaml").write_text("resolution: 16\nepochs: 2\ntrain_images: 400\nval_images: 32\n"
                                       "batch_size: 16\n")
    return ["--space", TINY, "--budget", "3M", "--data", str(make_idx_dir(tmp_path / "d", n_train=200)),
            "--proxy", str(tmp_path / "big.yaml"), "--results", str(tmp_path / "results")]


SHORT_NOTE = ("the search protocol asks for 400 training images; the dataset has 168 beside its 32 validation "
              "images, so it trains 2 epochs over 168 (20 optimizer steps, not 50)")


def test_dry_run_says_when_the_dataset_has_fewer_images_than_the_protocol_asks(tmp_path, capsys):
    assert main(["search", *_short_data(tmp_path), "--dry-run", "--no-confirm"]) == 0
    assert SHORT_NOTE in capsys.readouterr().out


@pytest.mark.slow
def test_rows_record_the_steps_a_capped_protocol_trains(tmp_path):
    """The trainer draws the 168 images the dataset has, not the 400 asked for: the search says so once and its
    rows record the 20 steps trained (they used to say 50)."""
    r = subprocess.run([*NAS, "search", *_short_data(tmp_path), "--trials", "1", "--no-baselines", "--no-confirm",
                        "--name", "short"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.count(SHORT_NOTE) == 1, r.stdout[-3000:] + r.stderr[-3000:]
    trained = _trials(tmp_path / "results" / "short").query("status == 'completed'")
    assert len(trained) == 1 and set(trained["steps"]) == {20}


def test_same_seed_same_proposals(tmp_path):
    """Two studies with the same seed propose the same architectures through the real searcher, whether the
    study is an Optuna journal (new runs) or a sqlite file (runs begun before journals)."""
    from nas.space import load_space
    from nas.tuning import BudgetedSearcher, SearchHooks

    space = load_space(TINY)

    def proposals(db: Path) -> list[str]:
        hooks = SearchHooks(on_refused=lambda p: None, on_finished=lambda *a: None, known_result=lambda a: None)
        s = BudgetedSearcher(space=space, budget=3_000_000, min_budget=0.5, objective="top1",
                             storage_url=str(db), study_name="s", seed=7, trials=6, jobs=[], hooks=hooks)
        out = []
        for i in range(6):
            cfg = s.suggest(f"x{i}")
            out.append(cfg["arch_id"])
            assert 1.5 <= cfg["madds_m"] <= 3.0
            s.on_trial_complete(f"x{i}", {"val_top1": float(i), "final": True, "status": "completed"})
        return out

    a = proposals(tmp_path / "a.journal")
    assert a == proposals(tmp_path / "b.journal") == proposals(tmp_path / "c.db")
    assert (tmp_path / "a.journal").stat().st_size > 0 and (tmp_path / "c.db").stat().st_size > 0


def test_study_location_keeps_an_older_runs_sqlite(tmp_path):
    """A new run's study is its journal; a run begun before journals resumes on its optuna.db."""
    assert R.study_location(tmp_path) == tmp_path.resolve() / "optuna.journal"
    (tmp_path / "optuna.db").write_bytes(b"")
    assert R.study_location(tmp_path) == tmp_path.resolve() / "optuna.db"
    (tmp_path / "optuna.journal").write_bytes(b"")
    assert R.study_location(tmp_path) == tmp_path.resolve() / "optuna.journal"


def test_a_journal_cut_by_a_kill_resumes(tmp_path):
    """A driver killed mid-write leaves the journal's last line cut short and its lock behind: the resume's
    bookkeeping mends both, keeps every whole line (trial), and the study takes new trials again."""
    import optuna

    from nas.tuning import prepare_study
    from nas.tuning.study import open_study

    j = tmp_path / R.STUDY_JOURNAL
    study = open_study(str(j), "s", objective="top1", sampler=optuna.samplers.RandomSampler(seed=0))
    for v in (1.0, 2.0):
        t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(t, v)
    running = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # the job the kill interrupted
    with open(j, "ab") as f:
        f.write(b'{"op_code":5,"worker_id":"x","trial_id":9')  # a write the kill cut
    Path(f"{j}.lock").symlink_to(j)  # and the lock it held
    n, rerun = prepare_study(str(j), "s", objective="top1", done_numbers=set(), results={})
    assert n == 4 and rerun == [dict(running.params)]  # 3 trials and the interrupted one queued again
    again = optuna.load_study(study_name="s", storage=R.open_storage(j))
    assert [t.value for t in again.trials[:2]] == [1.0, 2.0] and not Path(f"{j}.lock").exists()
    t = again.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # the re-run comes first
    again.tell(t, 3.0)
    last = optuna.load_study(study_name="s", storage=R.open_storage(j)).trials[-1]
    assert last.value == 3.0 and last.params == running.params
    # damage inside the file is no cut-short write: the resume stops with one clear error, nothing written
    lines = j.read_bytes().split(b"\n")
    j.write_bytes(b"\n".join([*lines[:2], lines[2][:15], *lines[3:]]))
    with pytest.raises(RunError, match="cannot read the run's Optuna study"):
        prepare_study(str(j), "s", objective="top1", done_numbers=set(), results={})
    db = tmp_path / R.LEGACY_STUDY_DB  # an older run's sqlite file that is no database: the same, on one line
    db.write_bytes(b"not a database" * 400)
    with pytest.raises(RunError, match="cannot read the run's Optuna study .*DatabaseError") as err:
        prepare_study(str(db), "s", objective="top1", done_numbers=set(), results={})
    assert "\n" not in err.value.message


@pytest.mark.slow
def test_onnx_export_of_a_searched_arch(tmp_path):
    import onnx
    from onnx.reference import ReferenceEvaluator

    from nas.builder import build_model
    from nas.export import export_onnx
    from nas.space import RandomTrial, load_space, sample_arch

    arch = sample_arch(RandomTrial(0), load_space(TINY))
    torch.manual_seed(0)
    path = export_onnx(arch, tmp_path / "a.onnx")
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 32, 32]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # any batch runs, and gives what the same network gives in torch (same seed, same weights)
    torch.manual_seed(0)
    net = build_model(arch).eval()
    x = torch.randn(3, 3, 32, 32)
    (got,) = ReferenceEvaluator(model).run(None, {"image": x.numpy()})
    with torch.no_grad():
        want = net(x).numpy()
    assert got.shape == want.shape == (3, arch.num_classes)
    assert abs(got - want).max() < 1e-3 * max(1.0, abs(want).max())


def _kill_once(cmd: list[str], run: Path, ready, *, timeout: float = 300) -> pd.DataFrame:
    """Start `cmd`, SIGKILL its process group once `ready(trials)` holds for the run's trials file, and
    return the trials as they were then."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if (run / "trials.parquet").is_file():
            df = _trials(run)
            if ready(df):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return df
        time.sleep(0.3)
    raise AssertionError(proc.communicate()[0].decode()[-3000:])


@pytest.mark.slow
def test_confirm_stage_kill_resume_and_extend(work):
    """The confirmation: paired seeds as stage=confirm rows scored on the test split; a SIGKILL during it and
    `--resume` keeps every finished seed and trains none twice; `nas confirm --confirm-seeds 3` adds seed 2 only."""
    (work / "confirm.yaml").write_text("resolution: 16\nepochs: 1\ntrain_images: 384\nval_images: 128\n"
                                       "test_images: 500\nbatch_size: 64\n")
    run = work / "results" / "conf"
    cmd = [*NAS, "search", "--budget", "3M", "--space", TINY, "--proxy", str(work / "proxy.yaml"), "--results",
           str(work / "results"), "--max-concurrent", "1", "--trials", "2", "--name", "conf", "--no-early-stop",
           "--confirm-top", "2", "--confirm-seeds", "2", "--confirm-protocol", str(work / "confirm.yaml"),
           "--top-steps", "0", "--curves"]
    df = _kill_once(cmd, run, lambda df: ((df["stage"] == "confirm") & (df["status"] == "completed")).any())
    before = df[(df["stage"] == "confirm") & (df["status"] == "completed")]
    r = subprocess.run([*NAS, "search", "--resume", str(run)], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = _trials(run)
    conf = after[after["stage"] == "confirm"]
    assert len(conf) == 4 and set(conf["seed"]) == {0, 1} and conf["status"].eq("completed").all()
    assert conf["test_top1"].notna().all() and set(conf["eval_set"]) == {"test"}
    assert not after.duplicated(["trial", "stage", "seed"]).any()
    for _, row in before.iterrows():  # finished before the kill: kept, not retrained
        now = conf[(conf["trial"] == row["trial"]) & (conf["seed"] == row["seed"])].iloc[0]
        assert now["finished_at"] == row["finished_at"] and now["test_top1"] == row["test_top1"]
    # the search stage is untouched by the confirmation, and its candidates are the confirmed ones
    search = after[after["stage"] == "search"]
    assert set(conf["trial"]) <= set(search[search["status"] == "completed"]["trial"])
    # --curves: each search job validated after both its epochs, and the run keeps it for a resume
    curves = search[search["status"] == "completed"]["val_curve"].map(json.loads)
    assert len(curves) and all(len(c) == 2 and all(isinstance(v, float) for v in c) for c in curves)
    assert yaml.safe_load((run / "run.yaml").read_text())["curves"] is True
    assert "confirmed (test split, n = 2 paired seeds" in r.stdout and "trust meter:" in r.stdout
    for f in ("confirm.yaml", "confirmed.csv", "verdicts.csv"):
        assert (run / f).is_file(), f
    table = pd.read_csv(run / "confirmed.csv")
    assert (table["n"] == 2).all() and (table["lo"] <= table["mean"]).all() and (table["mean"] <= table["hi"]).all()
    assert "confirmed" in pd.read_csv(run / "pareto.csv").columns
    # extending: one more seed per architecture, nothing else retrained
    r = subprocess.run([*NAS, "confirm", str(run), "--confirm-top", "2", "--confirm-seeds", "3"], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 of 6 jobs to train" in r.stdout
    ext = _trials(run)
    conf3 = ext[ext["stage"] == "confirm"]
    assert len(conf3) == 6 and set(conf3["seed"]) == {0, 1, 2}
    old = conf3[conf3["seed"] < 2].set_index(["trial", "seed"])["finished_at"]
    assert old.equals(conf.set_index(["trial", "seed"])["finished_at"].loc[old.index])


@pytest.mark.slow
def test_a_confirm_job_killed_mid_way_resumes_from_its_checkpoint(tmp_path):
    """A SIGKILL while a confirm job (6 epochs, checkpointed after each: $NAS_CHECKPOINT_EVERY_S=0) trains, then
    `--resume`: the job goes on from its checkpoint in a new Ray worker (`resumed_after_epoch` > 0), and every
    confirm row ends as the same command's rows uninterrupted, in another results folder."""
    (tmp_path / "proxy.yaml").write_text("resolution: 16\nepochs: 1\ntrain_images: 256\nval_images: 128\n"
                                         "batch_size: 64\n")
    (tmp_path / "confirm.yaml").write_text("resolution: 16\nepochs: 6\ntrain_images: 2048\nval_images: 128\n"
                                           "test_images: 500\nbatch_size: 32\n")
    env = {**ENV, "NAS_CHECKPOINT_EVERY_S": "0"}

    def cmd(root: str) -> list[str]:
        return [*NAS, "search", "--budget", "3M", "--space", TINY, "--proxy", str(tmp_path / "proxy.yaml"),
                "--results", str(tmp_path / root), "--max-concurrent", "1", "--trials", "2", "--name", "ck",
                "--no-early-stop", "--confirm-top", "1", "--confirm-seeds", "2", "--confirm-width", "0",
                "--confirm-protocol", str(tmp_path / "confirm.yaml"), "--top-steps", "0"]

    run = tmp_path / "killed" / "ck"
    proc = subprocess.Popen(cmd("killed"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list((run / "checkpoints").glob("*.pt")):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # mid-job: a checkpoint is on disk, the job has not ended
    proc.wait()
    assert list((run / "checkpoints").glob("*.pt"))
    r = subprocess.run([*NAS, "search", "--resume", str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run(cmd("straight"), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cols = ["trial", "seed", "status", "test_top1", "val_curve", "epochs_done"]
    killed = _trials(run).query("stage == 'confirm'")
    straight = _trials(tmp_path / "straight" / "ck").query("stage == 'confirm'")
    assert len(killed) == len(straight) >= 2 and killed["status"].eq("completed").all()
    assert (killed["resumed_after_epoch"] > 0).sum() == 1 and straight["resumed_after_epoch"].eq(0).all()
    a = killed[cols].sort_values(["trial", "seed"]).reset_index(drop=True)
    b = straight[cols].sort_values(["trial", "seed"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert not list((run / "checkpoints").glob("*"))  # every job ended: no file left


MF_SMALL = """name: mfsmall
description: Small Mobile-Former networks whose band holds a published variant (mobile_former_26m).
num_classes: 1000
macros:
  mobile_former:
    label: hybrid-MF
    resolution: 224
    knobs:
      width_mult: [0.5, 0.583]
      num_tokens: 3
      dim: [64, 96]
      attention: mhsa
      ffn_ratio: [1.0, 2.0]
      expand: 3
      expand_late: 4
      depth_s2: 0
      depth_s3: 1
      depth_s4: [1, 2]
      depth_s5: 1
      s4_mixer: mobile_former
    base:
      stem: 8
      widths: [24, 48, 96, 128, 192]
      head_conv_mult: 6
      head_hidden_mult: 10
      head_hidden_max: 1920
      dropout: 0.0
"""


def _headline_setup(tmp_path: Path) -> list[str]:
    """A small Mobile-Former search whose band holds mobile_former_26m, with tiny protocols at 16 px: the
    command, up to its confirm options."""
    (tmp_path / "mf.yaml").write_text(MF_SMALL)
    (tmp_path / "proxy.yaml").write_text("resolution: 16\nepochs: 1\ntrain_images: 256\nval_images: 128\n"
                                         "batch_size: 32\nlr: 0.004\n")
    (tmp_path / "confirm.yaml").write_text("resolution: 16\nepochs: 1\ntrain_images: 1024\nval_images: 128\n"
                                           "test_images: 500\nbatch_size: 32\nlr: 0.004\n")
    return [*NAS, "search", "--budget", "50M", "--space", str(tmp_path / "mf.yaml"), "--proxy",
            str(tmp_path / "proxy.yaml"), "--results", str(tmp_path / "results"), "--trials", "2", "--no-early-stop",
            "--confirm-top", "2", "--confirm-seeds", "2", "--confirm-protocol", str(tmp_path / "confirm.yaml"),
            "--top-steps", "0"]


@pytest.mark.slow
def test_kill_during_the_headline_seeds_then_resume(tmp_path):
    """A SIGKILL while the headline pair trains its extra seeds, then `--resume`: every finished seed is kept
    as it was, none is trained twice, and the pair ends with its planned seeds."""
    run = tmp_path / "results" / "kill"
    cmd = [*_headline_setup(tmp_path), "--name", "kill", "--confirm-width", "0.01", "--confirm-max-seeds", "6"]
    before = _kill_once(cmd, run, lambda df: ((df["stage"] == "confirm") & (df["status"] == "completed")
                                              & (df["seed"] >= 2)).any(), timeout=400)
    r = subprocess.run([*NAS, "search", "--resume", str(run)], env=ENV, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = _trials(run)
    assert not after.duplicated(["trial", "stage", "seed"]).any()
    done = before[before["status"] == "completed"].set_index(["trial", "stage", "seed"])["finished_at"]
    assert after.set_index(["trial", "stage", "seed"])["finished_at"].loc[done.index].equals(done)
    conf = after[(after["stage"] == "confirm") & (after["status"] == "completed")]
    head = pd.read_csv(run / "verdicts.csv").query("headline").iloc[0]
    for t in (head["trial"], head["reference"]):
        assert sorted(conf[conf["trial"] == t]["seed"]) == list(range(6)), t


@pytest.mark.slow
def test_headline_verdict_gets_its_planned_paired_seeds(tmp_path):
    """The confirm stage gives the headline pair (best candidate, its published reference) the paired seeds
    that the first stage's pooled noise says a --confirm-width interval needs, capped by --confirm-max-seeds;
    the other architectures keep --confirm-seeds. `nas confirm` with a higher cap trains the new seeds only."""
    import re

    run = tmp_path / "results" / "head"
    r = subprocess.run([*_headline_setup(tmp_path), "--name", "head", "--confirm-width", "0.01",
                        "--confirm-max-seeds", "3"], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    def planned(out: str) -> int:
        return int(re.search(r"(\d+) seeds planned", out).group(1))

    def seeds(run: Path) -> dict[str, list[int]]:
        df = _trials(run)
        c = df[(df["stage"] == "confirm") & (df["status"] == "completed")]
        return {t: sorted(g["seed"].astype(int)) for t, g in c.groupby("trial")}

    v = pd.read_csv(run / "verdicts.csv")
    head = v[v["headline"]].iloc[0]
    assert head["reference"] == "mobile_former_26m" and v["headline"].sum() == 1
    pair = {head["trial"], head["reference"]}
    n = planned(r.stdout)
    assert n == 3  # a 0.01-point interval needs more than the cap
    got = seeds(run)
    assert {t: s for t, s in got.items() if t in pair} == {t: [0, 1, 2] for t in pair}
    assert all(s == [0, 1] for t, s in got.items() if t not in pair) and len(got) == 3
    assert head["n"] == 3 and f"HEADLINE {head['trial']} vs mobile_former_26m" in r.stdout
    before = _trials(run)
    # a time budget already spent plans no more seeds
    r = subprocess.run([*NAS, "confirm", str(run), "--confirm-top", "2", "--confirm-seeds", "2", "--confirm-width",
                        "0.01", "--confirm-max-seeds", "8", "--time-budget", "0.01"], env=ENV, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and planned(r.stdout) == 3 and "the time budget (0.0 min left" in r.stdout, r.stdout
    assert _trials(run).equals(before)
    # a later `nas confirm` with a higher cap trains the pair's new seeds only
    r = subprocess.run([*NAS, "confirm", str(run), "--confirm-top", "2", "--confirm-seeds", "2", "--confirm-width",
                        "0.01", "--confirm-max-seeds", "5"], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert planned(r.stdout) == 5 and "0 of 6 jobs to train" in r.stdout
    after = _trials(run)
    assert not after.duplicated(["trial", "stage", "seed"]).any()
    old = before[before["stage"] == "confirm"].set_index(["trial", "seed"])["finished_at"]
    assert after[after["stage"] == "confirm"].set_index(["trial", "seed"])["finished_at"].loc[old.index].equals(old)
    got = seeds(run)
    assert {t: s for t, s in got.items() if t in pair} == {t: [0, 1, 2, 3, 4] for t in pair}
    assert all(s == [0, 1] for t, s in got.items() if t not in pair)


@pytest.mark.slow
def test_ladder_top_rung_carries_the_verdict_and_climbs_further(tmp_path):
    """The first rung (32 steps here) picks the pair; the top rung (--top-steps 64) retrains the headline
    candidate and its two best published references with paired seeds, then gives the headline pair (chosen
    again on the rung's first seeds) a third seed, and the verdicts printed and written are that rung's, each
    with its trend. `nas confirm RUN --steps 96` adds a rung and trains only it; a
    SIGKILL during that rung, then the same `nas confirm` again, keeps every finished job and trains none twice."""
    run = tmp_path / "results" / "ladder"
    cmd = [*_headline_setup(tmp_path), "--name", "ladder", "--top-steps", "64", "--top-seeds", "2",
           "--confirm-width", "0"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    df = _trials(run)
    top = df[df["stage"] == "confirm@64"]
    first = df[df["stage"] == "confirm"]
    assert len(top) and top["status"].eq("completed").all() and top["test_top1"].notna().all()
    assert set(top["steps"]) == {64} and set(first["steps"]) == {32} and set(top["seed"]) == {0, 1, 2}
    v = pd.read_csv(run / "verdicts.csv")
    head = v[v["headline"]].iloc[0]
    assert head["steps"] == 64 and head["stage"] == "confirm@64" and head["n"] == 3
    top_seeds = {t: sorted(g["seed"]) for t, g in top.groupby("trial")}
    pair = {head["trial"], head["reference"]}
    assert all(s == ([0, 1, 2] if t in pair else [0, 1]) for t, s in top_seeds.items()), top_seeds
    assert "a top-rung claim takes at least 3" in r.stdout
    assert head["trend"] in ("holds", "shrinks", "reverses", "unresolved")
    assert head["rungs"].startswith("32: ") and "; 64: " in head["rungs"]
    assert {head["trial"], head["reference"]} <= set(top["trial"])
    assert "after 64 training steps at 16 px" in r.stdout and f"trend {head['trend'].upper()}" in r.stdout
    stages = yaml.safe_load((run / "run.yaml").read_text())["confirm"]["stages"]
    assert [s["stage"] for s in stages] == ["confirm", "confirm@64"] and stages[1]["steps"] == 64
    # climbing further: a 96-step rung, killed once it has a finished job, then the same command again: only
    # its jobs train, every finished row (of any rung) is kept as it was and none is trained twice
    climb = [*NAS, "confirm", str(run), "--confirm-top", "2", "--confirm-seeds", "2", "--steps", "96",
             "--top-seeds", "2", "--confirm-width", "0", "--max-concurrent", "1"]
    killed = _kill_once(climb, run, lambda df: ((df["stage"] == "confirm@96") & (df["status"] == "completed")).any(),
                        timeout=600)
    before = killed[killed["status"] == "completed"].set_index(["trial", "stage", "seed"])["finished_at"]
    assert ((killed["stage"] == "confirm@96") & (killed["status"] == "completed")).sum() < len(top)  # mid-rung
    r = subprocess.run(climb, env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = _trials(run)
    assert not after.duplicated(["trial", "stage", "seed"]).any()
    assert after.set_index(["trial", "stage", "seed"])["finished_at"].loc[before.index].equals(before)
    assert set(after["stage"]) == {"search", "confirm", "confirm@64", "confirm@96"}
    v = pd.read_csv(run / "verdicts.csv")
    assert set(v["steps"]) == {96} and "after 96 training steps" in r.stdout
    assert re.search(r"top rung \(96 training steps, 2 paired seeds\): .*; \d+ jobs to train, about \d+ min 1 at a "
                     r"time \(their (64|96)-step jobs' times, scaled\)", r.stdout), r.stdout[-2000:]
    assert v[v["headline"]].iloc[0]["rungs"].count(";") == 2  # 32, 64 and 96 steps
    # its progress lines count the 64-step rung's rows in the total too: never more done than the total (the
    # headline's extra seeds join the total when they are planned), all done on the last
    counts = [tuple(map(int, m)) for m in re.findall(r"^\[\s*(\d+)/(\d+)\]", r.stdout, re.M)]
    assert counts and all(d <= t for d, t in counts) and counts[-1][0] == counts[-1][1], counts
    # "done" only once nothing more can be planned: a rung whose jobs are all finished, before the headline's
    # extra seeds are planned, says so instead
    lines = re.findall(r"^\[\s*\d+/\d+\].*$", r.stdout, re.M)
    assert lines[-1].endswith(", done") and not any(x.endswith(", done") for x in lines[:-1]), lines
    assert all(x.endswith("planning more") for x, (d, t) in zip(lines[:-1], counts) if d == t), lines
    # --headline-only: a 128-step rung retrains only the 96-step rung's headline pair, on the 3 paired seeds a
    # top-rung claim takes; run.yaml keeps the setting, and the verdict printed is that pair's at 128 steps
    h96 = v[v["headline"]].iloc[0]
    r = subprocess.run([*climb[:climb.index("--steps")], "--steps", "128", "--top-seeds", "2", "--confirm-width", "0",
                        "--headline-only"], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rung = _trials(run).query("stage == 'confirm@128'")
    assert {t: sorted(g["seed"]) for t, g in rung.groupby("trial")} == {h96["trial"]: [0, 1, 2], h96["reference"]: [0, 1, 2]}
    assert yaml.safe_load((run / "run.yaml").read_text())["confirm"]["headline_only"] is True
    h = pd.read_csv(run / "verdicts.csv").query("headline").iloc[0]
    assert (h["steps"], h["trial"], h["reference"], h["n"]) == (128, h96["trial"], h96["reference"], 3)
    assert h["rungs"].count(";") == 3 and "after 128 training steps" in r.stdout


def test_the_summary_counts_reused_baselines_apart_and_rates_only_this_invocations_jobs(tmp_path):
    """Baselines taken from the baseline cache are not "trained", and the architectures/min figure counts the
    jobs this invocation ran (not rows kept from before a resume, nor reused ones) over its search-stage time."""
    from nas.cli.search import summary_lines
    from nas.search.loop import SearchOutcome

    df = R.empty_trials()
    out = SearchOutcome(run_dir=tmp_path, trials=df, pareto=R.compute_pareto(df), searched=12, baselines=0,
                        reused=3, refused=14, wall_s=70.0, search_s=60.0, jobs_here=12)
    first = summary_lines(out)[0]
    assert first.startswith("12 searched + 0 baselines trained (3 more reused from results/.cache), 14 proposals")
    assert first.endswith("(12.0 architectures/min)")
    resumed = SearchOutcome(run_dir=tmp_path, trials=df, pareto=R.compute_pareto(df), searched=12, baselines=3,
                            refused=14, wall_s=70.0, search_s=30.0, jobs_here=5)
    first = summary_lines(resumed)[0]
    assert "reused" not in first and first.endswith("(10.0 architectures/min)")


def test_a_cached_baseline_says_so_in_reused_from_and_leaves_error_empty(tmp_path):
    """A baseline taken from the cross-run cache is a completed row whose `reused_from` names the cache, with no
    error text (a pandas user who filters rows by `error` finds failures only); runs written before the column
    (the note in `error`) still count as reused."""
    from nas.search.plan import SearchOptions, plan_search
    from nas.search.recorder import LEGACY_REUSED_NOTE, RunRecorder

    plan = plan_search(SearchOptions(budget="300M", results_root=str(tmp_path), name="r", screen_samples=200))
    rec = RunRecorder(plan, total=len(plan.baselines))
    first, second = plan.baselines[:2]
    rec.add_cached(first, {"status": "completed", "val_top1": 55.5, "epochs_done": 2, "error": ""})
    assert rec.reused() == 1
    rec.write_rows()
    row = pd.read_csv(plan.run_dir / "trials.csv", keep_default_na=False).set_index("trial").loc[first.trial]
    assert row["status"] == "completed" and row["val_top1"] == 55.5 and row["error"] == ""
    assert row["reused_from"] == str(tmp_path / ".cache" / "baselines.parquet")
    rec.add_cached(second, {"status": "completed", "val_top1": 50.0, "epochs_done": 2})
    rec.rows[second.key].update(reused_from="", error=LEGACY_REUSED_NOTE)
    assert rec.reused() == 2


def _two_workers(db: Path, lag: int | None, finish_order: str) -> list[list]:
    """The real searcher on the shipped space at 300M, as Ray Tune drives it with 2 jobs at once: each job's
    top-1 comes from its arch id, and which of the 2 running jobs finishes first is `finish_order`'s letter
    ("o": the older, "n": the newer). Returns every proposal in order: [number, status, arch id]."""
    import hashlib

    from nas.space import load_space
    from nas.tuning import BudgetedSearcher, SearchHooks

    log: list[list] = []
    hooks = SearchHooks(on_refused=lambda p: log.append([p.number, p.status, p.arch.arch_id]),
                        on_finished=lambda *a: None, known_result=lambda a: None)
    s = BudgetedSearcher(space=load_space(None), budget=300_000_000, min_budget=0.5, objective="top1",
                         storage_url=str(db), study_name="s", seed=0, trials=10, jobs=[], hooks=hooks,
                         lag=lag)
    running: list[tuple[str, dict]] = []
    asked = done = 0
    while done < 10:
        while len(running) < 2 and asked < 10:
            cfg = s.suggest(f"x{asked}")
            if cfg is None:  # waits for a job still running
                break
            log.append([cfg["number"], "sent", cfg["arch_id"]])
            running.append((f"x{asked}", cfg))
            asked += 1
        pick = 0 if finish_order[done % len(finish_order)] == "o" or len(running) == 1 else 1
        tid, cfg = running.pop(pick)
        top1 = int(hashlib.sha1(cfg["arch_id"].encode()).hexdigest()[:6], 16) / 0xFFFFFF * 100
        s.on_trial_complete(tid, {"val_top1": top1, "madds_m": cfg["madds_m"], "final": True, "status": "completed"})
        done += 1
    s.release_all()
    import optuna

    study = optuna.load_study(study_name="s", storage=R.open_storage(db))
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    return log


def test_results_told_in_the_order_sent_give_the_same_proposals_however_jobs_finish(tmp_path):
    """With 2 jobs at once, the order in which they finish changes what TPE has been told at each proposal,
    and so what it proposes; told in the order sent (all but the last `lag`), the proposals are the same."""
    orders = ("o", "n", "onn", "nno")
    ordered = [_two_workers(tmp_path / f"ordered-{o}.journal", 2, o) for o in orders]
    assert all(x == ordered[0] for x in ordered[1:])
    assert sum(p[1] == "sent" for p in ordered[0]) == 10
    told_at_once = [_two_workers(tmp_path / f"at-once-{o}.journal", None, o) for o in orders]
    assert any(x != told_at_once[0] for x in told_at_once[1:])  # what the ordered telling is for
