"""A supernet run folder: plan it (check every input, write supernet.yaml), train it through Ray, resume it,
and find one for a one-shot search.

    results/<name>/supernet.yaml   the settings (space, band, macros, steps, protocol, data, seed)
    results/<name>/supernet.pt     the last checkpoint (weights, optimizer, step, loss history)
    results/<name>/weights.pt      the finished supernet (what `--supernet` and `extract` read)
    results/<name>/progress.csv    step, losses of the largest and smallest subnets, speed
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nas import results as R
from nas.errors import ConfigError, RunError
from nas.supernet.train import CHECKPOINT, SETTINGS, WEIGHTS, SupernetSettings

DEFAULT_STEPS = 400  # about 10 minutes on 2 CPU cores (BENCHMARKS.md, "Supernet")
SUPERNET_PROTOCOL = "supernet"


@dataclass
class SupernetOptions:
    budget: str | int | None = None
    min_budget: float | None = None
    space: str | None = None
    macros: list[str] | None = None
    steps: int | None = None
    data: str | None = None
    protocol: str | None = None
    name: str | None = None
    seed: int | None = None
    resume: str | None = None
    results_root: str = "results"
    address: str | None = None
    checkpoint_every_s: float | None = None


def plan_supernet(o: SupernetOptions) -> tuple[SupernetSettings, Path, bool]:
    """Checked settings and the run folder (written on a new run); a resume keeps the folder's settings and
    refuses flags that would change them."""
    import yaml

    from nas.config import load_yaml
    from nas.data import load_dataset
    from nas.space import (
        DEFAULT_BUDGET,
        DEFAULT_MIN_BUDGET,
        check_budget,
        format_madds,
        load_space,
        parse_budget,
        parse_fraction,
    )
    from nas.supernet.sampling import band_pool
    from nas.train import load_proxy

    if o.steps is not None and (not isinstance(o.steps, int) or o.steps < 1):
        raise ConfigError(f"--steps {o.steps!r} is invalid", "an integer >= 1 (sandwich steps to train)")
    if o.checkpoint_every_s is not None and o.checkpoint_every_s <= 0:
        raise ConfigError(f"--checkpoint-every {o.checkpoint_every_s!r} is invalid", "a number of seconds > 0")
    if o.resume:
        d = Path(o.resume)
        if not (d / SETTINGS).is_file():
            raise RunError(f"cannot resume {d}: no {SETTINGS} there",
                           "pass a folder written by `nas supernet train` (results/<name>)")
        s = SupernetSettings(**load_yaml(d / SETTINGS))
        changed = [flag for flag, v in (("--budget", o.budget), ("--min-budget", o.min_budget), ("--space", o.space),
                                        ("--macro", o.macros), ("--steps", o.steps), ("--data", o.data),
                                        ("--protocol", o.protocol), ("--seed", o.seed)) if v is not None]
        if changed:
            raise ConfigError(f"--resume keeps the settings of {d}; {', '.join(changed)} would change them",
                              "drop those options, or start a new run without --resume")
        if o.checkpoint_every_s is not None:
            s = SupernetSettings(**{**s.to_dict(), "checkpoint_every_s": float(o.checkpoint_every_s)})
        if (d / WEIGHTS).is_file():
            raise RunError(f"supernet run {d} has finished already ({WEIGHTS} is there)",
                           f"use it: nas search --strategy oneshot --supernet {d}")
        load_dataset(s.data)
        return s, d, True
    budget = parse_budget(o.budget if o.budget is not None else DEFAULT_BUDGET)
    min_budget = parse_fraction(o.min_budget if o.min_budget is not None else DEFAULT_MIN_BUDGET)
    space = load_space(o.space)
    macros = list(o.macros or space.macros)
    for m in macros:
        if m not in space.macros:
            raise ConfigError(f"--macro {m!r} is not a macro of space {space.name!r}",
                              f"one of: {', '.join(space.macros)}")
    check_budget(space, budget, min_budget=min_budget)
    band_pool(space, budget, min_budget=min_budget, macros=macros, size=1)  # each macro must reach the band
    protocol = load_proxy(o.protocol or SUPERNET_PROTOCOL)
    data = load_dataset(o.data)
    name = o.name or f"supernet-{format_madds(budget)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if "/" in name or name.startswith("."):
        raise ConfigError(f"--name {name!r} is invalid", "a plain folder name such as supernet-300M")
    if o.address:  # an unreachable cluster fails here, before the run folder exists
        from nas.tuning import check_reachable

        check_reachable(o.address)
    d = Path(o.results_root) / name
    if d.exists() and any(d.iterdir()):
        raise RunError(f"run folder {d} already exists",
                       f"continue it with `nas supernet train --resume {d}`, or pick another --name")
    s = SupernetSettings(space=space.raw, budget=budget, min_budget=min_budget, macros=macros,
                         steps=int(o.steps or DEFAULT_STEPS), protocol=protocol.to_dict(),
                         data=str(o.data) if o.data else data.name, seed=int(o.seed or 0),
                         checkpoint_every_s=float(o.checkpoint_every_s or 120.0))
    d.mkdir(parents=True, exist_ok=True)
    R.atomic_write_text(d / SETTINGS, yaml.safe_dump(s.to_dict(), sort_keys=False))
    return s, d, False


def train_run(s: SupernetSettings, d: Path, *, address: str | None = None,
              on_progress: Any = None) -> dict[str, Any]:
    """Train (or continue) the supernet of run folder `d` through Ray; progress.csv gets every report."""
    from nas import tuning
    from nas.supernet.train import append_progress

    info = tuning.init_ray(address=address, num_cpus=None if address else os.cpu_count(), log_dir=d / "ray")
    avail = info["resources"]
    cpus, gpus = max(1, int(avail.get("CPU", 1))), (1.0 if float(avail.get("GPU", 0)) >= 1 else 0.0)

    def on_result(r: dict[str, Any]) -> None:
        if r.get("final") or "step" not in r:
            return
        append_progress(d, r)
        if on_progress is not None:
            on_progress(r)

    try:
        last = tuning.run_supernet_training(s.to_dict(), d, cpus=cpus, gpus=gpus, on_result=on_result)
    finally:
        if not address:
            tuning.shutdown_ray(keep_logs_in=d / "ray" / "logs")
    if last.get("status") == "failed":
        raise RunError(f"supernet training failed: {last.get('error')}",
                       f"fix the cause, then `nas supernet train --resume {d}` continues from the last checkpoint")
    if not (d / WEIGHTS).is_file():
        raise RunError(f"supernet training of {d} stopped before the end",
                       f"continue it: nas supernet train --resume {d}")
    return last


def same_space(stored: Any, space: Any) -> bool:
    """Whether a supernet's stored space (its raw mapping) is `space` (a SearchSpace), compared in the
    canonical form a run folder keeps (space.yaml), so a resumed run's copy compares equal."""
    from nas.errors import NasError
    from nas.space import parse_space

    try:
        return parse_space(stored, source="supernet.yaml").to_yaml() == space.to_yaml()
    except NasError:
        return False


def find_supernet(results_root: str | Path, *, space: Any, dataset: str) -> Path:
    """The most recent finished supernet under `results_root` for this space (a SearchSpace) and dataset."""
    from nas.config import load_yaml

    found = []
    root = Path(results_root)
    for p in root.glob(f"*/{WEIGHTS}") if root.is_dir() else []:
        try:
            s = load_yaml(p.parent / SETTINGS)
        except Exception:  # noqa: BLE001 - a folder we cannot read is not a candidate
            continue
        if s.get("data") == dataset and same_space(s.get("space"), space):
            found.append((p.stat().st_mtime, p.parent))
    if not found:
        raise RunError(f"no trained supernet for this space and dataset ({dataset}) under {root}/",
                       "train one first (`nas supernet train`, about 10 minutes on 2 cores), or pass --supernet PATH")
    return max(found)[1]


def check_compatible(settings: dict[str, Any], *, proxy: Any, dataset: str, space: Any) -> None:
    """A one-shot search must score on images its supernet never trained on, at the supernet's resolution."""
    prot = settings.get("protocol", {})
    if settings.get("data") != dataset:
        raise ConfigError(f"the supernet was trained on {settings.get('data')!r}, the search runs on {dataset!r}",
                          "train a supernet on this dataset (nas supernet train --data ...) or search its dataset")
    for k in ("val_images", "seed", "resolution"):
        if prot.get(k) != getattr(proxy, k):
            raise ConfigError(f"the supernet's protocol has {k} = {prot.get(k)!r}, the search protocol "
                              f"{getattr(proxy, k)!r}: its training images may overlap the search validation split",
                              "train the supernet with a protocol whose val_images, seed and resolution are the "
                              "search protocol's (the shipped ones agree)")
    if not same_space(settings.get("space"), space):
        raise ConfigError("the supernet was trained on another search space than this search's",
                          "search the supernet's space (--space), or train a supernet on this one")


__all__ = ["SupernetOptions", "plan_supernet", "train_run", "find_supernet", "check_compatible", "DEFAULT_STEPS",
           "CHECKPOINT", "WEIGHTS"]
