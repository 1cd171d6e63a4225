"""Analytic MAdds of the Mobile-Former parts, mirroring what fvcore counts on nas.blocks.mobile_former.

Plain integer arithmetic (no torch): the search screens many thousands of configs a second with it.
Conventions (fvcore's, batch 1): conv / linear = multiply-adds without bias; eval BatchNorm 2 per output
element; LayerNorm 5 per element; attention = its two matmuls (the SDPA handle of nas.profile:
Nq * Nk * (dk + dv) summed over heads); softmax, activations, DyReLU's max and all elementwise ops 0.
"""

from __future__ import annotations

from nas.config import BneckLiteCfg, MobileFormerCfg, TokenCfg, hyper_dim
from nas.madds import conv_out, register_madds


def mobile_to_former_madds(c: int, h: int, w: int, tokens: TokenCfg) -> int:
    """q Linear(d,C) + gate Linear(d,C) + proj Linear(C,d) on M tokens, attention over HW, LayerNorm."""
    m, d = tokens.num_tokens, tokens.dim
    return 3 * m * d * c + 2 * m * h * w * c + 5 * m * d


def former_madds(tokens: TokenCfg) -> int:
    """Attention (mhsa: q + out proj + 2 matmuls; separable: d->1+2d + out proj), FFN, two LayerNorms."""
    m, d, f = tokens.num_tokens, tokens.dim, tokens.ffn_dim
    if tokens.attention == "mhsa":
        attn = 2 * m * d * d + 2 * m * m * d
    else:
        attn = m * d * (1 + 2 * d) + m * d * d
    return attn + 2 * m * d * f + 10 * m * d


@register_madds(BneckLiteCfg)
def bneck_lite_madds(cfg: BneckLiteCfg, cin: int, h: int, w: int, tokens: TokenCfg | None):
    hidden = cin * cfg.dw_mult
    ho, wo = conv_out(h, cfg.stride), conv_out(w, cfg.stride)
    # dw3x3 + BN, then the (grouped) 1x1 + BN
    m = ho * wo * (11 * hidden + cfg.out * (hidden // cfg.groups + 2))
    return m, cfg.out, ho, wo


@register_madds(MobileFormerCfg)
def mobile_former_madds(cfg: MobileFormerCfg, cin: int, h: int, w: int, tokens: TokenCfg | None):
    """Mobile->Former + Former + Mobile convs with BN + DyReLU hyper-MLPs (d -> d/4 -> 2C on token 0) +
    Former->Mobile (k, v Linear(d, C), attention of HW positions over M tokens), inlined: the screen's hot path.
    `tokens` is never None here: ArchConfig refuses Mobile-Former blocks in a network without tokens."""
    assert tokens is not None
    n, d = tokens.num_tokens, tokens.dim
    r = hyper_dim(d)
    out, g = cfg.out, cfg.groups
    m = n * d * (3 * cin + 5) + 2 * n * h * w * cin + former_madds(tokens)  # Mobile->Former, Former
    if cfg.form == "regular":
        ho, wo = h, w
        hid = cin * cfg.expand
        # 1x1 + BN, dw3x3 + BN, 1x1 + BN; two DyReLU hyper-MLPs over `hid` channels
        m += h * w * (hid * (cin // g + 13) + out * (hid // g + 2)) + 2 * (d * r + 2 * r * hid)
    else:
        ho, wo = conv_out(h, 2), conv_out(w, 2)
        h1, h2 = cin * cfg.dw_mult, out * cfg.dw2_mult
        # dw3x3/2 + BN, 1x1 + BN, dw3x3 + BN, 1x1 + BN; DyReLU hyper-MLPs over h1 and h2 channels
        m += ho * wo * (11 * h1 + out * (h1 // g + 2) + 11 * h2 + out * (h2 // g + 2))
        m += 2 * d * r + 2 * r * (h1 + h2)
    m += 2 * n * out * (d + ho * wo)  # Former->Mobile
    return m, out, ho, wo


def final_bridge_madds(c: int, h: int, w: int, tokens: TokenCfg) -> int:
    """The Mobile->Former after the last block (same form as a block's)."""
    return mobile_to_former_madds(c, h, w, tokens)
