"""The config schema: round-trips, stable ids, clear refusals of invalid combinations."""

from __future__ import annotations

import pytest
import torch

from nas.builder import build_model
from nas.config import (
    ArchConfig,
    HeadCfg,
    IRCfg,
    MobileViTCfg,
    StageCfg,
    StemCfg,
    TokenCfg,
    load_yaml,
    make_divisible,
)
from nas.errors import ConfigError


def tiny_ir_arch(**kw) -> ArchConfig:
    return ArchConfig(name="tiny", resolution=64, stem=StemCfg(out=8),
                      stages=(StageCfg("s1", (IRCfg(out=16, stride=2), IRCfg(out=16))),),
                      head=HeadCfg(conv=32), num_classes=10, **kw)


def test_round_trip_dict_and_yaml(tmp_path):
    cfg = tiny_ir_arch()
    assert ArchConfig.from_dict(cfg.to_dict()) == cfg
    cfg.to_yaml(tmp_path / "a.yaml")
    back = ArchConfig.from_yaml(tmp_path / "a.yaml")
    assert back == cfg and back.arch_id == cfg.arch_id


def test_arch_id_ignores_name_but_not_knobs():
    a = tiny_ir_arch()
    assert a.replace(name="other").arch_id == a.arch_id
    assert a.replace(num_classes=11).arch_id != a.arch_id
    assert len(a.arch_id) == 12


def test_ir_network_builds_and_trains_a_step():
    model = build_model(tiny_ir_arch())
    x = torch.randn(2, 3, 64, 64)
    loss = model(x).logsumexp(1).mean()
    loss.backward()
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["stages"][0]["blocks"][0].update(stride=3), "ir.stride"),
    (lambda d: d["stages"][0]["blocks"][0].update(kind="irr"), "unknown block kind 'irr'"),
    (lambda d: d["stages"][0]["blocks"][0].update(expnad=2), "unknown knob 'expnad'"),
    (lambda d: d.update(resolutoin=3), "did you mean 'resolution'"),
    (lambda d: d["stem"].update(act="tanh"), "stem.act"),
    (lambda d: d["head"].update(concat_token=True), "head.concat_token"),
])
def test_bad_configs_name_the_field(mutate, field):
    d = tiny_ir_arch().to_dict()
    mutate(d)
    with pytest.raises(ConfigError) as e:
        ArchConfig.from_dict(d)
    assert field in str(e.value)


def test_invalid_combinations_refused_at_construction():
    with pytest.raises(ConfigError, match="heads"):
        MobileViTCfg(dim=30, ffn_dim=60, depth=1, heads=4)
    with pytest.raises(ConfigError, match="fusion"):
        MobileViTCfg(dim=32, ffn_dim=64, depth=1, fusion="bridge")
    with pytest.raises(ConfigError, match="former_heads"):
        TokenCfg(num_tokens=3, dim=30)


def test_malformed_yaml_is_one_clear_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nstages: [\n")
    with pytest.raises(ConfigError, match="malformed YAML.*line"):
        load_yaml(p)


def test_make_divisible_matches_mobilevitv2_rule():
    # The published v2 widths at alpha=0.75 (reference: layer1 = make_divisible(64a, 16) = 48).
    assert make_divisible(64 * 0.75, 16) == 48
    assert make_divisible(128 * 0.75, 8) == 96
    assert make_divisible(5, 8) == 8
