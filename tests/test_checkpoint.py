"""A killed training job resumes from its checkpoint and ends as an uninterrupted one (`nas.train.checkpoint`):
in `train_arch`, in a run's job (`nas.train.job.train_job`, what Ray runs), and in `nas train`."""

from __future__ import annotations

import json

import pytest
from test_proxy import QUICK, TINY, synthetic
from test_train_cli import tiny_files  # noqa: F401 - a fixture

from nas.config import ArchConfig
from nas.train import checkpoint as C
from nas.train import train_arch
from nas.train.job import checkpoint_file, train_job

P4 = QUICK.replace(epochs=4)
# with dropout in its head: the resumed job must also continue torch's global random stream
DROPPY = ArchConfig.from_dict({**TINY.to_dict(), "head": {"dropout": 0.3}})


class Killed(BaseException):
    """What a kill looks like from inside the job: it propagates through train_arch (as KeyboardInterrupt does)."""


def kill_after(epoch: int, seen: list):
    def report(m):
        seen.append(m["epoch"])
        if m["epoch"] == epoch:
            raise Killed

    return report


def curve(r):
    return [(h["epoch"], h["train_loss"], h["val_top1"], h["val_loss"]) for h in r.history]


@pytest.fixture(autouse=True)
def every_epoch(monkeypatch):
    monkeypatch.setattr(C, "CHECKPOINT_EVERY_S", 0.0)  # the tests' epochs take milliseconds


def test_a_killed_job_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    data, ck = synthetic(), tmp_path / "job.ckpt.pt"
    straight = train_arch(DROPPY, data, P4, threads=1, final=True)
    seen: list[int] = []
    with pytest.raises(Killed):
        train_arch(DROPPY, data, P4, threads=1, final=True, report=kill_after(2, seen), checkpoint=ck)
    assert seen == [1, 2] and ck.is_file()
    seen.clear()
    resumed = train_arch(DROPPY, data, P4, threads=1, final=True, report=seen.append, checkpoint=ck)
    assert [m["epoch"] for m in seen] == [3, 4]  # epochs 1-2 came from the checkpoint, not trained again
    assert resumed.status == "completed" and resumed.resumed_after_epoch == 2
    assert curve(resumed) == curve(straight)  # bit for bit: weights, optimizer, data order, augmentation
    assert resumed.test_top1 == straight.test_top1 and resumed.best_val_top1 == straight.best_val_top1
    assert resumed.history[-1]["elapsed_s"] >= resumed.history[1]["elapsed_s"]
    assert not ck.exists() and not list(tmp_path.iterdir())  # the job is over: its file is gone


def test_the_last_epoch_is_never_saved_and_a_short_job_writes_nothing(tmp_path):
    ck = tmp_path / "job.ckpt.pt"
    saved = []
    r = train_arch(TINY, synthetic(), QUICK.replace(epochs=1), threads=1, checkpoint=ck,
                   report=lambda m: saved.append(ck.exists()))
    assert r.status == "completed" and saved == [False] and not ck.exists()


def test_a_checkpoint_of_another_job_is_not_resumed(tmp_path):
    data, ck = synthetic(), tmp_path / "job.ckpt.pt"
    with pytest.raises(Killed):
        train_arch(TINY, data, P4, threads=1, report=kill_after(2, []), checkpoint=ck)
    other = P4.replace(seed=7)  # another job: its protocol's hash differs
    seen: list[int] = []
    r = train_arch(TINY, data, other, threads=1, report=lambda m: seen.append(m["epoch"]), checkpoint=ck)
    assert seen == [1, 2, 3, 4] and r.resumed_after_epoch == 0
    assert curve(r) == curve(train_arch(TINY, data, other, threads=1))
    assert not ck.exists()


def test_a_torn_file_is_started_over(tmp_path):
    ck = tmp_path / "job.ckpt.pt"
    ck.write_bytes(b"not a checkpoint")
    seen: list[int] = []
    r = train_arch(TINY, synthetic(), P4.replace(epochs=2), threads=1, report=lambda m: seen.append(m["epoch"]),
                   checkpoint=ck)
    assert r.status == "completed" and seen == [1, 2] and not ck.exists()


def test_a_run_job_resumes_from_its_file_under_the_checkpoint_dir(tmp_path, monkeypatch):
    """`train_job` is what Ray's trainable runs for the confirm stage and its rungs; here it is killed and run
    again, as a resumed run runs it."""
    import nas.train.job as J
    from nas.jobs import TrialJob
    from nas.runtime import Runtime
    from nas.variants import get_variant

    monkeypatch.setitem(J._DATA_CACHE, "quadrants", synthetic())
    job = TrialJob(kind="baseline", trial="mobilevit_xxs", arch_id=get_variant("mobilevit_xxs").arch_id,
                   madds_m=0.0, variant="mobilevit_xxs", stage="confirm", seed=1, evaluate_test=True)
    kw = {"space": {}, "proxy": QUICK.replace(epochs=3, resolution=16).to_dict(), "data": "quadrants",
          "runtime": Runtime(threads=1).to_dict()}

    def kill_at_2(m):
        if m.get("epoch") == 2 and not m.get("final"):
            raise Killed

    with pytest.raises(Killed):
        train_job(job, kill_at_2, **kw, checkpoint_dir=tmp_path)
    ck = checkpoint_file(tmp_path, job)
    assert ck.is_file() and ck.name == "confirm-mobilevit_xxs-s1.pt"
    resumed: list[dict] = []
    train_job(job, resumed.append, **kw, checkpoint_dir=tmp_path)
    straight: list[dict] = []
    train_job(job, straight.append, **kw)
    assert [m["epoch"] for m in resumed if not m.get("final")] == [3]
    a, b = resumed[-1], straight[-1]
    assert a["status"] == b["status"] == "completed" and len(json.loads(a["val_curve"])) == 3
    assert (a["val_curve"], a["test_top1"], a["val_top1"]) == (b["val_curve"], b["test_top1"], b["val_top1"])
    assert not ck.exists()


def test_nas_train_resumes_a_killed_job(tiny_files, tmp_path, capsys):  # noqa: F811 - the fixture
    """The CLI's checkpoint sits next to its metrics JSON: the same command resumes and writes the whole curve."""
    from nas.cli import main
    from nas.data import load_dataset
    from nas.runtime import Runtime
    from nas.train import load_proxy

    d, arch, proxy_file = tiny_files
    args = ["train", str(arch), "--data", str(d), "--proxy", str(proxy_file), "--final", "--threads", "1",
            "--no-progress"]
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    assert main([*args, "--out", str(out_a)]) == 0
    proxy = load_proxy(str(proxy_file))
    with pytest.raises(Killed):  # the same job as the command's, killed after its first epoch
        train_arch(str(arch), load_dataset(str(d)), proxy, final=True, runtime=Runtime(threads=1).resolved(),
                   report=kill_after(1, []), checkpoint=tmp_path / "b.ckpt.pt")
    capsys.readouterr()
    assert main([*args, "--out", str(out_b)]) == 0
    assert f"resumed after epoch 1 of {proxy.epochs} from {tmp_path / 'b.ckpt.pt'}" in capsys.readouterr().out
    a, b = json.loads(out_a.read_text()), json.loads(out_b.read_text())
    assert b["resumed_after_epoch"] == 1 and a["resumed_after_epoch"] == 0
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert a["test_top1"] == b["test_top1"] and not (tmp_path / "b.ckpt.pt").exists()


@pytest.mark.parametrize("raw, want", [(None, 60.0), ("", 60.0), ("0", 0.0), ("2.5", 2.5)])
def test_the_interval_is_60_s_or_the_environment_s(raw, want, monkeypatch):
    monkeypatch.setattr(C, "CHECKPOINT_EVERY_S", 60.0)
    if raw is None:
        monkeypatch.delenv(C.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(C.ENV_VAR, raw)
    assert C.checkpoint_every_s() == want


@pytest.mark.parametrize("raw", ["abc", "-1", "nan"])
def test_a_bad_interval_is_one_clear_error_before_any_command_runs(raw, monkeypatch, capsys):
    from nas.cli import main

    monkeypatch.setenv(C.ENV_VAR, raw)
    assert main(["flops", "mobilevit_xxs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and f"NAS_CHECKPOINT_EVERY_S='{raw}' is not a number of seconds" in err[0]
    assert err[1].startswith("  fix: unset it")


def test_a_checkpoint_written_by_other_code_is_not_resumed(tmp_path, monkeypatch):
    """Like the baseline cache, a checkpoint keys on the network and training code's version: after an update
    of the blocks or the trainer, a killed job starts over."""
    data, ck = synthetic(), tmp_path / "job.ckpt.pt"
    with pytest.raises(Killed):
        train_arch(TINY, data, P4, threads=1, report=kill_after(2, []), checkpoint=ck)
    monkeypatch.setattr(C, "code_version", lambda: "another")
    seen: list[int] = []
    r = train_arch(TINY, data, P4, threads=1, report=lambda m: seen.append(m["epoch"]), checkpoint=ck)
    assert seen == [1, 2, 3, 4] and r.resumed_after_epoch == 0 and not ck.exists()
