"""nas.train.optim.AdamW against torch.optim.AdamW(fused=True): the same parameters and state, bit for bit,
its state dicts interchangeable, and no torch._dynamo import."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from nas.train.optim import AdamW


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    return net.to(memory_format=torch.channels_last)


def _groups(net: nn.Module) -> list[dict]:
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]


def _steps(net: nn.Module, opt, seed: int, n: int, *, skip_every: int = 0) -> None:
    """`n` steps on seeded data, a new learning rate each step; with `skip_every`, the last layer gets no
    gradient on every skip_every-th step (as an unsampled supernet branch)."""
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        x = torch.randn(4, 3, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 4, (4,), generator=g)
        for group in opt.param_groups:
            group["lr"] = 0.01 / (i + 1)
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        if skip_every and i % skip_every == 0:
            net[-1].weight.grad = None
            net[-1].bias.grad = None
        opt.step()


def _same(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_same_parameters_and_state_as_torch_fused_adamw():
    a, b = _net(), _net()
    ours = AdamW(_groups(a), lr=0.01, betas=(0.9, 0.999))
    ref = torch.optim.AdamW(_groups(b), lr=0.01, betas=(0.9, 0.999), fused=True)
    _steps(a, ours, 1, 7, skip_every=3)
    _steps(b, ref, 1, 7, skip_every=3)
    _same(a, b)
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert mine["state"].keys() == theirs["state"].keys()
    for k, s in theirs["state"].items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(mine["state"][k][name], s[name]), (k, name)
    # the skipped layer's counters lag by the skipped steps, as in torch
    last = len(mine["state"]) - 1
    assert float(mine["state"][last]["step"]) == 4.0 and float(mine["state"][0]["step"]) == 7.0
    assert [{k: v for k, v in g.items() if k != "params"} for g in mine["param_groups"]] == \
        [{k: v for k, v in g.items() if k != "params"} for g in theirs["param_groups"]]


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_dicts_load_into_each_other(direction):
    a, b = _net(), _net()
    first = (torch.optim.AdamW(_groups(a), lr=0.01, fused=True) if direction == "torch_to_ours"
             else AdamW(_groups(a), lr=0.01))
    _steps(a, first, 2, 3, skip_every=2)
    b.load_state_dict(a.state_dict())
    second = (AdamW(_groups(b), lr=0.5) if direction == "torch_to_ours"
              else torch.optim.AdamW(_groups(b), lr=0.5, fused=True))
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    assert second.param_groups[0]["lr"] == first.param_groups[0]["lr"]
    _steps(a, first, 3, 4)
    _steps(b, second, 3, 4)
    _same(a, b)


def test_a_state_dict_of_other_parameters_is_refused():
    net = _net()
    opt = AdamW(_groups(net), lr=0.01)
    _steps(net, opt, 0, 1)
    other = AdamW([{"params": list(net.parameters())}], lr=0.01)
    with pytest.raises(ValueError, match="parameter groups"):
        other.load_state_dict(opt.state_dict())
    sd = opt.state_dict()
    sd["param_groups"][1]["params"] = sd["param_groups"][1]["params"][:-1]
    with pytest.raises(ValueError, match="holds"):
        AdamW(_groups(net), lr=0.01).load_state_dict(sd)


def test_the_trainer_optimizer_does_not_import_dynamo():
    code = """
import sys, torch
from torch import nn
from nas.train import ProxyConfig, make_optimizer
net = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
opt = make_optimizer(net, ProxyConfig())
net(torch.randn(2, 4)).sum().backward()
opt.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())
print("torch._dynamo" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
