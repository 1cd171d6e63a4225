"""Scoring a subnet by inherited weights: extract it, recalibrate its BatchNorm statistics on a fixed set of
training images (the shared running statistics belong to no single subnet), then top-1 on the search's
validation split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.config import ArchConfig
from nas.errors import RunError
from nas.supernet.shared import Supernet, extract
from nas.supernet.train import CHECKPOINT, SETTINGS, WEIGHTS

# BatchNorm recalibration images per subnet: 128, 256 and 512 rank alike (paired tau differences within
# +-0.11 over 33 architectures; BENCHMARKS.md, "Supernet and one-shot search"); without recalibration tau
# falls from 0.45 to 0.19 (difference +0.26 [-0.03, +0.56]: likely, not resolved at n = 33)
CALIBRATION_IMAGES = 128


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, *, batch_size: int) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them (exact averages, momentum None)
    from forward passes over `images` (already normalised) in training mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(images), batch_size):
        model(images[i:i + batch_size])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def calibration_batch(prep: Any, n: int = CALIBRATION_IMAGES) -> torch.Tensor:
    """The first `n` training images of the protocol (fixed, no augmentation), normalised."""
    from nas.train.pipeline import normalize

    return normalize(prep.train_x[:n], prep)


def score_subnet(net: Supernet, arch: ArchConfig, prep: Any, *, recalibrate: bool = True,
                 calibration: torch.Tensor | None = None, batch_size: int = 128) -> float:
    """Top-1 (percent) of `arch` with inherited weights on `prep`'s validation split."""
    from nas.train import evaluate

    # channels_last, as the trainer runs: oneDNN's depthwise and 1x1 convolutions are faster in it
    model = extract(net, arch).to(memory_format=torch.channels_last)
    if recalibrate:
        recalibrate_bn(model, calibration if calibration is not None else calibration_batch(prep),
                       batch_size=batch_size)
    return evaluate(model, prep.val_x, prep.val_y, prep, batch_size=batch_size)


def weights_path(path: str | Path) -> Path:
    """A supernet run folder or weights file -> the weights file; a RunError says what is missing."""
    p = Path(path)
    if p.is_dir():
        if (p / WEIGHTS).is_file():
            return p / WEIGHTS
        if (p / CHECKPOINT).is_file() or (p / SETTINGS).is_file():
            raise RunError(f"supernet run {p} has not finished training (no {WEIGHTS})",
                           f"finish it: nas supernet train --resume {p}")
        raise RunError(f"{p} is not a supernet run folder (no {WEIGHTS})",
                       "pass a folder that `nas supernet train` wrote, e.g. results/supernet-<name>")
    if not p.is_file():
        raise RunError(f"no supernet at {p}", "train one first: nas supernet train (it prints its folder)")
    return p


def load_supernet(path: str | Path) -> tuple[Supernet, dict[str, Any]]:
    """The trained supernet of a run folder (or weights file) and its settings."""
    p = weights_path(path)
    try:
        blob = torch.load(p, map_location="cpu", weights_only=False)
        net = Supernet.from_spec(blob["spec"])
        net.load_state_dict(blob["state"])
    except (OSError, RuntimeError, KeyError, EOFError) as e:
        raise RunError(f"cannot read the supernet weights {p}: {type(e).__name__}: {str(e)[:200]}",
                       "retrain it (nas supernet train) or pass another --supernet") from None
    return net.eval(), dict(blob.get("settings", {}))
