"""The exact shortcuts the blocks take on tiny maps (1x1 conv outputs, one-token attention) give the same
values and gradients as the plain ops, and traced runs (fvcore's count) keep the plain ops; evaluation with
BatchNorm folded into the convolutions gives the plain model's outputs and leaves the model as it was."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from nas.blocks.attention import MultiHeadSelfAttention
from nas.blocks.common import Conv2d, FoldedConvAct, batchnorm_folded
from nas.builder import build_model
from nas.madds import count_madds
from nas.profile import fvcore_profile
from nas.variants import get_variant


def _grads(module: torch.nn.Module, x: torch.Tensor, fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = x.detach().requires_grad_()
    module.zero_grad(set_to_none=True)
    y = fn(x)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return y.detach(), [x.grad] + [p.grad for p in module.parameters()]


CASES = [(h, w, k, s, g, bias) for h, w, k, s, g, bias in itertools.product(
    [1, 2, 3], [1, 2], [1, 3, 5], [1, 2, 3], [1, 2, 8], [False, True])
    if ((h + 2 * (k // 2) - k) // s, (w + 2 * (k // 2) - k) // s) == (0, 0)]


@pytest.mark.parametrize("h,w,k,s,g,bias", CASES)
def test_conv_with_1x1_output_equals_the_plain_conv(h, w, k, s, g, bias):
    torch.manual_seed(0)
    conv = Conv2d(8, 16, k, s, k // 2, groups=g, bias=bias)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(3, 8, h, w).contiguous(memory_format=fmt)
        y, grads = _grads(conv, x, conv)
        y_ref, grads_ref = _grads(conv, x, lambda t: torch.nn.Conv2d.forward(conv, t))
        assert y.shape == y_ref.shape == (3, 16, 1, 1)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads, grads_ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_conv_shortcut_is_not_taken_for_larger_outputs():
    conv = Conv2d(4, 4, 3, 1, 1)
    x = torch.randn(2, 4, 2, 2)
    assert conv(x).shape == (2, 4, 2, 2)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, 1, 1))


@pytest.mark.parametrize("bias", [False, True])
def test_a_pointwise_conv_of_a_channels_last_map_is_a_linear_with_the_plain_convs_values(bias, monkeypatch):
    """On the CPU, a 1x1 stride-1 ungrouped conv of a channels_last map runs as F.linear on its NHWC view: the
    plain conv's output and gradients, a channels_last output; contiguous maps and grouped, strided or larger
    kernels keep the plain conv."""
    import nas.blocks.common as common

    monkeypatch.setattr(common, "pointwise_as_linear", lambda: True)  # as under `nas` (MKL's fast kernels)
    torch.manual_seed(0)
    conv = Conv2d(24, 40, 1, bias=bias).to(memory_format=torch.channels_last)
    linear_calls = []
    linear = F.linear
    monkeypatch.setattr(F, "linear", lambda *a, **k: linear_calls.append(1) or linear(*a, **k))
    x = torch.randn(3, 24, 7, 5).contiguous(memory_format=torch.channels_last)
    y, grads = _grads(conv, x, conv)
    assert linear_calls == [1] and y.is_contiguous(memory_format=torch.channels_last)
    y_ref, grads_ref = _grads(conv, x, lambda t: torch.nn.Conv2d.forward(conv, t))
    assert len(linear_calls) == 1
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for other, t in ((conv, x.contiguous()), (Conv2d(24, 40, 1, groups=2), x), (Conv2d(24, 40, 1, stride=2), x),
                     (Conv2d(24, 40, 3, padding=1), x)):
        out = other(t)
        torch.testing.assert_close(out, torch.nn.Conv2d.forward(other, t))
    assert len(linear_calls) == 1  # none of those took it
    monkeypatch.setattr(common, "pointwise_as_linear", lambda: False)  # MKL's generic kernels: the plain conv
    torch.testing.assert_close(conv(x), y_ref)
    assert len(linear_calls) == 1


@pytest.mark.parametrize("mkl, amd, shim, want", [
    (True, False, False, True),   # an Intel CPU: MKL's own fast kernels
    (True, True, True, True),     # an AMD CPU with nas.blas's shim preloaded (as `nas` runs)
    (True, True, False, False),   # an AMD CPU without it: MKL's generic kernels, slower than oneDNN's conv
    (False, False, False, False),  # no MKL: torch's own products
])
def test_pointwise_as_linear_only_where_mkl_takes_its_fast_kernels(mkl, amd, shim, want, monkeypatch):
    from nas import blas
    from nas.blocks import common

    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: mkl)
    monkeypatch.setattr(blas, "amd_x86", lambda: amd)
    monkeypatch.setattr(blas, "active", lambda: amd and shim)
    monkeypatch.setattr(common, "_POINTWISE_AS_LINEAR", None)  # decided once per process: decide again
    assert common.pointwise_as_linear() is want
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: not mkl)
    assert common.pointwise_as_linear() is want  # kept for the process, as a compiled forward reads it


def test_one_token_attention_equals_sdpa():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(24, 4)
    x = torch.randn(5, 1, 24)

    def via_sdpa(t: torch.Tensor) -> torch.Tensor:
        b, n, d = t.shape
        q, k, v = attn.qkv(t).reshape(b, n, 3, 4, d // 4).permute(2, 0, 3, 1, 4)
        return attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))

    y, grads = _grads(attn, x, attn)
    y_ref, grads_ref = _grads(attn, x, via_sdpa)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_mobilevit_xxs_at_32px_takes_the_shortcuts_and_counts_nominal_madds(monkeypatch):
    """At 32 px (stem stride 2) layer5 runs on 1x1 maps and one-patch attention: the shortcuts run there,
    while the traced fvcore count equals the analytic count of the nominal ops at that resolution."""
    cfg = get_variant("mobilevit_xxs")
    model = build_model(cfg, num_classes=10).eval()
    sdpa_calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: sdpa_calls.append(1) or sdpa(*a, **k))
    out_sizes = []
    for m in model.modules():
        if isinstance(m, Conv2d):
            m.register_forward_hook(lambda _m, _i, out: out_sizes.append(out.shape[-1]))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    monkeypatch.undo()
    assert 1 in out_sizes  # convs with a 1x1 output ran (through the shortcut)
    assert len(sdpa_calls) == 2  # layer3's two layers (4 patches); layers 4-5 are one patch each
    assert fvcore_profile(model, 32).madds == count_madds(cfg, 32) - (1000 - 10) * 320


@pytest.mark.parametrize("name", ["mobilevit_xxs", "mobile_former_26m", "mobilevitv3_050"])
def test_batchnorm_folded_evaluation_equals_the_plain_model_and_puts_it_back(name):
    """Folded, the network computes its eval-mode outputs to float rounding (grouped convs and shuffles of
    Mobile-Former-26M, v3 fusion, 1x1-output convs at 32 px included), and on exit, also after an error, it has
    its modules, parameters and statistics back and trains as before."""
    from torch import nn

    from nas.train.loop import _metrics, evaluate_metrics
    from nas.train.pipeline import PreparedData

    torch.manual_seed(0)
    model = build_model(get_variant(name), num_classes=10, input_size=32).to(memory_format=torch.channels_last)
    with torch.no_grad():  # running statistics away from their (0, 1) start
        model(torch.randn(16, 3, 32, 32).contiguous(memory_format=torch.channels_last) * 3 + 1)
    model.eval()
    x = torch.randn(6, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layout = [(n, type(m)) for n, m in model.named_modules()]
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        ref = model(x)
        with batchnorm_folded(model):
            assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) < bns / 4  # folded, nearly all
            fused = [m for m in model.modules() if isinstance(m, FoldedConvAct)]
            assert len(fused) > bns / 4 and {m.post_op for m in fused} >= {"none"}  # conv + bias (+ act) in oneDNN
            out = model(x)
            plain = model(x.contiguous())  # another layout: each runs act(conv(x)) instead
        torch.testing.assert_close(plain, ref, rtol=1e-4, atol=1e-4)
        with pytest.raises(ZeroDivisionError), batchnorm_folded(model):
            raise ZeroDivisionError
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert [(n, type(m)) for n, m in model.named_modules()] == layout
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    # the trainer's evaluation (folded) against the same loop over the plain modules
    imgs = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,))
    prep = PreparedData(train_x=imgs, train_y=labels, val_x=imgs, val_y=labels, test_x=None, test_y=None,
                        mean=torch.full((1, 3, 1, 1), 120.0), std=torch.full((1, 3, 1, 1), 60.0))
    top1, loss = evaluate_metrics(model, imgs, labels, prep, batch_size=16)
    top1_plain, loss_plain = _metrics(model, imgs, labels, prep, batch_size=16, grow=False)
    assert top1 == top1_plain and loss == pytest.approx(loss_plain, rel=1e-5)
    # fold=False (a one-shot score) evaluates the modules as they are: every BatchNorm runs, and the numbers are
    # the plain loop's (batches may differ: the loss's sum to float rounding)
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    top1_unfolded, loss_unfolded = evaluate_metrics(model, imgs, labels, prep, batch_size=16, fold=False)
    assert top1_unfolded == top1_plain and loss_unfolded == pytest.approx(loss_plain, rel=1e-6)
    assert len(calls) >= bns  # every BatchNorm ran, once a batch
    for h in hooks:
        h.remove()
    # and it trains afterwards: batch statistics again, gradients for every BatchNorm
    model.train()
    model(x).sum().backward()
    assert all(m.weight.grad is not None for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize(("channels", "expect"), [(8, 128), (128, 32), (512, 16)])
def test_cpu_evaluation_batch_grows_while_the_largest_activation_fits(channels, expect):
    """From a requested 16: a 32x32 map of 8 channels (32 KiB an image) grows to the cap of 128; of 128 channels
    (512 KiB) to 32, the most whose maps fit 16 MiB; of 512 channels (2 MiB) it stays 16. The probe leaves no
    hook behind."""
    from torch import nn

    from nas.train.loop import EVAL_ACTIVATION_BYTES, MAX_EVAL_BATCH, cpu_eval_batch

    assert (EVAL_ACTIVATION_BYTES, MAX_EVAL_BATCH) == (16 * 2**20, 128)
    model = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)).eval()
    with torch.no_grad():
        assert cpu_eval_batch(model, torch.randn(1, 3, 32, 32), 16) == expect
    assert all(not m._forward_hooks for m in model.modules())


def test_a_batch_at_the_cap_is_kept_without_the_probe():
    """A batch that cannot double within MAX_EVAL_BATCH is returned as it is, and the network is not run."""
    from torch import nn

    from nas.train.loop import MAX_EVAL_BATCH, cpu_eval_batch

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1)).eval()
    runs = []
    model.register_forward_hook(lambda *_: runs.append(1))
    with torch.no_grad():
        assert cpu_eval_batch(model, torch.randn(1, 3, 32, 32), MAX_EVAL_BATCH) == MAX_EVAL_BATCH
        assert cpu_eval_batch(model, torch.randn(1, 3, 32, 32), MAX_EVAL_BATCH // 2 + 1) == MAX_EVAL_BATCH // 2 + 1
        assert runs == []
        assert cpu_eval_batch(model, torch.randn(1, 3, 32, 32), MAX_EVAL_BATCH // 2) == MAX_EVAL_BATCH
    assert runs == [1]


def _layout(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, str]]:
    return [(n, tuple(t.shape), t.dtype, t.device.type) for n, t in [*model.named_parameters(), *model.named_buffers()]]


def test_a_meta_build_is_the_network_without_its_initialisers():
    """`build_meta` gives every published variant and sampled architectures of both macros with the names,
    shapes and dtypes of `build_model` on the meta device; torch.nn.init's functions are torch's own again
    afterwards, also after a build that failed, and initialise real tensors as before."""
    import optuna
    from torch.nn import init

    from nas.builder import _INITIALISERS, build_meta
    from nas.space import load_space, sample_arch
    from nas.variants import list_variants

    before = {n: getattr(init, n) for n in _INITIALISERS}
    space = load_space("hybrid")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    archs = [get_variant(n) for n in list_variants()] + [sample_arch(study.ask(), space) for _ in range(12)]
    assert {a.family for a in archs[-12:]} == {"hybrid-MF", "hybrid-ViT"}  # both macros
    for a in archs:
        with torch.device("meta"):
            want = _layout(build_model(a, num_classes=10, in_chans=1, input_size=32))
        got = _layout(build_meta(a, num_classes=10, in_chans=1, input_size=32))
        assert got == want and {d for *_, d in got} == {"meta"}, a.name
    assert {n: getattr(init, n) for n in _INITIALISERS} == before
    with pytest.raises(RuntimeError):
        build_meta(archs[0], num_classes=-1)
    assert {n: getattr(init, n) for n in _INITIALISERS} == before
    w = init.kaiming_uniform_(torch.zeros(16, 16))
    assert w.abs().sum() > 0
