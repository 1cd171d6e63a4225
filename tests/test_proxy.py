"""The proxy protocol (ProxyConfig / load_proxy) and the trainer on tiny synthetic data, real code paths."""

from __future__ import annotations

import pytest
import torch

from nas.config import ArchConfig
from nas.data import ImageData
from nas.errors import ConfigError
from nas.train import (
    DEFAULT_PROXY_PATH,
    ProxyConfig,
    augment,
    load_proxy,
    make_optimizer,
    prepare_data,
    shipped_protocols,
    time_steps,
    to_resolution,
    train_arch,
    train_batch,
    train_step,
)

TINY = ArchConfig.from_dict({
    "name": "tiny", "resolution": 32, "stem": {"out": 8, "act": "relu"},
    "stages": [{"name": "s1", "blocks": [{"kind": "ir", "out": 16, "stride": 2, "act": "relu"},
                                         {"kind": "ir", "out": 16, "act": "relu"}]}],
})


def synthetic(n_train: int = 384, n_test: int = 64, size: int = 12, seed: int = 0) -> ImageData:
    """4 classes: a bright square in one of the 4 quadrants, on noise. Learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 4
        x = torch.randint(0, 90, (n, 1, size, size), generator=g)
        h = size // 2
        for c in range(4):
            r0, c0 = (c // 2) * h, (c % 2) * h
            x[y == c, :, r0 + 1:r0 + h - 1, c0 + 1:c0 + h - 1] += 150
        return x.clamp(0, 255).to(torch.uint8), y

    tx, ty = make(n_train)
    sx, sy = make(n_test)
    return ImageData(name="quadrants", train_x=tx, train_y=ty, test_x=sx, test_y=sy, num_classes=4,
                     classes=("tl", "tr", "bl", "br"), source="synthetic")


QUICK = ProxyConfig(resolution=16, epochs=3, train_images=320, val_images=64, batch_size=32, lr=0.01,
                    warmup_epochs=0.5, crop_padding=1, hflip=False, seed=0)


# --- protocol ----------------------------------------------------------------------------------------------

def test_default_yaml_is_the_dataclass_default_and_hash_is_stable():
    p = load_proxy()
    assert p == ProxyConfig()
    assert DEFAULT_PROXY_PATH.is_file()
    assert len(p.hash) == 10 and int(p.hash, 16) >= 0
    assert p.hash == ProxyConfig(**p.to_dict()).hash
    assert p.replace(seed=1).hash != p.hash
    assert load_proxy(epochs=7, seed=None).epochs == 7


def test_unknown_key_and_bad_values_are_config_errors(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match="unknown proxy setting 'epoch'") as e:
        load_proxy(f)
    assert "did you mean 'epochs'" in str(e.value)
    f.write_text("epochs: [3\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_proxy(f)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_proxy(f)
    with pytest.raises(ConfigError, match="optimizer"):
        load_proxy(optimizer="lion")
    with pytest.raises(ConfigError, match="lr"):
        load_proxy(lr=0)
    with pytest.raises(ConfigError, match="unknown proxy setting"):
        load_proxy(epocs=2)


def test_shipped_protocols_load_by_name():
    assert shipped_protocols()["default"] == DEFAULT_PROXY_PATH
    for name, path in shipped_protocols().items():
        assert load_proxy(name) == load_proxy(path)
    assert load_proxy("default", seed=4) == ProxyConfig(seed=4)
    with pytest.raises(ConfigError, match="unknown proxy protocol 'defualt'") as e:
        load_proxy("defualt")
    assert "default" in e.value.hint
    with pytest.raises(ConfigError, match="no such file"):
        load_proxy("no/such/proxy.yaml")


# --- input pipeline ----------------------------------------------------------------------------------------

def test_to_resolution_pads_small_growth_and_resizes_otherwise():
    x = torch.full((2, 1, 28, 28), 200, dtype=torch.uint8)
    y = to_resolution(x, 32)
    assert y.shape == (2, 1, 32, 32) and y[0, 0, 0, 0] == 0 and torch.equal(y[:, :, 2:30, 2:30], x)
    z = to_resolution(x, 16)
    assert z.shape == (2, 1, 16, 16) and z.dtype == torch.uint8 and int(z[0, 0, 8, 8]) == 200


def test_augment_is_a_seeded_crop_and_flip():
    x = torch.arange(4 * 3 * 8 * 8, dtype=torch.int64).view(4, 3, 8, 8).to(torch.uint8)
    a = augment(x, padding=2, hflip=True, generator=torch.Generator().manual_seed(0))
    b = augment(x, padding=2, hflip=True, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    f = augment(x, padding=0, hflip=True, generator=torch.Generator().manual_seed(1))
    for i in range(4):
        assert torch.equal(f[i], x[i]) or torch.equal(f[i], x[i].flip(-1))
    # a crop is a shifted window of the zero-padded image
    c = augment(x, padding=2, hflip=False, generator=torch.Generator().manual_seed(2))
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(4):
        assert any(torch.equal(c[i], xp[i, :, dy:dy + 8, dx:dx + 8]) for dy in range(5) for dx in range(5))


# --- trainer -----------------------------------------------------------------------------------------------

def test_trainer_learns_and_reports_each_epoch():
    data = synthetic()
    seen = []
    r = train_arch(TINY, data, QUICK, report=seen.append, threads=1, final=True)
    assert r.status == "completed", r.error
    assert [m["epoch"] for m in seen] == [1, 2, 3]
    assert set(seen[0]) == {"epoch", "train_loss", "val_top1", "val_loss", "images_per_s", "elapsed_s"}
    assert all(m["val_loss"] > 0 for m in seen)
    assert seen[-1]["train_loss"] < seen[0]["train_loss"]
    assert r.val_top1 > 60.0  # chance is 25%
    assert r.test_top1 is not None and r.test_top1 > 60.0
    assert r.best_val_top1 >= r.val_top1 and r.history == seen
    assert r.params and r.train_images_per_s > 0 and r.proxy_hash == QUICK.hash


def test_validating_after_the_last_epoch_only_gives_the_same_result(monkeypatch):
    """curve=False skips the validation of every epoch but the last: the trained network and its last val top-1
    are the same to the digit (evaluation draws no random numbers and changes no weight), the earlier epochs
    report val_top1 None, and the validation set is evaluated once instead of three times."""
    import nas.train.loop as L

    data = synthetic()
    calls = []
    real = L.evaluate_metrics
    monkeypatch.setattr(L, "evaluate_metrics", lambda model, x, *a, **k: calls.append(len(x)) or real(model, x, *a, **k))
    every = train_arch(TINY, data, QUICK, threads=1, final=True)
    n_every, calls[:] = list(calls), []
    last = train_arch(TINY, data, QUICK, threads=1, final=True, curve=False)
    assert n_every == [64, 64, 64, 64] and calls == [64, 64]  # 3 validations + the test subset; 1 + the test subset
    assert last.status == "completed" and last.val_top1 == every.val_top1 and last.test_top1 == every.test_top1
    assert [m["train_loss"] for m in last.history] == [m["train_loss"] for m in every.history]
    assert [m["val_top1"] for m in last.history] == [None, None, every.val_top1]
    assert last.best_val_top1 == last.val_top1


def test_same_seed_same_metrics():
    data = synthetic()
    p = QUICK.replace(epochs=1)
    a = train_arch(TINY, data, p, threads=1)
    b = train_arch(TINY, data, p, threads=1)
    assert [(m["train_loss"], m["val_top1"]) for m in a.history] == [(m["train_loss"], m["val_top1"]) for m in b.history]
    c = train_arch(TINY, data, p.replace(seed=5), threads=1)
    assert c.history[0]["train_loss"] != a.history[0]["train_loss"]


def test_absurd_lr_ends_with_status_nan():
    r = train_arch(TINY, synthetic(), QUICK.replace(optimizer="sgd", lr=1e12, warmup_epochs=0.0), threads=1)
    assert r.status == "nan"
    assert "non-finite" in r.error and "lower the learning rate" in r.error
    assert r.val_top1 is None  # no garbage accuracy


def test_report_stop_stops_training():
    r = train_arch(TINY, synthetic(), QUICK, report=lambda m: "stop", threads=1)
    assert r.status == "early_stopped" and r.epochs_run == 1 and len(r.history) == 1


def test_the_public_step_trains_and_time_steps_times_it():
    data = synthetic()
    prep = prepare_data(data, QUICK)
    torch.manual_seed(0)
    from nas.builder import build_model

    model = build_model(TINY, num_classes=4, in_chans=1, input_size=QUICK.resolution).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, QUICK)
    crit = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    xb, yb = train_batch(prep, torch.arange(32), QUICK, gen)
    assert xb.dtype == torch.float32 and xb.is_contiguous(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    loss = train_step(model, xb, yb, opt, crit, lr=0.01)
    assert loss.ndim == 0 and not loss.requires_grad and torch.isfinite(loss)
    assert opt.param_groups[0]["lr"] == 0.01 and opt.defaults["fused"]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    s = time_steps(TINY, QUICK, data, steps=2, threads=1)
    assert 0 < s < 1.0  # seconds per image


def test_final_without_test_split_is_a_data_error():
    from nas.errors import DataError

    d = synthetic()
    d = ImageData(name="x", train_x=d.train_x, train_y=d.train_y, test_x=None, test_y=None, num_classes=4,
                  classes=d.classes, source="x")
    with pytest.raises(DataError, match="no test split"):
        train_arch(TINY, d, QUICK.replace(epochs=1), final=True, threads=1)


def test_a_stretched_rung_trains_the_steps_it_is_labelled_with_when_the_images_run_out():
    """Two passes of fresh images hold at most available / batch / 2 steps per pass; beyond that `stretched`
    takes more passes over fewer images so the step count stays exact (Fashion-MNIST: 8,192 steps would have
    been 7,436 at 2 passes over its 59,488 images). The trainer's own epoch shape agrees."""
    from nas.train.loop import epoch_shape
    from nas.train.pipeline import prepare_data

    p = ProxyConfig(resolution=12, epochs=1, train_images=64, val_images=64, batch_size=16, warmup_epochs=0.25)
    assert (p.stretched(512).epochs, p.stretched(512).train_images) == (2, 4096)  # no dataset given: 2 passes
    assert p.stretched(2048, available=59488).epochs == 2
    q = p.stretched(8192, available=59488)
    assert (q.epochs, q.train_images, q.steps) == (4, 32768, 8192) and q.warmup_epochs == pytest.approx(1.0)
    assert p.stretched(8192).steps == 8192 and p.stretched(8192).train_images == 65536  # more than it has
    data = synthetic(n_train=384)  # 320 training images beside the 64 of validation
    for steps, passes in ((20, 2), (60, 3), (64, 4)):
        r = p.stretched(steps, available=320)
        prep = prepare_data(data, r)
        bs, per_pass = epoch_shape(prep, r)
        assert (r.epochs, bs * per_pass * r.epochs) == (passes, 16 * steps) and per_pass * r.epochs == steps
    with pytest.raises(ConfigError, match="cannot be laid out on 8 training images"):
        p.stretched(64, available=8)


def test_a_protocol_asking_more_images_than_the_dataset_has_counts_the_steps_it_trains():
    """The trainer draws min(train_images, available) images (`prepare_data`); `steps_on` counts the optimizer
    steps that gives, as the trainer's epoch shape does, and `shortfall` says so in one line (rows and rungs
    record `steps_on`, so a capped protocol no longer labels its rows with steps it never trained)."""
    from nas.train.loop import epoch_shape
    from nas.train.pipeline import prepare_data

    data = synthetic(n_train=384)  # 320 training images beside the 64 of validation
    available = len(data.train_y) - 64
    for asked in (64, 320, 1000, 4096):
        p = ProxyConfig(resolution=12, epochs=3, train_images=asked, val_images=64, batch_size=16)
        bs, per_pass = epoch_shape(prepare_data(data, p), p)
        assert p.steps_on(available) == per_pass * p.epochs == 3 * min(asked, 320) // 16
        assert p.steps_on(None) == p.steps
        short = p.shortfall(available)
        assert (short is None) == (asked <= 320)
    assert p.steps == 768 and p.steps_on(available) == 60
    assert short.startswith("the protocol asks for 4096 training images; the dataset has 320 beside its 64 "
                            "validation images") and "(60 optimizer steps, not 768)" in short
