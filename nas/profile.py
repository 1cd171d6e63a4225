"""MAdds and parameters with fvcore: one multiply-add counted once, at the architecture's target resolution.

fvcore skips `scaled_dot_product_attention` (it would count 0); a handle here counts its two matmuls.
Every op fvcore could not count is reported, so a matmul-class op that slips through is visible.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import prod

import torch
from torch import nn

# Ops that do multiply-adds proportional to a matmul or a convolution: none may go uncounted.
MATMUL_CLASS_OPS = frozenset({
    "aten::matmul", "aten::mm", "aten::bmm", "aten::addmm", "aten::addbmm", "aten::baddbmm", "aten::linear",
    "aten::einsum", "aten::_convolution", "aten::convolution", "aten::conv1d", "aten::conv2d",
    "aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention",
    "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::bilinear", "aten::_fused_sdp_choice",
})


def _shape(v) -> list[int] | None:
    t = v.type()
    if hasattr(t, "sizes"):
        s = t.sizes()
        return list(s) if s is not None else None
    return None


def sdpa_flop_jit(inputs, outputs) -> int:
    """q @ k^T and attn @ v: B*h*Nq*Nk*dk + B*h*Nq*Nk*dv multiply-adds."""
    q, k, v = (_shape(inputs[i]) for i in range(3))
    assert q is not None and k is not None and v is not None
    batch = prod(q[:-2])
    nq, dk = q[-2], q[-1]
    nk, dv = k[-2], v[-1]
    return batch * nq * nk * (dk + dv)


EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": sdpa_flop_jit,
}


@dataclass
class Profile:
    madds: int
    params: int
    by_stage: dict[str, int] = field(default_factory=dict)
    params_by_stage: dict[str, int] = field(default_factory=dict)
    uncounted: Counter = field(default_factory=Counter)

    @property
    def madds_m(self) -> float:
        return self.madds / 1e6

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def uncounted_matmuls(self) -> dict[str, int]:
        return {k: v for k, v in self.uncounted.items() if k in MATMUL_CLASS_OPS}


def fvcore_profile(model: nn.Module, resolution: int, *, in_chans: int = 3) -> Profile:
    """Count MAdds of `model` on one [1, in_chans, R, R] input in eval mode (restores the previous mode)."""
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, in_chans, resolution, resolution)
        with torch.no_grad():
            fca = FlopCountAnalysis(model, x)
            fca.set_op_handle(**EXTRA_HANDLES)
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            total = int(fca.total())
            by_module = fca.by_module()
            uncounted = Counter(fca.unsupported_ops())
    finally:
        model.train(was_training)

    by_stage: dict[str, int] = {}
    params_by_stage: dict[str, int] = {}
    stage_of = getattr(model, "stage_modules", None)
    if stage_of is not None:
        named = {m: n for n, m in model.named_modules()}
        for label, mod in stage_of().items():
            subs = [named[m] for m in ([mod] if not isinstance(mod, nn.ModuleList) or label != "head" else list(mod))]
            by_stage[label] = int(sum(by_module.get(s, 0) for s in subs))
            params_by_stage[label] = sum(p.numel() for s in subs for p in model.get_submodule(s).parameters())
        if getattr(model, "global_tokens", None) is not None:
            params_by_stage["tokens"] = model.global_tokens.numel()
        rest = total - sum(by_stage.values())
        if rest:
            by_stage["other"] = rest
    params = sum(p.numel() for p in model.parameters())
    return Profile(madds=total, params=params, by_stage=by_stage, params_by_stage=params_by_stage, uncounted=uncounted)


def profile_arch(cfg, *, num_classes: int | None = None) -> Profile:
    """Build `cfg` and count it at its own target resolution."""
    from nas.builder import build_model

    model = build_model(cfg, num_classes=num_classes)
    return fvcore_profile(model, cfg.resolution, in_chans=cfg.in_chans)
