"""Mobile-Former: the 7 published variants rebuilt exactly, fvcore vs published and analytic MAdds,
random points of the MF space (M in {1, 3, 6, 12}, separable Former, grouped convs), training steps at
224 and 32 px, and clear errors for bad configs."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from nas.blocks import BuildContext, block_factory
from nas.blocks.mobile_former import DynamicReLU, FormerToMobile, MobileToFormer
from nas.builder import build_model, count_params
from nas.config import (
    ArchConfig,
    BneckLiteCfg,
    HeadCfg,
    IRCfg,
    MobileFormerCfg,
    StageCfg,
    StemCfg,
    TokenCfg,
)
from nas.errors import ConfigError
from nas.madds import count_madds, madds_breakdown
from nas.profile import fvcore_profile
from nas.variants import ZOO

torch.set_num_threads(1)

# (params_exact, published MAdds in millions) from /work/shared/reference/published_variants.yaml; the zoo's
# published.yaml carries the same numbers and is checked against these below.
PUBLISHED = {
    "mobile_former_26m": (3232788, 26),
    "mobile_former_52m": (3469092, 52),
    "mobile_former_96m": (4585252, 96),
    "mobile_former_151m": (7595828, 151),
    "mobile_former_214m": (9425920, 214),
    "mobile_former_294m": (11422648, 294),
    "mobile_former_508m": (13976976, 508),
}


def _variant(name: str) -> ArchConfig:
    return ArchConfig.from_yaml(ZOO / f"{name}.yaml")


# --------------------------------------------------------------------------------------------------------
# The published variants


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_variant_exact_params_and_madds(name: str):
    params_exact, published_m = PUBLISHED[name]
    cfg = _variant(name)
    assert cfg.name == name and cfg.family == "Mobile-Former"
    assert (cfg.resolution, cfg.num_classes, cfg.in_chans) == (224, 1000, 3)
    model = build_model(cfg)
    assert count_params(model) == params_exact

    prof = fvcore_profile(model, 224)
    assert prof.params == params_exact
    assert prof.uncounted_matmuls == {}
    fv_m = prof.madds / 1e6
    assert abs(fv_m - published_m) / published_m < 0.02, f"fvcore {fv_m:.2f}M vs published {published_m}M"

    analytic = count_madds(cfg)
    assert abs(analytic - prof.madds) / prof.madds < 0.005, f"analytic {analytic} vs fvcore {prof.madds}"
    # Per part too, so a compensating pair of errors cannot hide.
    parts = madds_breakdown(cfg)
    for part, fv in prof.by_stage.items():
        assert abs(parts[part] - fv) <= 0.005 * fv + 10, (part, parts[part], fv)


def test_zoo_yaml_round_trips_and_matches_published_table():
    from nas.variants import published

    for name, (params_exact, madds_m) in PUBLISHED.items():
        cfg = _variant(name)
        assert ArchConfig.from_dict(cfg.to_dict()) == cfg
        assert (ZOO / f"{name}.yaml").read_text() == cfg.to_yaml()
        pub = published(name)
        assert (pub["params_exact"], pub["madds_m"]) == (params_exact, madds_m)
        kinds = [b.kind for b in cfg.stages[0].blocks]
        assert kinds[0] == "bneck_lite" and "bneck_lite" not in [b.kind for s in cfg.stages[1:] for b in s.blocks]
        assert cfg.tokens is not None and cfg.tokens.final_bridge and cfg.head.concat_token


def test_variant_stages_group_blocks_by_output_resolution():
    for name in PUBLISHED:
        cfg = _variant(name)
        model = build_model(cfg).eval()
        x = model.stem(torch.zeros(1, 3, 224, 224))
        z = model.global_tokens.unsqueeze(0)
        sizes = []
        for blocks in model.stages.values():
            stage_sizes = set()
            for blk in blocks:
                x, z = blk(x, z)
                stage_sizes.add(x.shape[-1])
            assert len(stage_sizes) == 1, name
            sizes.append(stage_sizes.pop())
        assert sizes == sorted(set(sizes), reverse=True) and sizes[-1] == 7, (name, sizes)


# --------------------------------------------------------------------------------------------------------
# Random points of the Mobile-Former space


def random_mf_arch(rng: random.Random, *, num_tokens: int, attention: str, resolution: int = 128,
                   groups: int = 1, stride32: bool = False, name: str = "rand_mf") -> ArchConfig:
    """A small random Mobile-Former network; widths multiples of 8 so every head / group count divides them.
    `stride32`: bneck-lite at stride 2 and three downsampling stages (total stride 32, as the variants)."""
    dim = rng.choice([32, 48, 64, 96])
    tokens = TokenCfg(num_tokens=num_tokens, dim=dim, ffn_ratio=rng.choice([1.5, 2.0, 3.0]),
                      former_heads=rng.choice([1, 2, 4]) if attention == "mhsa" else 3,
                      bridge_heads=rng.choice([1, 2, 4]), attention=attention,
                      final_bridge=rng.random() < 0.8)
    stem = rng.choice([8, 16])
    w = rng.choice([8, 16, 24])
    bneck_stride = 2 if stride32 else rng.choice([1, 2])
    stages = [StageCfg(name="s1", blocks=(BneckLiteCfg(out=w, stride=bneck_stride, dw_mult=rng.choice([1, 2, 3]),
                                                       groups=groups),))]
    for i in range(2, 2 + (3 if stride32 else rng.choice([2, 3]))):
        w_next = w + 8 * rng.randint(1, 3)
        blocks = [MobileFormerCfg(out=w_next, form="downsample", stride=2, dw_mult=rng.choice([2, 4, 6]),
                                  dw2_mult=rng.choice([1, 2, 4]), groups=groups)]
        for _ in range(rng.randint(0, 2)):
            w_reg = w_next + 8 * rng.randint(0, 1)
            blocks.append(MobileFormerCfg(out=w_reg, form="regular", expand=rng.choice([2, 3, 4, 6]), groups=groups))
            w_next = w_reg
        stages.append(StageCfg(name=f"s{i}", blocks=tuple(blocks)))
        w = w_next
    head = HeadCfg(conv=rng.choice([None, 8 * rng.randint(4, 12)]), conv_act="relu6", conv_groups=groups,
                   pool_act="hswish", concat_token=rng.random() < 0.7, hidden=rng.choice([None, 64]))
    if head.conv is None:
        head = HeadCfg(pool_act="hswish", concat_token=head.concat_token, hidden=head.hidden)
    return ArchConfig(name=name, resolution=resolution, stem=StemCfg(out=stem, act="relu6"), stages=tuple(stages),
                      head=head, tokens=tokens, num_classes=10, family="hybrid-MF")


RANDOM_POINTS = [
    # (seed, M, attention, resolution, groups)
    (0, 1, "mhsa", 128, 1),
    (1, 3, "mhsa", 96, 1),
    (2, 6, "mhsa", 160, 2),
    (3, 12, "mhsa", 112, 1),
    (4, 1, "separable", 128, 1),
    (5, 3, "separable", 96, 2),
    (6, 6, "separable", 100, 1),  # odd intermediate maps
    (7, 12, "separable", 128, 4),
    (8, 4, "mhsa", 64, 1),
    (9, 12, "mhsa", 224, 1),
]


@pytest.mark.parametrize("seed,m,attention,res,groups", RANDOM_POINTS)
def test_random_points_analytic_matches_fvcore(seed: int, m: int, attention: str, res: int, groups: int):
    cfg = random_mf_arch(random.Random(seed), num_tokens=m, attention=attention, resolution=res, groups=groups)
    model = build_model(cfg)
    prof = fvcore_profile(model, res)
    assert prof.uncounted_matmuls == {}
    analytic = count_madds(cfg)
    assert abs(analytic - prof.madds) / prof.madds < 0.005, f"analytic {analytic} vs fvcore {prof.madds}"


def test_ir_mixed_with_mobile_former_counts_match():
    """An IR stage between MF stages passes the tokens through untouched; counts still agree."""
    base = random_mf_arch(random.Random(11), num_tokens=3, attention="mhsa", resolution=96)
    mixed = base.replace(stages=base.stages[:2] + (StageCfg(name="ir", blocks=(IRCfg(out=40, expand=2.0),)),)
                         + base.stages[2:])
    prof = fvcore_profile(build_model(mixed), 96)
    assert abs(count_madds(mixed) - prof.madds) / prof.madds < 0.005


# --------------------------------------------------------------------------------------------------------
# Training steps: 224 and 32 px, separable Former, every M


@pytest.mark.parametrize("m", [1, 3, 6, 12])
@pytest.mark.parametrize("attention", ["mhsa", "separable"])
def test_forward_backward_224_and_32px(m: int, attention: str):
    cfg = random_mf_arch(random.Random(100 + m), num_tokens=m, attention=attention, resolution=224, groups=2,
                         stride32=True)
    # 32 px through the 224-px build (stem stride 2): total stride 32, so the last maps are 1x1.
    for input_size in (32, 224):
        model = build_model(cfg)
        x = torch.randn(2, 3, input_size, input_size)
        feats, z = model.forward_features(x)
        assert z.shape == (2, m, cfg.tokens.dim)
        if input_size == 32:
            assert feats.shape[-1] == 1
        out = model.forward_head(feats, z)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        F.cross_entropy(out, torch.tensor([1, 2])).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"parameters outside the graph: {missing[:5]}"


def test_proxy_build_at_32px_runs_stem_stride1():
    cfg = random_mf_arch(random.Random(7), num_tokens=6, attention="separable", resolution=224)
    model = build_model(cfg, input_size=32)
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10) and model.global_tokens.grad is not None


def test_published_variant_trains_at_224():
    cfg = _variant("mobile_former_26m")  # grouped convs + channel shuffles, M=3
    model = build_model(cfg, num_classes=5)
    out = model(torch.randn(2, 3, 224, 224))
    F.cross_entropy(out, torch.tensor([0, 4])).backward()
    assert out.shape == (2, 5)
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------------------------------------
# The bridges compute what they claim (against explicit matmuls)


def test_bridges_match_explicit_attention():
    torch.manual_seed(0)
    tok = TokenCfg(num_tokens=3, dim=16, bridge_heads=2)
    b, c, h, w = 2, 8, 3, 5
    x, z = torch.randn(b, c, h, w), torch.randn(b, 3, 16)

    m2f = MobileToFormer(c, tok)
    q = m2f.q(z).view(b, 3, 2, 4)  # [B, M, heads, C/heads]
    feats = x.view(b, 2, 4, h * w)  # [B, heads, C/heads, HW]
    att = torch.einsum("bmhc,bhcn->bhmn", q, feats).div(4 ** 0.5).softmax(-1)
    y = torch.einsum("bhmn,bhcn->bmhc", att, feats).reshape(b, 3, c)
    y = y * 2 * F.hardsigmoid(m2f.gate(z))
    expected = F.layer_norm(z + m2f.proj(y), (16,), m2f.norm.weight, m2f.norm.bias)
    torch.testing.assert_close(m2f(x, z), expected)

    f2m = FormerToMobile(c, tok)
    k, v = f2m.k(z).view(b, 3, 2, 4), f2m.v(z).view(b, 3, 2, 4)
    att = torch.einsum("bhcn,bmhc->bhnm", feats, k).div(4 ** 0.5).softmax(-1)
    y = torch.einsum("bhnm,bmhc->bhcn", att, v).reshape(b, c, h, w)
    torch.testing.assert_close(f2m(x, z), x + y)


def test_hyper_mlp_width_is_the_configs():
    from nas.config import hyper_dim

    assert DynamicReLU(8, 192).hyper[0].out_features == hyper_dim(192) == 48
    assert DynamicReLU(8, 3).hyper[0].out_features == hyper_dim(3) == 1


def test_dynamic_relu_slopes_come_from_the_token():
    torch.manual_seed(0)
    act = DynamicReLU(4, 16)
    x = torch.linspace(-2, 2, 4 * 9).view(1, 4, 3, 3)
    t = torch.randn(1, 16)
    y = act(x, t)
    a1, a2 = act.hyper(t).chunk(2, dim=1)
    ref = torch.maximum(x * 2 * a1[..., None, None], x * (2 * a2[..., None, None] - 1))
    torch.testing.assert_close(y, ref)
    assert not torch.equal(act(x, torch.randn(1, 16)), y)


def test_mobile_former_block_output_depends_on_token0_through_dyrelu():
    torch.manual_seed(0)
    tok = TokenCfg(num_tokens=2, dim=16)
    blk = block_factory("mobile_former")(MobileFormerCfg(out=8, expand=2), 8, BuildContext(tokens=tok)).eval()
    x, z = torch.randn(1, 8, 4, 4), torch.randn(1, 2, 16)
    y, z_out = blk(x, z)
    assert y.shape == x.shape and z_out.shape == z.shape
    z2 = z.clone()
    z2[:, 0] += 1.0
    assert not torch.allclose(blk(x, z2)[0], y)


# --------------------------------------------------------------------------------------------------------
# Bad configs


def _small_arch(**tokens_kw) -> dict:
    d = {
        "name": "bad", "resolution": 64, "stem": {"out": 8},
        "stages": [{"name": "s1", "blocks": [{"kind": "mobile_former", "out": 16, "form": "downsample", "stride": 2}]}],
    }
    d.update(tokens_kw)
    return d


def test_mobile_former_without_tokens_is_a_config_error():
    with pytest.raises(ConfigError, match="tokens") as e:
        ArchConfig.from_dict(_small_arch())
    assert e.value.hint and "num_tokens" in e.value.hint


def test_widths_not_divisible_by_heads_or_groups_are_config_errors():
    cfg = ArchConfig.from_dict(_small_arch(tokens={"num_tokens": 3, "dim": 32, "bridge_heads": 3}))
    with pytest.raises(ConfigError, match="bridge_heads") as e:
        build_model(cfg)
    assert "not divisible" in e.value.message and e.value.hint
    grouped = cfg.replace(tokens=TokenCfg(num_tokens=3, dim=32),
                          stages=(StageCfg(name="s1", blocks=(MobileFormerCfg(out=18, form="downsample", stride=2,
                                                                              groups=4),)),))
    with pytest.raises(ConfigError, match="groups"):
        build_model(grouped)


@pytest.mark.parametrize("bad,match", [
    ({"kind": "mobile_former", "out": 16, "form": "regular", "stride": 2}, "form=downsample"),
    ({"kind": "mobile_former", "out": 16, "form": "downsample", "stride": 1}, "2 for form=downsample"),
    ({"kind": "mobile_former", "out": 16, "form": "sideways"}, "regular, downsample"),
    ({"kind": "mobile_former", "out": 16, "expnd": 4}, "did you mean 'expand'"),
    ({"kind": "bneck_lite", "out": 0}, "integer >= 1"),
])
def test_bad_block_knobs_are_config_errors(bad: dict, match: str):
    d = _small_arch(tokens={"num_tokens": 3, "dim": 32})
    d["stages"][0]["blocks"] = [bad]
    with pytest.raises(ConfigError, match=match):
        ArchConfig.from_dict(d)


def test_former_heads_must_divide_dim():
    with pytest.raises(ConfigError, match="former_heads"):
        TokenCfg(num_tokens=3, dim=30, former_heads=4)
