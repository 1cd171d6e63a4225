"""Single ops shared by every block: activations, conv-BN-act (and its BatchNorm folded for evaluation), the
MobileNetV2 inverted residual."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas import dwconv
from nas.blocks import BuildContext, register_block
from nas.config import IRCfg


def make_act(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "swish":  # out of place: autograd would copy the input of an in-place SiLU for its backward (a
        # mobilevit_xs training step 69.6 -> 68.1 ms, BENCHMARKS.md, "Pointwise convolutions"); ReLU's backward
        # reads the output, so ReLUs stay in place
        return nn.SiLU()
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


_POINTWISE_AS_LINEAR: bool | None = None  # pointwise_as_linear(), decided once per process


def pointwise_as_linear() -> bool:
    """Whether `Conv2d` runs a pointwise conv as `F.linear`: where torch's matrix products take MKL's fast
    kernels, i.e. on an AMD CPU with `nas.blas`'s shim preloaded (as `nas` runs), or on an Intel CPU (MKL's own
    path there: whole confirm jobs 1.07x for mobile_former_151m and 1.01x for mobilevit_xs on one AMX Xeon,
    BENCHMARKS.md "An Intel machine"). On an AMD CPU without the shim, MKL's generic kernels make it slower than
    oneDNN's convolution (a mobilevit_xs job's training 0.93x; BENCHMARKS.md, "Pointwise convolutions").
    Decided when the first `Conv2d` is built (a compiled forward then reads a plain bool)."""
    global _POINTWISE_AS_LINEAR
    if _POINTWISE_AS_LINEAR is None:
        from nas.blas import active, amd_x86

        _POINTWISE_AS_LINEAR = torch.backends.mkl.is_available() and (active() if amd_x86() else True)
    return _POINTWISE_AS_LINEAR


class Conv2d(nn.Conv2d):
    """nn.Conv2d with two exact shortcuts, same parameters, same values and gradients to float rounding:

    * a pointwise conv (1x1 kernel, stride 1, no groups) of a channels_last map on the CPU is a matrix product
      over the map's [B*H*W, C] rows, which channels_last stores as they are: `F.linear` on the NHWC view
      gives a channels_last output with no copy. Its forward is the same kernel's (equal outputs), its
      backward two products where oneDNN's convolution backward is slower: forward + backward 1.1-1.75x as
      fast on these networks' pointwise shapes at batch 16 (BENCHMARKS.md, "Pointwise convolutions"), where
      MKL's fast kernels run the products (`pointwise_as_linear`);
    * a 1x1 output map, which low proxy resolutions give the last stages (MobileViT-XXS at 32 px ends on 1x1
      maps). Its one output pixel sees a crop of the input through a crop of the kernel (the rest is zero
      padding), so the conv is one matmul, or a product and a sum when depthwise. oneDNN spends milliseconds
      on such a conv at batch 64 (its weight gradient falls back to a generic GEMM); the matmul takes tens of
      microseconds;
    * a depthwise 3x3 conv with a channel multiplier (Mobile-Former's), or on a map of at most 2x2, of a
      float32 channels_last map on the CPU at one thread: `nas.dwconv`'s C kernel, where oneDNN takes its generic
      grouped kernel (forward + backward 1.8-4.3x as fast on those shapes, whole mobile_former_151m confirm
      jobs 1.11x; BENCHMARKS.md, "A depthwise kernel").

    Traced runs (fvcore's count, ONNX) keep the plain conv, so MAdds stay the nominal kxk count."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pointwise_as_linear()  # decided here, outside any compiled forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if (kh, kw, sh, sw, ph, pw, self.groups) == (1, 1, 1, 1, 0, 0, 1) and x.device.type == "cpu" \
                and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and not torch.jit.is_tracing() and pointwise_as_linear():
            y = F.linear(x.permute(0, 2, 3, 1), self.weight.view(self.out_channels, self.in_channels), self.bias)
            return y.permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        if ((h + 2 * ph - kh) // sh, (w + 2 * pw - kw) // sw) != (0, 0) or self.dilation != (1, 1) \
                or self.padding_mode != "zeros" or torch.jit.is_tracing():
            if self.groups > 1 and dwconv.wanted(self, x):
                if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
                    return dwconv.conv(x, self.weight, sh, self.bias)
                return dwconv.forward(x, self.weight, sh, self.bias)
            return super().forward(x)
        hv, wv = min(h, kh - ph), min(w, kw - pw)  # input rows/cols the output pixel sees
        b, g = x.shape[0], self.groups
        xc = x[:, :, :hv, :wv]
        wc = self.weight[:, :, ph:ph + hv, pw:pw + wv]
        if g == 1:
            y = F.linear(xc.reshape(b, -1), wc.reshape(self.out_channels, -1), self.bias)
        else:
            if g == self.in_channels == self.out_channels:  # depthwise: a product and a sum (2x an einsum)
                y = (xc.reshape(b, g, -1) * wc.reshape(g, -1)).sum(-1)
            else:
                y = torch.einsum("bgk,gok->bgo", xc.reshape(b, g, -1), wc.reshape(g, self.out_channels // g, -1))
            y = y.reshape(b, -1) if self.bias is None else y.reshape(b, -1) + self.bias
        return y.reshape(b, self.out_channels, 1, 1)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation (``act='none'`` for a linear projection)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, *, stride: int = 1, groups: int = 1, act: str = "none",
                 norm: bool = True):
        super().__init__()
        self.conv = Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=not norm)
        self.bn = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act = make_act(act)


# what oneDNN's convolution applies in the same pass as its bias (a post-op), per activation module type
_POST_OPS: dict[type, str] = {nn.SiLU: "swish", nn.ReLU: "relu", nn.Hardswish: "hardswish", nn.Identity: "none"}


class FoldedConvAct(nn.Module):
    """Evaluation only: a convolution with its BatchNorm folded in (a bias) and its activation, run on the CPU as
    one oneDNN convolution that adds the bias and applies the activation as it writes each output
    (`torch.ops.mkldnn._convolution_pointwise`, inductor's fused CPU convolution). The separate path writes the
    output map, then reads and writes it again for the activation; and a pointwise conv as a matrix product
    (`Conv2d`'s training shortcut) first copies the bias into every output row. The same function to float
    rounding (1e-7 relative); elsewhere (no oneDNN, another layout or dtype, autocast, a 1x1 output map,
    tracing) it runs `act(conv(x))`."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module, post_op: str):
        super().__init__()
        self.conv, self.act, self.post_op = conv, act, post_op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if c.groups > 1 and dwconv.wanted(c, x) and (min(x.shape[-2:]) + 2 - 3) // c.stride[0] > 0:
            return self.act(dwconv.forward(x, c.weight, c.stride[0], c.bias))  # `Conv2d`'s kernel, bias in its pass
        if x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and not torch.jit.is_tracing() \
                and x.is_contiguous(memory_format=torch.channels_last) and not torch.is_autocast_enabled("cpu") \
                and (min(x.shape[-2:]) + 2 * c.padding[0] - c.dilation[0] * (c.kernel_size[0] - 1) - 1) \
                // c.stride[0] > 0:  # an output map wider than 1x1 (those take `Conv2d`'s matmul shortcut)
            return torch.ops.mkldnn._convolution_pointwise(x, c.weight, c.bias, list(c.padding), list(c.stride),
                                                           list(c.dilation), c.groups, self.post_op, [], "")
        return self.act(c(x))


@functools.cache
def _has_fused_conv() -> bool:
    """Whether this torch build has oneDNN's fused convolution (x86 builds with oneDNN do)."""
    try:
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._convolution_pointwise is not None
    except (AttributeError, RuntimeError):
        return False


def _fusable(conv: nn.Conv2d, act: nn.Module) -> str | None:
    """The oneDNN post-op for `act` after `conv`, or None where the fused convolution does not apply."""
    if not _has_fused_conv() or conv.padding_mode != "zeros" or isinstance(conv.padding, str) \
            or any(len(set(v)) != 1 for v in (conv.padding, conv.kernel_size, conv.stride, conv.dilation)):
        return None
    return _POST_OPS.get(type(act))


@contextlib.contextmanager
def batchnorm_folded(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every ConvBNAct of `model` that is in eval mode runs as one convolution with its
    BatchNorm folded in (weight * g / sqrt(v + eps), bias b - m * g / sqrt(v + eps), torch's
    `fuse_conv_bn_eval`): the same function to float rounding, minus one pass over each output map; on the CPU
    the activation runs in the same oneDNN convolution (`FoldedConvAct`), minus one more. The
    original modules are put back on exit, also on error. Evaluation only: training needs batch statistics.
    MobileViT-XS evaluates about 1.15x as fast this way; Mobile-Former-151M, whose large maps are few, about as
    fast (bench/eval_speed.py, BENCHMARKS.md)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    swapped: list[tuple[ConvBNAct, nn.Module, nn.Module, nn.Module]] = []
    try:
        with torch.no_grad():
            for m in model.modules():
                bn = getattr(m, "bn", None)
                if not isinstance(m, ConvBNAct) or not isinstance(bn, nn.BatchNorm2d) or m.training or bn.training \
                        or bn.running_mean is None or bn.running_var is None:
                    continue
                fused = fuse_conv_bn_eval(m.conv, bn)
                if m.conv.weight.is_contiguous(memory_format=torch.channels_last):  # keep the runtime's layout
                    fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
                swapped.append((m, m.conv, bn, m.act))
                post_op = _fusable(fused, m.act)
                if post_op is None:
                    m.conv, m.bn = fused, nn.Identity()
                else:
                    m.conv, m.bn, m.act = FoldedConvAct(fused, m.act, post_op), nn.Identity(), nn.Identity()
        yield model
    finally:
        for m, conv, bn, act in reversed(swapped):
            m.conv, m.bn, m.act = conv, bn, act


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + BN + act, dw kxk + BN + act, 1x1 project + BN; residual when stride 1, in==out."""

    def __init__(self, cfg: IRCfg, cin: int, ctx: BuildContext):
        super().__init__()
        hidden = cfg.hidden(cin)
        layers: list[nn.Module] = []
        if cfg.expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1, act=cfg.act))
        layers += [ConvBNAct(hidden, hidden, cfg.kernel, stride=cfg.stride, groups=hidden, act=cfg.act),
                   ConvBNAct(hidden, cfg.out, 1)]
        self.conv = nn.Sequential(*layers)
        self.use_res = cfg.stride == 1 and cin == cfg.out
        self.out_channels = cfg.out

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None):
        y = self.conv(x)
        return (x + y if self.use_res else y), tokens


register_block(IRCfg)(InvertedResidual)
