"""The run folder: the files a search writes besides its rows (run.yaml, space.yaml, proxy.yaml,
environment.json), the cross-run cache of baseline results, and reading a trial's knobs back from its row."""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from nas import results as R
from nas.code_version import code_version
from nas.errors import RunError
from nas.search.plan import SearchPlan, now
from nas.space import SearchSpace

CACHE_DIR = ".cache"
BASELINE_CACHE = "baselines.parquet"
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return None


def environment() -> dict[str, Any]:
    """What the run ran on (versions read from the installed distributions: no framework is imported)."""
    import torch

    from nas.blas import active as blas_active
    from nas.dwconv import active as dwconv_active
    from nas.malloc import active as tcmalloc_active

    devs = ["cpu"] + [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"python": sys.version.split()[0], "torch": torch.__version__, "ray": _version("ray"),
            "optuna": _version("optuna"), "hybrid_nas": _version("hybrid-nas"), "code_version": code_version(),
            "platform": platform.platform(), "devices": devs, "cpu_count": os.cpu_count(),
            "hostname": socket.gethostname(),
            # MKL's Intel kernel path on an AMD CPU (`nas.blas`) in this process; Ray's local workers inherit it
            "mkl_intel_path": blas_active(),
            # tcmalloc as this process's malloc (`nas.malloc`); Ray's local workers inherit it
            "tcmalloc": tcmalloc_active(),
            # depthwise convolutions with a channel multiplier in `nas.dwconv`'s C kernel (at one thread)
            "dwconv_kernel": dwconv_active()}


def write_run_files(plan: SearchPlan, *, resources: dict[str, Any]) -> None:
    """run.yaml (what was run), and on a new run space.yaml and proxy.yaml (the run's own copies), and
    environment.json. A resume appends itself to run.yaml's `resumed` list."""
    import yaml

    d = plan.run_dir
    d.mkdir(parents=True, exist_ok=True)
    o = plan.opts
    cfg = {"name": plan.name, "budget_m": plan.budget_m, "min_budget": plan.min_budget, "objective": o.objective,
           "sampler": plan.sampler, "trials": o.trials, "seed": o.seed, "data": o.data or plan.dataset.name,
           "dataset": plan.dataset.name, "space": str(o.space or plan.space.source), "proxy_hash": plan.proxy.hash,
           **resources, "early_stop": o.early_stop, "curves": o.curves, "baselines": o.baselines, "address": o.address,
           "created_at": plan.created_at, "command": plan.command, "optuna_storage": R.study_location(d).name,
           "study_name": plan.name, "strategy": o.strategy,
           "supernet": str(plan.supernet) if plan.supernet is not None else None,
           "oneshot_scoring": oneshot_scoring() if plan.oneshot else None,
           "runtime": plan.runtime.to_dict(),
           "confirm": (confirm_settings(top_k=o.confirm_top, seeds=o.confirm_seeds, protocol=o.confirm_protocol,
                                        width=o.confirm_width, max_seeds=o.confirm_max_seeds,
                                        time_budget_min=o.time_budget_min, top_steps=o.top_steps,
                                        top_seeds=o.top_seeds, headline_only=o.headline_only) if o.confirm else None)}
    if plan.resumed:
        old = R.read_run_config(d)
        cfg["created_at"] = old.get("created_at", cfg["created_at"])
        cfg["command"] = old.get("command", cfg["command"])
        cfg["resumed"] = [*old.get("resumed", []), {"at": now(), "command": plan.command}]
    R.atomic_write_text(d / R.RUN_FILE, yaml.safe_dump(cfg, sort_keys=False))
    if not plan.resumed:
        R.atomic_write_text(d / "space.yaml", plan.space.to_yaml())
        R.atomic_write_text(d / "proxy.yaml", yaml.safe_dump(plan.proxy.to_dict(), sort_keys=False))
    env = {**environment(), "runtime": {**plan.runtime.resolved().to_dict(), "threads": resources.get("cpus_per_trial"),
                                         "key": plan.runtime.key}}
    R.atomic_write_text(d / "environment.json", json.dumps(env, indent=2))


def oneshot_scoring() -> dict[str, int]:
    """What each one-shot score reads (run.yaml's `oneshot_scoring`): the training images that recalibrate the
    subnet's BatchNorm statistics and the validation images it is scored on."""
    from nas.supernet.score import CALIBRATION_IMAGES, SCORE_IMAGES

    return {"calibration_images": CALIBRATION_IMAGES, "score_images": SCORE_IMAGES}


def confirm_settings(*, top_k: int, seeds: int, protocol: str | None, width: float, max_seeds: int,
                     time_budget_min: float, top_steps: int | None = 0, top_seeds: int = 3,
                     headline_only: bool = False, stages: list[dict] | None = None) -> dict:
    """run.yaml's `confirm` entry; `stages`, once the confirmation runs, lists its rungs as data (stage, steps,
    seeds, which architectures it takes, the split it scores, the protocol's hash)."""
    out = {"top_k": top_k, "seeds": seeds, "protocol": protocol, "width": float(width), "max_seeds": max_seeds,
           "time_budget_min": float(time_budget_min), "top_steps": top_steps, "top_seeds": top_seeds}
    if headline_only:  # written only when set: runs without it read as before
        out["headline_only"] = True
    if stages is not None:
        out["stages"] = stages
    return out


def record_confirm_settings(run_dir: Path, **settings: Any) -> None:
    """run.yaml's `confirm` entry after `nas confirm` (a later --resume keeps these settings); `settings` as
    `confirm_settings` takes them."""
    import yaml

    cfg = R.read_run_config(run_dir)
    cfg["confirm"] = confirm_settings(**settings)
    R.atomic_write_text(run_dir / R.RUN_FILE, yaml.safe_dump(cfg, sort_keys=False))


class BaselineCache:
    """results/.cache/baselines.parquet: finished baseline rows keyed by (arch_id, proxy_hash, dataset, seed,
    stage, code_version, runtime): `runtime` is `nas.runtime.Runtime.key` (precision, memory format, compile,
    device kind), so a figure trained in bf16 or compiled is never reused for an fp32 run."""

    KEY = ("arch_id", "proxy_hash", "dataset", "seed", "stage", "code_version", "runtime")

    def __init__(self, root: Path, runtime: Any = None):
        from nas.runtime import Runtime

        self.path = root / CACHE_DIR / BASELINE_CACHE
        self.version = code_version()
        self.runtime = Runtime.of(runtime).key

    def _read(self):
        import pandas as pd

        if not self.path.is_file():
            return None
        try:
            df = pd.read_parquet(self.path)
        except Exception:  # a damaged cache is only a cache: retrain
            return None
        return df if {"code_version", "runtime"} <= set(df.columns) else None  # older code's: never trusted

    def _match(self, df, key: dict[str, Any]):
        m = None
        for k in self.KEY:
            hit = df[k].astype(str) == str(key[k])
            m = hit if m is None else m & hit
        return m

    def get(self, arch_id: str, proxy_hash: str, dataset: str, *, seed: int = 0,
            stage: str = "search") -> dict[str, Any] | None:
        df = self._read()
        if df is None or not len(df):
            return None
        key = {"arch_id": arch_id, "proxy_hash": proxy_hash, "dataset": dataset, "seed": seed, "stage": stage,
               "code_version": self.version, "runtime": self.runtime}
        hit = df[self._match(df, key)]
        return None if not len(hit) else hit.iloc[-1].to_dict()

    def put(self, row: dict[str, Any]) -> None:
        import pandas as pd

        df = self._read()
        new = R.normalize_trials(pd.DataFrame([R.make_row(**row)]))
        new["code_version"], new["runtime"] = self.version, self.runtime
        if df is not None and len(df):
            key = {**{k: row.get(k) for k in self.KEY}, "code_version": self.version, "runtime": self.runtime}
            key["seed"], key["stage"] = int(row.get("seed") or 0), row.get("stage") or "search"
            new = pd.concat([df[~self._match(df, key)], new], ignore_index=True)
        R.atomic_write(self.path, lambda t: new.to_parquet(t, index=False))


def params_from_row(row: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """The Optuna params of a trials row, from its knob_* columns (matched back to the declared choices)."""
    macro = str(row.get("knob_macro") or next(iter(space.macros)))
    if macro not in space.macros:
        raise RunError(f"trial {row.get('trial')} has macro {macro!r}, not in the run's space",
                       "export with the run folder's own space.yaml")
    m = space.macros[macro]
    out: dict[str, Any] = {} if len(space.macros) == 1 else {"macro": macro}
    for k, knob in m.knobs.items():
        if knob.fixed:
            continue
        v = row.get(f"{R.KNOB_PREFIX}{k}")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        for c in knob.values():
            if str(c) == str(v) or (not isinstance(c, (bool, str)) and not isinstance(v, str) and float(c) == float(v)):
                out[f"{m.prefix}.{k}"] = c
                break
        else:
            raise RunError(f"trial {row.get('trial')}: knob {k} = {v!r} is not in the space",
                           "export with the run folder's own space.yaml")
    return out
