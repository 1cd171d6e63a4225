"""One builder: ArchConfig -> HybridNet. Pure: it reads no files and knows no variant names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.blocks import BuildContext, block_factory
from nas.blocks.common import ConvBNAct, make_act
from nas.blocks.mobile_former import ChannelShuffle
from nas.config import ArchConfig

# Below this input size a network built for 224/256 px would shrink its feature maps to nothing, so the
# proxy build runs the stem at stride 1 (a 32 px image then sees the map sizes of a 64 px one at stride 2).
LOW_RES_STEM_STRIDE1 = 64


class HybridNet(nn.Module):
    """The one model surface: forward_features -> (features, tokens), forward_head, forward."""

    def __init__(self, cfg: ArchConfig, *, num_classes: int | None = None, in_chans: int | None = None,
                 stem_stride: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes or cfg.num_classes
        ctx = BuildContext(tokens=cfg.tokens)
        self.stem = ConvBNAct(in_chans or cfg.in_chans, cfg.stem.out, cfg.stem.kernel,
                              stride=stem_stride or cfg.stem.stride, act=cfg.stem.act)
        self.global_tokens = None
        if cfg.tokens is not None:
            self.global_tokens = nn.Parameter(torch.randn(cfg.tokens.num_tokens, cfg.tokens.dim) * 0.02)

        c = cfg.stem.out
        self.stages = nn.ModuleDict()
        for stage in cfg.stages:
            mods = []
            for b in stage.blocks:
                m = block_factory(b.kind)(b, c, ctx)
                c = m.out_channels
                mods.append(m)
            self.stages[stage.name] = nn.ModuleList(mods)

        self.final_bridge = None
        # The final Mobile->Former only feeds the head's token concat: without it, it would be dead weight.
        if cfg.tokens is not None and cfg.tokens.final_bridge and cfg.head.concat_token:
            from nas.blocks.mobile_former import make_final_bridge

            self.final_bridge = make_final_bridge(c, cfg.tokens)

        h = cfg.head
        # Grouped head conv (Mobile-Former-26M): shuffle the channels first, as the official classifier does.
        self.head_shuffle = ChannelShuffle(h.conv_groups) if h.conv and h.conv_groups > 1 else nn.Identity()
        self.head_conv = ConvBNAct(c, h.conv, 1, groups=h.conv_groups, act=h.conv_act) if h.conv else nn.Identity()
        c = h.conv or c
        self.pool_act = make_act(h.pool_act)
        if h.concat_token:
            assert cfg.tokens is not None
            c += cfg.tokens.dim
        self.head_hidden = nn.Identity()
        if h.hidden:
            self.head_hidden = nn.Sequential(nn.Linear(c, h.hidden), nn.BatchNorm1d(h.hidden), nn.Hardswish(inplace=True))
            c = h.hidden
        self.dropout = nn.Dropout(h.dropout)
        self.classifier = nn.Linear(c, self.num_classes)
        self.num_features = c

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.stem(x)
        z = None
        if self.global_tokens is not None:
            z = self.global_tokens.unsqueeze(0).expand(x.shape[0], -1, -1)
        for blocks in self.stages.values():
            for blk in blocks:
                x, z = blk(x, z)
        if self.final_bridge is not None:
            z = self.final_bridge(x, z)
        return x, z

    def forward_head(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        x = self.head_conv(self.head_shuffle(x))
        x = self.pool_act(x.mean((2, 3)))
        if self.cfg.head.concat_token:
            x = torch.cat([x, z[:, 0]], dim=1)
        x = self.head_hidden(x)
        return self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(*self.forward_features(x))

    def stage_modules(self) -> dict[str, nn.Module]:
        """Named top-level parts in forward order, for per-stage breakdowns."""
        parts: dict[str, nn.Module] = {"stem": self.stem}
        parts.update({name: blocks for name, blocks in self.stages.items()})
        if self.final_bridge is not None:
            parts["final_bridge"] = self.final_bridge
        parts["head"] = nn.ModuleList([self.head_conv, self.head_hidden, self.classifier])
        return parts


def build_model(cfg: ArchConfig, *, num_classes: int | None = None, in_chans: int | None = None,
                input_size: int | None = None) -> HybridNet:
    """Build the network of `cfg`. `input_size` (the proxy resolution) only changes the stem stride:
    below LOW_RES_STEM_STRIDE1 px the stem runs at stride 1; every knob stays as configured."""
    stem_stride = None
    if input_size is not None and input_size < LOW_RES_STEM_STRIDE1 and cfg.resolution >= LOW_RES_STEM_STRIDE1:
        stem_stride = 1
    return HybridNet(cfg, num_classes=num_classes, in_chans=in_chans, stem_stride=stem_stride)


# The in-place initialisers of torch.nn.init that torch's layers and nas.blocks call while they are built.
_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
                 "kaiming_normal_", "xavier_uniform_", "xavier_normal_")


def build_meta(cfg: ArchConfig, **kwargs: Any) -> HybridNet:
    """``build_model(cfg, **kwargs)`` on the meta device: names, shapes and dtypes, no memory. The initialisers
    of `torch.nn.init` are skipped for meta tensors while it is built (a meta tensor has no values to fill;
    any other tensor is initialised as always, and the functions are put back on exit), as Hugging Face's
    `no_init_weights` does for its models: the initialisers took a third of a meta build (39-51 against 26-28
    ms a network over a one-shot stage's 203 architectures), which a one-shot worker pays once a score and the
    search's driver once a refused proposal (BENCHMARKS.md, "One-shot scores without work they did not need")."""
    import functools

    from torch.nn import init

    originals = {n: getattr(getattr(init, n), "__wrapped__", getattr(init, n)) for n in _INITIALISERS}

    def skipping(fn: Any) -> Any:
        @functools.wraps(fn)
        def call(tensor: torch.Tensor, *args: Any, **kw: Any) -> Any:
            return tensor if tensor.is_meta else fn(tensor, *args, **kw)

        return call

    try:
        for n, fn in originals.items():
            setattr(init, n, skipping(fn))
        with torch.device("meta"):
            return build_model(cfg, **kwargs)
    finally:
        for n, fn in originals.items():
            setattr(init, n, fn)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
