"""The weight-sharing supernet through the real code: extraction equals the supernet's forward (both macros,
the in-band published variants), gradients reach the shared tensors, a SIGKILLed `nas supernet train`
resumes from its checkpoint to the same weights as an uninterrupted run, and a one-shot `nas search` runs
end to end with Ray, Optuna and the confirmation stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from nas import results as R
from nas.builder import build_model
from nas.cli import main
from nas.madds import count_madds
from nas.results import read_trials
from nas.space import SPACES_DIR, RandomTrial, load_space, sample_arch
from nas.supernet import Supernet, extract
from nas.variants import get_variant

TINY = str(SPACES_DIR / "tiny.yaml")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
NAS = [sys.executable, "-m", "nas"]


@pytest.fixture(scope="module")
def hybrid():
    space = load_space(None)
    return space, Supernet.for_space(space, num_classes=10, in_chans=1, input_size=16).eval()


def _archs(space, n: int, *, seed: int = 0):
    return [sample_arch(RandomTrial(seed + i), space) for i in range(n)]


def test_extract_equals_supernet_forward_for_sampled_archs_of_both_macros(hybrid):
    space, net = hybrid
    x = torch.randn(3, 1, 16, 16)
    families = set()
    for arch in _archs(space, 24, seed=100):
        families.add(arch.family)
        sub = extract(net, arch)
        ref = build_model(arch, num_classes=10, in_chans=1, input_size=16)
        assert type(sub) is type(ref)
        assert {k: tuple(v.shape) for k, v in sub.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in ref.state_dict().items()}
        with torch.no_grad():  # equal up to float32 rounding (GEMM kernels may round by memory placement)
            torch.testing.assert_close(net(arch, x), sub.eval()(x), rtol=1e-5, atol=1e-6, msg=arch.arch_id)
    assert families == {"hybrid-MF", "hybrid-ViT"}


def test_every_in_band_published_variant_in_the_space_is_extracted_exactly(hybrid):
    space, net = hybrid
    x = torch.randn(2, 1, 16, 16)
    names = [n for n in ("mobile_former_151m", "mobile_former_214m", "mobile_former_294m")
             if 150e6 <= count_madds(get_variant(n)) <= 300e6]
    assert len(names) == 3
    for name in names:
        arch = get_variant(name).replace(num_classes=10)
        with torch.no_grad():
            torch.testing.assert_close(net(arch, x), extract(net, arch).eval()(x), rtol=1e-5, atol=1e-6, msg=name)


def test_an_architecture_outside_the_supernet_is_refused_with_the_reason(hybrid):
    from nas.errors import ConfigError

    _, net = hybrid
    with pytest.raises(ConfigError, match="not a point of this supernet|larger than this supernet"):
        net.subnet_tensors(get_variant("mobilevitv2_200").replace(num_classes=10))


def test_gradients_flow_into_the_shared_tensors_and_only_into_the_slices_used():
    space = load_space(TINY)
    net = Supernet.for_space(space, num_classes=10, in_chans=1, input_size=32).train()
    small = min(_archs(space, 20), key=count_madds)
    net(small, torch.randn(4, 1, 32, 32)).logsumexp(1).sum().backward()
    touched = [k for k in net.keys if net.is_param[k] and net.shared(k).grad is not None]
    nonzero = [k for k in touched if net.shared(k).grad.abs().sum() > 0]
    assert len(nonzero) >= 0.8 * len(touched) > 0  # (one-patch attention gives q and k zero gradient)
    names = net.subnet_tensors(small)
    from nas.supernet.shared import weight_keys

    keys = weight_keys(small, names)
    partial = 0
    for name, t in names.items():
        shared = net.shared(keys[name])
        if not net.is_param[keys[name]] or t.shape == shared.shape:
            continue
        partial += 1
        g = shared.grad.clone()
        g[tuple(slice(0, s) for s in t.shape)] = 0  # leading slice (kernels here are 3x3 at most: same size)
        assert g.abs().sum() == 0, name
    assert partial > 0


def _train_cmd(work: Path, *extra: str) -> list[str]:
    return [*NAS, "supernet", "train", "--space", TINY, "--budget", "3M", "--protocol", str(work / "sn.yaml"),
            "--results", str(work / "results"), *extra]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("supernet")
    (d / "sn.yaml").write_text("resolution: 16\nepochs: 1\ntrain_images: 2048\nval_images: 128\nbatch_size: 32\n"
                               "warmup_epochs: 0.0\n")
    (d / "proxy.yaml").write_text("resolution: 16\nepochs: 2\ntrain_images: 256\nval_images: 128\nbatch_size: 64\n")
    (d / "confirm.yaml").write_text("resolution: 16\nepochs: 1\ntrain_images: 384\nval_images: 128\n"
                                    "test_images: 500\nbatch_size: 64\n")
    return d


def test_progress_holds_each_step_once_after_a_resume_and_survives_a_cut_line(tmp_path):
    from nas.supernet.train import PROGRESS, append_progress, read_progress

    def rec(step: int, loss: float) -> dict:
        return {"step": step, "steps": 60, "macro": "mobilevit", "loss_largest": loss, "loss_smallest": loss,
                "steps_per_s": 5.0, "eta_s": 1.0, "wall_s": 2.0}

    for step in (10, 20, 30):
        append_progress(tmp_path, rec(step, 1.0))
    # the killed run's checkpoint was at step 20: the resumed run reports step 30 again, then 40
    append_progress(tmp_path, rec(30, 2.0))
    append_progress(tmp_path, rec(40, 2.0))
    prog = pd.read_csv(tmp_path / PROGRESS)
    assert list(prog["step"]) == [10, 20, 30, 40] and list(prog["loss_largest"]) == [1.0, 1.0, 2.0, 2.0]
    # a write cut short: the next record starts its own line, and the cut one is skipped by the reader
    with (tmp_path / PROGRESS).open("a") as f:
        f.write("50,60,mobilevit,3.0")
    append_progress(tmp_path, rec(50, 3.0))
    assert [int(r["step"]) for r in read_progress(tmp_path)] == [10, 20, 30, 40, 50]
    prog = pd.read_csv(tmp_path / PROGRESS)  # pandas reads it too (the cut line as a row of missing values)
    assert list(prog["step"])[-1] == 50 and prog["loss_largest"].iloc[-1] == 3.0
    # a first write cut inside its header: the next record writes the file anew
    (tmp_path / PROGRESS).write_text("step,ste")
    append_progress(tmp_path, rec(10, 1.0))
    assert list(pd.read_csv(tmp_path / PROGRESS)["step"]) == [10]


@pytest.mark.slow
def test_supernet_train_killed_then_resumed_ends_where_an_uninterrupted_run_ends(work):
    steps = "60"
    run = work / "results" / "killed"
    proc = subprocess.Popen(_train_cmd(work, "--steps", steps, "--name", "killed", "--checkpoint-every", "0.5"),
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    step = 0
    while time.time() < deadline and proc.poll() is None:
        if (run / "supernet.pt").is_file():
            try:
                step = int(torch.load(run / "supernet.pt", weights_only=False)["step"])
            except Exception:  # being replaced right now
                step = 0
            if 10 <= step < 50:
                break
        time.sleep(0.2)
    assert 10 <= step < 50, proc.communicate()[0].decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "weights.pt").exists()
    r = subprocess.run([*NAS, "supernet", "train", "--resume", str(run)], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "supernet resumed" in r.stdout and (run / "weights.pt").is_file()
    prog = pd.read_csv(run / "progress.csv")
    assert list(prog["step"]) == list(range(10, int(steps) + 1, 10))  # each step once, the resumed run's
    # the same run without a kill: the same weights (batches and subnets are functions of the step)
    r = subprocess.run(_train_cmd(work, "--steps", steps, "--name", "whole"), env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a = torch.load(run / "weights.pt", weights_only=False)["state"]
    b = torch.load(work / "results" / "whole" / "weights.pt", weights_only=False)["state"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    # the finished run refuses a resume and names what to do instead
    assert main(["supernet", "train", "--resume", str(run)]) == 2


@pytest.mark.slow
def test_oneshot_search_end_to_end_with_confirmation_and_extract(work, tmp_path):
    sn = work / "results" / "whole"
    if not (sn / "weights.pt").is_file():
        r = subprocess.run(_train_cmd(work, "--steps", "60", "--name", "whole"), env=ENV, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    # relative paths, as a user types them (Ray runs each job in its own folder)
    cmd = [*NAS, "search", "--budget", "3M", "--space", TINY, "--proxy", "proxy.yaml", "--results", "results",
           "--strategy", "oneshot", "--supernet", "results/whole", "--trials", "8", "--name", "os",
           "--confirm-top", "1", "--confirm-seeds", "2", "--confirm-protocol", "confirm.yaml"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, cwd=work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "scored by inherited weights" in r.stdout and "trust meter:" in r.stdout
    assert "not shown to beat MAdds alone" in r.stdout  # said where the user chose the one-shot strategy
    run = work / "results" / "os"
    df = pd.read_parquet(run / "trials.parquet")
    search = df[(df["stage"] == "search") & (df["kind"] == "searched")]
    assert (search["status"] == "completed").sum() == 8
    refused = search.loc[~search["status"].isin(["completed", "failed"]), "madds_m"]
    assert len(refused) and ((refused > 3) | (refused < 1.5)).all()  # the band [1.5M, 3M]: never scored
    assert search.loc[search["status"] == "completed", "val_top1"].between(0, 100).all()
    # the scorer reports each subnet's parameters (the driver builds no network for them): the network's own count
    from nas.builder import build_model, count_params
    from nas.search.folder import params_from_row
    from nas.space import load_space, replay

    space = load_space(TINY)
    for row in search[search["status"] == "completed"].head(3).to_dict("records"):
        net = build_model(replay(params_from_row(row, space), space), num_classes=10, in_chans=1)
        assert row["params_m"] == pytest.approx(count_params(net) / 1e6, abs=1e-9), row["trial"]
    # the front and its variants, written at most every few seconds while scores arrive, hold at the stage's end
    front = set(pd.read_csv(run / "pareto.csv")["trial"].astype(str))
    assert front and all((run / "variants" / f"{t}.yaml").is_file() for t in front)
    assert front <= set(df.loc[df["config_path"] != "", "trial"].astype(str))
    conf = df[df["stage"] == "confirm"]
    assert len(conf) >= 2 and conf["status"].eq("completed").all() and set(conf["seed"]) == {0, 1}
    cfg = pd.read_csv(run / "confirmed.csv")
    assert (cfg["n"] == 2).all()
    import yaml

    run_yaml = yaml.safe_load((run / "run.yaml").read_text())
    assert run_yaml["strategy"] == "oneshot"
    from nas.supernet.score import CALIBRATION_IMAGES, SCORE_IMAGES

    assert run_yaml["oneshot_scoring"] == {"calibration_images": CALIBRATION_IMAGES, "score_images": SCORE_IMAGES}
    assert "inherited" in (run / "dashboard.html").read_text()
    # resume of a finished one-shot run trains and scores nothing new
    r2 = subprocess.run([*NAS, "search", "--resume", str(run)], env=ENV, capture_output=True,
                        text=True, timeout=300)
    assert r2.returncode == 0, r2.stdout[-2000:] + r2.stderr[-2000:]
    assert len(pd.read_parquet(run / "trials.parquet")) == len(df)
    # a front trial, extracted with its inherited weights, trains from them with `nas train --init`
    from nas.export import trial_arch

    # a one-shot search SIGKILLed mid-scoring resumes with every scored architecture kept, none scored twice
    kill = [*NAS, "search", "--budget", "3M", "--space", TINY, "--proxy", "proxy.yaml", "--results", "results",
            "--strategy", "oneshot", "--supernet", "results/whole", "--trials", "12", "--name", "oskill", "--no-confirm"]
    proc = subprocess.Popen(kill, env=ENV, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    kr, before = work / "results" / "oskill", None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (kr / "trials.parquet").is_file():
            d = read_trials(kr)  # one open handle: a path read races the run's atomic replace of the file
            done = d[(d["stage"] == "search") & (d["kind"] == "searched") & (d["status"] == "completed")]
            if len(done) >= 3 and (kr / R.TRIALS_PENDING).is_file():  # rows the trials files do not hold yet
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                before, pending = done, (kr / R.TRIALS_PENDING).is_file()
                break
        time.sleep(0.2)
    assert before is not None, proc.communicate()[0].decode()[-3000:]
    r3 = subprocess.run([*NAS, "search", "--resume", str(kr)], env=ENV, capture_output=True, text=True, timeout=300)
    assert r3.returncode == 0, r3.stdout[-2000:] + r3.stderr[-2000:]
    after = pd.read_parquet(kr / "trials.parquet")
    scored = after[(after["stage"] == "search") & (after["kind"] == "searched") & (after["status"] == "completed")]
    assert len(scored) == 12 and not after.duplicated(["trial", "stage", "seed"]).any()
    kept = scored.set_index("trial").loc[before["trial"], "finished_at"]
    assert list(kept) == list(before["finished_at"])  # the rows scored before the kill are the same rows
    assert pending and not (kr / R.TRIALS_PENDING).exists()  # the kill left pending rows; the resume wrote them

    trial = str(search[search["status"] == "completed"].sort_values("val_top1").iloc[-1]["trial"])
    trial_arch(run, trial).to_yaml(tmp_path / "a.yaml")
    assert main(["supernet", "extract", str(sn), str(tmp_path / "a.yaml"), "--out", str(tmp_path / "x")]) == 0
    name = trial_arch(run, trial).name
    assert (tmp_path / "x" / f"{name}.onnx").is_file()
    out = tmp_path / "m.json"
    assert main(["train", str(tmp_path / "a.yaml"), "--init", str(tmp_path / "x" / f"{name}.pt"), "--proxy",
                 str(work / "proxy.yaml"), "--out", str(out), "--no-progress"]) == 0


def test_oneshot_refuses_a_supernet_whose_split_differs(work, capsys, tmp_path):
    sn = tmp_path / "sn"
    sn.mkdir()
    import yaml

    (sn / "supernet.yaml").write_text(yaml.safe_dump({"data": "fashion-mnist", "space": {},
                                                      "protocol": {"val_images": 64, "seed": 0, "resolution": 16}}))
    assert main(["search", "--budget", "3M", "--space", TINY, "--strategy", "oneshot", "--supernet", str(sn),
                 "--proxy", str(work / "proxy.yaml"), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "has not finished training" in err and "fix:" in err
    torch.save({}, sn / "weights.pt")
    assert main(["search", "--budget", "3M", "--space", TINY, "--strategy", "oneshot", "--supernet", str(sn),
                 "--proxy", str(work / "proxy.yaml"), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "val_images" in err and "Traceback" not in err


def test_oneshot_without_a_supernet_says_how_to_get_one(tmp_path, capsys):
    assert main(["search", "--budget", "3M", "--space", TINY, "--strategy", "oneshot",
                 "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no trained supernet" in err and "nas supernet train" in err


def test_supernet_train_bad_input(tmp_path, capsys):
    assert main(["supernet", "train", "--space", TINY, "--budget", "3M", "--macro", "mobile_former",
                 "--results", str(tmp_path)]) == 2
    assert "--macro 'mobile_former' is not a macro" in capsys.readouterr().err
    assert main(["supernet", "train", "--space", TINY, "--budget", "-3M", "--results", str(tmp_path)]) == 2
    assert "negative" in capsys.readouterr().err
    assert main(["supernet", "train", "--resume", str(tmp_path / "nope")]) == 2
    assert "no supernet.yaml" in capsys.readouterr().err
