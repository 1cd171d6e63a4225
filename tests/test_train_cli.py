"""`nas train`: clear errors with non-zero exit and no traceback; end to end on a tiny config and proxy."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from nas.cli import main

TINY = {"name": "tiny", "resolution": 32, "stem": {"out": 8, "act": "relu"},
        "stages": [{"name": "s1", "blocks": [{"kind": "ir", "out": 16, "stride": 2, "act": "relu"}]}]}
TINY_PROXY = {"resolution": 16, "epochs": 2, "train_images": 96, "val_images": 32, "batch_size": 16,
              "lr": 0.01, "warmup_epochs": 0.0, "crop_padding": 1}


def _idx(path: Path, arr: np.ndarray) -> None:
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_files(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    d.mkdir()
    for split, n in (("train", 160), ("t10k", 40)):
        y = np.arange(n) % 2
        x = rng.integers(0, 80, (n, 28, 28))
        x[y == 1, 4:24, 4:14] += 170  # class 1: a bright left half
        _idx(d / f"{split}-images-idx3-ubyte.gz", x)
        _idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    arch = tmp_path / "tiny.yaml"
    arch.write_text(yaml.safe_dump(TINY))
    proxy = tmp_path / "proxy.yaml"
    proxy.write_text(yaml.safe_dump(TINY_PROXY))
    return d, arch, proxy


def test_train_end_to_end_writes_metrics_json(tiny_files, tmp_path, capsys):
    d, arch, proxy = tiny_files
    out = tmp_path / "m" / "metrics.json"
    rc = main(["train", str(arch), "--data", str(d), "--proxy", str(proxy), "--out", str(out), "--final",
               "--seed", "3", "--threads", "1", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"metrics written to {out}" in printed and "test top-1" in printed
    rec = json.loads(out.read_text())
    assert rec["status"] == "completed" and rec["arch"] == "tiny" and rec["final"] is True
    assert rec["proxy"]["seed"] == 3 and rec["proxy"]["epochs"] == 2 and len(rec["history"]) == 2
    assert rec["test_top1"] is not None and 0 <= rec["test_top1"] <= 100
    assert rec["dataset"] == "data" and rec["madds_m"] > 0


def test_epochs_override_and_default_out_path(tiny_files, tmp_path, monkeypatch, capsys):
    d, arch, proxy = tiny_files
    monkeypatch.chdir(tmp_path)
    rc = main(["train", str(arch), "--data", str(d), "--proxy", str(proxy), "--epochs", "1", "--threads", "1"])
    assert rc == 0
    written = list((tmp_path / "results" / "train").glob("tiny-*-s0.json"))
    assert len(written) == 1 and len(json.loads(written[0].read_text())["history"]) == 1
    assert str(written[0].relative_to(tmp_path)) in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["train", "mobilevit_xxq"], "unknown variant 'mobilevit_xxq'"),
    (["train", "TINY", "--data", "/no/such/dir"], "unknown dataset '/no/such/dir'"),
    (["train", "TINY", "--data", "cifar10"], "dataset 'cifar10' not found"),
    (["train", "TINY", "--proxy", "BADYAML"], "malformed YAML"),
    (["train", "TINY", "--proxy", "confrim"], "unknown proxy protocol 'confrim'"),
    (["train", "BADYAML"], "malformed YAML"),
    (["train", "TINY", "--epochs", "0"], "--epochs 0 is invalid"),
])
def test_user_errors_are_one_clear_message(argv, needle, tiny_files, tmp_path, monkeypatch, capsys):
    _, arch, _ = tiny_files
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [1,\n")
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = [str(arch) if a == "TINY" else str(bad) if a == "BADYAML" else a for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert needle in err and "fix:" in err and "Traceback" not in err


def test_bad_data_in_a_real_process_has_no_traceback(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "nas", "train", "mobilevit_xxs", "--data", str(tmp_path / "nope")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "unknown dataset" in p.stderr and "fix:" in p.stderr


def test_train_says_when_the_dataset_has_fewer_images_than_the_protocol_asks(tiny_files, tmp_path, capsys):
    d, arch, _ = tiny_files
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump({**TINY_PROXY, "train_images": 400}))
    rc = main(["train", str(arch), "--data", str(d), "--proxy", str(big), "--out", str(tmp_path / "m.json"),
               "--threads", "1", "--no-progress"])
    assert rc == 0
    assert ("the protocol asks for 400 training images; the dataset has 128 beside its 32 validation images, so it "
            "trains 2 epochs over 128 (16 optimizer steps, not 50)") in capsys.readouterr().out
