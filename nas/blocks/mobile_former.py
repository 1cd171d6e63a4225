"""Mobile-Former blocks (Chen et al., CVPR 2022): the bneck-lite, the Mobile-Former block and its bridges.

Written from the paper and the wiring of the official release (AAboys/MobileFormer); parameter counts
match the official networks exactly. Tokens are batch-first ``[B, M, d]`` here.

Parts, in the order a block runs them:

* ``MobileToFormer`` (the paper's Mobile->Former): light cross-attention, queries from the tokens
  (``Linear(d, C)``), keys = values = the feature map without projection, split into `bridge_heads` heads
  over the channels; the result is gated per channel by ``2 * hsigmoid(Linear(d, C)(tokens))`` (the
  official "dynamic" bridge), projected back ``Linear(C, d)``, added to the tokens, post-LayerNorm.
* ``Former``: a post-norm transformer layer over the M tokens. ``mhsa`` is the official one: query
  ``Linear(d, d)``, keys = values = the tokens without projection, `former_heads` heads, output
  ``Linear(d, d)``; ``separable`` swaps that attention for MobileViTv2's separable self-attention
  (``nas.blocks.attention.SeparableSelfAttention``: O(M), one d->1+2d projection and a d->d output). Both are
  followed by add + LayerNorm, FFN d->ffn_dim->d with GELU, add + LayerNorm.
* The Mobile sub-block with dynamic ReLU (k=2): each DyReLU owns a hyper-MLP
  ``Linear(d, d/4)-ReLU-Linear(d/4, 2C)-hsigmoid`` fed with token 0 of the tokens the Former just updated;
  ``y = max(a1 * x, a2 * x)`` with a1 in [0, 2], a2 in [-1, 1].
* ``FormerToMobile`` (Former->Mobile): cross-attention, queries = the feature map without projection,
  keys and values ``Linear(d, C)`` of the tokens, no output projection, added to the feature map.

Grouped 1x1 convs (``groups`` > 1, as in Mobile-Former-26M) are followed or preceded by the same channel
shuffles as the official code: after a depthwise conv with multiplier (shuffle over its input channels)
and after each grouped 1x1 of the regular block. Shuffles are permutations: no parameters, no MAdds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks import BuildContext, register_block
from nas.blocks.attention import SeparableSelfAttention
from nas.blocks.common import ConvBNAct
from nas.config import BneckLiteCfg, MobileFormerCfg, TokenCfg, hyper_dim
from nas.errors import ConfigError


def _need_divisible(what: str, value: int, by: int, knob: str) -> None:
    if value % by:
        raise ConfigError(f"{what} = {value} is not divisible by {knob} = {by}",
                          f"choose {knob} dividing {value}, or widths that are multiples of {by}")


class ChannelShuffle(nn.Module):
    """Interleave `groups` channel groups so the next grouped conv sees channels of every group."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _shuffle(groups: int, active: bool) -> nn.Module:
    return ChannelShuffle(groups) if active else nn.Identity()


class DynamicReLU(nn.Module):
    """DyReLU-B with k=2 piecewise-linear pieces per channel; coefficients from one token (token 0)."""

    def __init__(self, channels: int, token_dim: int):
        super().__init__()
        r = hyper_dim(token_dim)
        self.hyper = nn.Sequential(nn.Linear(token_dim, r), nn.ReLU(inplace=True), nn.Linear(r, 2 * channels),
                                   nn.Hardsigmoid())

    def forward(self, x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        a1, a2 = self.hyper(token)[:, :, None, None].chunk(2, dim=1)
        s1, s2 = 2.0 * a1, 2.0 * a2 - 1.0  # slopes in [0, 2] and [-1, 1], per sample and channel
        # max(s1 * x, s2 * x) is x * max(s1, s2) where x >= 0 and x * min(s1, s2) where x < 0, i.e.
        # lo * x + (hi - lo) * relu(x): the same function, but its backward is one threshold instead of
        # torch.maximum's masked_fill/where/eq over the whole map (2.8x faster forward + backward on
        # [16, 144, 16, 16] channels_last; BENCHMARKS.md, "Training speed").
        hi, lo = torch.maximum(s1, s2), torch.minimum(s1, s2)
        return x * lo + F.relu(x) * (hi - lo)


class MobileToFormer(nn.Module):
    """Mobile->Former bridge: tokens attend to the feature map (no projection on the local side)."""

    def __init__(self, channels: int, tokens: TokenCfg):
        super().__init__()
        _need_divisible("Mobile->Former channels", channels, tokens.bridge_heads, "tokens.bridge_heads")
        d = tokens.dim
        self.heads = tokens.bridge_heads
        self.q = nn.Linear(d, channels)
        self.gate = nn.Linear(d, channels)
        self.proj = nn.Linear(channels, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        m, nh = z.shape[1], self.heads
        q = self.q(z).view(b, m, nh, c // nh).transpose(1, 2)  # [B, heads, M, C/heads]
        kv = x.reshape(b, nh, c // nh, h * w).transpose(-1, -2)  # [B, heads, HW, C/heads]
        y = F.scaled_dot_product_attention(q, kv, kv).transpose(1, 2).reshape(b, m, c)
        y = y * (2.0 * F.hardsigmoid(self.gate(z)))
        return self.norm(z + self.proj(y))


class FormerToMobile(nn.Module):
    """Former->Mobile bridge: the feature map attends to the tokens (keys/values projected from the tokens)."""

    def __init__(self, channels: int, tokens: TokenCfg):
        super().__init__()
        _need_divisible("Former->Mobile channels", channels, tokens.bridge_heads, "tokens.bridge_heads")
        self.heads = tokens.bridge_heads
        self.k = nn.Linear(tokens.dim, channels)
        self.v = nn.Linear(tokens.dim, channels)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        m, nh = z.shape[1], self.heads
        q = x.reshape(b, nh, c // nh, h * w).transpose(-1, -2)  # [B, heads, HW, C/heads]
        k = self.k(z).view(b, m, nh, c // nh).transpose(1, 2)
        v = self.v(z).view(b, m, nh, c // nh).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C/heads]
        return x + y.transpose(-1, -2).reshape(b, c, h, w)


class TokenSelfAttention(nn.Module):
    """The official Former attention: projected queries, the tokens themselves as keys and values."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, m, d = z.shape
        nh = self.heads
        q = self.q(z).view(b, m, nh, d // nh).transpose(1, 2)
        kv = z.reshape(b, m, nh, d // nh).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, kv, kv).transpose(1, 2).reshape(b, m, d)
        return self.proj(y)


class Former(nn.Module):
    """Post-norm transformer layer over the M global tokens."""

    def __init__(self, tokens: TokenCfg):
        super().__init__()
        d = tokens.dim
        if tokens.attention == "mhsa":
            self.attn: nn.Module = TokenSelfAttention(d, tokens.former_heads)
        else:
            self.attn = SeparableSelfAttention(d)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, tokens.ffn_dim), nn.GELU(), nn.Linear(tokens.ffn_dim, d))
        self.norm2 = nn.LayerNorm(d)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = self.norm1(z + self.attn(z))
        return self.norm2(z + self.ffn(z))


class BneckLite(nn.Module):
    """Bneck-lite: dw3x3 with channel multiplier + BN + act, [shuffle], (grouped) linear 1x1 + BN; no tokens."""

    def __init__(self, cfg: BneckLiteCfg, cin: int, ctx: BuildContext):
        super().__init__()
        hidden = cin * cfg.dw_mult
        g = cfg.groups
        _need_divisible("bneck_lite hidden width (in * dw_mult)", hidden, g, "groups")
        _need_divisible("bneck_lite out", cfg.out, g, "groups")
        self.dw = ConvBNAct(cin, hidden, 3, stride=cfg.stride, groups=cin, act=cfg.act)
        self.shuffle = _shuffle(cin, g > 1)
        self.pw = ConvBNAct(hidden, cfg.out, 1, groups=g)
        self.use_res = cfg.stride == 1 and cin == cfg.out
        self.out_channels = cfg.out

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None):
        y = self.pw(self.shuffle(self.dw(x)))
        return (x + y if self.use_res else y), tokens


class MobileFormerBlock(nn.Module):
    """Mobile->Former, Former, Mobile sub-block with DyReLU from token 0, [residual], Former->Mobile."""

    def __init__(self, cfg: MobileFormerCfg, cin: int, ctx: BuildContext):
        super().__init__()
        tok = ctx.tokens
        assert tok is not None  # ArchConfig refuses Mobile-Former blocks in a network without tokens
        g, out = cfg.groups, cfg.out
        d = tok.dim
        self.form = cfg.form
        self.mobile_to_former = MobileToFormer(cin, tok)
        self.former = Former(tok)
        if cfg.form == "regular":
            hidden = cin * cfg.expand
            for what, v in (("in", cin), ("hidden (in * expand)", hidden), ("out", out)):
                _need_divisible(f"mobile_former {what}", v, g, "groups")
            self.conv1 = ConvBNAct(cin, hidden, 1, groups=g)
            self.shuffle1 = _shuffle(g, g > 1)
            self.act1 = DynamicReLU(hidden, d)
            self.conv2 = ConvBNAct(hidden, hidden, 3, groups=hidden)
            self.act2 = DynamicReLU(hidden, d)
            self.conv3 = ConvBNAct(hidden, out, 1, groups=g)
            self.shuffle3 = _shuffle(g, g > 1)
        else:
            hidden1, hidden2 = cin * cfg.dw_mult, out * cfg.dw2_mult
            for what, v in (("hidden1 (in * dw_mult)", hidden1), ("out", out), ("hidden2 (out * dw2_mult)", hidden2)):
                _need_divisible(f"mobile_former {what}", v, g, "groups")
            self.conv1 = ConvBNAct(cin, hidden1, 3, stride=2, groups=cin)
            self.shuffle1 = _shuffle(cin, g > 1)
            self.act1 = DynamicReLU(hidden1, d)
            self.conv2 = ConvBNAct(hidden1, out, 1, groups=g)
            self.conv3 = ConvBNAct(out, hidden2, 3, groups=out)
            self.shuffle3 = _shuffle(out, g > 1)
            self.act3 = DynamicReLU(hidden2, d)
            self.conv4 = ConvBNAct(hidden2, out, 1, groups=g)
        self.former_to_mobile = FormerToMobile(out, tok)
        self.use_res = cfg.stride == 1 and cin == out
        self.out_channels = out

    def _mobile(self, x: torch.Tensor, t0: torch.Tensor) -> torch.Tensor:
        if self.form == "regular":
            y = self.act1(self.shuffle1(self.conv1(x)), t0)
            y = self.act2(self.conv2(y), t0)
            return self.shuffle3(self.conv3(y))
        y = self.conv2(self.act1(self.shuffle1(self.conv1(x)), t0))
        return y + self.conv4(self.act3(self.shuffle3(self.conv3(y)), t0))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor):
        z = self.former(self.mobile_to_former(x, tokens))
        y = self._mobile(x, z[:, 0])
        if self.use_res:
            y = y + x
        return self.former_to_mobile(y, z), z


def make_final_bridge(cin: int, tokens: TokenCfg) -> nn.Module:
    """The Mobile->Former (dynamic gate on) after the last block, called as ``z = bridge(x, z)``."""
    return MobileToFormer(cin, tokens)


register_block(BneckLiteCfg)(BneckLite)
register_block(MobileFormerCfg)(MobileFormerBlock)

__all__ = ["BneckLite", "ChannelShuffle", "DynamicReLU", "Former", "FormerToMobile", "MobileFormerBlock",
           "MobileToFormer", "make_final_bridge"]
