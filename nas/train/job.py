"""One training job of a run (a `nas.jobs.TrialJob`), as a plain function of (job, report): no Ray here.

`train_job` builds the job's architecture, trains it under the run's protocol (the job's seed replaces the
protocol's), calls `report` with each epoch's metrics (the curve so far included) and once more with the
final result (``final: True``). Ray Tune's trainable (`nas.tuning.trainables`) passes `ray.tune.report` as
`report`; a test or a bench can pass a list's append. The dataset is loaded once per process.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.jobs import TrialJob, arch_of_job

METRIC = "val_top1"
JobReport = Callable[[dict[str, Any]], Any]
_DATA_CACHE: dict[str, Any] = {}


def dataset(spec: str) -> Any:
    """The dataset `spec` (a name or folder), loaded once per process."""
    if spec not in _DATA_CACHE:
        from nas.data import load_dataset

        _DATA_CACHE[spec] = load_dataset(spec)
    return _DATA_CACHE[spec]


def eval_set(test: bool, data: str) -> str:
    """What a job's final score was measured on: val, the test split, or a held-out part of the training set."""
    if not test:
        return "val"
    return "test" if dataset(data).test_source == "test split" else "held-out"


def job_base(job: TrialJob, arch_id: str) -> dict[str, Any]:
    """The fields every report of a job carries."""
    return {"trial": job.trial, "stage": job.stage, "seed": job.seed, "madds_m": job.madds_m, "arch_id": arch_id}


def checkpoint_file(checkpoint_dir: Path, job: TrialJob) -> Path:
    """The checkpoint file of `job` under `checkpoint_dir` (`nas.train.checkpoint`)."""
    return checkpoint_dir / f"{job.stage}-{job.trial}-s{job.seed}.pt"


def _curve_json(xs: list[float]) -> str:
    """A val curve as JSON: null for an epoch without validation (NaN is not JSON)."""
    return json.dumps([x if x == x else None for x in xs])


def _nanmax(xs: list[float]) -> float | None:
    ok = [x for x in xs if x == x]
    return max(ok) if ok else None


def train_job(job: TrialJob, report: JobReport, *, space: dict[str, Any], proxy: dict[str, Any], data: str,
              runtime: Any = None, checkpoint_dir: str | Path | None = None, curve: bool = True) -> None:
    """Train `job` (see the module docstring). `runtime` (a `nas.runtime.Runtime` or its dict) says where and
    how: device, threads, memory format, precision. With `checkpoint_dir`, the job saves its state there between
    epochs, in a file named after its stage, trial and seed, and a killed job resumes from it (`checkpoint_file`).
    A job that raises is reported as failed, never raised. `curve` False validates after the last epoch only
    (`train_arch`): a search whose scheduler reads no earlier epoch."""
    from nas.runtime import Runtime
    from nas.train import proxy_from_dict, train_arch

    rt = Runtime.of(runtime)
    pc = proxy_from_dict(proxy)
    if job.seed != pc.seed:
        pc = pc.replace(seed=int(job.seed))
    arch = arch_of_job(job, space)
    base = job_base(job, arch.arch_id)
    points: list[float] = []  # each epoch's val top-1 so far (NaN where it was not validated)
    t0 = time.time()
    if arch.arch_id != job.arch_id:
        report({**base, "status": "failed", "final": True, "epoch": 0, METRIC: None,
                "error": f"replay gave arch {arch.arch_id}, proposal was {job.arch_id}"})
        return
    if job.gpus <= 0:
        rt = rt.on_cpu()

    def on_epoch(m: dict[str, Any]) -> None:
        v = m.get(METRIC)
        points.append(float(v) if v is not None else math.nan)
        report({**base, "epoch": int(m["epoch"]), METRIC: v, "train_loss": m.get("train_loss"),
                "images_per_s": m.get("images_per_s"), "val_curve": _curve_json(points),
                "best_val_top1": _nanmax(points), "wall_s": time.time() - t0})

    try:
        ck = None if checkpoint_dir is None else checkpoint_file(Path(checkpoint_dir), job)
        res = train_arch(arch, dataset(data), pc, report=on_epoch, final=job.evaluate_test, runtime=rt, checkpoint=ck,
                         curve=curve)
        out = {"status": res.status, METRIC: res.val_top1, "best_val_top1": res.best_val_top1,
               "epoch": res.epochs_run, "images_per_s": res.train_images_per_s, "wall_s": res.wall_s,
               "params_m": (res.params or 0) / 1e6, "error": res.error or "",
               "val_curve": json.dumps([h.get(METRIC) for h in res.history]),
               "test_top1": res.test_top1, "eval_set": eval_set(job.evaluate_test, data),
               "resumed_after_epoch": res.resumed_after_epoch}
    except Exception as e:  # a job that raises is recorded, the search goes on
        out = {"status": "failed", METRIC: None, "epoch": len(points), "error": f"{type(e).__name__}: {e}"[:2000],
               "wall_s": time.time() - t0, "val_curve": _curve_json(points)}
    if out["status"] in ("nan", "failed"):
        out[METRIC] = None
    report({**base, **out, "final": True})


__all__ = ["train_job", "checkpoint_file", "dataset", "eval_set", "job_base", "METRIC"]
