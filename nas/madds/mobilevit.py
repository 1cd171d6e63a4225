"""Analytic MAdds of a MobileViT block (nas.blocks.mobilevit), mirroring fvcore's count of it.

Plain integer arithmetic on the config, no torch: the search screens many configs per second with it.
fvcore conventions: conv / linear count multiply-adds without bias, eval BN 2 per element, LayerNorm and
GroupNorm 5 per element, SDPA (nas.profile handle) B*heads*N*N*(dk+dv), bilinear resize 4 per output
element, softmax / elementwise / reshape 0.
"""

from __future__ import annotations

from nas.config import MobileViTCfg, TokenCfg
from nas.madds import conv_bn, conv_madds, register_madds


def patch_grid(h: int, w: int, patch: int) -> tuple[int, int]:
    """Feature-map size after the resize to multiples of `patch` (unchanged when already divisible)."""
    return -(-h // patch) * patch, -(-w // patch) * patch


def global_rep_madds(cfg: MobileViTCfg, hp: int, wp: int) -> int:
    """depth x (norm, attention, norm, FFN) + the final norm, on T = hp*wp tokens of width d."""
    d, f = cfg.dim, cfg.ffn_dim
    t = hp * wp  # P * N tokens
    n = t // (cfg.patch * cfg.patch)  # patches per pixel position
    if cfg.attention == "mhsa":
        # qkv d -> 3d, q@k^T and attn@v over N patches for each of the P positions (2*P*N^2*d), out d -> d
        attn = t * d * 3 * d + 2 * t * n * d + t * d * d
    else:
        # separable: qkv d -> 1+2d, out d -> d; score softmax, context sum and gating are elementwise (0)
        attn = t * d * (1 + 2 * d) + t * d * d
    layer = 5 * t * d + attn + 5 * t * d + 2 * t * d * f
    return cfg.depth * layer + 5 * t * d


@register_madds(MobileViTCfg)
def mobilevit_madds(cfg: MobileViTCfg, cin: int, h: int, w: int, tokens: TokenCfg | None):
    """(madds, cout, h_out, w_out) of one MobileViT block on a cin x h x w map. The block keeps its channels;
    its output size is its input size, except for a v2-style block (`MobileViTCfg.resizes_input`) on a map
    the patch does not divide: it resizes its input up to the patch grid and keeps that size."""
    d = cfg.dim
    hp, wp = patch_grid(h, w, cfg.patch)
    m = 0
    if cfg.resizes_input:
        if (hp, wp) != (h, w):  # bilinear resize of the cin-channel input, kept as the block's size
            m += 4 * cin * hp * wp
        h, w = hp, wp
    elif (hp, wp) != (h, w):  # bilinear resize of the d-channel map up before unfold and back after fold
        m += 4 * d * hp * wp + 4 * d * h * w
    m += conv_bn(cin, cin, 3, h, w, groups=cin if cfg.local == "dw" else 1)  # local 3x3 + BN
    m += conv_madds(cin, d, 1, h, w)  # local 1x1 C -> d
    m += global_rep_madds(cfg, hp, wp)
    if cfg.fusion == "v3_merged":
        m += conv_bn(2 * d, cin, 1, h, w)
    else:
        m += conv_bn(d, cin, 1, h, w)
        if cfg.fusion == "v1":
            m += conv_bn(2 * cin, cin, 3, h, w)
        elif cfg.fusion == "v3":
            m += conv_bn(d + cin, cin, 1, h, w)
    return m, cin, h, w
