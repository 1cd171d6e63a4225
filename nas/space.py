"""The search space as data: a YAML file -> a validated `SearchSpace`; `sample_arch(trial, space)` -> ArchConfig.

A space declares, per *macro* (the network skeleton: ``mobile_former`` at 224 px, ``mobilevit`` at 256 px),
the domain of every knob: a list is a categorical choice, ``{low, high, step}`` an int/float range, a
single value a fixed knob (never suggested). Knobs a YAML leaves out keep their defaults, which each macro's
registered `MacroDef` holds with its sampler (`register_macro`).

`sample_arch` is define-by-run: it calls ``trial.suggest_*`` for the knobs that apply given the knobs already
drawn (``heads`` only for MHSA, the Mobile-Former token knobs only where tokens exist), so one function samples
(an Optuna trial) and replays (``optuna.trial.FixedTrial(params)``) the same architecture. Optuna parameter
names carry the macro prefix (``mf.dim``, ``vit.patch``) so each name has one distribution; `knob_values`
strips it for the trials table (``knob_dim``, ``knob_patch``...).

Budget parsing (``300M``, ``0.3G``, ``300e6``) lives here too, with the screen that says whether a budget
band can be met by the space at all. Nothing here imports torch.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nas.config import (
    ATTENTIONS,
    LOCAL_CONVS,
    MOBILEVIT_FUSIONS,
    ArchConfig,
    BneckLiteCfg,
    HeadCfg,
    IRCfg,
    MobileFormerCfg,
    MobileViTCfg,
    StageCfg,
    StemCfg,
    TokenCfg,
    did_you_mean,
    load_yaml,
    make_divisible,
)
from nas.errors import BudgetError, ConfigError
from nas.madds import count_madds


def _spaces_dir() -> Path:
    """The shipped spaces: nas/search_spaces/ in an installed wheel, else the repository's search_spaces/."""
    pkg = Path(__file__).resolve().parent
    return pkg / "search_spaces" if (pkg / "search_spaces").is_dir() else pkg.parent / "search_spaces"


SPACES_DIR = _spaces_dir()
DEFAULT_SPACE = SPACES_DIR / "hybrid.yaml"


class Trial(Protocol):
    """What `sample_arch` needs of a trial: Optuna's Trial, FixedTrial and Ray's captor all qualify."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None) -> float: ...


# ---------------------------------------------------------------------------------------------------------
# Knob domains


@dataclass(frozen=True)
class Knob:
    """One knob's domain: `choices` (categorical) or `low`..`high` by `step` (int when all are ints)."""

    name: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None

    @property
    def fixed(self) -> bool:
        return self.choices is not None and len(self.choices) == 1

    def values(self) -> list:
        """Every value of the domain (ranges enumerated by step), in order."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        step = self.step or 1
        n = int(round((self.high - self.low) / step))
        out = [self.low + i * step for i in range(n + 1)]
        return [int(v) for v in out] if self._is_int else out

    @property
    def _is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step or 1))

    def suggest(self, trial: Trial, prefix: str) -> Any:
        if self.choices is not None:
            if self.fixed:
                return self.choices[0]
            return trial.suggest_categorical(f"{prefix}.{self.name}", list(self.choices))
        assert self.low is not None and self.high is not None
        if self._is_int:
            return trial.suggest_int(f"{prefix}.{self.name}", int(self.low), int(self.high), step=int(self.step or 1))
        return trial.suggest_float(f"{prefix}.{self.name}", float(self.low), float(self.high), step=self.step)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _pos_num(v: Any) -> bool:
    return _is_num(v) and v > 0


# knob -> (default domain, value check, what a value must be)
_Check = tuple[Any, Any, str]


# ---------------------------------------------------------------------------------------------------------
# Macros: the registered skeletons (MacroDef) and their parsed, YAML-adjusted form (Macro)


@dataclass(frozen=True)
class Macro:
    """One network skeleton as a space declares it: its registered definition, with the family label,
    target resolution, knob domains and fixed numbers after the YAML's overrides."""

    definition: MacroDef
    label: str
    resolution: int
    knobs: dict[str, Knob]
    base: dict[str, Any]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def prefix(self) -> str:
        return self.definition.prefix

    def __getitem__(self, k: str) -> Knob:
        return self.knobs[k]


@dataclass(frozen=True)
class MacroDef:
    """A registered macro: what the code knows of a network skeleton before any YAML is read.

    `knobs` gives each knob its default domain, value check and description of a valid value; `base` the
    default fixed numbers (``base:`` in a YAML overrides them); `sample(draw, macro, num_classes)` builds the
    architecture, calling ``draw(knob)`` for each knob it needs, in a fixed order (define-by-run);
    `fusion_label` is the trials table's ``fusion`` for the macro's points when no knob gives it."""

    name: str
    prefix: str
    family: str
    resolution: int
    knobs: dict[str, _Check]
    base: dict[str, Any]
    sample: Callable[[Callable[[str], Any], Macro, int], ArchConfig]
    fusion_label: str | None = None


_MACRO_DEFS: dict[str, MacroDef] = {}


def register_macro(mdef: MacroDef) -> MacroDef:
    """Register a macro under its name; a second macro of that name (or of that parameter prefix) raises."""
    for other in _MACRO_DEFS.values():
        if mdef.name == other.name or mdef.prefix == other.prefix:
            raise ValueError(f"macro {mdef.name!r} (prefix {mdef.prefix!r}) clashes with the registered "
                             f"{other.name!r} (prefix {other.prefix!r})")
    _MACRO_DEFS[mdef.name] = mdef
    return mdef


def list_macros() -> list[str]:
    """Every registered macro name, in registration order."""
    return list(_MACRO_DEFS)


_TOP_KEYS = ("name", "description", "num_classes", "macros")
_MACRO_KEYS = ("label", "resolution", "knobs", "base", "weight")


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: its macros (one is drawn per trial) and where it came from."""

    name: str
    macros: dict[str, Macro]
    num_classes: int = 1000
    description: str = ""
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_yaml(self) -> str:
        """The resolved space (defaults filled in), as written to a run folder's space.yaml."""
        import yaml

        d: dict[str, Any] = {"name": self.name, "description": self.description, "num_classes": self.num_classes,
                             "macros": {}}
        for m in self.macros.values():
            knobs: dict[str, Any] = {}
            for k in m.knobs.values():
                if k.choices is not None:
                    knobs[k.name] = list(k.choices) if len(k.choices) > 1 else k.choices[0]
                else:
                    knobs[k.name] = {"low": k.low, "high": k.high, "step": k.step}
            d["macros"][m.name] = {"label": m.label, "resolution": m.resolution, "knobs": knobs, "base": dict(m.base)}
        return yaml.safe_dump(d, sort_keys=False, default_flow_style=None, width=110)


def _unknown(key: Any, valid: Any, where: str) -> ConfigError:
    return ConfigError(f"unknown key {key!r} in {where}",
                       f"{did_you_mean(key, valid)}valid keys: {', '.join(map(str, valid))}")


def _parse_knob(name: str, spec: Any, check: _Check, where: str) -> Knob:
    _, ok, what = check
    w = f"{where} knob {name!r}"
    if isinstance(spec, dict):
        extra = set(spec) - {"low", "high", "step", "choices"}
        if extra:
            raise _unknown(sorted(extra)[0], ["choices", "low", "high", "step"], w)
        if "choices" in spec:
            spec = spec["choices"]
        else:
            lo, hi, st = spec.get("low"), spec.get("high"), spec.get("step")
            if not (_is_num(lo) and _is_num(hi)) or lo > hi or (st is not None and not _pos_num(st)):
                raise ConfigError(f"{w}: a range needs numbers low <= high (and step > 0), got {spec}",
                                  "write e.g. {low: 1, high: 4, step: 1} or a list of choices")
            knob = Knob(name, low=lo, high=hi, step=st)
            bad = [v for v in knob.values() if not ok(v)]
            if bad:
                raise ConfigError(f"{w}: value {bad[0]!r} is invalid", f"each value must be {what}")
            return knob
    values = spec if isinstance(spec, list) else [spec]
    if not values:
        raise ConfigError(f"{w} has no choices", f"give at least one value ({what})")
    for v in values:
        if not ok(v):
            raise ConfigError(f"{w}: value {v!r} is invalid", f"each value must be {what}")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{w} lists a value twice: {values}", "list each choice once")
    return Knob(name, choices=tuple(values))


def _sub_mapping(raw: dict[str, Any], key: str, valid: Any, where: str) -> dict[str, Any]:
    """`raw[key]` as a mapping whose keys are all in `valid` ({} when absent); else one ConfigError."""
    sub = raw.get(key) or {}
    if not isinstance(sub, dict):
        raise ConfigError(f"{where}: {key} must be a mapping", f"valid keys: {', '.join(valid)}")
    for k in sub:
        if k not in valid:
            raise _unknown(k, list(valid), f"{where} {key}")
    return sub


def parse_space(data: Any, *, source: str = "<dict>") -> SearchSpace:
    """Validate a space mapping; every unknown key or bad value raises ConfigError naming it and the valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"search space {source} must be a mapping, got {type(data).__name__}",
                          f"write a mapping with keys: {', '.join(_TOP_KEYS)}")
    for k in data:
        if k not in _TOP_KEYS:
            raise _unknown(k, _TOP_KEYS, f"search space {source}")
    macros_raw = data.get("macros")
    if not isinstance(macros_raw, dict) or not macros_raw:
        raise ConfigError(f"search space {source} needs a non-empty 'macros' mapping",
                          f"declare one or more of: {', '.join(list_macros())}")
    nc = data.get("num_classes", 1000)
    if not _pos_int(nc):
        raise ConfigError(f"search space {source}: num_classes = {nc!r} is invalid", "an integer >= 1")
    macros: dict[str, Macro] = {}
    for mname, mraw in macros_raw.items():
        if mname not in _MACRO_DEFS:
            raise _unknown(mname, list_macros(), f"macros of {source}")
        mdef = _MACRO_DEFS[mname]
        table, base = mdef.knobs, mdef.base
        mraw = {} if mraw is None else mraw
        where = f"macro {mname!r} of {source}"
        if not isinstance(mraw, dict):
            raise ConfigError(f"{where} must be a mapping", f"valid keys: {', '.join(_MACRO_KEYS)}")
        for k in mraw:
            if k not in _MACRO_KEYS:
                raise _unknown(k, _MACRO_KEYS, where)
        knobs_raw = _sub_mapping(mraw, "knobs", table, where)
        knobs = {k: _parse_knob(k, knobs_raw.get(k, chk[0]), chk, where) for k, chk in table.items()}
        base_raw = _sub_mapping(mraw, "base", base, where)
        merged = {**base, **base_raw}
        for k in ("widths", "dims"):
            if k in merged and (not isinstance(merged[k], list) or len(merged[k]) != len(base[k])
                                or not all(_pos_int(v) for v in merged[k])):
                raise ConfigError(f"{where}: base.{k} = {merged[k]!r} is invalid",
                                  f"a list of {len(base[k])} positive integers")
        r = mraw.get("resolution", mdef.resolution)
        if not _pos_int(r) or r < 16:
            raise ConfigError(f"{where}: resolution = {r!r} is invalid", "an integer >= 16 (e.g. 224 or 256)")
        macros[mname] = Macro(mdef, str(mraw.get("label", mdef.family)), r, knobs, merged)
    return SearchSpace(name=str(data.get("name", Path(source).stem)), macros=macros, num_classes=nc,
                       description=str(data.get("description", "")).strip(), source=source, raw=data)


def load_space(path: str | Path | None = None) -> SearchSpace:
    """Load and validate a space YAML (default: search_spaces/hybrid.yaml); a bare name looks in search_spaces/."""
    p = Path(path) if path else DEFAULT_SPACE
    if path and not p.exists() and not p.suffix and (SPACES_DIR / f"{p}.yaml").is_file():
        p = SPACES_DIR / f"{p}.yaml"
    if not p.is_file():
        names = sorted(x.stem for x in SPACES_DIR.glob("*.yaml"))
        raise ConfigError(f"no such search space: {p}", f"pass a YAML path or one of: {', '.join(names)}")
    return parse_space(load_yaml(p), source=str(p))


# ---------------------------------------------------------------------------------------------------------
# Define-by-run sampling


def sample_arch(trial: Trial, space: SearchSpace) -> ArchConfig:
    """Draw (or replay) one architecture: the same calls for an Optuna trial and a FixedTrial."""
    names = list(space.macros)
    macro_name = names[0] if len(names) == 1 else trial.suggest_categorical("macro", names)
    macro = space.macros[macro_name]

    def draw(knob: str) -> Any:
        return macro[knob].suggest(trial, macro.prefix)

    return macro.definition.sample(draw, macro, space.num_classes)


# The two macros. Each knob table gives: knob -> (default domain, value check, what a value must be); each
# base the fixed numbers of the skeleton (``base:`` in the YAML may override them).

_MF_KNOBS: dict[str, _Check] = {
    "width_mult": ([0.667, 0.75, 0.833, 1.0], _pos_num, "a number > 0"),
    "num_tokens": ([3, 4, 6], _pos_int, "an integer >= 1"),
    "dim": ([128, 192], lambda v: _pos_int(v) and v % 8 == 0, "a multiple of 8"),
    "attention": (["mhsa", "separable"], lambda v: v in ATTENTIONS, f"one of {', '.join(ATTENTIONS)}"),
    "ffn_ratio": ([1.0, 2.0, 3.0], _pos_num, "a number > 0"),
    "expand": ([3, 4], _pos_int, "an integer >= 1"),
    "expand_late": ([4, 6], _pos_int, "an integer >= 1"),
    "depth_s2": ([0, 1, 2], _nonneg_int, "an integer >= 0"),
    "depth_s3": ([1, 2], _nonneg_int, "an integer >= 0"),
    "depth_s4": ([2, 3, 4], _pos_int, "an integer >= 1"),
    "depth_s5": ([1, 2, 3], _nonneg_int, "an integer >= 0"),
    "s4_mixer": (["mobile_former", "mobilevit"], lambda v: v in ("mobile_former", "mobilevit"),
                 "mobile_former or mobilevit"),
}
_MF_BASE: dict[str, Any] = {
    # Mobile-Former-294M: stem/bneck 16, stages 24, 48, 96 -> 128, 192; head conv 6*C, FC hidden 10*C (cap 1920)
    "stem": 16, "widths": [24, 48, 96, 128, 192], "head_conv_mult": 6, "head_hidden_mult": 10,
    "head_hidden_max": 1920, "dropout": 0.0, "vit_patch": 2, "vit_heads": 4,
}


def _sample_mobile_former(draw: Callable[[str], Any], m: Macro, num_classes: int) -> ArchConfig:
    """Mobile-Former-294M's skeleton: bneck-lite, then Mobile-Former stages s2-s5 (or a MobileViT stage as s4)."""
    b = m.base
    w = draw("width_mult")
    num_tokens, dim, attention, ffn_ratio = draw("num_tokens"), draw("dim"), draw("attention"), draw("ffn_ratio")
    expand, expand_late = draw("expand"), draw("expand_late")
    d2, d3, d4, d5 = draw("depth_s2"), draw("depth_s3"), draw("depth_s4"), draw("depth_s5")
    mixer = draw("s4_mixer")
    stem = make_divisible(b["stem"] * w, 4)
    c1, c2, c3a, c3b, c4 = (make_divisible(c * w, 8) for c in b["widths"])

    def down(c: int) -> MobileFormerCfg:
        return MobileFormerCfg(out=c, form="downsample", stride=2, dw_mult=6, dw2_mult=4)

    def reg(c: int, e: int) -> MobileFormerCfg:
        return MobileFormerCfg(out=c, form="regular", expand=e)

    stages = [StageCfg("s1", (BneckLiteCfg(out=stem, stride=1, dw_mult=2, act="relu6"),)),
              StageCfg("s2", (down(c1),) + tuple(reg(c1, expand) for _ in range(d2))),
              StageCfg("s3", (down(c2),) + tuple(reg(c2, expand) for _ in range(d3)))]
    if mixer == "mobile_former":
        s4 = (down(c3a), reg(c3a, 4)) + tuple(reg(c3b, expand_late) for _ in range(d4 - 1))
    else:  # cross-family: a MobileViT stage at 14x14 between Mobile-Former stages (tokens pass through it)
        vit = MobileViTCfg(dim=dim, ffn_dim=max(16, int(dim * ffn_ratio) // 16 * 16), depth=d4,
                           heads=b["vit_heads"], patch=b["vit_patch"], attention=attention, fusion="v3",
                           local="dw", act="swish", proj_act=True)
        s4 = (down(c3a), vit, reg(c3b, expand_late))
    stages.append(StageCfg("s4", s4))
    stages.append(StageCfg("s5", (down(c4),) + tuple(reg(c4, expand_late) for _ in range(d5))))
    head_conv = b["head_conv_mult"] * c4
    head = HeadCfg(conv=head_conv, conv_act="relu6", pool_act="hswish", concat_token=True,
                   hidden=min(b["head_hidden_mult"] * c4, b["head_hidden_max"]), dropout=b["dropout"])
    tokens = TokenCfg(num_tokens=num_tokens, dim=dim, ffn_ratio=float(ffn_ratio), former_heads=4, bridge_heads=2,
                      attention=attention, final_bridge=True)
    return ArchConfig(name="searched", resolution=m.resolution, stem=StemCfg(out=stem, stride=2, act="relu6"),
                      stages=tuple(stages), head=head, tokens=tokens, num_classes=num_classes,
                      family=m.label)


register_macro(MacroDef("mobile_former", "mf", "hybrid-MF", 224, _MF_KNOBS, _MF_BASE, _sample_mobile_former,
                        fusion_label="bridge"))


_VIT_KNOBS: dict[str, _Check] = {
    "width_mult": ([0.25, 0.375, 0.5, 0.625, 0.75], _pos_num, "a number > 0"),
    "dim_mult": ([0.375, 0.5, 0.625, 0.75], _pos_num, "a number > 0"),
    "fusion": (list(MOBILEVIT_FUSIONS), lambda v: v in MOBILEVIT_FUSIONS, f"one of {', '.join(MOBILEVIT_FUSIONS)}"),
    "attention": (["mhsa", "separable"], lambda v: v in ATTENTIONS, f"one of {', '.join(ATTENTIONS)}"),
    "local": (list(LOCAL_CONVS), lambda v: v in LOCAL_CONVS, f"one of {', '.join(LOCAL_CONVS)}"),
    "patch": ([1, 2, 4], lambda v: v in (1, 2, 4, 8), "one of 1, 2, 4, 8"),
    "heads": ([2, 4], lambda v: v in (1, 2, 4, 8), "one of 1, 2, 4, 8"),
    "ffn_ratio": ([1.0, 1.5, 2.0], _pos_num, "a number > 0"),
    "expand": ([2, 3, 4], _pos_num, "a number > 0"),
    "depth_s2": ([1, 2, 3], _pos_int, "an integer >= 1"),
    "depth_s3": ([1, 2, 3], _pos_int, "an integer >= 1"),
    "depth_s4": ([2, 3, 4], _pos_int, "an integer >= 1"),
    "depth_s5": ([1, 2, 3], _pos_int, "an integer >= 1"),
    "head_conv": ([False, True], lambda v: isinstance(v, bool), "true or false"),
    "s5_mixer": (["mobilevit", "mobile_former"], lambda v: v in ("mobile_former", "mobilevit"),
                 "mobilevit or mobile_former"),
    "num_tokens": ([3, 4, 6], _pos_int, "an integer >= 1"),
}

_VIT_BASE: dict[str, Any] = {
    # MobileViTv2 at width 1.0: layer1..5 channels, attention dims of layers 3-5 (v2 width rule applies)
    "stem": 32, "widths": [64, 128, 256, 384, 512], "dims": [128, 192, 256], "head_conv_max": 960,
    "dropout": 0.0, "mf_dim_min": 64,
}


def _sample_mobilevit(draw: Callable[[str], Any], m: Macro, num_classes: int) -> ArchConfig:
    """MobileViTv2's skeleton: mv2 layers 1-2, then mv2 + MobileViT block in layers 3-5 (or Mobile-Former layer5)."""
    b = m.base
    w, dm = draw("width_mult"), draw("dim_mult")
    fusion, attention, local, patch = draw("fusion"), draw("attention"), draw("local"), draw("patch")
    heads = draw("heads") if attention == "mhsa" else 4
    ffn_ratio, expand = draw("ffn_ratio"), draw("expand")
    d2, d3, d4, d5 = draw("depth_s2"), draw("depth_s3"), draw("depth_s4"), draw("depth_s5")
    head_conv, mixer = draw("head_conv"), draw("s5_mixer")
    num_tokens = draw("num_tokens") if mixer == "mobile_former" else None
    # MobileViTv2 width rule (make_divisible as the authors'): stem clipped to 16..64, layer1 by 16, rest by 8
    stem = make_divisible(min(max(b["stem"] * w, 16), 64), 8, 16)
    c1 = make_divisible(b["widths"][0] * w, 16)
    c2, c3, c4, c5 = (make_divisible(c * w, 8) for c in b["widths"][1:])
    dims = [make_divisible(d * dm, 8) for d in b["dims"]]

    def mv2(c: int, stride: int) -> IRCfg:
        return IRCfg(out=c, stride=stride, expand=float(expand), act="swish")

    def vit(d: int, depth: int) -> MobileViTCfg:
        ffn = max(16, int(d * ffn_ratio) // 16 * 16)
        h = heads if d % heads == 0 else 1
        return MobileViTCfg(dim=d, ffn_dim=ffn, depth=depth, heads=h, patch=patch, attention=attention,
                            fusion=fusion, local=local, act="swish", proj_act=fusion in ("v1", "v3"))

    stages = [StageCfg("layer1", (mv2(c1, 1),)),
              StageCfg("layer2", tuple(mv2(c2, 2 if i == 0 else 1) for i in range(d2))),
              StageCfg("layer3", (mv2(c3, 2), vit(dims[0], d3))),
              StageCfg("layer4", (mv2(c4, 2), vit(dims[1], d4)))]
    tokens = None
    if mixer == "mobile_former":  # cross-family: the last stage is Mobile-Former blocks bridged to global tokens
        td = max(b["mf_dim_min"], dims[2])
        tokens = TokenCfg(num_tokens=num_tokens, dim=td, ffn_ratio=2.0, former_heads=4, bridge_heads=2,
                          attention=attention, final_bridge=True)
        stages.append(StageCfg("layer5", (MobileFormerCfg(out=c5, form="downsample", stride=2),)
                               + tuple(MobileFormerCfg(out=c5, form="regular", expand=int(round(2 * expand)))
                                       for _ in range(d5))))
    else:
        stages.append(StageCfg("layer5", (mv2(c5, 2), vit(dims[2], d5))))
    head = HeadCfg(conv=min(4 * c5, b["head_conv_max"]) if head_conv else None, conv_act="swish",
                   concat_token=tokens is not None, dropout=b["dropout"])
    return ArchConfig(name="searched", resolution=m.resolution, stem=StemCfg(out=stem, stride=2, act="swish"),
                      stages=tuple(stages), head=head, tokens=tokens, num_classes=num_classes,
                      family=m.label)


register_macro(MacroDef("mobilevit", "vit", "hybrid-ViT", 256, _VIT_KNOBS, _VIT_BASE, _sample_mobilevit))


def replay(params: dict[str, Any], space: SearchSpace) -> ArchConfig:
    """The architecture of a stored Optuna params dict (same function, a FixedTrial)."""
    import optuna

    try:
        return sample_arch(optuna.trial.FixedTrial(dict(params)), space)
    except ValueError as e:  # FixedTrial: a param the space asks for is not in the dict
        raise ConfigError(f"stored parameters do not fit space {space.name!r}: {e}",
                          "replay with the space.yaml stored in the run folder") from None


def knob_values(params: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Optuna params -> ``{knob: value}`` for the trials table (macro prefix stripped, fixed knobs added)."""
    names = list(space.macros)
    macro_name = params.get("macro", names[0])
    m = space.macros[macro_name]
    out: dict[str, Any] = {"macro": macro_name}
    for k, knob in m.knobs.items():
        key = f"{m.prefix}.{k}"
        if key in params:
            out[k] = params[key]
        elif knob.fixed:
            out[k] = knob.choices[0]  # type: ignore[index]
    fusion = m.definition.fusion_label
    if fusion:
        out["fusion"] = fusion
    return out


def arch_summary(arch: ArchConfig) -> dict[str, str]:
    """The `fusion` and `attention` columns of an architecture (several values joined by '+')."""
    fus, att = [], []
    for blk in arch.blocks:
        if isinstance(blk, MobileViTCfg):
            fus.append(blk.fusion)
            att.append(blk.attention)
        elif isinstance(blk, MobileFormerCfg):
            fus.append("bridge")
    if arch.tokens is not None:
        att.append(arch.tokens.attention)
    uniq = lambda xs: "+".join(dict.fromkeys(xs)) or "none"  # noqa: E731
    return {"fusion": uniq(fus), "attention": uniq(att)}


class RandomTrial:
    """Uniform draws from Python's `random` with Optuna's suggest API: the budget screen's sampler."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        v = self.rng.choice(list(choices))
        self.params[name] = v
        return v

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        v = self.rng.randrange(low, high + 1, step)
        self.params[name] = v
        return v

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None) -> float:
        if step:
            v = low + self.rng.randint(0, int(round((high - low) / step))) * step
        else:
            v = self.rng.uniform(low, high)
        self.params[name] = v
        return v


# ---------------------------------------------------------------------------------------------------------
# Budget

DEFAULT_BUDGET = "300M"  # `nas search` and `nas supernet train` without --budget
DEFAULT_MIN_BUDGET = 0.5  # the budget band's lower edge, as a fraction of the budget
_BUDGET_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgG]?)\s*$")
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
BUDGET_FORMS = "300M, 0.3G, 300e6 or 300000000 (K/M/G suffix, any case; multiply-adds)"


def parse_budget(text: str | int | float) -> int:
    """A MAdds budget from ``300M``, ``0.3G``, ``300e6``, ``300000000`` (``300 m`` too) -> multiply-adds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        mt = _BUDGET_RE.match(str(text))
        if not mt and _BUDGET_RE.match(str(text).strip().removeprefix("-")):
            raise BudgetError(f"budget {text!r} is negative: a budget is the most multiply-adds a network may "
                              "take", f"give a positive budget such as {BUDGET_FORMS}")
        if not mt:
            raise BudgetError(f"cannot read the budget {text!r}", f"write it as {BUDGET_FORMS}")
        value = float(mt.group(1)) * _UNITS[mt.group(2).lower()]
    if not math.isfinite(value) or value < 1e3:
        raise BudgetError(f"budget {text!r} is too small or not positive ({value:g} MAdds)",
                          f"give a positive budget such as {BUDGET_FORMS}")
    return int(round(value))


def format_madds(madds: float) -> str:
    """``300000000`` -> ``300M``; ``1.5e9`` -> ``1.5G``."""
    if madds >= 1e9:
        return f"{madds / 1e9:.3g}G"
    return f"{madds / 1e6:.4g}M"


def parse_fraction(value: Any, *, name: str = "--min-budget") -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise BudgetError(f"{name} {value!r} is not a number", "a fraction of the budget in [0, 1), e.g. 0.5") from None
    if not 0 <= f < 1:
        raise BudgetError(f"{name} {value!r} is out of range", "a fraction of the budget in [0, 1), e.g. 0.5")
    return f


@dataclass(frozen=True)
class BudgetScreen:
    """What the space offers a budget band: sampled shares and the smallest MAdds it can reach."""

    budget: int
    min_budget: float
    samples: int
    share_in_band: float
    share_under: float
    min_madds: int
    min_params: dict[str, Any]
    max_madds: int
    in_band_params: list[dict[str, Any]]

    @property
    def low(self) -> int:
        return int(self.min_budget * self.budget)


def minimum_point(space: SearchSpace) -> tuple[int, dict[str, Any]]:
    """The smallest analytic MAdds of the space: coordinate descent from each macro's smallest values."""
    best: tuple[int, dict[str, Any]] | None = None
    for mname, m in space.macros.items():
        params: dict[str, Any] = {} if len(space.macros) == 1 else {"macro": mname}
        free = [k for k in m.knobs.values() if not k.fixed]
        for k in free:
            vals = k.values()
            params[f"{m.prefix}.{k.name}"] = min(vals) if all(_is_num(v) for v in vals) else vals[0]
        cur = count_madds(_replay_fast(params, space))
        for _ in range(3):  # a few passes: knobs interact (e.g. heads only with mhsa)
            changed = False
            for k in free:
                key = f"{m.prefix}.{k.name}"
                for v in k.values():
                    trial = dict(params, **{key: v})
                    mm = count_madds(_replay_fast(trial, space))
                    if mm < cur:
                        cur, params, changed = mm, trial, True
            if not changed:
                break
        if best is None or cur < best[0]:
            best = (cur, params)
    assert best is not None
    return best


class _DictTrial:
    """Replays a params dict; knobs it lacks take their first choice (only the screen's descent uses it)."""

    def __init__(self, params: dict[str, Any]):
        self.params = params

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params.get(name, list(choices)[0])

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        return self.params.get(name, low)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None) -> float:
        return self.params.get(name, low)


def _replay_fast(params: dict[str, Any], space: SearchSpace) -> ArchConfig:
    return sample_arch(_DictTrial(params), space)


def screen_budget(space: SearchSpace, budget: int, *, min_budget: float = 0.0, samples: int = 2000,
                  seed: int = 0) -> BudgetScreen:
    """Sample `samples` architectures analytically; share inside [min_budget*budget, budget], share under
    budget, and the space's minimum MAdds."""
    low = min_budget * budget
    in_band = under = 0
    kept: list[dict[str, Any]] = []
    lo_m, lo_p, hi_m = None, {}, 0
    for i in range(samples):
        t = RandomTrial(seed * 100003 + i)
        try:
            arch = sample_arch(t, space)
        except ConfigError:
            continue
        mm = count_madds(arch)
        hi_m = max(hi_m, mm)
        if lo_m is None or mm < lo_m:
            lo_m, lo_p = mm, dict(t.params)
        if mm <= budget:
            under += 1
            if mm >= low:
                in_band += 1
                if len(kept) < 64:
                    kept.append(dict(t.params))
    m_min, p_min = minimum_point(space)
    if lo_m is not None and lo_m < m_min:
        m_min, p_min = lo_m, lo_p
    return BudgetScreen(budget=budget, min_budget=min_budget, samples=samples, share_in_band=in_band / samples,
                        share_under=under / samples, min_madds=m_min, min_params=p_min, max_madds=hi_m,
                        in_band_params=kept)


def check_budget(space: SearchSpace, budget: int, *, min_budget: float = 0.0, samples: int = 2000,
                 seed: int = 0) -> BudgetScreen:
    """`screen_budget`, raising BudgetError when no architecture of the space fits the budget (band)."""
    sc = screen_budget(space, budget, min_budget=min_budget, samples=samples, seed=seed)
    if sc.min_madds > budget:
        raise BudgetError(
            f"no architecture of space {space.name!r} fits {format_madds(budget)} MAdds: the smallest it can reach "
            f"is {format_madds(sc.min_madds)}",
            f"raise --budget to at least {format_madds(math.ceil(sc.min_madds / 1e6) * 1e6)}, or search a space "
            "with smaller knobs (--space)")
    if sc.share_in_band == 0:
        if sc.max_madds < sc.low:  # the band lies above the space's largest networks (so min_budget > 0)
            fix = (f"give a --budget of at most {format_madds(sc.max_madds / min_budget)} (the band's floor is "
                   f"{min_budget:g} x the budget), or --min-budget 0 to search every network under this one")
        else:
            fix = "lower --min-budget (e.g. 0.2 or 0), or change --budget"
        raise BudgetError(
            f"none of {sc.samples} sampled architectures of space {space.name!r} falls in the band "
            f"[{format_madds(sc.low)}, {format_madds(budget)}] (sampled range {format_madds(sc.min_madds)}.."
            f"{format_madds(sc.max_madds)})", fix)
    return sc
