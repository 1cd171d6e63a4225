"""The block-kind registry: every registered kind has its three parts (config class, analytic MAdds, module
factory), and each kind builds, runs forward and backward, counts as fvcore does and round-trips as a dict."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nas.blocks import BuildContext, block_factory, block_kinds, register_block
from nas.builder import build_model
from nas.config import (
    ArchConfig,
    BlockKind,
    BneckLiteCfg,
    HeadCfg,
    IRCfg,
    MobileFormerCfg,
    MobileViTCfg,
    StageCfg,
    StemCfg,
    TokenCfg,
    block_from_dict,
    block_kind,
    list_block_kinds,
    register_block_kind,
)
from nas.errors import ConfigError
from nas.madds import count_madds, register_madds
from nas.profile import fvcore_profile

TOKENS = TokenCfg(num_tokens=3, dim=32)

# Per kind, block configs that together reach each branch of its module and its count: strides, forms,
# groups, fusions, attentions, patch sizes (a 14x14 map leaves patch 4 a resize).
EXAMPLES: dict[str, list] = {
    "ir": [IRCfg(out=24), IRCfg(out=32, stride=2, expand=1.0, kernel=5, act="relu6")],
    "bneck_lite": [BneckLiteCfg(out=24), BneckLiteCfg(out=32, stride=2, dw_mult=2, groups=4)],
    "mobilevit": [MobileViTCfg(dim=32, ffn_dim=64, depth=1, heads=2, patch=p, attention=a, fusion=f, local=loc)
                  for p, a, f, loc in ((2, "mhsa", "v1", "full"), (4, "separable", "none", "dw"),
                                       (4, "mhsa", "v3", "dw"), (2, "separable", "v3_merged", "dw"))],
    "mobile_former": [MobileFormerCfg(out=24, expand=2), MobileFormerCfg(out=32, form="downsample", stride=2),
                      MobileFormerCfg(out=32, expand=2, groups=2)],
}
CASES = [(kind, i) for kind in list_block_kinds() for i in range(len(EXAMPLES.get(kind, [None])))]


def _one_block_arch(cfg) -> ArchConfig:
    """stem (16 channels, 28x28 at 56 px) -> the block -> global-pool head; tokens only where needed."""
    tokens = TOKENS if isinstance(cfg, MobileFormerCfg) else None
    return ArchConfig(name=f"one_{cfg.kind}", resolution=56, stem=StemCfg(out=16),
                      stages=(StageCfg("s1", (IRCfg(out=16, stride=2),)), StageCfg("block", (cfg,))),
                      head=HeadCfg(conv=40), tokens=tokens, num_classes=10)


def test_every_kind_has_all_three_parts_and_an_example():
    kinds = block_kinds()
    assert [k.kind for k in kinds] == list_block_kinds() == ["ir", "bneck_lite", "mobilevit", "mobile_former"]
    for k in kinds:
        assert k.missing() == [], f"block kind {k.kind!r} lacks {k.missing()}"
        assert k.cfg_cls.kind == k.kind
        assert block_factory(k.kind) is k.build
        assert k.kind in EXAMPLES, f"add examples of {k.kind!r} to tests/test_blocks.py"


def test_config_and_madds_import_without_torch():
    code = ("import sys, nas.config, nas.madds, nas.space\n"
            "from nas.config import block_kind, list_block_kinds\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert all(block_kind(k).madds is not None for k in list_block_kinds())\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind,i", CASES)
def test_dict_round_trip(kind, i):
    cfg = EXAMPLES[kind][i]
    d = cfg.to_dict()
    assert d["kind"] == kind
    assert block_from_dict(d, "test") == cfg


@pytest.mark.parametrize("kind,i", CASES)
def test_build_forward_backward(kind, i):
    cfg = EXAMPLES[kind][i]
    ctx = BuildContext(tokens=TOKENS)
    blk = block_factory(kind)(cfg, 16, ctx)
    x = torch.randn(2, 16, 14, 14, requires_grad=True)
    z = torch.randn(2, TOKENS.num_tokens, TOKENS.dim, requires_grad=True)
    y, z_out = blk(x, z)
    assert y.shape[:2] == (2, blk.out_channels)
    (y.square().mean() + z_out.square().mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in blk.parameters())


@pytest.mark.parametrize("kind,i", CASES)
def test_analytic_count_equals_fvcore(kind, i):
    arch = _one_block_arch(EXAMPLES[kind][i])
    prof = fvcore_profile(build_model(arch), arch.resolution)
    assert prof.uncounted_matmuls == {}
    assert count_madds(arch) == prof.madds


def test_registry_is_loud():
    with pytest.raises(ConfigError) as e:
        block_kind("mobilvit")
    assert "did you mean 'mobilevit'" in e.value.hint and all(k in e.value.hint for k in list_block_kinds())
    with pytest.raises(ValueError, match="registered twice"):
        register_block_kind(IRCfg)
    with pytest.raises(ValueError, match="'build' registered twice"):
        register_block(IRCfg)(lambda cfg, cin, ctx: None)
    with pytest.raises(ValueError, match="'madds' registered twice"):
        register_madds(MobileViTCfg)(lambda cfg, cin, h, w, tokens: (0, cin, h, w))
    with pytest.raises(ValueError, match="not a registered block config"):
        register_block(TokenCfg)(lambda cfg, cin, ctx: None)
    with pytest.raises(LookupError, match="no 'build'"):
        BlockKind("x", IRCfg).part("build")
