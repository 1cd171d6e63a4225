"""MobileViT blocks v1 / v2 / v3 and their cross-family forms: one module, knobs from `MobileViTCfg`.

    local_rep:  conv 3x3 (full or depthwise) + BN + act, conv 1x1 C -> d (no norm, no act)
    unfold:     [B, d, H, W] -> [B, P, N, d]   (P = patch*patch pixels per patch, N = patches)
    global_rep: depth x [pre-norm attention + pre-norm FFN d -> ffn_dim -> d] -> norm
    fold:       [B, P, N, d] -> [B, d, H, W]
    proj / fusion by `fusion` (see MobileViTCfg).

Attention runs independently for each of the P pixel positions of a patch, over the N patches (the
MobileViT formulation). ``mhsa`` uses LayerNorm over d (v1); ``separable`` uses GroupNorm(1, d) over the
whole [d, P, N] map of one image (v2's layer_norm_2d), applied in the channels-last layout here so the
same Linear layers serve both (a 1x1 conv on [B, d, P, N] and a Linear on [B, P, N, d] are the same op
with the same parameters and multiply-adds).

A feature map whose side is not a multiple of the patch size is resized (bilinear) up to the next multiple,
so any input resolution works, by one of two rules (`MobileViTCfg.resizes_input`), each that of its
reference code:

* v1-style blocks (fusion ``v1``, ``v3``; ml-cvnets' MobileViTBlock): the d-channel map is resized before
  unfolding and back after folding (corners not aligned); the block keeps its input size.
* v2-style blocks (fusion ``none``, ``v3_merged``; ml-cvnets' MobileViTBlockv2, timm's MobileVitV2Block):
  the block's input is resized (corners aligned) before the local rep and the block keeps the new size, so
  MobileViTv2-1.0 at 224 px ends on an 8x8 map (7x7 resized up), as the reference does.

The published variants at 256 px never resize.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks import BuildContext, register_block
from nas.blocks.attention import make_attention
from nas.blocks.common import Conv2d, ConvBNAct, make_act
from nas.config import MobileViTCfg


class ChannelsLastGroupNorm(nn.GroupNorm):
    """GroupNorm(1, d) (v2's layer_norm_2d) on a channels-last [B, ..., d] tensor: normalizes over every
    element of one sample, per-channel affine. Same parameters as nn.GroupNorm(1, d)."""

    def __init__(self, dim: int, *, eps: float = 1e-5):
        super().__init__(1, dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.group_norm(x.movedim(-1, 1), 1, self.weight, self.bias, self.eps)
        return y.movedim(1, -1)


def _make_norm(attention: str, dim: int) -> nn.Module:
    return nn.LayerNorm(dim) if attention == "mhsa" else ChannelsLastGroupNorm(dim)


class TransformerLayer(nn.Module):
    """Pre-norm attention + pre-norm FFN (d -> ffn_dim -> d, act), both residual, on [B, P, N, d]."""

    def __init__(self, dim: int, ffn_dim: int, *, attention: str, heads: int, act: str):
        super().__init__()
        self.attention = attention
        self.norm_attn = _make_norm(attention, dim)
        self.attn = make_attention(attention, dim, heads)
        self.norm_ffn = _make_norm(attention, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), make_act(act), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, p, n, d = x.shape
        y = self.norm_attn(x)
        if self.attention == "mhsa":  # multi-head attention works on [B*P, N, d]
            y = self.attn(y.reshape(b * p, n, d)).reshape(b, p, n, d)
        else:  # separable attention softmaxes over dim -2 (the N patches) of any [..., N, d]
            y = self.attn(y)
        x = x + y
        return x + self.ffn(self.norm_ffn(x))


def resize_to_patch_grid(x: torch.Tensor, patch: int, *, align_corners: bool) -> torch.Tensor:
    """Resize [B, C, H, W] (bilinear) up to the next multiples of `patch`; unchanged when already multiples."""
    h, w = x.shape[-2:]
    hp, wp = -(-h // patch) * patch, -(-w // patch) * patch
    if (hp, wp) == (h, w):
        return x
    return F.interpolate(x, size=(hp, wp), mode="bilinear", align_corners=align_corners)


def unfold_patches(x: torch.Tensor, patch: int) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int] | None]:
    """[B, d, H, W] -> [B, P, N, d]; resizes H, W up to multiples of `patch` first (the v1 rule). Also returns
    the patch grid size in pixels and the original size to restore (None when no resize happened)."""
    b, d, h, w = x.shape
    x = resize_to_patch_grid(x, patch, align_corners=False)
    hp, wp = x.shape[-2:]
    orig = None if (hp, wp) == (h, w) else (h, w)
    nh, nw = hp // patch, wp // patch
    x = x.reshape(b, d, nh, patch, nw, patch).permute(0, 3, 5, 2, 4, 1)
    return x.reshape(b, patch * patch, nh * nw, d), (hp, wp), orig


def fold_patches(x: torch.Tensor, patch: int, hw: tuple[int, int], orig: tuple[int, int] | None, *,
                 channels_last: bool = False) -> torch.Tensor:
    """Inverse of unfold_patches: [B, P, N, d] -> [B, d, H, W] with (H, W) = `hw` padded to the patch grid,
    then resized back to `orig` when unfold had resized. One copy, into the memory format the convolutions
    after it take (`channels_last`: [B, H, W, d] order; the runtime's default, `nas.runtime.Runtime`)."""
    b, _, _, d = x.shape
    hp, wp = hw
    nh, nw = hp // patch, wp // patch
    x = x.reshape(b, patch, patch, nh, nw, d)
    if channels_last:
        x = x.permute(0, 3, 1, 4, 2, 5).reshape(b, hp, wp, d).permute(0, 3, 1, 2)
        x = x.contiguous(memory_format=torch.channels_last)  # no-op unless the reshape above was a view
    else:
        x = x.permute(0, 5, 3, 1, 4, 2).reshape(b, d, hp, wp)
    if orig is not None:
        x = F.interpolate(x, size=orig, mode="bilinear", align_corners=False)
    return x


class MobileViTBlock(nn.Module):
    """One MobileViT block (v1 / v2 / v3 / cross forms); keeps its channels, and its spatial size unless a
    v2-style block resizes its input up to the patch grid (see the module docstring)."""

    def __init__(self, cfg: MobileViTCfg, cin: int, ctx: BuildContext):
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.patch = cfg.patch
        self.fusion_kind = cfg.fusion
        self.resizes_input = cfg.resizes_input
        self.local_rep = nn.Sequential(
            ConvBNAct(cin, cin, 3, groups=cin if cfg.local == "dw" else 1, act=cfg.act),
            Conv2d(cin, d, 1, bias=False),
        )
        self.global_rep = nn.Sequential(
            *[TransformerLayer(d, cfg.ffn_dim, attention=cfg.attention, heads=cfg.heads, act=cfg.act)
              for _ in range(cfg.depth)],
            _make_norm(cfg.attention, d),
        )
        proj_act = cfg.act if cfg.proj_act else "none"
        proj_in = 2 * d if cfg.fusion == "v3_merged" else d
        self.conv_proj = ConvBNAct(proj_in, cin, 1, act=proj_act)
        self.fusion: nn.Module | None = None
        if cfg.fusion == "v1":
            self.fusion = ConvBNAct(2 * cin, cin, 3, act=cfg.act)
        elif cfg.fusion == "v3":
            self.fusion = ConvBNAct(d + cin, cin, 1, act=cfg.act)
        self.out_channels = cin

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None):
        if self.resizes_input:  # v2 rule: work, and stay, on the input resized up to the patch grid
            x = resize_to_patch_grid(x, self.patch, align_corners=True)
        local = self.local_rep(x)
        patches, hw, orig = unfold_patches(local, self.patch)
        glob = fold_patches(self.global_rep(patches), self.patch, hw, orig,
                            channels_last=local.is_contiguous(memory_format=torch.channels_last))
        kind = self.fusion_kind
        if kind == "v3_merged":  # v3 on v2: 1x1 (2d -> C) on concat(global, local) + input residual
            return x + self.conv_proj(torch.cat((glob, local), dim=1)), tokens
        y = self.conv_proj(glob)
        if kind == "v1":  # 3x3 on concat(input, global), no residual
            return self.fusion(torch.cat((x, y), dim=1)), tokens
        if kind == "v3":  # 1x1 on concat(local, global) + input residual
            return x + self.fusion(torch.cat((local, y), dim=1)), tokens
        return y, tokens  # "none" (v2): no fusion, no residual


register_block(MobileViTCfg)(MobileViTBlock)
