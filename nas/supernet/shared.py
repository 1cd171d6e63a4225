"""The weight-sharing supernet: one set of tensors that every architecture of a search space's macros uses.

Design (the builder stays the only definition of a network):

* A subnet is ``build_model(arch)``. Its parameters and buffers are *slices* of the supernet's shared
  tensors, and it is run through ``torch.func.functional_call`` with those slices, so gradients flow back
  into the shared tensors and nothing about the network is written twice.
* Each tensor of a subnet maps to one shared tensor by a **key** (`weight_key`): the macro, the stage, the
  block's kind and its rank among blocks of that kind in the stage (depth: the first k blocks of a stage share),
  the block's *categorical* settings (attention, fusion, local conv, act, form, the token attention of a
  Mobile-Former block) and the path inside the block. Categorical choices therefore get their own branch of
  weights; ordinal knobs (width, d, M, FFN ratio, expansion, depth) share **leading slices** of the largest
  tensor; conv kernels smaller than the stored one take its centre; heads and patch size change no shape.
  Concatenated inputs (v3 fusion, the head's token concat) are sliced like any other dim, not realigned.
* The shared shapes are the largest that the macro's corner architectures need (every categorical
  combination with every ordinal knob at its largest value) and a sample of random ones; an architecture
  that needs a key or a size the supernet lacks is refused with the reason.
* ``extract(supernet, arch)`` is ``build_model(arch)`` with copies of those slices loaded (same class, same
  state_dict keys and shapes): its forward equals the supernet's forward for `arch` (the same kernels on the
  same values; a GEMM may round the last float32 bit differently for a copy at another address, ~1e-7).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import torch
from torch import nn

from nas.builder import build_meta, build_model
from nas.config import ArchConfig
from nas.errors import ConfigError
from nas.space import SearchSpace
from nas.space import _replay_fast as replay_params

# MobileViT's global_rep ends with a norm at index `depth`: one key for it whatever the depth.
_FINAL_NORM = re.compile(r"^global_rep\.(\d+)\.(weight|bias)$")
_MAX_CORNERS = 256  # categorical combinations per macro beyond which corners are sampled


# Which categorical settings branch which part of a block (first matching path prefix wins); a part not
# listed, or a block kind not listed, branches on every categorical setting of its block.
_BRANCHES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "mobilevit": [("local_rep.0.", ("local", "act")), ("local_rep.", ()),
                  ("global_rep.final_norm", ("attention",)),
                  ("global_rep.", ("attention",)),  # its FFN shares across attention types (below)
                  ("conv_proj.", ("fusion", "act", "proj_act")), ("fusion.", ("fusion", "act"))],
    "mobile_former": [("former.attn.", ("form", "token_attention")), ("", ("form",))],
    "ir": [("", ("act",))],
    "bneck_lite": [("", ("act",))],
}
_FFN = re.compile(r"^global_rep\.\d+\.ffn\.")


def _categorical(cfg: Any, extra: dict[str, Any]) -> dict[str, str]:
    """The non-numeric settings of a block config (strings and booleans), plus `extra`."""
    out = {f.name: str(getattr(cfg, f.name)) for f in fields(cfg) if isinstance(getattr(cfg, f.name), (str, bool))}
    out.update({k: str(v) for k, v in extra.items()})
    return out


def _branch(kind: str, cats: dict[str, str], rest: str) -> str:
    names: tuple[str, ...] | None = None
    if kind == "mobilevit" and _FFN.match(rest):
        names = ()
    else:
        for prefix, which in _BRANCHES.get(kind, []):
            if rest.startswith(prefix):
                names = which
                break
    if names is None:
        names = tuple(cats)
    return ",".join(f"{n}={cats[n]}" for n in names if n in cats)


def network_tag(arch: ArchConfig) -> str:
    """Which part of a supernet an architecture belongs to: its stage names (one skeleton per macro)."""
    return "+".join(s.name for s in arch.stages)


def weight_keys(arch: ArchConfig, names: Iterable[str]) -> dict[str, str]:
    """Parameter/buffer name of ``build_model(arch)`` -> its shared tensor's key (see the module docstring)."""
    tag = network_tag(arch)
    blocks: dict[tuple[str, str], tuple[str, str, dict[str, str]]] = {}
    for stage in arch.stages:
        seen: dict[str, int] = {}
        for i, b in enumerate(stage.blocks):
            j = seen.get(b.kind, 0)
            seen[b.kind] = j + 1
            extra = {"token_attention": arch.tokens.attention} if b.kind == "mobile_former" and arch.tokens else {}
            blocks[(stage.name, str(i))] = (f"{stage.name}.{b.kind}{j}", b.kind, _categorical(b, extra))
    head = arch.head
    head_tag = f"head[conv={bool(head.conv)},token={head.concat_token},hidden={bool(head.hidden)}]"
    out = {}
    for name in names:
        parts = name.split(".")
        if parts[0] == "stages":
            rest = ".".join(parts[3:])
            m = _FINAL_NORM.match(rest)
            if m:
                rest = f"global_rep.final_norm.{m.group(2)}"
            where, kind, cats = blocks[(parts[1], parts[2])]
            key = f"{where}[{_branch(kind, cats, rest)}].{rest}"
        elif parts[0] in ("head_conv", "head_hidden", "classifier"):
            key = f"{head_tag}.{name}"
        elif parts[0] in ("global_tokens", "final_bridge"):
            key = f"tokens[attention={arch.tokens.attention if arch.tokens else None}].{name}"
        else:
            key = name
        out[name] = f"{tag}/{key}"
    return out


def _slice(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Leading slice of `t` to `shape`; the two kernel dims of a conv weight take the centre instead."""
    idx = []
    for d, (have, want) in enumerate(zip(t.shape, shape)):
        if t.ndim == 4 and d >= 2 and want < have:
            lo = (have - want) // 2
            idx.append(slice(lo, lo + want))
        else:
            idx.append(slice(0, want))
    return t[tuple(idx)]


def largest_archs(space: SearchSpace, *, seed: int = 0) -> list[ArchConfig]:
    """The architectures that set a supernet's shapes: per macro, every combination of its categorical knobs
    (sampled when there are more than _MAX_CORNERS) with every ordinal knob at its largest value. Shapes
    grow with every ordinal knob, so these bound the tensors of every network of the space. (Bounding by a
    budget instead would need the per-tensor maximum over the band, which greedy climbs miss: a narrow
    deep network and a wide shallow one of the same MAdds each set some tensor's largest size.)"""
    rng = random.Random(seed)
    archs: dict[str, ArchConfig] = {}
    for mname, macro in space.macros.items():
        ordinal: dict[str, Any] = {}
        categorical: dict[str, list] = {}
        for k in macro.knobs.values():
            vals = k.values()
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                ordinal[k.name] = max(vals)
            else:
                categorical[k.name] = vals
        combos = list(itertools.product(*categorical.values()))
        if len(combos) > _MAX_CORNERS:
            combos = rng.sample(combos, _MAX_CORNERS)
        base = {} if len(space.macros) == 1 else {"macro": mname}
        for combo in combos:
            params = dict(base, **{f"{macro.prefix}.{k}": v for k, v in ordinal.items()})
            params.update({f"{macro.prefix}.{k}": v for k, v in zip(categorical, combo)})
            try:
                a = replay_params(params, space)
            except ConfigError:
                continue
            archs.setdefault(a.arch_id, a)
    return list(archs.values())


def _template(arch: ArchConfig, num_classes: int, in_chans: int, input_size: int) -> nn.Module:
    """``build_model(arch)`` on the meta device: its structure and tensor names/shapes, no memory."""
    return build_meta(arch, num_classes=num_classes, in_chans=in_chans, input_size=input_size)


class Supernet(nn.Module):
    """The shared tensors of every architecture of the macros it was built for (see the module docstring).

    ``supernet(arch, x)`` runs the subnet of `arch` on `x` with the shared weights (gradients flow back);
    `extract` returns it as a stand-alone network."""

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...], bool, torch.dtype]], *, num_classes: int,
                 in_chans: int, input_size: int):
        super().__init__()
        self.num_classes, self.in_chans, self.input_size = num_classes, in_chans, input_size
        self.keys = sorted(shapes)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.is_param = {k: shapes[k][1] for k in self.keys}
        self.weights = nn.ParameterList()
        self._buffer_names: dict[str, str] = {}
        for i, k in enumerate(self.keys):
            shape, is_param, dtype = shapes[k]
            if is_param:
                self.weights.append(nn.Parameter(torch.zeros(shape, dtype=dtype)))
            else:
                name = f"buf{i}"
                self.register_buffer(name, torch.zeros(shape, dtype=dtype))
                self._buffer_names[k] = name
        self._pidx = {k: n for n, k in enumerate(k for k in self.keys if self.is_param[k])}
        self._templates: OrderedDict[str, tuple[nn.Module, dict[str, str]]] = OrderedDict()

    # ---- construction ------------------------------------------------------------------------------------
    @classmethod
    def for_space(cls, space: SearchSpace, *, num_classes: int, in_chans: int, input_size: int,
                  seed: int = 0, archs: Iterable[ArchConfig] = ()) -> Supernet:
        """The supernet of every network of `space` and of `archs` (e.g. published variants outside it);
        initialised as the builder initialises its largest networks (seeded)."""
        archs = list(largest_archs(space, seed=seed)) + list(archs)
        shapes: dict[str, tuple[tuple[int, ...], bool, torch.dtype]] = {}
        keyed: list[tuple[ArchConfig, dict[str, str]]] = []
        for a in archs:
            m = _template(a, num_classes, in_chans, input_size)
            keys = weight_keys(a, _names(m))
            keyed.append((a, keys))
            for name, t, is_param in _tensors(m):
                k = keys[name]
                old = shapes.get(k)
                shape = tuple(t.shape) if old is None else tuple(max(x, y) for x, y in zip(old[0], t.shape))
                shapes[k] = (shape, is_param, t.dtype)
        net = cls(shapes, num_classes=num_classes, in_chans=in_chans, input_size=input_size)
        net._init_from(keyed, seed=seed)
        return net

    @torch.no_grad()
    def _init_from(self, keyed: list[tuple[ArchConfig, dict[str, str]]], *, seed: int) -> None:
        """Each shared tensor starts as the builder's own initial tensor of a largest network: the leading
        part of the first corner architecture that has the key (its largest slice), the rest as built.
        `keyed`: each architecture with its tensor names' keys."""
        done: set[str] = set()
        torch.manual_seed(seed)
        for a, keys in keyed:
            if all(k in done for k in keys.values()):
                continue
            m = build_model(a, num_classes=self.num_classes, in_chans=self.in_chans, input_size=self.input_size)
            for name, t, _ in _tensors(m):
                k = keys[name]
                if k in done:
                    continue
                shared = self.shared(k)
                if tuple(t.shape) == tuple(shared.shape) or t.ndim == 0:
                    shared.copy_(t)
                else:  # a tensor smaller than the shared one: the builder's init rule, rescaled to its size
                    _fill_like(shared, t)
                    _slice(shared, t.shape).copy_(t)
                done.add(k)

    # ---- access ------------------------------------------------------------------------------------------
    def shared(self, key: str) -> torch.Tensor:
        if self.is_param[key]:
            return self.weights[self._pidx[key]]
        return getattr(self, self._buffer_names[key])

    def _template_keys(self, arch: ArchConfig) -> tuple[nn.Module, dict[str, str]]:
        """The meta-device network of `arch` and its tensors' keys (cached together, most recent 512)."""
        hit = self._templates.get(arch.arch_id)
        if hit is None:
            t = _template(arch, self.num_classes, self.in_chans, self.input_size)
            hit = self._templates[arch.arch_id] = (t, weight_keys(arch, _names(t)))
            if len(self._templates) > 512:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(arch.arch_id)
        return hit

    def take_template(self, arch: ArchConfig) -> nn.Module:
        """The meta-device network of `arch`, removed from the cache (its caller fills it with real tensors)."""
        hit = self._templates.pop(arch.arch_id, None)
        return hit[0] if hit is not None else _template(arch, self.num_classes, self.in_chans, self.input_size)

    def template(self, arch: ArchConfig) -> nn.Module:
        """The meta-device network of `arch` (cached)."""
        return self._template_keys(arch)[0]

    def subnet_tensors(self, arch: ArchConfig) -> dict[str, torch.Tensor]:
        """name -> slice of the shared tensor, for every parameter and buffer of ``build_model(arch)``;
        a ConfigError when the supernet lacks a key or a size the architecture needs."""
        tmpl, keys = self._template_keys(arch)
        out = {}
        for name, t, _ in _tensors(tmpl):
            k = keys[name]
            if k not in self.index:
                raise ConfigError(f"architecture {arch.name} ({arch.arch_id}) is not a point of this supernet: it "
                                  f"has no weights for {k}",
                                  "train a supernet on a space that contains it (nas supernet train --space)")
            shared = self.shared(k)
            if t.ndim != shared.ndim or any(w > h for w, h in zip(t.shape, shared.shape)):
                raise ConfigError(f"architecture {arch.name} ({arch.arch_id}) needs {name} of shape "
                                  f"{tuple(t.shape)}, larger than this supernet's {tuple(shared.shape)}",
                                  "train a supernet on a space that contains it (nas supernet train --space)")
            # contiguous: the subnet runs the same kernels as its extracted copy; a leading slice of a 1-d
            # buffer is contiguous already, so BatchNorm still updates the shared statistics in place
            out[name] = _slice(shared, t.shape).contiguous()
        return out

    def forward(self, arch: ArchConfig, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tmpl = self.template(arch)
        tmpl.train(self.training)
        return torch.func.functional_call(tmpl, self.subnet_tensors(arch), (x,), strict=True)

    # ---- persistence ---------------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "in_chans": self.in_chans, "input_size": self.input_size,
                "shapes": {k: [list(self.shared(k).shape), self.is_param[k], str(self.shared(k).dtype)]
                           for k in self.keys}}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Supernet:
        shapes = {k: (tuple(s), bool(p), getattr(torch, d.removeprefix("torch."))) for k, (s, p, d) in
                  spec["shapes"].items()}
        return cls(shapes, num_classes=spec["num_classes"], in_chans=spec["in_chans"], input_size=spec["input_size"])


def _names(m: nn.Module) -> list[str]:
    return [n for n, _, _ in _tensors(m)]


def _tensors(m: nn.Module):
    for n, p in m.named_parameters():
        yield n, p, True
    for n, b in m.named_buffers():
        yield n, b, False


def _fill_like(shared: torch.Tensor, small: torch.Tensor) -> None:
    """Initialise `shared` in the spirit of `small`'s init: constants stay constants, random tensors get
    a normal draw with `small`'s standard deviation rescaled by fan-in."""
    if small.numel() == 0 or not small.is_floating_point():
        shared.zero_()
        return
    flat = small.flatten()
    if bool((flat == flat[0]).all()):
        shared.fill_(float(flat[0]))
        return
    std = float(small.std())
    fan_small = math.prod(small.shape[1:]) if small.ndim > 1 else 1
    fan_big = math.prod(shared.shape[1:]) if shared.ndim > 1 else 1
    shared.normal_(0.0, std * math.sqrt(fan_small / fan_big))


def extract(supernet: Supernet, arch: ArchConfig) -> nn.Module:
    """The stand-alone ``build_model(arch)`` with the inherited weights (copies of the supernet's slices):
    same class, same state_dict keys and shapes; its forward equals ``supernet(arch, x)``.

    The network is the meta-device template `subnet_tensors` built (or found cached), taken out of the cache and
    given the copies. Building it a second time cost 124 against 80 ms an extraction, and the cache kept every
    scored subnet's template: a scoring worker held 1.36M objects for the garbage collector to walk after 120
    scores, 0.33M now; a one-shot stage ran 1.23x as fast side by side (BENCHMARKS.md, "The one-shot driver and
    its workers: an Optuna journal, one template a subnet")."""
    tensors = supernet.subnet_tensors(arch)
    model = supernet.take_template(arch)
    state = {k: v.detach().clone() for k, v in tensors.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.train(supernet.training)
    return model
