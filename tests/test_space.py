"""The search space as data: YAML validation, define-by-run sample/replay, budget parsing and screening."""

from __future__ import annotations

import optuna
import pytest

from nas.config import ArchConfig
from nas.errors import BudgetError, ConfigError
from nas.madds import count_madds
from nas.space import (
    SPACES_DIR,
    MacroDef,
    RandomTrial,
    check_budget,
    knob_values,
    list_macros,
    load_space,
    parse_budget,
    parse_space,
    register_macro,
    replay,
    sample_arch,
    screen_budget,
)
from nas.variants import get_variant

SPACES = sorted(SPACES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_space_loads_and_samples_valid_archs(path):
    space = load_space(path)
    for i in range(40):
        t = RandomTrial(i)
        arch = sample_arch(t, space)
        assert isinstance(arch, ArchConfig)
        assert arch.resolution == space.macros[t.params.get("macro", next(iter(space.macros)))].resolution
        assert replay(t.params, space).arch_id == arch.arch_id  # FixedTrial replays the same network
        assert ArchConfig.from_dict(arch.to_dict()).arch_id == arch.arch_id
        assert count_madds(arch) > 0


def test_space_yaml_round_trips():
    space = load_space()
    import yaml

    again = parse_space(yaml.safe_load(space.to_yaml()), source="resolved")
    for i in range(20):
        t = RandomTrial(i)
        assert sample_arch(t, space).arch_id == replay(t.params, again).arch_id


def test_optuna_trial_and_fixed_trial_agree():
    space = load_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(15):
        trial = study.ask()
        arch = sample_arch(trial, space)
        assert replay(trial.params, space).arch_id == arch.arch_id
        study.tell(trial, 0.0)
    # conditional knobs: heads only for MHSA, token knobs only for the Mobile-Former last stage
    for t in study.trials:
        if t.params.get("vit.attention") == "separable":
            assert "vit.heads" not in t.params
        if t.params.get("vit.s5_mixer") == "mobilevit":
            assert "vit.num_tokens" not in t.params


@pytest.mark.parametrize("name,params", [
    ("mobile_former_294m", {"macro": "mobile_former", "mf.width_mult": 1.0, "mf.num_tokens": 6, "mf.dim": 192,
                            "mf.attention": "mhsa", "mf.ffn_ratio": 2.0, "mf.expand": 4, "mf.expand_late": 6,
                            "mf.depth_s2": 1, "mf.depth_s3": 1, "mf.depth_s4": 3, "mf.depth_s5": 2,
                            "mf.s4_mixer": "mobile_former"}),
    ("mobile_former_151m", {"macro": "mobile_former", "mf.width_mult": 0.667, "mf.num_tokens": 6, "mf.dim": 192,
                            "mf.attention": "mhsa", "mf.ffn_ratio": 2.0, "mf.expand": 3, "mf.expand_late": 6,
                            "mf.depth_s2": 1, "mf.depth_s3": 1, "mf.depth_s4": 3, "mf.depth_s5": 2,
                            "mf.s4_mixer": "mobile_former"}),
    ("mobilevitv3_050", {"macro": "mobilevit", "vit.width_mult": 0.5, "vit.dim_mult": 0.5, "vit.fusion": "v3_merged",
                         "vit.attention": "separable", "vit.local": "dw", "vit.patch": 2, "vit.ffn_ratio": 2.0,
                         "vit.expand": 2, "vit.depth_s2": 2, "vit.depth_s3": 2, "vit.depth_s4": 4, "vit.depth_s5": 3,
                         "vit.head_conv": False, "vit.s5_mixer": "mobilevit"}),
    ("mobilevitv2_050", {"macro": "mobilevit", "vit.width_mult": 0.5, "vit.dim_mult": 0.5, "vit.fusion": "none",
                         "vit.attention": "separable", "vit.local": "dw", "vit.patch": 2, "vit.ffn_ratio": 2.0,
                         "vit.expand": 2, "vit.depth_s2": 2, "vit.depth_s3": 2, "vit.depth_s4": 4, "vit.depth_s5": 3,
                         "vit.head_conv": False, "vit.s5_mixer": "mobilevit"}),
])
def test_published_variants_are_points_of_the_space(name, params):
    assert replay(params, load_space()).arch_id == get_variant(name).arch_id


def test_macros_are_registered_once():
    assert list_macros() == ["mobile_former", "mobilevit"]
    space = load_space()
    for name, m in space.macros.items():
        assert m.definition.name == m.name == name
    with pytest.raises(ValueError, match="clashes"):
        register_macro(space.macros["mobilevit"].definition)
    with pytest.raises(ValueError, match="prefix 'mf'"):
        register_macro(MacroDef("other", "mf", "x", 64, {}, {}, space.macros["mobilevit"].definition.sample))
    assert list_macros() == ["mobile_former", "mobilevit"]


def test_knob_values_strip_prefix_and_tag_fusion():
    space = load_space()
    t = RandomTrial(5)
    sample_arch(t, space)
    kv = knob_values(t.params, space)
    assert kv["macro"] in space.macros and all("." not in k for k in kv)
    mf = knob_values({"macro": "mobile_former"}, space)
    assert mf["fusion"] == "bridge"


@pytest.mark.parametrize("text,expected", [
    ("300M", 300_000_000), ("300m", 300_000_000), ("0.3G", 300_000_000), ("0.3g", 300_000_000),
    ("300e6", 300_000_000), ("300000000", 300_000_000), ("300 M", 300_000_000), (" 1.5G ", 1_500_000_000),
    ("250k", 250_000), (300e6, 300_000_000),
])
def test_parse_budget_accepts(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["300X", "-5M", "abc", "", "M", "0", "3e", "1.2.3M", "nanM"])
def test_parse_budget_rejects_with_accepted_forms(text):
    with pytest.raises(BudgetError) as e:
        parse_budget(text)
    assert "300M" in str(e.value)


def test_budget_nothing_fits_names_the_minimum():
    space = load_space()
    with pytest.raises(BudgetError) as e:
        check_budget(space, parse_budget("1M"), samples=200)
    msg = str(e.value)
    assert "smallest it can reach" in msg and "--budget" in msg
    sc = screen_budget(space, parse_budget("300M"), min_budget=0.5, samples=300)
    assert sc.min_madds < 60e6 and 0 < sc.share_in_band < 1 and sc.share_under >= sc.share_in_band
    # the minimum is reachable: no sample is below it
    assert all(count_madds(sample_arch(RandomTrial(i), space)) >= sc.min_madds for i in range(100))


def test_screen_is_deterministic():
    space = load_space()
    a = screen_budget(space, 300_000_000, min_budget=0.5, samples=200, seed=1)
    b = screen_budget(space, 300_000_000, min_budget=0.5, samples=200, seed=1)
    assert a.share_in_band == b.share_in_band and a.in_band_params == b.in_band_params


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.update(bogus=1), "unknown key 'bogus'"),
    (lambda d: d["macros"]["mobilevit"]["knobs"].update(pach=[2]), "did you mean 'patch'"),
    (lambda d: d["macros"].update(convnext={}), "unknown key 'convnext'"),
    (lambda d: d["macros"]["mobilevit"]["knobs"].update(fusion=["v9"]), "'v9' is invalid"),
    (lambda d: d["macros"]["mobilevit"]["knobs"].update(patch=[]), "has no choices"),
    (lambda d: d["macros"]["mobilevit"]["knobs"].update(depth_s3={"low": 3, "high": 1}), "low <= high"),
    (lambda d: d["macros"]["mobilevit"].update(base={"widths": [1, 2]}), "base.widths"),
    (lambda d: d.update(macros={}), "non-empty 'macros'"),
])
def test_bad_space_names_the_key_and_valid_ones(mutate, needle):
    import yaml

    d = yaml.safe_load((SPACES_DIR / "tiny.yaml").read_text())
    mutate(d)
    with pytest.raises(ConfigError) as e:
        parse_space(d, source="bad.yaml")
    assert needle in str(e.value)
    assert e.value.hint


def test_malformed_yaml_and_missing_space(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("macros: {mobilevit: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_space(p)
    with pytest.raises(ConfigError, match="no such search space"):
        load_space(tmp_path / "nope.yaml")


def test_ranges_are_int_or_float():
    d = {"macros": {"mobilevit": {"knobs": {"depth_s4": {"low": 1, "high": 3}, "ffn_ratio": {"low": 1.0, "high": 2.0,
                                                                                             "step": 0.5}}}}}
    space = parse_space(d)
    assert space.macros["mobilevit"].knobs["depth_s4"].values() == [1, 2, 3]
    assert space.macros["mobilevit"].knobs["ffn_ratio"].values() == [1.0, 1.5, 2.0]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    t = study.ask()
    arch = sample_arch(t, space)
    assert isinstance(t.params["vit.depth_s4"], int)
    assert replay(t.params, space).arch_id == arch.arch_id
