"""AdamW as one fused kernel call per parameter group, without torch.optim's wrappers around it.

`torch.optim.AdamW(fused=True)` runs the same kernel (`torch._fused_adamw_`, the aten op behind it since torch
2.4 on the CPU), so both give bit-identical parameters and state (tests/test_optim.py). The differences:

* torch.optim's `__init__`, `step`, `zero_grad` and `state_dict` go through its dynamo-disable wrappers,
  which import `torch._dynamo` on their first call: about 1.1 s of every process that trains, 6% of a
  confirm-protocol job (BENCHMARKS.md, "An optimizer without torch._dynamo"). This class never imports it.
* torch keeps one step counter tensor per parameter and increments them one by one (490 additions a step
  for Mobile-Former-151M; `_foreach_add_` is a loop on the CPU). Here each group's counters are the
  elements of one vector, incremented by one op (by one indexed op where some parameters have no gradient,
  as in the supernet's sampled subnets); the per-parameter counters are views into it.

The state dict is torch.optim.AdamW's format (per-parameter "step", "exp_avg", "exp_avg_sq"; groups with
their hyperparameters and parameter indices), so checkpoints written by one load into the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class AdamW:
    """AdamW with decoupled weight decay over param groups (dicts with "params" and any of the defaults'
    keys, as torch.optim takes them). Parameters without a gradient at a step are skipped, state and
    counter alike, as torch.optim does. The learning rate is read from each group at every step."""

    def __init__(self, params: Iterable[Any], *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        self.defaults: dict[str, Any] = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": False,
            "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": True,
            "decoupled_weight_decay": True}
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self._counters: list[torch.Tensor] = []
        for g in groups:
            group = {**self.defaults, **g, "params": list(g["params"])}
            devices = {p.device for p in group["params"]}
            if len(devices) > 1:
                raise ValueError(f"a parameter group spans devices {sorted(map(str, devices))}; "
                                 "put one device's parameters in each group")
            device = devices.pop() if devices else torch.device("cpu")
            self.param_groups.append(group)
            self._counters.append(torch.zeros(len(group["params"]), dtype=torch.float32, device=device))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def step(self) -> None:
        with torch.no_grad():
            for g, counters in zip(self.param_groups, self._counters):
                self._step_group(g, counters)

    def _step_group(self, g: dict[str, Any], counters: torch.Tensor) -> None:
        params, grads, avgs, sqs, steps, stepped = [], [], [], [], [], []
        state = self.state
        for i, p in enumerate(g["params"]):
            if p.grad is None:
                continue
            s = state.get(p)
            if s is None:
                s = state[p] = {"step": counters[i],
                                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            params.append(p)
            grads.append(p.grad)
            avgs.append(s["exp_avg"])
            sqs.append(s["exp_avg_sq"])
            steps.append(s["step"])
            stepped.append(i)
        if not params:
            return
        if len(stepped) == len(counters):
            counters.add_(1)
        else:
            counters[torch.tensor(stepped, device=counters.device)] += 1
        beta1, beta2 = g["betas"]
        torch._fused_adamw_(params, grads, avgs, sqs, [], steps, lr=float(g["lr"]), beta1=float(beta1),
                            beta2=float(beta2), weight_decay=float(g["weight_decay"]), eps=float(g["eps"]),
                            amsgrad=False, maximize=False)

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: {"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}."""
        index: dict[int, int] = {}
        groups, state = [], {}
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append(packed)
            for p, i in zip(g["params"], packed["params"]):
                s = self.state.get(p)
                if s is not None:
                    state[i] = {"step": s["step"].clone(), "exp_avg": s["exp_avg"], "exp_avg_sq": s["exp_avg_sq"]}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of torch.optim.AdamW over the same parameters, in the same order."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"the saved optimizer has {len(saved)} parameter groups, this one "
                             f"{len(self.param_groups)}")
        for g, sg in zip(self.param_groups, saved):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"a saved parameter group holds {len(sg['params'])} parameters, this one "
                                 f"{len(g['params'])}")
        self.state = {}
        for g, sg, counters in zip(self.param_groups, saved, self._counters):
            g.update({k: v for k, v in sg.items() if k != "params"})
            g["betas"] = tuple(g["betas"])
            counters.zero_()
            for i, (p, key) in enumerate(zip(g["params"], sg["params"])):
                s = state_dict["state"].get(key)
                if s is None:
                    continue
                counters[i] = float(s["step"])
                self.state[p] = {"step": counters[i],
                                 "exp_avg": s["exp_avg"].to(device=p.device, dtype=p.dtype, copy=True),
                                 "exp_avg_sq": s["exp_avg_sq"].to(device=p.device, dtype=p.dtype, copy=True)}


# What the trainer's functions take: this AdamW or a torch.optim optimizer (the SGD protocols').
Optimizer = AdamW | torch.optim.Optimizer

__all__ = ["AdamW", "Optimizer"]
