"""Frozen architecture configs: one dataclass per block kind, a network config, dict/YAML round-trip.

Architecture is data: every network of the unified hybrid space, every published variant included,
is one `ArchConfig`. Nothing here imports torch.

The unified space in one paragraph: a network is a conv stem, a list of named stages of blocks and a
head. Blocks are inverted residuals (``ir``, MobileNetV2 "mv2"), the Mobile-Former bneck-lite
(``bneck_lite``), MobileViT blocks (``mobilevit``: patch unfold -> transformer -> fold, with a choice
of attention ``mhsa``/``separable`` and fusion ``v1``/``v3``/``v3_merged``/``none``) and Mobile-Former
blocks (``mobile_former``: a Mobile sub-block with dynamic ReLU bridged to ``M`` learned global tokens
of width ``d``; its fusion is the two-way ``bridge``). A network that has tokens (``tokens:``) carries
them through every block; Mobile-Former blocks read and write them.

Each block kind is one `BlockKind` record in one registry (`block_kind`, `list_block_kinds`): its config
class is registered here; its analytic MAdds (nas.madds) and its module factory (nas.blocks) attach to it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from nas.errors import ConfigError

ACTIVATIONS = ("relu", "relu6", "swish", "hswish", "gelu", "none")
ATTENTIONS = ("mhsa", "separable")
MOBILEVIT_FUSIONS = ("v1", "v3", "v3_merged", "none")
MF_FORMS = ("regular", "downsample")
LOCAL_CONVS = ("full", "dw")


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below `v` (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def did_you_mean(name: Any, valid: Iterable[Any], *, n: int = 1) -> str:
    """The start of a hint: ``"did you mean 'x'? "`` when names in `valid` are close to `name`, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=n)
    return f"did you mean {', '.join(map(repr, close))}? " if close else ""


def _check_keys(d: dict, names: list[str], required: list[str], where: str) -> None:
    """Refuse a key of `d` not in `names` (naming the closest) and a missing required key."""
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ConfigError(f"unknown knob {unknown[0]!r} in {where}",
                          f"{did_you_mean(unknown[0], names)}valid knobs: {', '.join(names)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ConfigError(f"{where} is missing {missing[0]!r}", f"required knobs: {', '.join(required)}")


def _fail(owner: str, name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{owner}.{name} = {value!r} is invalid", f"allowed: {allowed}")


def _check_choice(owner: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        _fail(owner, name, value, ", ".join(map(str, choices)))


def _check_pos_int(owner: str, name: str, value: Any, *, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(owner, name, value, f"an integer >= {minimum}")


def _check_pos_num(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        _fail(owner, name, value, "a number > 0")


class _Cfg:
    """Shared dict round-trip for the config dataclasses."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind} if self.kind else {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, _Cfg):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = [x.to_dict() if isinstance(x, _Cfg) else x for x in v]
            out[f.name] = v
        return out

    @classmethod
    def _from_dict(cls, d: Any, where: str):
        if not isinstance(d, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
        d = dict(d)
        d.pop("kind", None)
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        required = [f.name for f in fields(cls) if f.default is dataclasses.MISSING  # type: ignore[arg-type]
                    and f.default_factory is dataclasses.MISSING]
        _check_keys(d, names, required, where)
        for k, v in list(d.items()):
            if isinstance(v, list):
                d[k] = tuple(v)
        try:
            return cls(**d)
        except TypeError as e:  # pragma: no cover - guarded above
            raise ConfigError(f"{where}: {e}") from None


# ---------------------------------------------------------------------------------------------------------
# The registry of block kinds: one record per kind, keyed by the config class's `kind`.


@dataclass(eq=False)
class BlockKind:
    """One block kind: its config class, its analytic MAdds count and its module factory.

    The record is created here, with the config class (``@register_block_kind``); the two other parts live
    in layers above this torch-free module and are attached there, each once: `madds` by `nas.madds`
    (``fn(cfg, cin, h, w, tokens) -> (madds, cout, h_out, w_out)``, torch-free) and `build` by `nas.blocks`
    (``factory(cfg, cin, ctx) -> nn.Module``, torch). `missing()` names the parts not attached yet."""

    kind: str
    cfg_cls: type
    madds: Callable[..., tuple[int, int, int, int]] | None = None
    build: Callable[..., Any] | None = None

    PARTS: ClassVar[tuple[str, ...]] = ("madds", "build")

    def missing(self) -> list[str]:
        return [p for p in self.PARTS if getattr(self, p) is None]

    def part(self, name: str) -> Callable[..., Any]:
        """The attached `madds` or `build`; a kind without it is a registry bug, reported as such."""
        fn = getattr(self, name)
        if fn is None:
            raise LookupError(f"block kind {self.kind!r} has no {name!r} attached "
                              f"(register it with nas.{'madds.register_madds' if name == 'madds' else 'blocks.register_block'})")
        return fn  # type: ignore[no-any-return]


_BLOCK_KINDS: dict[str, BlockKind] = {}


def register_block_kind(cls: type) -> type:
    """Class decorator: register a block config class under its `kind`. A second kind of that name raises."""
    kind = cls.kind  # type: ignore[attr-defined]
    if kind in _BLOCK_KINDS:
        raise ValueError(f"block kind {kind!r} is registered twice ({_BLOCK_KINDS[kind].cfg_cls.__name__}, {cls.__name__})")
    _BLOCK_KINDS[kind] = BlockKind(kind, cls)
    return cls


def attach_block_part(cfg_cls: type, part: str, fn: Callable[..., Any]) -> None:
    """Attach the `madds` or `build` part to the kind of `cfg_cls`; attaching a part twice raises."""
    rec = _BLOCK_KINDS.get(getattr(cfg_cls, "kind", ""))
    if rec is None or rec.cfg_cls is not cfg_cls:
        raise ValueError(f"{cfg_cls.__name__} is not a registered block config (kinds: {', '.join(_BLOCK_KINDS)})")
    if part not in BlockKind.PARTS:
        raise ValueError(f"unknown block part {part!r} (parts: {', '.join(BlockKind.PARTS)})")
    if getattr(rec, part) is not None:
        raise ValueError(f"block kind {rec.kind!r} has its {part!r} registered twice")
    setattr(rec, part, fn)


def block_kind(kind: Any, *, where: str = "") -> BlockKind:
    """The record of `kind`; an unknown kind is a ConfigError listing the valid ones."""
    rec = _BLOCK_KINDS.get(kind) if isinstance(kind, str) else None
    if rec is None:
        raise ConfigError(f"{where + ': ' if where else ''}unknown block kind {kind!r}",
                          f"{did_you_mean(kind, _BLOCK_KINDS)}valid kinds: {', '.join(_BLOCK_KINDS)}")
    return rec


def list_block_kinds() -> list[str]:
    """Every registered block kind, in registration order."""
    return list(_BLOCK_KINDS)


# ---------------------------------------------------------------------------------------------------------
# Block configs. Input channels are never stored: the builder threads them through the network.


@register_block_kind
@dataclass(frozen=True)
class IRCfg(_Cfg):
    """MobileNetV2 inverted residual: 1x1 expand -> dw kxk -> 1x1 project; residual when shapes allow."""

    kind: ClassVar[str] = "ir"
    out: int
    stride: int = 1
    expand: float = 2.0
    kernel: int = 3
    act: str = "swish"

    def __post_init__(self):
        _check_pos_int("ir", "out", self.out)
        _check_choice("ir", "stride", self.stride, (1, 2))
        _check_pos_num("ir", "expand", self.expand)
        _check_choice("ir", "kernel", self.kernel, (3, 5, 7))
        _check_choice("ir", "act", self.act, ACTIVATIONS)

    def hidden(self, cin: int) -> int:
        return make_divisible(round(cin * self.expand), 8)


@register_block_kind
@dataclass(frozen=True)
class BneckLiteCfg(_Cfg):
    """Mobile-Former bneck-lite: dw3x3 with channel multiplier -> act -> (grouped) linear 1x1."""

    kind: ClassVar[str] = "bneck_lite"
    out: int
    stride: int = 1
    dw_mult: int = 2
    groups: int = 1
    act: str = "relu6"

    def __post_init__(self):
        _check_pos_int("bneck_lite", "out", self.out)
        _check_choice("bneck_lite", "stride", self.stride, (1, 2))
        _check_pos_int("bneck_lite", "dw_mult", self.dw_mult)
        _check_pos_int("bneck_lite", "groups", self.groups)
        _check_choice("bneck_lite", "act", self.act, ACTIVATIONS)


@register_block_kind
@dataclass(frozen=True)
class MobileViTCfg(_Cfg):
    """MobileViT block (v1/v2/v3 and cross-family forms); keeps its input channel count.

    local rep: conv kxk (``full`` as v1, ``dw`` as v2/v3) + BN + act, then 1x1 to `dim` (no norm);
    global rep: unfold `patch`x`patch` -> `depth` x [pre-norm attention + pre-norm FFN(dim->ffn_dim->dim)]
    -> norm -> fold; attention ``mhsa`` (v1: LayerNorm, `heads` heads) or ``separable`` (v2: GroupNorm(1)).
    fusion: ``v1`` proj 1x1(d->C)+BN+act, conv3x3 on concat(input, proj) (no residual);
    ``none`` (v2) proj 1x1(d->C)+BN, no fusion, no residual;
    ``v3`` proj 1x1(d->C)+BN+act, conv1x1 on concat(local d, proj C) + input residual (v3, v1-based);
    ``v3_merged`` conv1x1 (2d->C)+BN on concat(global, local) + input residual (v3, v2-based).
    """

    kind: ClassVar[str] = "mobilevit"
    dim: int
    ffn_dim: int
    depth: int
    heads: int = 4
    patch: int = 2
    attention: str = "mhsa"
    fusion: str = "v1"
    local: str = "full"
    act: str = "swish"
    proj_act: bool = True

    def __post_init__(self):
        w = "mobilevit"
        _check_pos_int(w, "dim", self.dim)
        _check_pos_int(w, "ffn_dim", self.ffn_dim)
        _check_pos_int(w, "depth", self.depth)
        _check_pos_int(w, "heads", self.heads)
        _check_choice(w, "patch", self.patch, (1, 2, 4, 8))
        _check_choice(w, "attention", self.attention, ATTENTIONS)
        _check_choice(w, "fusion", self.fusion, MOBILEVIT_FUSIONS)
        _check_choice(w, "local", self.local, LOCAL_CONVS)
        _check_choice(w, "act", self.act, ACTIVATIONS)
        if self.attention == "mhsa" and self.dim % self.heads:
            _fail(w, "heads", self.heads, f"a divisor of dim={self.dim}")

    @property
    def resizes_input(self) -> bool:
        """How a map whose side the patch does not divide is handled. v2-style blocks (fusion ``none`` and
        ``v3_merged``: MobileViTv2, MobileViTv3-0.5/0.75/1.0) resize their *input* (bilinear, corners aligned)
        up to the next multiple of the patch and keep that size as their output, as the reference code does
        (ml-cvnets' MobileViTBlockv2, timm's MobileVitV2Block). v1-style blocks (``v1``, ``v3``) resize the
        d-channel map before unfolding and back after folding (corners not aligned), keeping the input size."""
        return self.fusion in ("none", "v3_merged")


@register_block_kind
@dataclass(frozen=True)
class MobileFormerCfg(_Cfg):
    """Mobile-Former block: Mobile->Former bridge, Former over the tokens, Mobile sub-block with dynamic
    ReLU (coefficients from token 0), Former->Mobile bridge.

    ``regular``: 1x1 (in->in*expand) DyReLU, dw3x3 DyReLU, 1x1 (->out) linear; residual when in==out, stride 1.
    ``downsample``: dw3x3/2 (in->in*dw_mult) DyReLU, 1x1 (->out), dw3x3 (out->out*dw2_mult) DyReLU,
    1x1 (->out), inner residual.
    """

    kind: ClassVar[str] = "mobile_former"
    out: int
    form: str = "regular"
    stride: int = 1
    expand: int = 4
    dw_mult: int = 6
    dw2_mult: int = 4
    groups: int = 1

    def __post_init__(self):
        w = "mobile_former"
        _check_pos_int(w, "out", self.out)
        _check_choice(w, "form", self.form, MF_FORMS)
        _check_choice(w, "stride", self.stride, (1, 2))
        _check_pos_int(w, "expand", self.expand)
        _check_pos_int(w, "dw_mult", self.dw_mult)
        _check_pos_int(w, "dw2_mult", self.dw2_mult)
        _check_pos_int(w, "groups", self.groups)
        if self.form == "regular" and self.stride != 1:
            _fail(w, "stride", self.stride, "1 for form=regular (use form=downsample to reduce resolution)")
        if self.form == "downsample" and self.stride != 2:
            _fail(w, "stride", self.stride, "2 for form=downsample")


BlockCfg = IRCfg | BneckLiteCfg | MobileViTCfg | MobileFormerCfg


def block_from_dict(d: Any, where: str) -> BlockCfg:
    if not isinstance(d, dict) or "kind" not in d:
        raise ConfigError(f"{where} needs a 'kind'", f"one of: {', '.join(list_block_kinds())}")
    kind = block_kind(d["kind"], where=where)
    return kind.cfg_cls._from_dict(d, f"{where} ({kind.kind})")  # type: ignore[attr-defined,no-any-return]


# ---------------------------------------------------------------------------------------------------------
# Network-level configs


@dataclass(frozen=True)
class StemCfg(_Cfg):
    out: int
    stride: int = 2
    kernel: int = 3
    act: str = "swish"

    def __post_init__(self):
        _check_pos_int("stem", "out", self.out)
        _check_choice("stem", "stride", self.stride, (1, 2))
        _check_choice("stem", "kernel", self.kernel, (3, 5))
        _check_choice("stem", "act", self.act, ACTIVATIONS)


HYPER_REDUCTION = 4  # Mobile-Former DyReLU hyper-MLP squeeze: token dim d -> d // 4 -> 2C


def hyper_dim(token_dim: int) -> int:
    """Hidden width of a DyReLU hyper-MLP (nas.blocks.mobile_former builds it, nas.madds counts it)."""
    return max(1, token_dim // HYPER_REDUCTION)


@dataclass(frozen=True)
class TokenCfg(_Cfg):
    """Mobile-Former global tokens: M learned tokens of width d, the Former and the two bridges."""

    num_tokens: int
    dim: int
    ffn_ratio: float = 2.0
    former_heads: int = 4
    bridge_heads: int = 2
    attention: str = "mhsa"
    final_bridge: bool = True

    def __post_init__(self):
        _check_pos_int("tokens", "num_tokens", self.num_tokens)
        _check_pos_int("tokens", "dim", self.dim)
        _check_pos_num("tokens", "ffn_ratio", self.ffn_ratio)
        _check_pos_int("tokens", "former_heads", self.former_heads)
        _check_pos_int("tokens", "bridge_heads", self.bridge_heads)
        _check_choice("tokens", "attention", self.attention, ATTENTIONS)
        if self.attention == "mhsa" and self.dim % self.former_heads:
            _fail("tokens", "former_heads", self.former_heads, f"a divisor of dim={self.dim}")

    @property
    def ffn_dim(self) -> int:
        return int(round(self.dim * self.ffn_ratio))


@dataclass(frozen=True)
class HeadCfg(_Cfg):
    """Classifier head: [1x1 conv+BN+act] -> global avg pool [-> act] [-> concat token 0]
    [-> FC hidden + BN1d + hswish] -> dropout -> FC classes."""

    conv: int | None = None
    conv_act: str = "swish"
    conv_groups: int = 1
    pool_act: str = "none"
    concat_token: bool = False
    hidden: int | None = None
    dropout: float = 0.0

    def __post_init__(self):
        if self.conv is not None:
            _check_pos_int("head", "conv", self.conv)
        _check_choice("head", "conv_act", self.conv_act, ACTIVATIONS)
        _check_pos_int("head", "conv_groups", self.conv_groups)
        _check_choice("head", "pool_act", self.pool_act, ACTIVATIONS)
        if self.hidden is not None:
            _check_pos_int("head", "hidden", self.hidden)
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            _fail("head", "dropout", self.dropout, "a number in [0, 1)")


@dataclass(frozen=True)
class StageCfg(_Cfg):
    name: str
    blocks: tuple[BlockCfg, ...]

    def __post_init__(self):
        if not self.blocks:
            _fail(f"stage {self.name!r}", "blocks", [], "at least one block")

    @classmethod
    def _from_dict(cls, d: Any, where: str):
        if not isinstance(d, dict):
            raise ConfigError(f"{where} must be a mapping")
        extra = set(d) - {"name", "blocks"}
        if extra:
            raise ConfigError(f"unknown knob {sorted(extra)[0]!r} in {where}", "valid knobs: name, blocks")
        name = str(d.get("name", where))
        blocks = d.get("blocks")
        if not isinstance(blocks, list) or not blocks:
            raise ConfigError(f"{where} ({name}) needs a non-empty 'blocks' list")
        return cls(name=name, blocks=tuple(block_from_dict(b, f"stage {name!r} block {i}") for i, b in enumerate(blocks)))


@dataclass(frozen=True)
class ArchConfig(_Cfg):
    """One network of the unified hybrid space. `resolution` is the target input size (MAdds are counted there)."""

    name: str
    resolution: int
    stem: StemCfg
    stages: tuple[StageCfg, ...]
    head: HeadCfg = field(default_factory=HeadCfg)
    tokens: TokenCfg | None = None
    num_classes: int = 1000
    in_chans: int = 3
    family: str = "custom"

    def __post_init__(self):
        _check_pos_int("arch", "resolution", self.resolution, minimum=8)
        _check_pos_int("arch", "num_classes", self.num_classes)
        _check_pos_int("arch", "in_chans", self.in_chans)
        if not self.stages:
            _fail("arch", "stages", [], "at least one stage")
        has_mf = any(isinstance(b, MobileFormerCfg) for s in self.stages for b in s.blocks)
        if has_mf and self.tokens is None:
            _fail("arch", "tokens", None, "a tokens: {num_tokens, dim} mapping (Mobile-Former blocks need global tokens)")
        if self.head.concat_token and self.tokens is None:
            _fail("head", "concat_token", True, "false unless the network has tokens")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            _fail("arch", "stages", names, "unique stage names")

    @property
    def blocks(self) -> tuple[BlockCfg, ...]:
        return tuple(b for s in self.stages for b in s.blocks)

    @classmethod
    def from_dict(cls, d: Any) -> ArchConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"an architecture config must be a mapping, got {type(d).__name__}")
        d = dict(d)
        d.pop("arch_id", None)
        _check_keys(d, [f.name for f in fields(cls)], ["name", "resolution", "stem", "stages"], "arch")
        if not isinstance(d["stages"], list) or not d["stages"]:
            raise ConfigError("arch.stages must be a non-empty list of {name, blocks}")
        d["stem"] = StemCfg._from_dict(d["stem"], "stem")
        d["stages"] = tuple(StageCfg._from_dict(s, f"stage {i}") for i, s in enumerate(d["stages"]))
        if d.get("head") is not None:
            d["head"] = HeadCfg._from_dict(d["head"], "head")
        else:
            d.pop("head", None)
        if d.get("tokens") is not None:
            d["tokens"] = TokenCfg._from_dict(d["tokens"], "tokens")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["tokens"] = self.tokens.to_dict() if self.tokens else None
        return d

    @property
    def arch_id(self) -> str:
        """Stable 12-hex id of the architecture (name and family excluded: same network, same id)."""
        d = self.to_dict()
        d.pop("name")
        d.pop("family")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> ArchConfig:
        return dataclasses.replace(self, **changes)

    # YAML -----------------------------------------------------------------------------------------------
    def to_yaml(self, path: str | Path | None = None) -> str:
        import yaml

        d = {"arch_id": self.arch_id, **self.to_dict()}
        text = yaml.safe_dump(d, sort_keys=False, default_flow_style=None, width=120)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> ArchConfig:
        return cls.from_dict(load_yaml(path))


def parse_yaml(text: str) -> Any:
    """`yaml.safe_load` through libyaml where PyYAML has it (its wheels do): the same objects, about 8x faster
    (the 23 variants' files: 0.34 -> 0.04 s, read by every search's plan)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning every failure into one ConfigError that names the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no such file: {p}", "check the path (or use a variant name from `nas variants`)")
    try:
        data = parse_yaml(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"malformed YAML in {p}{where}: {problem}", "fix the YAML syntax there") from None
    if data is None:
        raise ConfigError(f"{p} is empty", "write a mapping in it")
    return data
