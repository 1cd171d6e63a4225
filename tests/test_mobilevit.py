"""MobileViT v1/v2/v3: the 16 published variants to the parameter, MAdds (fvcore vs analytic vs published),
the v2 rule for maps the patch does not divide, forward/backward at 32 px and at target resolution for
cross-family points, unfold/fold, bad configs."""

from __future__ import annotations

import importlib.util
import random
import re
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks import BuildContext
from nas.blocks.mobilevit import ChannelsLastGroupNorm, MobileViTBlock, fold_patches, unfold_patches
from nas.builder import build_model, count_params
from nas.config import ArchConfig, HeadCfg, IRCfg, MobileViTCfg, StageCfg, StemCfg
from nas.errors import ConfigError
from nas.madds import conv_out, count_madds
from nas.profile import Profile, fvcore_profile
from nas.variants import get_variant, list_variants, published

MOBILEVIT = [n for n in list_variants() if published(n)["family"].startswith("MobileViT")]
# MobileViTv2 and MobileViTv3-0.5/0.75/1.0: blocks that resize their input and keep the new size
V2_STYLE = [n for n in MOBILEVIT if any(isinstance(b, MobileViTCfg) and b.resizes_input for b in get_variant(n).blocks)]
ROOT = Path(__file__).resolve().parents[1]


@cache
def _profile(name: str) -> Profile:
    cfg = get_variant(name)
    return fvcore_profile(build_model(cfg), cfg.resolution)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


def test_sixteen_variants_and_zoo_matches_the_width_rules():
    assert len(MOBILEVIT) == 16
    spec = importlib.util.spec_from_file_location("gen_mobilevit_zoo", ROOT / "scripts" / "gen_mobilevit_zoo.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    archs = gen.all_archs()
    assert sorted(archs) == sorted(MOBILEVIT)
    for name, cfg in archs.items():
        zoo = get_variant(name)
        assert zoo == cfg, f"nas/zoo/{name}.yaml differs from the rules: rerun scripts/gen_mobilevit_zoo.py"
        assert zoo.family == published(name)["family"] and zoo.resolution == 256 and zoo.num_classes == 1000
        assert [s.name for s in zoo.stages] == ["layer1", "layer2", "layer3", "layer4", "layer5"]


@pytest.mark.parametrize("name", MOBILEVIT)
def test_exact_params_and_every_matmul_counted(name):
    prof = _profile(name)
    assert prof.params == published(name)["params_exact"]
    assert prof.uncounted_matmuls == {}


@pytest.mark.parametrize("name", MOBILEVIT)
def test_analytic_madds_match_fvcore(name):
    assert _rel(count_madds(get_variant(name)), _profile(name).madds) < 0.005


def test_ten_v2_style_variants():
    assert V2_STYLE == [f"mobilevitv2_{w}" for w in ("050", "075", "100", "125", "150", "175", "200")] + [
        f"mobilevitv3_{w}" for w in ("050", "075", "100")]


@pytest.mark.parametrize("name", V2_STYLE)
def test_analytic_madds_match_fvcore_at_224px(name):
    # 224 px leaves layer5 a 7x7 map, which these blocks resize up to 8x8 and keep (counted by both).
    cfg = get_variant(name)
    prof = fvcore_profile(build_model(cfg), 224)
    assert prof.uncounted_matmuls == {}
    assert count_madds(cfg, 224) == prof.madds


def _map_sizes(cfg: ArchConfig, res: int) -> dict[str, int]:
    model = build_model(cfg).eval()
    sizes = {}
    with torch.no_grad():
        x, z = model.stem(torch.zeros(1, 3, res, res)), None
        for name, blocks in model.stages.items():
            for blk in blocks:
                x, z = blk(x, z)
            sizes[name] = x.shape[-1]
    return sizes


def test_mobilevitv2_100_ends_on_8x8_at_224_and_256px():
    # As ml-cvnets' MobileViTBlockv2 and timm's MobileVitV2Block: layer5's 7x7 input is resized to 8x8 and kept.
    cfg = get_variant("mobilevitv2_100")
    assert _map_sizes(cfg, 224) == {"layer1": 112, "layer2": 56, "layer3": 28, "layer4": 14, "layer5": 8}
    assert _map_sizes(cfg, 256) == {"layer1": 128, "layer2": 64, "layer3": 32, "layer4": 16, "layer5": 8}
    # v1-style blocks keep the input size: MobileViT-XS ends on 7x7 at 224 px
    assert _map_sizes(get_variant("mobilevit_xs"), 224)["layer5"] == 7


@pytest.mark.parametrize("name", MOBILEVIT)
def test_published_madds_within_the_notes_tolerance(name):
    pub = published(name)
    note = pub.get("note") or ""
    m = re.search(r"Tolerance: (\d+(?:\.\d+)?)%", note)
    assert m, f"{name}: published.yaml note must state 'Tolerance: X%'"
    ours = _profile(name).madds
    assert f"ours {ours / 1e6:.0f}M" in note, "the note quotes our count; regenerate it if the count moved"
    assert _rel(ours, pub["madds_m"] * 1e6) <= float(m.group(1)) / 100


def _attention_terms(cfg: ArchConfig) -> tuple[int, int]:
    """(2*N^2*d as counted, 2*N*d^2 as the early cvnets profiler did) summed over the MHSA layers at 256 px."""
    h = conv_out(cfg.resolution, cfg.stem.stride)
    right = slip = 0
    for b in cfg.blocks:
        if isinstance(b, MobileViTCfg):
            tokens = h * h
            right += b.depth * 2 * tokens * (tokens // b.patch**2) * b.dim
            slip += b.depth * 2 * tokens * b.dim * b.dim
        else:
            h = conv_out(h, b.stride)
    return right, slip


@pytest.mark.parametrize("name", ["mobilevitv3_xxs", "mobilevitv3_xs", "mobilevitv3_s"])
def test_v3_readme_figures_follow_the_2nd2_attention_slip(name):
    # The notes' explanation, checked: counting attention as 2*N*d^2 brings ours within 4% of the README.
    cfg = get_variant(name)
    right, slip = _attention_terms(cfg)
    pub = published(name)["madds_m"] * 1e6
    assert _rel(count_madds(cfg) - right + slip, pub) < 0.04


def test_v1_xs_paper_figure_is_near_our_224px_count():
    assert _rel(count_madds(get_variant("mobilevit_xs"), 224), 700e6) < 0.15
    assert _rel(count_madds(get_variant("mobilevit_xs")), 700e6) > 0.4


def _fwd_bwd(model: nn.Module, res: int, classes: int) -> None:
    model.train()
    x = torch.randn(2, 3, res, res)
    out = model(x)
    assert out.shape == (2, classes)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", MOBILEVIT)
def test_forward_backward_at_32px(name):
    cfg = get_variant(name)
    # Plain build: stem stride 2, layer5's MobileViT block gets a 1x1 map (v1-style: resized to 2x2 for the
    # 2x2 patches and back; v2-style: resized to 2x2 and kept).
    _fwd_bwd(build_model(cfg, num_classes=10), 32, 10)
    # Proxy build for 32 px inputs (stem stride 1): maps divisible by the patch, no resize.
    _fwd_bwd(build_model(cfg, num_classes=10, input_size=32), 32, 10)


# ---------------------------------------------------------------------------------------------------------
# Cross-family points: every patch size and fusion, both attentions and local convs, at target resolution.


def _tiny(*, patch: int, fusion: str, attention: str, local: str, res: int = 256, heads: int = 2,
          dims: tuple[int, int] = (16, 24), widths: tuple[int, int] = (24, 32), stem: int = 8,
          stem_stride: int = 2, proj_act: bool = True, depth: int = 1) -> ArchConfig:
    stages = [StageCfg("layer1", (IRCfg(16, stride=2, expand=2.0),))]
    for i, (c, d) in enumerate(zip(widths, dims)):
        mv = MobileViTCfg(dim=d, ffn_dim=2 * d, depth=depth, heads=heads, patch=patch, attention=attention,
                          fusion=fusion, local=local, proj_act=proj_act)
        stages.append(StageCfg(f"layer{i + 2}", (IRCfg(c, stride=2, expand=2.0), mv)))
    return ArchConfig(name=f"tiny_p{patch}_{fusion}_{attention}", resolution=res,
                      stem=StemCfg(stem, stride=stem_stride), stages=tuple(stages),
                      head=HeadCfg(conv=48), num_classes=10)


GRID = [(p, f, "mhsa" if (i % 2 == 0) else "separable", "full" if i % 3 else "dw")
        for i, (p, f) in enumerate((p, f) for p in (1, 2, 4) for f in ("v1", "v3", "v3_merged", "none"))]


@pytest.mark.parametrize("patch,fusion,attention,local", GRID)
def test_cross_family_points_at_target_resolution(patch, fusion, attention, local):
    cfg = _tiny(patch=patch, fusion=fusion, attention=attention, local=local, res=256)
    model = build_model(cfg)
    prof = fvcore_profile(model, cfg.resolution)
    assert prof.uncounted_matmuls == {}
    assert _rel(count_madds(cfg), prof.madds) < 0.005
    _fwd_bwd(model, cfg.resolution, 10)


def test_mhsa_with_v3_fusion_on_v2_widths():
    # MobileViTv2-0.5's layer3 (C=128, d=64, ffn 128) with multi-head attention and v1-style v3 fusion.
    mv = MobileViTCfg(dim=64, ffn_dim=128, depth=1, heads=4, patch=2, attention="mhsa", fusion="v3", local="dw")
    cfg = ArchConfig(name="v2_widths_mhsa_v3", resolution=64, stem=StemCfg(16),
                     stages=(StageCfg("layer1", (IRCfg(32, stride=1, expand=2.0),)),
                             StageCfg("layer3", (IRCfg(128, stride=2, expand=2.0), mv))),
                     num_classes=10)
    model = build_model(cfg)
    prof = fvcore_profile(model, cfg.resolution)
    assert prof.uncounted_matmuls == {}
    assert _rel(count_madds(cfg), prof.madds) < 0.005
    _fwd_bwd(model, cfg.resolution, 10)


def _random_point(seed: int) -> ArchConfig:
    rng = random.Random(seed)
    patch = (1, 2, 4)[seed % 3]
    fusion = ("v1", "v3", "v3_merged", "none")[seed % 4]
    attention = ("mhsa", "separable")[seed % 2]
    heads = rng.choice((1, 2, 4))
    dims = tuple(heads * rng.randint(2, 12) for _ in range(2))
    widths = tuple(8 * rng.randint(2, 6) for _ in range(2))
    return _tiny(patch=patch, fusion=fusion, attention=attention, local=rng.choice(("full", "dw")),
                 res=rng.choice((64, 96, 112, 160, 224, 256)), heads=heads, dims=dims, widths=widths,
                 stem=8 * rng.randint(1, 3), stem_stride=rng.choice((1, 2)), proj_act=rng.random() < 0.5,
                 depth=rng.randint(1, 2))


@pytest.mark.parametrize("seed", range(10))
def test_analytic_matches_fvcore_on_random_points(seed):
    cfg = _random_point(seed)
    prof = fvcore_profile(build_model(cfg), cfg.resolution)
    assert prof.uncounted_matmuls == {}
    assert _rel(count_madds(cfg), prof.madds) < 0.005, cfg.to_yaml()


def test_random_points_exercise_the_resize_path():
    # At least one random point has a map that is not a multiple of its patch (bilinear resize counted).
    def resized(cfg: ArchConfig) -> bool:
        h = conv_out(cfg.resolution, cfg.stem.stride)
        for b in cfg.blocks:
            if isinstance(b, MobileViTCfg) and h % b.patch:
                return True
            h = conv_out(h, getattr(b, "stride", 1))
        return False

    assert any(resized(_random_point(s)) for s in range(10))


# ---------------------------------------------------------------------------------------------------------
# Block internals


def _closed_form_params(cfg: MobileViTCfg, c: int) -> int:
    d, f = cfg.dim, cfg.ffn_dim
    local = (9 * c if cfg.local == "dw" else 9 * c * c) + 2 * c + c * d
    attn = (3 * d * d + 3 * d if cfg.attention == "mhsa" else d * (1 + 2 * d) + 1 + 2 * d) + d * d + d
    layer = 2 * d + attn + 2 * d + d * f + f + f * d + d
    proj_in = 2 * d if cfg.fusion == "v3_merged" else d
    fusion = {"v1": 2 * c * c * 9 + 2 * c, "v3": (d + c) * c + 2 * c}.get(cfg.fusion, 0)
    return local + cfg.depth * layer + 2 * d + proj_in * c + 2 * c + fusion


@pytest.mark.parametrize("fusion", ["v1", "v3", "v3_merged", "none"])
@pytest.mark.parametrize("attention", ["mhsa", "separable"])
def test_block_params_closed_form_and_shape(fusion, attention):
    cfg = MobileViTCfg(dim=24, ffn_dim=40, depth=2, heads=4, patch=2, attention=attention, fusion=fusion,
                       local="dw" if fusion.startswith("v3") else "full")
    blk = MobileViTBlock(cfg, 20, BuildContext(tokens=None))
    assert count_params(blk) == _closed_form_params(cfg, 20)
    # odd sizes: resized to 8x6 for the patches, then back (v1-style) or kept (v2-style)
    y, tok = blk(torch.randn(2, 20, 7, 5), None)
    assert y.shape == ((2, 20, 8, 6) if cfg.resizes_input else (2, 20, 7, 5)) and tok is None


@pytest.mark.parametrize("fusion", ["none", "v3_merged"])
def test_v2_style_block_runs_on_its_input_resized_with_aligned_corners(fusion):
    torch.manual_seed(0)
    cfg = MobileViTCfg(dim=16, ffn_dim=32, depth=1, patch=4, attention="separable", fusion=fusion, local="dw")
    blk = MobileViTBlock(cfg, 8, BuildContext(tokens=None)).eval()
    x = torch.randn(2, 8, 7, 10)
    resized = F.interpolate(x, size=(8, 12), mode="bilinear", align_corners=True)
    with torch.no_grad():
        torch.testing.assert_close(blk(x, None)[0], blk(resized, None)[0])


@pytest.mark.parametrize("patch", [1, 2, 4])
def test_unfold_fold_round_trip(patch):
    x = torch.randn(2, 6, 8, 12)
    p, hw, orig = unfold_patches(x, patch)
    assert p.shape == (2, patch * patch, (8 // patch) * (12 // patch), 6) and orig is None
    # patch position (0, 0) of the first patch is pixel (0, 0); the last patch's last pixel is (H-1, W-1)
    assert torch.equal(p[:, 0, 0], x[:, :, 0, 0]) and torch.equal(p[:, -1, -1], x[:, :, -1, -1])
    assert torch.equal(fold_patches(p, patch, hw, orig), x)
    cl = fold_patches(p, patch, hw, orig, channels_last=True)  # the runtime's default layout, same values
    assert torch.equal(cl, x) and cl.is_contiguous(memory_format=torch.channels_last)
    odd = torch.randn(1, 3, 5, 3)
    q, hw, orig = unfold_patches(odd, patch)
    assert orig == ((5, 3) if patch > 1 else None)
    assert fold_patches(q, patch, hw, orig).shape == odd.shape


def test_channels_last_groupnorm_is_v2_layer_norm_2d():
    gn = ChannelsLastGroupNorm(6)
    nn.init.normal_(gn.weight)
    nn.init.normal_(gn.bias)
    ref = nn.GroupNorm(1, 6)
    ref.load_state_dict(gn.state_dict())
    x = torch.randn(2, 6, 4, 9)  # [B, d, P, N] as in MobileViTv2
    torch.testing.assert_close(gn(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), ref(x))


# ---------------------------------------------------------------------------------------------------------
# Bad configs


def test_heads_not_dividing_dim_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        MobileViTCfg(dim=70, ffn_dim=140, depth=1, heads=4)
    assert "heads" in str(e.value) and "divisor of dim=70" in str(e.value)


def test_unknown_fusion_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError) as e:
        MobileViTCfg(dim=64, ffn_dim=128, depth=1, fusion="v2")
    msg = str(e.value)
    assert "fusion" in msg and "'v2'" in msg and all(f in msg for f in ("v1", "v3", "v3_merged", "none"))


def test_bad_knob_from_yaml_dict_is_a_config_error():
    d = get_variant("mobilevit_xxs").to_dict()
    d["stages"][2]["blocks"][1]["patch"] = 3
    with pytest.raises(ConfigError, match="patch"):
        ArchConfig.from_dict(d)
    d["stages"][2]["blocks"][1].update(patch=2, atention="mhsa")
    with pytest.raises(ConfigError, match="did you mean 'attention'"):
        ArchConfig.from_dict(d)
