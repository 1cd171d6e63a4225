"""Single ops shared by every block: activations, conv-BN-act, the MobileNetV2 inverted residual."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import BuildContext, register_block
from nas.config import IRCfg


def make_act(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation (``act='none'`` for a linear projection)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, *, stride: int = 1, groups: int = 1, act: str = "none",
                 norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=not norm)
        self.bn = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act = make_act(act)


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


register_block("ir")(InvertedResidual)
