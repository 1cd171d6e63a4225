"""`nas.dwconv`'s C kernel for depthwise 3x3 convolutions with a channel multiplier: built with the system's
compiler, the plain convolution's values and gradients to float rounding at every shape, stride and multiplier
the blocks make (odd and tiny maps included), taken by `Conv2d` exactly where it should be, and a Mobile-Former
trains and evaluates with it as without; without a compiler, or with NAS_DWCONV=0, oneDNN runs as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nas import dwconv
from nas.blocks.common import Conv2d, batchnorm_folded
from nas.builder import build_model
from nas.variants import get_variant

ROOT = Path(__file__).resolve().parent.parent
CL = torch.channels_last


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> None:
    """Equal to float rounding at the tensor's scale (a weight gradient sums hundreds of products)."""
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= rel * float(b.abs().max()) + 1e-7


@pytest.fixture
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_the_kernel_builds_where_there_is_a_compiler():
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here: oneDNN runs these convolutions (test_without_a_compiler_...)")
    assert dwconv.library_path() is not None and dwconv.active()


# (in channels, multiplier, height, width, stride): Mobile-Former's shapes at 32 px, odd and tiny maps, and
# multipliers with and without a specialised loop (1 on 2x2 maps, 2, 3, 4, 5, 6)
SHAPES = [(12, 2, 32, 32, 1), (12, 6, 32, 32, 2), (16, 4, 16, 16, 1), (88, 6, 4, 4, 2), (128, 4, 2, 2, 1),
          (24, 1, 2, 2, 1), (5, 3, 7, 8, 2), (3, 2, 5, 5, 1), (7, 5, 3, 6, 1), (2, 2, 1, 1, 1), (2, 2, 1, 1, 2),
          (3, 3, 2, 2, 2), (4, 6, 9, 9, 2), (1, 4, 6, 3, 1)]


@pytest.mark.parametrize("cin,m,h,w,s", SHAPES)
def test_the_kernel_gives_the_plain_convs_values_and_gradients(cin, m, h, w, s, one_thread):
    if not dwconv.active():
        pytest.skip("the kernel is not built here")
    torch.manual_seed(0)
    x = torch.randn(3, cin, h, w).contiguous(memory_format=CL).requires_grad_()
    weight = torch.randn(cin * m, 1, 3, 3, requires_grad=True)
    bias = torch.randn(cin * m, requires_grad=True)
    ref = F.conv2d(x, weight, bias, s, 1, 1, cin)
    g = torch.randn_like(ref)
    out = dwconv.conv(x, weight, s, bias)
    assert out.shape == ref.shape and out.is_contiguous(memory_format=CL)
    close(out, ref)
    for a, b in zip(torch.autograd.grad(out, (x, weight, bias), g), torch.autograd.grad(ref, (x, weight, bias), g,
                                                                                           retain_graph=True)):
        close(a, b)
    with torch.no_grad():  # forward only, the bias added in the kernel's pass (folded evaluation)
        close(dwconv.forward(x, weight, s, bias), ref)
    # only the gradients asked for: a frozen weight, an input that needs none
    gx, = torch.autograd.grad(dwconv.conv(x, weight.detach(), s), (x,), g)
    close(gx, torch.autograd.grad(ref, (x,), g, retain_graph=True)[0])
    gw, = torch.autograd.grad(dwconv.conv(x.detach(), weight, s), (weight,), g)
    close(gw, torch.autograd.grad(ref, (weight,), g)[0])
    # no second derivative through it: an error, not a silently wrong one (its gradient has no graph)
    gx, = torch.autograd.grad(dwconv.conv(x, weight, s), (x,), g, create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        gx.sum().backward()


def test_a_call_the_kernel_cannot_take_raises_before_reaching_it(one_thread):
    if not dwconv.active():
        pytest.skip("the kernel is not built here")
    x = torch.randn(2, 4, 5, 5)
    w = torch.randn(8, 1, 3, 3)
    for bad in ((x[0], w, 1), (x.double(), w, 1), (x, torch.randn(6, 1, 3, 3), 1), (x, torch.randn(8, 1, 5, 5), 1),
                (x, w, 3), (x[:, :, :0], w, 1)):
        with pytest.raises(ValueError, match="nas.dwconv takes"):
            dwconv.forward(*bad)
    with pytest.raises(ValueError, match="nas.dwconv takes"):
        dwconv.conv(x, w, 1, torch.randn(3))
    close(dwconv.forward(x, w, 1), F.conv2d(x, w, None, 1, 1, 1, 4))  # a contiguous map is taken (made NHWC)


def test_conv2d_takes_the_kernel_exactly_where_it_should(one_thread, monkeypatch):
    """A multiplier, or a map of at most 2x2, at one thread, float32 channels_last on the CPU: the kernel. A plain
    depthwise conv of a larger map, a contiguous map, two threads, float64, a 5x5 kernel, a traced run: the plain
    conv, with its values."""
    if not dwconv.active():
        pytest.skip("the kernel is not built here")
    calls = []
    kernel = dwconv.conv
    monkeypatch.setattr(dwconv, "conv", lambda *a, **k: calls.append(1) or kernel(*a, **k))

    def ran(conv: Conv2d, x: torch.Tensor) -> bool:
        n = len(calls)
        torch.testing.assert_close(conv(x), torch.nn.Conv2d.forward(conv, x), rtol=1e-5, atol=1e-5)
        return len(calls) > n

    torch.manual_seed(0)
    mult = Conv2d(8, 32, 3, 2, 1, groups=8, bias=False)
    plain = Conv2d(8, 8, 3, 1, 1, groups=8, bias=False)
    x = torch.randn(2, 8, 8, 8).contiguous(memory_format=CL).requires_grad_()
    assert ran(mult, x)
    assert ran(plain, x[:, :, :2, :2].contiguous(memory_format=CL))  # oneDNN's weight gradient is slow there
    assert not ran(plain, x)
    assert not ran(mult, x.contiguous())
    assert not ran(Conv2d(8, 32, 3, 2, 1, groups=8).double(), x.double().contiguous(memory_format=CL))
    assert not ran(Conv2d(8, 32, 5, 1, 2, groups=8), x)
    torch.set_num_threads(2)
    assert not ran(mult, x)  # the kernel is serial: oneDNN's parallel kernels at more threads
    torch.set_num_threads(1)
    n = len(calls)
    traced = torch.jit.trace(mult, x.detach())  # fvcore's count and ONNX see the plain convolution
    assert len(calls) == n and "aten::_convolution" in str(traced.graph)


@pytest.mark.parametrize("name", ["mobile_former_26m", "mobile_former_151m"])
def test_a_mobile_former_trains_and_evaluates_as_with_onednn(name, one_thread, monkeypatch):
    """The same network with the kernel and without it (oneDNN): outputs and every gradient of a training step,
    and the folded evaluation, to float rounding."""
    if not dwconv.active():
        pytest.skip("the kernel is not built here")
    calls = []
    kernel, fwd = dwconv.conv, dwconv.forward
    monkeypatch.setattr(dwconv, "conv", lambda *a, **k: calls.append("train") or kernel(*a, **k))
    monkeypatch.setattr(dwconv, "forward", lambda *a, **k: calls.append("eval") or fwd(*a, **k))
    torch.manual_seed(0)
    model = build_model(get_variant(name), num_classes=10, input_size=32).to(memory_format=CL)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=CL)

    def step() -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        model.train()
        model.zero_grad(set_to_none=True)
        y = model(x)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        model.eval()
        with torch.no_grad(), batchnorm_folded(model):
            return y.detach(), grads, model(x)

    state = {k: v.clone() for k, v in model.state_dict().items()}
    y, grads, ev = step()
    assert "train" in calls and "eval" in calls
    model.load_state_dict(state)  # the same BatchNorm statistics for the reference step
    monkeypatch.setattr(dwconv, "wanted", lambda *_: False)
    n = len(calls)
    y_ref, grads_ref, ev_ref = step()
    assert len(calls) == n  # the reference ran oneDNN only
    close(y, y_ref, 1e-4)
    close(ev, ev_ref, 1e-4)
    # every gradient: the float rounding of sums in another order, carried back through the network (a BatchNorm
    # bias's gradient is a difference of near-equal sums: 1e-2 of its own scale, far less of the whole)
    flat, flat_ref = torch.cat([g.flatten() for g in grads]), torch.cat([g.flatten() for g in grads_ref])
    assert float((flat - flat_ref).norm()) <= 1e-4 * float(flat_ref.norm())
    floor = 1e-5 * float(flat_ref.abs().max())  # gradients that are zero up to rounding
    for a, b in zip(grads, grads_ref):
        assert float((a - b).abs().max()) <= 3e-2 * float(b.abs().max()) + floor


PROBE = """
import json, torch
torch.set_num_threads(1)
from nas import dwconv
from nas.runtime import Runtime
from nas.blocks.common import Conv2d
conv = Conv2d(4, 8, 3, 1, 1, groups=4)
x = torch.randn(2, 4, 6, 6).contiguous(memory_format=torch.channels_last)
y = conv(x)
print(json.dumps({"active": dwconv.active(), "recorded": Runtime().dwconv_kernel, "path": str(dwconv.library_path()),
                  "err": float((y - torch.nn.Conv2d.forward(conv, x)).abs().max())}))
"""


def test_without_a_compiler_or_switched_off_onednn_runs_and_the_runtime_records_it(tmp_path):
    """No C compiler on PATH and no cached build: nothing is built and the convolution runs in oneDNN;
    NAS_DWCONV=0: the same with a build at hand. `Runtime.dwconv_kernel` records which."""
    nocc = tmp_path / "bin"
    nocc.mkdir()
    runs = {}
    for what, extra in (("no compiler", {"PATH": str(nocc), "XDG_CACHE_HOME": str(tmp_path / "cache")}),
                        ("switched off", {"NAS_DWCONV": "0"}), ("default", {})):
        env = {**os.environ, **extra}
        r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        runs[what] = json.loads(r.stdout.strip().splitlines()[-1])
    assert runs["no compiler"]["path"] == "None" and not list((tmp_path / "cache").rglob("dwconv-*"))
    for what in ("no compiler", "switched off"):
        assert runs[what]["active"] is False and runs[what]["recorded"] is False and runs[what]["err"] < 1e-5
    have_cc = bool(shutil.which("cc") or shutil.which("gcc"))
    assert runs["default"]["active"] is have_cc and runs["default"]["recorded"] is have_cc
    assert runs["default"]["err"] < 1e-5
