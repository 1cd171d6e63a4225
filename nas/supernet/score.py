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
# Validation images a one-shot score reads (the first ones of the search protocol's validation split): 256 and
# 512 rank the long reference's 33 architectures as 1,024 do (tau differences -0.04 [-0.16, +0.07] and -0.02
# [-0.11, +0.05]; against the 1,024-image score itself tau 0.86 and 0.92) at 1.20 and 1.86 s an architecture
# instead of 3.17 (bench/oneshot_scoring.py; BENCHMARKS.md, "Supernet and one-shot search")
SCORE_IMAGES = 256


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
                 calibration: torch.Tensor | None = None, batch_size: int = 128, runtime: Any = None) -> float:
    """Top-1 (percent) of `arch` with inherited weights on `prep`'s validation split. `runtime` (a
    `nas.runtime.Runtime`) gives the memory format and precision (default channels_last, as the trainer runs:
    oneDNN's depthwise and 1x1 convolutions are faster in it); the subnet stays on the supernet's device and
    is never compiled (each one is scored once)."""
    return score_and_count(net, arch, prep, recalibrate=recalibrate, calibration=calibration,
                           batch_size=batch_size, runtime=runtime)[0]


def score_and_count(net: Supernet, arch: ArchConfig, prep: Any, *, recalibrate: bool = True,
                    calibration: torch.Tensor | None = None, batch_size: int = 128,
                    runtime: Any = None) -> tuple[float, int]:
    """`score_subnet`'s top-1 and the subnet's parameter count (the run's row needs it, and the subnet is
    built here anyway: the driver need not build the network again to count it)."""
    from nas.builder import count_params
    from nas.runtime import Runtime
    from nas.train import evaluate

    rt = Runtime.of(runtime)
    model = extract(net, arch).to(memory_format=rt.torch_memory_format)
    if recalibrate:
        with rt.autocast(prep.val_x.device.type):
            recalibrate_bn(model, rt.inputs(calibration if calibration is not None else calibration_batch(prep)),
                           batch_size=batch_size)
    # not folded: on the 256 validation images of a score, folding the subnet's BatchNorms cost more than it saved
    # (327.6 against 320.4 ms a subnet, the same top-1 for all 70 measured; BENCHMARKS.md, "One-shot scores
    # without work they did not need")
    top1 = evaluate(model, prep.val_x, prep.val_y, prep, batch_size=batch_size, runtime=rt, fold=False)
    return top1, count_params(model)


_SCORER: dict[str, Any] = {}


def scorer_state(supernet: str, proxy: dict[str, Any], data: str, calibration: int,
                 images: int = 0) -> tuple[Any, Any, Any]:
    """The supernet, the search protocol's data (its validation split cut to its first `images` when > 0) and
    the calibration images, loaded once per process (a worker that scores many architectures holds the
    supernet once)."""
    import dataclasses
    import json

    key = (supernet, json.dumps(proxy, sort_keys=True), data, calibration, images)
    if _SCORER.get("key") != key:
        from nas.train import proxy_from_dict
        from nas.train.job import dataset
        from nas.train.pipeline import prepare_data

        _SCORER.clear()
        net, _ = load_supernet(supernet)
        prep = prepare_data(dataset(data), proxy_from_dict(proxy))
        if 0 < images < len(prep.val_y):
            prep = dataclasses.replace(prep, val_x=prep.val_x[:images], val_y=prep.val_y[:images])
        _SCORER.update(key=key, state=(net, prep, calibration_batch(prep, calibration)))
    return _SCORER["state"]


def score_job(job: Any, report: Any, *, space: dict[str, Any], proxy: dict[str, Any], data: str, supernet: str,
              calibration: int, images: int = 0, runtime: Any = None) -> None:
    """One-shot job (a `nas.jobs.TrialJob`), a plain function of (job, report) like `nas.train.job.train_job`:
    the architecture's inherited-weight top-1 on the search validation split (its first `images`; 0: all)
    after BatchNorm recalibration,
    in one final report. An architecture the supernet does not hold is reported as failed."""
    import json
    import time

    from nas.errors import NasError
    from nas.jobs import arch_of_job
    from nas.runtime import Runtime
    from nas.train.job import METRIC, job_base

    rt = Runtime.of(runtime).on_cpu()
    t0 = time.time()
    arch = arch_of_job(job, space)
    base = {**job_base(job, arch.arch_id), "final": True, "epoch": 1, "eval_set": "val"}
    try:
        with rt.applied():
            net, prep, cal = scorer_state(supernet, proxy, data, calibration, images)
            top1, params = score_and_count(net, arch, prep, calibration=cal, runtime=rt)
        out = {"status": "completed", METRIC: top1, "best_val_top1": top1, "val_curve": json.dumps([top1]),
               "params_m": params / 1e6, "error": ""}
    except NasError as e:  # e.g. an architecture the supernet does not hold: recorded, the search goes on
        out = {"status": "failed", METRIC: None, "error": e.message[:2000], "val_curve": "[]"}
    except (RuntimeError, ValueError) as e:
        out = {"status": "failed", METRIC: None, "error": f"{type(e).__name__}: {e}"[:2000], "val_curve": "[]"}
    report({**base, **out, "wall_s": time.time() - t0})


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
