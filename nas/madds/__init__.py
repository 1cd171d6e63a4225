"""Analytic MAdds from an ArchConfig alone (no torch, no model): the search's budget screen.

It mirrors what `nas.profile.fvcore_profile` counts (fvcore's conventions: a conv or linear counts its
multiply-adds without bias, eval BatchNorm 2 per element, LayerNorm / GroupNorm 5 per element, elementwise
ops and activations 0), so the two agree within 0.5% on every published variant and random point.

Each block kind attaches `fn(cfg, cin, h, w, tokens) -> (madds, cout, h_out, w_out)` to its record in
the block-kind registry of nas.config (``@register_madds(CfgClass)``).
"""

from __future__ import annotations

from collections.abc import Callable

from nas.config import ArchConfig, IRCfg, TokenCfg, attach_block_part, block_kind

BlockMadds = Callable[..., tuple[int, int, int, int]]


def register_madds(cfg_cls: type) -> Callable[[BlockMadds], BlockMadds]:
    """Decorator: attach `fn` as the analytic count of the block kind of `cfg_cls` (twice raises)."""

    def deco(fn: BlockMadds) -> BlockMadds:
        attach_block_part(cfg_cls, "madds", fn)
        return fn

    return deco


def conv_out(size: int, stride: int) -> int:
    """Output size of a k x k conv with padding k//2 (k odd)."""
    return (size - 1) // stride + 1


def conv_madds(cin: int, cout: int, k: int, hout: int, wout: int, groups: int = 1) -> int:
    return cout * hout * wout * (cin // groups) * k * k


def bn(c: int, h: int, w: int) -> int:
    return 2 * c * h * w


def conv_bn(cin: int, cout: int, k: int, hout: int, wout: int, groups: int = 1) -> int:
    return conv_madds(cin, cout, k, hout, wout, groups) + bn(cout, hout, wout)


@register_madds(IRCfg)
def _ir(cfg: IRCfg, cin: int, h: int, w: int, tokens: TokenCfg | None):
    hidden = cfg.hidden(cin)
    ho, wo = conv_out(h, cfg.stride), conv_out(w, cfg.stride)
    m = 0
    if cfg.expand != 1:
        m += conv_bn(cin, hidden, 1, h, w)
    m += conv_bn(hidden, hidden, cfg.kernel, ho, wo, groups=hidden)
    m += conv_bn(hidden, cfg.out, 1, ho, wo)
    return m, cfg.out, ho, wo


def madds_breakdown(cfg: ArchConfig, resolution: int | None = None) -> dict[str, int]:
    """MAdds per part (stem, each stage, final_bridge, head) at `resolution` (default: the target one)."""
    r = resolution or cfg.resolution
    out: dict[str, int] = {}
    h = w = conv_out(r, cfg.stem.stride)
    c = cfg.stem.out
    out["stem"] = conv_bn(cfg.in_chans, c, cfg.stem.kernel, h, w)
    for stage in cfg.stages:
        total = 0
        for b in stage.blocks:
            m, c, h, w = block_kind(b.kind).part("madds")(b, c, h, w, cfg.tokens)
            total += m
        out[stage.name] = total
    if cfg.tokens is not None and cfg.tokens.final_bridge and cfg.head.concat_token:  # as nas.builder
        from nas.madds.mobile_former import final_bridge_madds

        out["final_bridge"] = final_bridge_madds(c, h, w, cfg.tokens)
    hd = cfg.head
    m = 0
    if hd.conv:
        m += conv_bn(c, hd.conv, 1, h, w, groups=hd.conv_groups)
        c = hd.conv
    if hd.concat_token and cfg.tokens is not None:
        c += cfg.tokens.dim
    if hd.hidden:
        m += c * hd.hidden + 2 * hd.hidden
        c = hd.hidden
    m += c * cfg.num_classes
    out["head"] = m
    return out


def count_madds(cfg: ArchConfig, resolution: int | None = None) -> int:
    """Total analytic MAdds at the target resolution."""
    return sum(madds_breakdown(cfg, resolution).values())


# Importing the count modules attaches their functions (they import the names defined above).
from nas.madds import mobile_former, mobilevit  # noqa: E402, F401
