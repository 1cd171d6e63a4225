"""Ray Tune's trainables: each is the Ray-free job function with `ray.tune.report` as its report.

The jobs themselves (`nas.train.job.train_job`, `nas.supernet.train.train_supernet`; the one-shot scorer's
`nas.supernet.score.score_job` runs on `nas.tuning.scoring`'s actors) know nothing of Ray; they run the same from a test, a bench or a plain loop. Here Ray's
config dict becomes a `TrialJob`, and the job's `Runtime` gets the device Ray gave the trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray import tune

from nas.jobs import TrialJob


def trainable(config: dict[str, Any], *, space: dict[str, Any], proxy: dict[str, Any], data: str,
              runtime: dict[str, Any], checkpoint_dir: str | None = None, curve: bool = True) -> None:
    """One training job (`config` is a TrialJob): each epoch, then the final result, to Tune (`curve`: see
    `train_job`)."""
    from nas.train.job import train_job

    train_job(TrialJob.from_config(config), tune.report, space=space, proxy=proxy, data=data, runtime=runtime,
              checkpoint_dir=checkpoint_dir, curve=curve)


def supernet_trainable(config: dict[str, Any], *, settings: dict[str, Any], run_dir: str,
                       runtime: dict[str, Any]) -> None:
    """The supernet training job: progress every 10 steps, then a final report."""
    import torch

    from nas.runtime import Runtime
    from nas.supernet.train import SupernetSettings, train_supernet

    device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
    try:
        last = train_supernet(SupernetSettings(**settings), Path(run_dir), device=device,
                              report=lambda m: tune.report({**m, "final": False}), runtime=Runtime.of(runtime))
        tune.report({**last, "final": True, "status": "completed", "device": device})
    except (RuntimeError, FloatingPointError, ValueError) as e:
        tune.report({"final": True, "status": "failed", "error": f"{type(e).__name__}: {e}"[:2000]})


__all__ = ["trainable", "supernet_trainable"]
