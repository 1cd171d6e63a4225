"""Supernet training: the sandwich rule with in-place distillation, through the one training step
(`nas.train.train_step`), with checkpoints that a killed run resumes from.

Each step trains one macro (round robin): its pool's largest network on the labels, and its smallest
plus `n_random` random in-band networks on the largest one's softened predictions (in-place distillation,
BigNAS/OFA); the gradients of all of them accumulate into the shared tensors before one optimizer step.
Batches and subnets are functions of (seed, step), so a run resumed from a checkpoint at step k trains
exactly what the uninterrupted run would have from step k on.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.results import append_line, atomic_write, atomic_write_text
from nas.supernet.sampling import BandPool, band_pool
from nas.supernet.shared import Supernet
from nas.train.loop import optimizer_for
from nas.train.optim import Optimizer

CHECKPOINT = "supernet.pt"  # weights, optimizer, step, history: what --resume reads
WEIGHTS = "weights.pt"  # the finished supernet's weights alone: what scorers and extract read
SETTINGS = "supernet.yaml"
PROGRESS = "progress.csv"  # one row per progress record (every 10 steps)
PROGRESS_FIELDS = ["step", "steps", "macro", "loss_largest", "loss_smallest", "steps_per_s", "eta_s", "wall_s"]


@dataclass(frozen=True)
class SupernetSettings:
    """Everything that decides a supernet's weights (stored in the run folder's supernet.yaml)."""

    space: dict[str, Any]
    budget: int
    min_budget: float
    macros: list[str]
    steps: int
    protocol: dict[str, Any]
    data: str
    seed: int = 0
    n_random: int = 2
    distill: bool = True
    pool_size: int = 256
    checkpoint_every_s: float = 120.0
    extra_archs: list[str] = field(default_factory=list)  # published variants it must also hold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandwich(nn.Module):
    """The supernet run on this step's subnets: logits stacked [n_subnets, B, classes]."""

    def __init__(self, net: Supernet):
        super().__init__()
        self.net = net
        self.archs: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.net(a, x) for a in self.archs])


class SandwichLoss(nn.Module):
    """Cross-entropy of the largest subnet on the labels, plus each other subnet's cross-entropy against the
    largest one's (detached) predictions; `parts` keeps each subnet's loss of the last call."""

    def __init__(self, *, label_smoothing: float, distill: bool):
        super().__init__()
        self.label_smoothing, self.distill = label_smoothing, distill
        self.parts: list[torch.Tensor] = []

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        big = logits[0].float()
        total = F.cross_entropy(big, y, label_smoothing=self.label_smoothing)
        parts = [total.detach()]
        soft = big.detach().softmax(-1)
        for sub in logits[1:]:
            if self.distill:
                loss = -(soft * F.log_softmax(sub.float(), -1)).sum(-1).mean()
            else:
                loss = F.cross_entropy(sub.float(), y, label_smoothing=self.label_smoothing)
            parts.append(loss.detach())
            total = total + loss
        self.parts = parts
        return total


def make_supernet_optimizer(net: Supernet, proxy: Any) -> Optimizer:
    """The protocol's optimizer over the shared tensors; norms, biases and global tokens get no decay."""
    decay, no_decay = [], []
    for k in net.keys:
        if net.is_param[k]:
            t = net.shared(k)
            (no_decay if t.ndim <= 1 or k.endswith("global_tokens") else decay).append(t)
    return optimizer_for(decay, no_decay, proxy)


def new_supernet(s: SupernetSettings, *, num_classes: int, in_chans: int) -> Supernet:
    from nas.space import parse_space
    from nas.variants import get_variant

    space = parse_space(s.space, source="supernet settings")
    extra = [get_variant(n).replace(num_classes=num_classes) for n in s.extra_archs]
    return Supernet.for_space(space, num_classes=num_classes, in_chans=in_chans,
                              input_size=int(s.protocol["resolution"]), seed=s.seed, archs=extra)


def read_progress(run_dir: Path) -> list[dict[str, str]]:
    """The progress records of the run folder's PROGRESS file, oldest first; a line cut short (a write that
    never finished) is skipped."""
    import csv

    path = run_dir / PROGRESS
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f)
                if None not in r and None not in r.values() and str(r.get("step")).isdigit()]


def append_progress(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one progress record to the run folder's PROGRESS file (header on the first). A record at or
    before the file's last step comes from a resumed run, which trains again from its checkpoint: the records
    the killed run wrote after that step go, so that the file holds each step once, as trained."""
    import csv
    import io

    def lines(records: list[dict[str, Any]], *, header: bool) -> str:
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=PROGRESS_FIELDS, extrasaction="ignore", lineterminator="\n")
        if header:
            w.writeheader()
        w.writerows(records)
        return out.getvalue()

    path = run_dir / PROGRESS
    old = read_progress(run_dir)
    step = int(record["step"])
    if old and int(old[-1]["step"]) < step:
        append_line(path, lines([record], header=False))
    else:
        atomic_write_text(path, lines([r for r in old if int(r["step"]) < step] + [record], header=True))


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def train_supernet(s: SupernetSettings, run_dir: Path, *, report: Callable[[dict[str, Any]], None] | None = None,
                   device: str | None = None, threads: int | None = None, runtime: Any = None) -> dict[str, Any]:
    """Train (or continue) the supernet of `s` in `run_dir`; returns the last progress record. Writes
    CHECKPOINT every `checkpoint_every_s` seconds and at the end, then WEIGHTS. `runtime` (a
    `nas.runtime.Runtime`; `device` and `threads` replace its own) gives the device, threads and precision;
    the weight-sharing network keeps the contiguous format and is never compiled (its subnet changes every
    step)."""
    from nas.data import load_dataset
    from nas.errors import ConfigError
    from nas.runtime import Runtime
    from nas.space import parse_space
    from nas.train import lr_at, train_step
    from nas.train.pipeline import prepare_data, train_batch
    from nas.train.protocol import proxy_from_dict

    rt = Runtime.of(runtime).replace(device=device, threads=threads).resolved()
    if rt.compile:
        raise ConfigError("the supernet cannot be compiled (its subnet changes every step)", "train it without compile")
    rt.apply()  # threads and allocator for the life of this training
    dev = rt.torch_device
    step_rt = rt.replace(memory_format="contiguous")  # the weight-sharing net's layout (see the docstring)
    proxy = proxy_from_dict(s.protocol)
    data = load_dataset(s.data)
    prep = prepare_data(data, proxy, dev)
    space = parse_space(s.space, source="supernet settings")
    pool: BandPool = band_pool(space, s.budget, min_budget=s.min_budget, macros=s.macros, size=s.pool_size,
                               seed=s.seed)
    ckpt_path = run_dir / CHECKPOINT
    history: list[dict[str, Any]] = []
    if ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        net = Supernet.from_spec(ck["spec"])
        net.load_state_dict(ck["state"])
        start, history = int(ck["step"]), list(ck["history"])
    else:
        net = new_supernet(s, num_classes=data.num_classes, in_chans=data.in_chans)
        ck, start = None, 0
    net.to(dev).train()
    opt = make_supernet_optimizer(net, proxy)
    if ck is not None:
        opt.load_state_dict(ck["opt"])
    sandwich = Sandwich(net)
    crit = SandwichLoss(label_smoothing=proxy.label_smoothing, distill=s.distill)
    n, bs = len(prep.train_x), min(proxy.batch_size, len(prep.train_x))
    warmup = int(round(proxy.warmup_epochs * max(1, n // bs)))
    warmup = min(warmup, s.steps // 10)
    last_ck = t0 = time.time()
    record: dict[str, Any] = history[-1] if history else {"step": 0}

    def save(step: int) -> None:
        payload = {"spec": net.spec(), "state": net.state_dict(), "opt": opt.state_dict(), "step": step,
                   "history": history, "settings": s.to_dict()}
        atomic_write(ckpt_path, lambda p: torch.save(payload, p))

    for step in range(start, s.steps):
        macro = s.macros[step % len(s.macros)]
        rng = random.Random(s.seed * 1_000_003 + step)
        sandwich.archs = pool.sandwich(macro, rng, s.n_random)
        gen = torch.Generator(device=dev).manual_seed(s.seed * 1_000_003 + step)
        idx = torch.randint(0, n, (bs,), generator=gen, device=dev)
        xb, yb = train_batch(prep, idx, proxy, gen)
        train_step(sandwich, xb, yb, opt, crit, lr=lr_at(step, total=s.steps, warmup=warmup, base=proxy.lr),
                   runtime=step_rt)
        done = step + 1
        if done % 10 == 0 or done == s.steps:
            parts = [float(p) for p in crit.parts]
            if any(p != p for p in parts):
                raise FloatingPointError(f"the supernet's loss became non-finite at step {done}; lower the "
                                         "learning rate (protocol lr)")
            rate = (done - start) / max(1e-9, time.time() - t0)
            record = {"step": done, "steps": s.steps, "macro": macro, "loss_largest": parts[0],
                      "loss_smallest": parts[1], "steps_per_s": rate, "eta_s": (s.steps - done) / max(rate, 1e-9),
                      "wall_s": time.time() - t0}
            history.append(record)
            if report is not None:
                report(dict(record))
        if time.time() - last_ck >= s.checkpoint_every_s and done < s.steps:
            save(done)
            last_ck = time.time()
    save(s.steps)
    weights = {"spec": net.spec(), "state": net.state_dict(), "settings": s.to_dict(), "step": s.steps}
    atomic_write(run_dir / WEIGHTS, lambda p: torch.save(weights, p))
    return record
