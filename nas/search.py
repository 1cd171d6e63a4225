"""`nas search`: plan a budgeted search, run it through `nas.tuning` (Ray + Optuna), keep the run folder.

The run folder ``results/<name>/`` is the run's whole memory: run.yaml, space.yaml, proxy.yaml,
environment.json, trials.parquet/csv (one row per trial, written the moment the trial finishes),
pareto.csv, variants/<trial>.yaml, optuna.db (the Optuna study) and ray/ (Tune's folder). `--resume`
rebuilds everything from it: finished trials are kept and never retrained, trials a kill interrupted are
re-run with their own parameters, the study continues where it stopped.

Baseline results (the published variants inside the budget band, trained under the same proxy) are cached by
(arch_id, proxy hash, dataset) in ``results/.cache/baselines.parquet`` and reused by later runs.
This module never imports Ray: `nas.tuning` is imported only when a search really runs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas import results as R
from nas.config import ArchConfig
from nas.errors import ConfigError, NasError, RunError
from nas.space import (
    SearchSpace,
    arch_summary,
    check_budget,
    format_madds,
    knob_values,
    load_space,
    parse_budget,
    parse_fraction,
    parse_space,
    replay,
)

DEFAULT_TRIALS = 12
DEFAULT_MIN_BUDGET = 0.5
OBJECTIVES = ("top1", "pareto")
CACHE_DIR = ".cache"
BASELINE_CACHE = "baselines.parquet"
TRAINED = ("completed", "early_stopped", "failed", "nan")
Echo = Callable[[str], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class SearchOptions:
    """Every `nas search` flag, keyword-only; `resolve` turns it into a checked plan."""

    budget: str | int | None = "300M"
    space: str | None = None
    trials: int = DEFAULT_TRIALS
    name: str | None = None
    data: str | None = None
    proxy: str | None = None
    epochs: int | None = None
    seed: int = 0
    objective: str = "top1"
    min_budget: float = DEFAULT_MIN_BUDGET
    early_stop: bool = True
    gpus_per_trial: float | None = None
    cpus_per_trial: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    resume: str | None = None
    dry_run: bool = False
    results_root: str = "results"
    baselines: bool = True
    screen_samples: int = 2000


@dataclass
class Plan:
    """A checked search: the space, budget band, proxy, dataset and the baselines to train or reuse."""

    opts: SearchOptions
    name: str
    run_dir: Path
    space: SearchSpace
    budget: int
    min_budget: float
    proxy: Any
    dataset: Any
    screen: Any
    baselines: list[dict[str, Any]]
    resumed: bool = False
    command: str = ""
    created_at: str = field(default_factory=_now)

    @property
    def budget_m(self) -> float:
        return self.budget / 1e6


def _check_opts(o: SearchOptions) -> None:
    if o.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {o.objective!r} is invalid", f"one of: {', '.join(OBJECTIVES)}")
    if not isinstance(o.trials, int) or o.trials < 0:
        raise ConfigError(f"--trials {o.trials!r} is invalid", "an integer >= 0 (architectures to train)")
    if o.epochs is not None and o.epochs < 1:
        raise ConfigError(f"--epochs {o.epochs!r} is invalid", "an integer >= 1")
    if o.gpus_per_trial is not None and o.gpus_per_trial < 0:
        raise ConfigError(f"--gpus-per-trial {o.gpus_per_trial!r} is invalid", "a number >= 0 (fractions allowed)")
    if o.max_concurrent is not None and o.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent {o.max_concurrent!r} is invalid", "an integer >= 1")
    if o.cpus_per_trial is not None and o.cpus_per_trial < 1:
        raise ConfigError(f"--cpus-per-trial {o.cpus_per_trial!r} is invalid", "an integer >= 1")
    if o.name is not None and (not o.name or "/" in o.name or o.name.startswith(".")):
        raise ConfigError(f"--name {o.name!r} is invalid", "a plain folder name such as budget300M-try2")


# The options a run folder fixes, with their flags: a resume keeps the run's own values.
_RUN_SETTINGS = {"budget": "--budget", "space": "--space", "data": "--data", "proxy": "--proxy", "epochs": "--epochs",
                 "seed": "--seed", "objective": "--objective", "min_budget": "--min-budget",
                 "early_stop": "--no-early-stop", "baselines": "--no-baselines", "name": "--name"}


def _resume_conflicts(given: SearchOptions, kept: SearchOptions) -> list[str]:
    """Flags given away from their defaults that would change a setting of the resumed run."""
    default = SearchOptions()
    out = []
    for key, flag in _RUN_SETTINGS.items():
        value = getattr(given, key)
        if value == getattr(default, key):
            continue
        if key == "budget":
            try:
                same = parse_budget(value) == kept.budget
            except NasError:
                same = False
        else:  # space, proxy and epochs are the run's own copies (space.yaml, proxy.yaml): always a change
            same = key not in ("space", "proxy", "epochs") and value == getattr(kept, key)
        if not same:
            out.append(f"{flag} {value}" if not isinstance(value, bool) else flag)
    return out


def _options_from_run(run_dir: Path, given: SearchOptions) -> SearchOptions:
    cfg = R.read_run_config(run_dir)
    if not cfg or "budget_m" not in cfg:
        raise RunError(f"{run_dir} has no usable run.yaml", "pass a folder written by `nas search` (results/<name>)")
    o = SearchOptions(**{**asdict(given)})
    o.budget = int(round(float(cfg["budget_m"]) * 1e6))
    o.min_budget = float(cfg.get("min_budget", DEFAULT_MIN_BUDGET))
    o.objective = cfg.get("objective", "top1")
    o.trials = max(int(cfg.get("trials", DEFAULT_TRIALS)), given.trials if given.trials != DEFAULT_TRIALS else 0)
    o.seed = int(cfg.get("seed", 0))
    o.data = cfg.get("data")
    o.name = cfg.get("name", run_dir.name)
    o.early_stop = bool(cfg.get("early_stop", True))
    o.baselines = bool(cfg.get("baselines", True))
    o.results_root = str(run_dir.parent)
    for k in ("max_concurrent", "gpus_per_trial", "cpus_per_trial"):
        if getattr(given, k) is None and cfg.get(k) is not None:
            setattr(o, k, cfg[k])
    conflicts = _resume_conflicts(given, o)
    if conflicts:
        raise ConfigError(f"--resume keeps the settings of {run_dir}; {', '.join(conflicts)} would change them",
                          "drop those options (--trials N extends the run), or start a new run without --resume")
    return o


def plan_search(opts: SearchOptions, *, command: str = "") -> Plan:
    """Check every input (budget, space, proxy, dataset, run folder) before anything is started."""
    from nas.data import load_dataset
    from nas.train import load_proxy, proxy_from_dict

    resumed = bool(opts.resume)
    if resumed:
        run_dir = Path(str(opts.resume))
        if not (run_dir / R.RUN_FILE).is_file():
            raise RunError(f"cannot resume {run_dir}: no {R.RUN_FILE} there",
                           "pass a run folder written by `nas search` (results/<name>)")
        opts = _options_from_run(run_dir, opts)
    _check_opts(opts)
    budget = parse_budget(opts.budget if opts.budget is not None else "300M")
    min_budget = parse_fraction(opts.min_budget)
    if resumed:
        from nas.config import load_yaml

        space = parse_space(load_yaml(run_dir / "space.yaml"), source=str(run_dir / "space.yaml"))
        proxy = proxy_from_dict(load_yaml(run_dir / "proxy.yaml"), where=str(run_dir / "proxy.yaml"))
    else:
        space = load_space(opts.space)
        proxy = load_proxy(opts.proxy, epochs=opts.epochs)
    screen = check_budget(space, budget, min_budget=min_budget, samples=opts.screen_samples, seed=opts.seed)
    dataset = load_dataset(opts.data)
    name = opts.name or f"budget{format_madds(budget)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not resumed:
        run_dir = Path(opts.results_root) / name
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunError(f"run folder {run_dir} already exists",
                           f"continue it with `nas search --resume {run_dir}`, or pick another --name")
    baselines = baselines_in_band(budget, min_budget, num_classes=space.num_classes) if opts.baselines else []
    return Plan(opts=opts, name=name, run_dir=run_dir, space=space, budget=budget, min_budget=min_budget,
                proxy=proxy, dataset=dataset, screen=screen, baselines=baselines, resumed=resumed, command=command)


def baselines_in_band(budget: int, min_budget: float, *, num_classes: int = 1000) -> list[dict[str, Any]]:
    """Published variants whose analytic MAdds lie in [min_budget*budget, budget] (same class count only)."""
    from nas.madds import count_madds
    from nas.variants import get_variant, list_variants, published

    out = []
    for name in list_variants():
        arch = get_variant(name)
        if arch.num_classes != num_classes:
            continue
        m = count_madds(arch)
        if min_budget * budget <= m <= budget:
            pub = published(name)
            out.append({"kind": "baseline", "trial": name, "name": name, "number": -1, "arch_id": arch.arch_id,
                        "madds_m": m / 1e6, "family": pub.get("family", arch.family),
                        "published_top1": pub.get("top1"), "published_madds_m": pub.get("madds_m"), "gpus": 0})
    return out


# ---------------------------------------------------------------------------------------------------------
# Resources


def choose_resources(*, cpus: int, gpus: float, cpus_per_trial: int | None, gpus_per_trial: float | None,
                     max_concurrent: int | None) -> dict[str, Any]:
    """Trials on GPUs when Ray sees them, else on CPUs: one core per trial, as many trials as cores
    (BENCHMARKS.md "Search": a second thread speeds one trial up <= 1.2x, a second trial ~2x in aggregate)."""
    if gpus_per_trial is None:
        gpus_per_trial = 1.0 if gpus >= 1 else 0.0
    if gpus_per_trial > 0 and gpus <= 0:
        raise ConfigError(f"--gpus-per-trial {gpus_per_trial} asked, but Ray sees no GPU",
                          "drop --gpus-per-trial (trials then run on CPUs) or run on a machine with a GPU")
    cpt = cpus_per_trial or 1
    if cpt > max(1, cpus):
        raise ConfigError(f"--cpus-per-trial {cpt} is more than the {cpus} CPUs Ray sees", f"use 1..{cpus}")
    slots = max(1, int(cpus // cpt))
    if gpus_per_trial > 0:
        slots = min(slots, max(1, int(gpus // gpus_per_trial)))
    return {"cpus_per_trial": cpt, "gpus_per_trial": gpus_per_trial, "max_concurrent": min(max_concurrent or slots, slots)
            if max_concurrent is None else max_concurrent}


# ---------------------------------------------------------------------------------------------------------
# Run folder


def environment() -> dict[str, Any]:
    import optuna
    import torch

    try:
        import ray

        ray_v = ray.__version__
    except Exception:  # pragma: no cover
        ray_v = None
    devs = ["cpu"] + [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"python": sys.version.split()[0], "torch": torch.__version__, "ray": ray_v, "optuna": optuna.__version__,
            "platform": platform.platform(), "devices": devs, "cpu_count": os.cpu_count(),
            "hostname": socket.gethostname()}


def write_run_files(plan: Plan, *, resources: dict[str, Any]) -> None:
    import yaml

    d = plan.run_dir
    d.mkdir(parents=True, exist_ok=True)
    o = plan.opts
    cfg = {"name": plan.name, "budget_m": plan.budget_m, "min_budget": plan.min_budget, "objective": o.objective,
           "trials": o.trials, "seed": o.seed, "data": o.data or plan.dataset.name, "dataset": plan.dataset.name,
           "space": str(o.space or plan.space.source), "proxy_hash": plan.proxy.hash,
           "max_concurrent": resources["max_concurrent"], "gpus_per_trial": resources["gpus_per_trial"],
           "cpus_per_trial": resources["cpus_per_trial"], "early_stop": o.early_stop, "baselines": o.baselines,
           "address": o.address, "created_at": plan.created_at, "command": plan.command,
           "optuna_storage": "sqlite:///optuna.db", "study_name": plan.name}
    if plan.resumed:
        old = R.read_run_config(d)
        cfg["created_at"] = old.get("created_at", cfg["created_at"])
        cfg["command"] = old.get("command", cfg["command"])
        cfg["resumed"] = [*old.get("resumed", []), {"at": _now(), "command": plan.command}]
    R.atomic_write_text(d / R.RUN_FILE, yaml.safe_dump(cfg, sort_keys=False))
    if not plan.resumed:
        R.atomic_write_text(d / "space.yaml", plan.space.to_yaml())
        R.atomic_write_text(d / "proxy.yaml", yaml.safe_dump(plan.proxy.to_dict(), sort_keys=False))
    R.atomic_write_text(d / "environment.json", json.dumps(environment(), indent=2))


class BaselineCache:
    """results/.cache/baselines.parquet: finished baseline rows keyed by (arch_id, proxy_hash, dataset)."""

    def __init__(self, root: Path):
        self.path = root / CACHE_DIR / BASELINE_CACHE

    def _read(self):
        import pandas as pd

        if not self.path.is_file():
            return None
        try:
            return pd.read_parquet(self.path)
        except Exception:  # a damaged cache is only a cache: retrain
            return None

    def get(self, arch_id: str, proxy_hash: str, dataset: str) -> dict[str, Any] | None:
        df = self._read()
        if df is None or not len(df):
            return None
        hit = df[(df["arch_id"] == arch_id) & (df["proxy_hash"] == proxy_hash) & (df["dataset"] == dataset)]
        return None if not len(hit) else hit.iloc[-1].to_dict()

    def put(self, row: dict[str, Any]) -> None:
        import pandas as pd

        df = self._read()
        new = R.normalize_trials(pd.DataFrame([R.make_row(**row)]))
        if df is not None and len(df):
            keep = ~((df["arch_id"] == row["arch_id"]) & (df["proxy_hash"] == row["proxy_hash"])
                     & (df["dataset"] == row["dataset"]))
            new = pd.concat([df[keep], new], ignore_index=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        R._atomic_write(self.path, lambda t: new.to_parquet(t, index=False))


class Recorder:
    """Keeps the trials of a run and writes them (and the front, variants, dashboard) after every change."""

    def __init__(self, plan: Plan, *, echo: Echo, total: int, dashboard: Path | None):
        self.plan, self.echo, self.total, self.dashboard = plan, echo, total, dashboard
        d = plan.run_dir
        self.rows: dict[str, dict[str, Any]] = {}
        if (d / R.TRIALS_PARQUET).is_file() or (d / R.TRIALS_CSV).is_file():
            for r in R.read_trials(d).to_dict("records"):
                self.rows[str(r["trial"])] = r
        self.cache = BaselineCache(Path(plan.opts.results_root))
        self.params: dict[str, dict[str, Any]] = {}
        self.started: dict[str, str] = {}
        self.t0 = time.time()
        self.finished_here = 0
        self.refused = 0
        self._params_m: dict[str, float] = {}
        self._viz_failed = False

    # -- queries -------------------------------------------------------------------------------------
    def trained(self, kind: str = "searched") -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["kind"] == kind and r["status"] in TRAINED]

    def known_result(self, arch_id: str) -> float | None:
        for r in self.rows.values():
            if r["arch_id"] == arch_id and r["status"] in R.FINISHED_OK and _finite(r["val_top1"]):
                return float(r["val_top1"])
        return None

    # -- rows ----------------------------------------------------------------------------------------
    def _base_row(self, cfg: dict[str, Any]) -> dict[str, Any]:
        p = self.plan
        row: dict[str, Any] = {"trial": cfg["trial"], "number": int(cfg.get("number", -1)), "kind": cfg["kind"],
                               "name": cfg.get("name", cfg["trial"]), "arch_id": cfg["arch_id"],
                               "madds_m": float(cfg["madds_m"]), "budget_m": p.budget_m, "proxy_hash": p.proxy.hash,
                               "dataset": p.dataset.name, "started_at": self.started.get(cfg["trial"], "")}
        if cfg["kind"] == "baseline":
            from nas.variants import get_variant

            arch = get_variant(cfg["name"])
            row.update(family=cfg["family"], published_top1=cfg.get("published_top1"),
                       published_madds_m=cfg.get("published_madds_m"), rebuild_cmd=f"nas train {cfg['name']}")
        else:
            arch = replay(cfg["params"], p.space)
            self.params[cfg["trial"]] = dict(cfg["params"])
            row["family"] = arch.family
            row.update({f"knob_{k}": v for k, v in knob_values(cfg["params"], p.space).items()})
            row["rebuild_cmd"] = f"nas export {p.run_dir} {cfg['trial']}"
        row.update(arch_summary(arch))
        row["params_m"] = self._count_params(arch)
        return row

    def _count_params(self, arch: ArchConfig) -> float:
        if arch.arch_id not in self._params_m:
            from nas.builder import build_model, count_params

            n = self.plan.dataset.num_classes
            self._params_m[arch.arch_id] = count_params(build_model(arch, num_classes=n,
                                                                   in_chans=self.plan.dataset.in_chans)) / 1e6
        return self._params_m[arch.arch_id]

    def on_start(self, cfg: dict[str, Any]) -> None:
        self.started[cfg["trial"]] = _now()

    def on_refused(self, prop: Any) -> None:
        """A proposal the budget screen refused (or a duplicate of a trained architecture)."""
        if prop.status == "duplicate":
            return
        self.refused += 1
        cfg = {"kind": "searched", "trial": f"t{prop.number:04d}", "number": prop.number, "params": prop.params,
               "arch_id": prop.arch.arch_id, "madds_m": prop.madds / 1e6}
        row = self._base_row(cfg)
        side = "over the budget" if prop.status == "over_budget" else f"under the band floor {self.plan.min_budget:g}x"
        row.update(status="over_budget", epochs_done=0, started_at=_now(), finished_at=_now(),
                   error=f"{format_madds(prop.madds)} MAdds is {side} ({format_madds(self.plan.budget)}); not trained")
        self.rows[row["trial"]] = row
        self.flush(quiet=True)

    def on_finished(self, cfg: dict[str, Any], result: dict[str, Any] | None, error: bool,
                    *, interrupted: bool = False) -> None:
        if interrupted:
            return  # killed by Ctrl-C mid-training: the resume re-runs it
        res = dict(result or {})
        row = self._base_row(cfg)
        status = res.get("status") if res.get("final") else ("early_stopped" if res else "failed")
        if status == "early_stopped" and int(res.get("epoch") or 0) >= self.plan.proxy.epochs:
            status = "completed"
        if error and status not in ("failed", "nan"):
            status = "failed"
        v = res.get("val_top1")
        row.update(status=status or "failed", error=str(res.get("error") or ("" if not error else "trial errored")),
                   val_top1=v if status in R.FINISHED_OK else math.nan,
                   best_val_top1=res.get("best_val_top1"), val_curve=res.get("val_curve", "[]"),
                   epochs_done=int(res.get("epoch") or 0), wall_s=res.get("wall_s"),
                   images_per_s=res.get("images_per_s"), finished_at=_now())
        if res.get("params_m"):
            row["params_m"] = float(res["params_m"])
        self.rows[row["trial"]] = row
        if cfg["kind"] == "baseline" and row["status"] == "completed":
            self.cache.put(row)
        self.finished_here += 1
        self.flush()

    def on_error(self, cfg: dict[str, Any], message: str) -> None:
        if cfg.get("trial") in self.rows and self.rows[cfg["trial"]]["status"] != "running":
            return
        self.on_finished(cfg, {"status": "failed", "error": message, "final": True}, True)

    def add_cached_baseline(self, cfg: dict[str, Any], cached: dict[str, Any]) -> None:
        row = self._base_row(cfg)
        for k in ("status", "val_top1", "best_val_top1", "val_curve", "epochs_done", "wall_s", "images_per_s",
                  "params_m", "started_at", "finished_at", "error"):
            if k in cached:
                row[k] = cached[k]
        row["error"] = "reused from results/.cache/baselines.parquet (same arch, proxy and dataset)"
        self.rows[row["trial"]] = row

    # -- files ---------------------------------------------------------------------------------------
    def frame(self):
        import pandas as pd

        return R.normalize_trials(pd.DataFrame(list(self.rows.values()))) if self.rows else R.empty_trials()

    def flush(self, *, quiet: bool = False) -> None:
        d = self.plan.run_dir
        df = self.frame()
        front = R.compute_pareto(df)
        on_front = set(front["trial"].astype(str))
        vdir = d / R.VARIANTS_DIR
        for t in on_front:
            path = vdir / f"{t}.yaml"
            if not path.is_file():
                arch = self.arch_of(t)
                arch.replace(name=t).to_yaml(path)
        if vdir.is_dir():
            for f in vdir.glob("*.yaml"):
                if f.stem not in on_front:
                    f.unlink()
        for t, r in self.rows.items():
            r["config_path"] = f"{R.VARIANTS_DIR}/{t}.yaml" if t in on_front else ""
            if t in on_front:
                r["rebuild_cmd"] = f"nas train {d / R.VARIANTS_DIR / f'{t}.yaml'}"
            elif r["kind"] == "searched":
                r["rebuild_cmd"] = f"nas export {d} {t}"
        df = R.write_trials(d, self.frame())
        R.write_pareto(d, df)
        if not quiet:
            self._dashboard()
            self.echo(self.progress_line(df, front))

    def arch_of(self, trial: str) -> ArchConfig:
        r = self.rows[trial]
        if r["kind"] == "baseline":
            from nas.variants import get_variant

            return get_variant(str(r["name"]))
        params = self.params.get(trial) or params_from_row(r, self.plan.space)
        return replay(params, self.plan.space)

    def _dashboard(self) -> None:
        if self.dashboard is None or self._viz_failed:
            return
        try:
            from nas.viz import write_dashboard

            write_dashboard(self.plan.run_dir, out=self.dashboard)
        except Exception as e:  # the dashboard must never stop a search
            self._viz_failed = True
            self.echo(f"  (dashboard not written: {type(e).__name__}: {e})")

    def progress_line(self, df: Any, front: Any) -> str:
        searched = df[(df["kind"] == "searched") & df["status"].isin(TRAINED)]
        ok = df[df["status"].isin(R.FINISHED_OK) & (df["madds_m"] <= self.plan.budget_m)]
        best = ok.loc[ok["val_top1"].idxmax()] if len(ok) and ok["val_top1"].notna().any() else None
        best_s = f"best {best['val_top1']:.1f}% @ {best['madds_m']:.0f}M ({best['trial']})" if best is not None else "best -"
        done = len(searched) + len(df[(df["kind"] == "baseline") & df["status"].isin(TRAINED)])
        el = time.time() - self.t0
        left = max(0, self.total - done)
        eta = f"ETA {_fmt_s(el / self.finished_here * left)}" if self.finished_here and left else ("done" if not left else "ETA -")
        return (f"[{done:>3}/{self.total}] {len(searched)} searched, {done - len(searched)} baselines | {best_s} | "
                f"pareto {len(front)} | refused {int((df['status'] == 'over_budget').sum())} | "
                f"{_fmt_s(el)} elapsed, {eta}")


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
        v = row.get(f"knob_{k}")
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


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


# ---------------------------------------------------------------------------------------------------------
# Dry run


@dataclass
class DryRun:
    plan: Plan
    share_by_macro: dict[str, float]
    trial_s: float
    est_wall_s: float
    resources: dict[str, Any]
    cached_baselines: list[str]

    def lines(self) -> list[str]:
        p, sc = self.plan, self.plan.screen
        out = [f"space {p.space.name} ({p.space.source}): {sc.samples} sampled architectures, analytic MAdds",
               f"  budget band [{format_madds(sc.low)}, {format_madds(p.budget)}]: {100 * sc.share_in_band:.1f}% of the "
               f"space fits ({100 * sc.share_under:.1f}% under budget); smallest reachable {format_madds(sc.min_madds)}",
               "  share in band by macro: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in self.share_by_macro.items()),
               f"plan: {p.opts.trials} searched trials ({p.opts.objective}, "
               f"{'TPE' if p.opts.objective == 'top1' else 'NSGA-II'}, seed {p.opts.seed}) + {len(p.baselines)} baselines "
               f"({', '.join(b['name'] for b in p.baselines) or 'none in band'}"
               f"{'; cached: ' + ', '.join(self.cached_baselines) if self.cached_baselines else ''})",
               f"  proxy {p.proxy.hash}: {p.proxy.epochs} epochs, {p.proxy.train_images} images at {p.proxy.resolution}px "
               f"on {p.dataset.name}; early stop by MAdds band: {'on' if p.opts.early_stop else 'off'}",
               f"  resources: {self.resources['max_concurrent']} concurrent x {self.resources['cpus_per_trial']} CPU"
               f" (+{self.resources['gpus_per_trial']} GPU) per trial",
               f"estimate: ~{self.trial_s:.0f} s per trial, ~{_fmt_s(self.est_wall_s)} wall on this machine "
               f"(measured train steps of an in-band network; nothing trained)"]
        return out


def estimate_trial_seconds(arch: ArchConfig, proxy: Any, dataset: Any, *, threads: int = 1) -> float:
    """Time a few real training steps of `arch` at the proxy resolution and scale to one proxy trial."""
    import torch

    from nas.builder import build_model

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = build_model(arch, num_classes=dataset.num_classes, in_chans=dataset.in_chans,
                            input_size=proxy.resolution)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        bs = min(proxy.batch_size, 64)
        x = torch.randn(bs, dataset.in_chans, proxy.resolution, proxy.resolution)
        y = torch.randint(0, dataset.num_classes, (bs,))
        times = []
        for _ in range(3):
            t = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
        per_img = min(times[1:]) / bs
    finally:
        torch.set_num_threads(prev)
    per_epoch = per_img * proxy.train_images + per_img / 3 * proxy.val_images
    return per_epoch * proxy.epochs + 2.0


def dry_run(plan: Plan) -> DryRun:
    from nas.madds import count_madds
    from nas.space import RandomTrial, sample_arch

    sc = plan.screen
    counts: dict[str, list[int]] = {m: [0, 0] for m in plan.space.macros}
    for i in range(min(sc.samples, 1000)):
        t = RandomTrial(plan.opts.seed * 100003 + i)
        a = sample_arch(t, plan.space)
        m = t.params.get("macro", next(iter(plan.space.macros)))
        counts[m][1] += 1
        counts[m][0] += int(sc.low <= count_madds(a) <= plan.budget)
    share = {k: (v[0] / v[1] if v[1] else 0.0) for k, v in counts.items()}
    cpus = os.cpu_count() or 1
    res = choose_resources(cpus=cpus, gpus=0, cpus_per_trial=plan.opts.cpus_per_trial,
                           gpus_per_trial=plan.opts.gpus_per_trial or 0, max_concurrent=plan.opts.max_concurrent)
    probe = replay(sc.in_band_params[len(sc.in_band_params) // 2], plan.space) if sc.in_band_params else None
    trial_s = estimate_trial_seconds(probe, plan.proxy, plan.dataset, threads=res["cpus_per_trial"]) if probe else 0.0
    cache = BaselineCache(Path(plan.opts.results_root))
    cached = [b["name"] for b in plan.baselines if cache.get(b["arch_id"], plan.proxy.hash, plan.dataset.name)]
    n = plan.opts.trials + len(plan.baselines) - len(cached)
    # concurrent trials share the machine's memory bandwidth: ~1.3x slower each than alone (measured)
    slow = 1.3 if res["max_concurrent"] > 1 else 1.0
    est = 15.0 + math.ceil(n / res["max_concurrent"]) * trial_s * slow
    return DryRun(plan, share, trial_s, est, res, cached)


# ---------------------------------------------------------------------------------------------------------
# The search


@dataclass
class SearchOutcome:
    run_dir: Path
    trials: Any
    pareto: Any
    searched: int
    baselines: int
    refused: int
    wall_s: float
    interrupted: bool = False
    dashboard: Path | None = None


def run_search(plan: Plan, *, echo: Echo = print, dashboard: Path | None = None) -> SearchOutcome:
    """Run (or resume) the planned search; every finished trial is in the run folder the moment it ends."""
    from nas import tuning

    t0 = time.time()
    o = plan.opts
    d = plan.run_dir
    d.mkdir(parents=True, exist_ok=True)
    info = tuning.init_ray(address=o.address, num_cpus=None if o.address else os.cpu_count(), log_dir=d / "ray")
    res_avail = info["resources"]
    resources = choose_resources(cpus=int(res_avail.get("CPU", 1)), gpus=float(res_avail.get("GPU", 0)),
                                 cpus_per_trial=o.cpus_per_trial, gpus_per_trial=o.gpus_per_trial,
                                 max_concurrent=o.max_concurrent)
    write_run_files(plan, resources=resources)
    rec = Recorder(plan, echo=echo, total=o.trials + len(plan.baselines), dashboard=dashboard)
    # baselines: reuse this run's rows, then the cross-run cache, train the rest
    pending = []
    for b in plan.baselines:
        row = rec.rows.get(b["trial"])
        if row is not None and row["status"] in TRAINED:
            continue
        cached = rec.cache.get(b["arch_id"], plan.proxy.hash, plan.dataset.name)
        if cached is not None:
            rec.add_cached_baseline(b, cached)
            echo(f"baseline {b['name']}: reused the cached result ({cached.get('val_top1', float('nan')):.2f}%)")
        else:
            pending.append(dict(b, gpus=resources["gpus_per_trial"]))
    storage_url = f"sqlite:///{(d / 'optuna.db').resolve()}"
    done_numbers = {int(r["number"]) for r in rec.rows.values() if r["kind"] == "searched" and r["status"] != "running"}
    results = {int(r["number"]): (float(r["val_top1"]) if _finite(r["val_top1"]) else None)
               for r in rec.rows.values() if r["kind"] == "searched"}
    n_study, rerun = tuning.prepare_study(storage_url, plan.name, objective=o.objective, done_numbers=done_numbers,
                                          results=results)
    remaining = max(0, o.trials - len(rec.trained("searched")))
    if plan.resumed:
        echo(f"resuming {d}: {len(rec.trained('searched'))} searched trials kept, {len(rerun)} interrupted to re-run, "
             f"{remaining} to go")
    rec.flush(quiet=True)
    echo(f"run folder {d}  (optuna-dashboard {d / 'optuna.db'})")
    if dashboard is not None:
        echo(f"dashboard  {dashboard}  (rewritten after every trial)")
    gpu = f" + {resources['gpus_per_trial']:g} GPU" if resources["gpus_per_trial"] else ""
    echo(f"searching {plan.space.name} for {remaining} architectures in [{format_madds(plan.screen.low)}, "
         f"{format_madds(plan.budget)}] + {len(pending)} baselines; {resources['max_concurrent']} at a time, "
         f"{resources['cpus_per_trial']} CPU{gpu} each; Ray: {info.get('nodes', 1)} node(s)")
    spec = tuning.TuneSpec(space=plan.space, budget=plan.budget, min_budget=plan.min_budget, objective=o.objective,
                           trials=remaining, seed=o.seed + n_study, proxy=plan.proxy.to_dict(),
                           data=str(o.data or plan.dataset.name) if o.data else plan.dataset.name,
                           epochs=plan.proxy.epochs, storage_url=storage_url, study_name=plan.name,
                           storage_path=d / "ray", baselines=pending, early_stop=o.early_stop,
                           cpus_per_trial=resources["cpus_per_trial"], gpus_per_trial=resources["gpus_per_trial"],
                           max_concurrent=resources["max_concurrent"])
    hooks = tuning.SearchHooks(on_refused=rec.on_refused, on_finished=rec.on_finished,
                               known_result=rec.known_result, count_madds=_count)
    interrupted = False
    try:
        if remaining or pending:
            searcher = tuning.run_tune(spec, hooks, on_error=rec.on_error, on_start=rec.on_start)
            interrupted = searcher.interrupted
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if not o.address:
            tuning.shutdown_ray(keep_logs_in=d / "ray" / "logs")
    # Ray Tune catches Ctrl-C itself and returns early, so an interrupted run is also one that stopped short
    # of its targets (failed and NaN trials count as finished: Tune ends only when every sample has).
    if len(rec.trained("searched")) < o.trials or len(rec.trained("baseline")) < len(plan.baselines):
        interrupted = True
    rec.flush(quiet=True)
    rec._dashboard()
    df = rec.frame()
    out = SearchOutcome(run_dir=d, trials=df, pareto=R.compute_pareto(df), searched=len(rec.trained("searched")),
                        baselines=len(rec.trained("baseline")), refused=int((df["status"] == "over_budget").sum()),
                        wall_s=time.time() - t0, interrupted=interrupted, dashboard=dashboard)
    return out


def _count(arch: ArchConfig) -> int:
    from nas.madds import count_madds

    return int(count_madds(arch))


def summary_lines(out: SearchOutcome) -> list[str]:
    """The end-of-run table: the Pareto front against the baselines trained under the same proxy."""
    df, front = out.trials, out.pareto
    lines = [f"{out.searched} searched + {out.baselines} baselines trained, {out.refused} proposals refused by the "
             f"budget screen, {_fmt_s(out.wall_s)}" + ("  (interrupted)" if out.interrupted else "")]
    base = df[(df["kind"] == "baseline") & df["status"].isin(R.FINISHED_OK)].sort_values("madds_m")
    lines.append(f"{'':2}{'trial':<20} {'family':<14} {'MAdds':>8} {'params':>7} {'val top-1':>9} {'vs base':>8}")
    for _, r in front.iterrows():
        gain = r.get(R.PARETO_EXTRA)
        g = f"{gain:+.2f}" if _finite(gain) else "-"
        lines.append(f"* {str(r['trial']):<20} {str(r['family']):<14} {r['madds_m']:>7.1f}M {r['params_m']:>6.2f}M "
                     f"{r['val_top1']:>8.2f}% {g:>8}")
    for _, r in base.iterrows():
        if r["trial"] in set(front["trial"]):
            continue
        lines.append(f"  {str(r['trial']):<20} {str(r['family']):<14} {r['madds_m']:>7.1f}M {r['params_m']:>6.2f}M "
                     f"{r['val_top1']:>8.2f}%  baseline")
    lines.append("(* Pareto-optimal: max val top-1, min MAdds; 'vs base' = minus the best baseline at <= MAdds)")
    lines.append(f"front configs: {out.run_dir / R.VARIANTS_DIR}/  (nas train <yaml>, nas export {out.run_dir} <trial>)")
    return lines


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["nas", *sys.argv[1:]]) if sys.argv else "nas search"


# ---------------------------------------------------------------------------------------------------------
# Export


def trial_arch(run_dir: str | Path, trial: str) -> ArchConfig:
    """The architecture of one trial of a run, rebuilt from the run folder alone (no Ray, no study)."""
    from nas.config import load_yaml

    d = Path(run_dir)
    run = R.load_run(d)
    df = run.trials
    hit = df[df["trial"].astype(str) == str(trial)]
    if not len(hit):
        some = ", ".join(df["trial"].astype(str).tolist()[:8])
        raise RunError(f"no trial {trial!r} in {d}", f"pick one of: {some}{' ...' if len(df) > 8 else ''}")
    row = hit.iloc[0].to_dict()
    if row.get("config_path") and (d / str(row["config_path"])).is_file():
        return ArchConfig.from_yaml(d / str(row["config_path"]))
    if row["kind"] == "baseline":
        from nas.variants import get_variant

        return get_variant(str(row["name"]))
    space = parse_space(load_yaml(d / "space.yaml"), source=str(d / "space.yaml"))
    arch = replay(params_from_row(row, space), space)
    if arch.arch_id != row["arch_id"]:
        raise RunError(f"trial {trial}: its knobs rebuild arch {arch.arch_id}, the row says {row['arch_id']}",
                       "the run's space.yaml was edited; restore it")
    return arch.replace(name=str(trial))


def export_trial(run_dir: str | Path, trial: str, *, out: str | Path | None = None, onnx: bool = True,
                 opset: int = 18) -> dict[str, Path]:
    """Write `<trial>.yaml` (ArchConfig) and `<trial>.onnx` (the network at its target resolution)."""
    arch = trial_arch(run_dir, trial)
    d = Path(out) if out else Path(run_dir) / "export"
    d.mkdir(parents=True, exist_ok=True)
    paths = {"yaml": d / f"{trial}.yaml"}
    arch.to_yaml(paths["yaml"])
    if onnx:
        paths["onnx"] = export_onnx(arch, d / f"{trial}.onnx", opset=opset)
    return paths


def export_onnx(arch: ArchConfig, path: Path, *, opset: int = 18) -> Path:
    """torch.onnx.export at the target resolution with a dynamic batch axis (input "image" [batch, C, R, R],
    output "logits" [batch, classes]; the dynamo exporter, the legacy one if that fails);
    the file is checked with onnx.checker. Opset 18 is the dynamo exporter's own (a lower one makes it run
    a version converter that fails loudly on our graphs); its progress lines and warnings are silenced."""
    import logging
    import warnings

    import torch

    from nas.builder import build_model

    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package", "pip install 'hybrid-nas[export]'") from None
    model = build_model(arch).eval()
    # batch 2, not 1: the exporter specializes a size-1 dim to a constant, and the batch axis is dynamic
    x = torch.randn(2, arch.in_chans, arch.resolution, arch.resolution)
    errors = []
    for dynamo in (True, False):
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name in ("torch.onnx", "onnxscript"):
                    logging.getLogger(name).setLevel(logging.ERROR)
                torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=dynamo, verbose=False,
                                  input_names=["image"], output_names=["logits"],
                                  dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
            onnx.checker.check_model(str(path))
            return path
        except Exception as e:  # fall back to the legacy exporter
            errors.append(f"{'dynamo' if dynamo else 'legacy'}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    raise RunError(f"ONNX export of {arch.name} failed ({'; '.join(errors)})", "export the YAML only with --no-onnx")
