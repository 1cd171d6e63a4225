"""The plan of a search: its options, their checks, what a resume keeps, and the jobs it decides up front.

`plan_search` checks every input (budget, space, protocols, dataset, run folder) before anything starts and
returns a `SearchPlan`; the budget is parsed here once, into an int of MAdds, and travels down as that number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas import results as R
from nas.errors import ConfigError, NasError, RunError
from nas.jobs import Resources, TrialJob
from nas.runtime import Runtime
from nas.space import (
    DEFAULT_BUDGET,
    DEFAULT_MIN_BUDGET,
    SearchSpace,
    check_budget,
    format_madds,
    load_space,
    parse_budget,
    parse_fraction,
    parse_space,
)

DEFAULT_TRIALS = 12
DEFAULT_ONESHOT_TRIALS = 200  # one-shot: architectures scored by inherited weights (a few seconds each)
STRATEGIES = ("multitrial", "oneshot")
OBJECTIVES = ("top1", "pareto")
SAMPLERS = ("tpe", "nsga2", "random")
DEFAULT_CONFIRM_TOP = 3
# The first rung's paired seeds: they choose the top rung's candidates and references, and give each verdict's
# trend its first point; 2 (not 3) so that the default run with its top rung fits 20 minutes on 2 cores
# (BENCHMARKS.md, "The ladder in the default run")
DEFAULT_CONFIRM_SEEDS = 2
# The headline verdict's pair then gets the paired seeds its 95% interval needs to be this many points wide on
# each side, at most DEFAULT_CONFIRM_MAX_SEEDS and what fits the time budget, at the rung that carries the claim
# (the ladder's top rung, nas.search.ladder; the first rung in runs without one).
DEFAULT_CONFIRM_WIDTH = 1.5
DEFAULT_CONFIRM_MAX_SEEDS = 14
# The ladder's top rung: optimizer steps (None: max(4x the first rung's, 512); 0: no top rung) and paired seeds
# of each architecture; its headline pair gets at least nas.search.ladder.MIN_HEADLINE_SEEDS.
DEFAULT_TOP_SEEDS = 2
DEFAULT_TOP_STEPS: int | None = None
# The command's planned wall time: the headline's extra seeds stop where they would overrun it (the default
# run's first rung, top rung and 3 headline seeds take about this on 2 cores: BENCHMARKS.md, "The ladder in the
# default run")
DEFAULT_TIME_BUDGET_MIN = 20.0


def runtime_of(o: SearchOptions) -> Runtime:
    """The run's runtime from its options: CUDA for jobs Ray gives a GPU, the CPU otherwise."""
    return Runtime(device="auto", precision=o.precision, memory_format=o.memory_format, compile=bool(o.compile),
                   keep_freed_memory=bool(o.keep_freed_memory))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class SearchOptions:
    """Every `nas search` option, keyword-only; `plan_search` turns it into a checked plan."""

    budget: str | int | None = DEFAULT_BUDGET
    space: str | None = None
    trials: int = DEFAULT_TRIALS
    name: str | None = None
    data: str | None = None
    proxy: str | None = None
    epochs: int | None = None
    seed: int = 0
    objective: str = "top1"
    sampler: str | None = None
    min_budget: float = DEFAULT_MIN_BUDGET
    early_stop: bool = False  # ASHA's 32-step decisions stop slow starters (BENCHMARKS.md): off unless asked
    curves: bool = False  # search jobs validate every epoch (--curves), not only after the last; changes no result
    gpus_per_trial: float | None = None
    cpus_per_trial: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    resume: str | None = None
    results_root: str = "results"
    baselines: bool = True
    screen_samples: int = 2000
    confirm: bool = True
    confirm_top: int = 3
    confirm_seeds: int = DEFAULT_CONFIRM_SEEDS
    confirm_protocol: str | None = None
    confirm_width: float = DEFAULT_CONFIRM_WIDTH
    confirm_max_seeds: int = DEFAULT_CONFIRM_MAX_SEEDS
    top_steps: int | None = DEFAULT_TOP_STEPS
    top_seeds: int = DEFAULT_TOP_SEEDS
    headline_only: bool = False  # `nas confirm --headline-only`: a climbed rung retrains the headline pair only
    time_budget_min: float = DEFAULT_TIME_BUDGET_MIN
    strategy: str = "multitrial"
    supernet: str | None = None
    precision: str = "auto"
    memory_format: str = "channels_last"
    compile: bool = False
    keep_freed_memory: bool = True


@dataclass
class SearchPlan:
    """A checked search: the space, budget band (MAdds), protocol, dataset and the baselines to train or reuse."""

    opts: SearchOptions
    name: str
    run_dir: Path
    space: SearchSpace
    budget: int
    min_budget: float
    proxy: Any
    dataset: Any
    screen: Any
    baselines: list[TrialJob]
    resumed: bool = False
    command: str = ""
    created_at: str = field(default_factory=now)
    supernet: Path | None = None  # one-shot: the supernet run folder that scores the proposals

    @property
    def oneshot(self) -> bool:
        return self.opts.strategy == "oneshot"

    @property
    def runtime(self) -> Runtime:
        """How every job of the run computes (each trial's threads are the CPUs Ray gives it)."""
        return runtime_of(self.opts)

    @property
    def budget_m(self) -> float:
        return self.budget / 1e6

    @property
    def sampler(self) -> str:
        return self.opts.sampler or ("nsga2" if self.opts.objective == "pareto" else "tpe")


def _check_opts(o: SearchOptions) -> None:
    if o.strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {o.strategy!r} is invalid", f"one of: {', '.join(STRATEGIES)}")
    if o.supernet is not None and o.strategy != "oneshot":
        raise ConfigError("--supernet is only read by a one-shot search", "add --strategy oneshot, or drop --supernet")
    if o.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {o.objective!r} is invalid", f"one of: {', '.join(OBJECTIVES)}")
    if o.sampler is not None and o.sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {o.sampler!r} is invalid", f"one of: {', '.join(SAMPLERS)}")
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
    runtime_of(o)  # precision and memory format checked


# The options a run folder fixes, with their flags: a resume keeps the run's own values.
_RUN_SETTINGS = {"budget": "--budget", "space": "--space", "data": "--data", "proxy": "--proxy", "epochs": "--epochs",
                 "seed": "--seed", "objective": "--objective", "sampler": "--sampler", "min_budget": "--min-budget",
                 "early_stop": "--early-stop/--no-early-stop", "baselines": "--no-baselines", "name": "--name",
                 "confirm": "--no-confirm", "confirm_top": "--confirm-top", "confirm_seeds": "--confirm-seeds",
                 "confirm_protocol": "--confirm-protocol", "confirm_width": "--confirm-width",
                 "confirm_max_seeds": "--confirm-max-seeds", "top_steps": "--top-steps", "top_seeds": "--top-seeds",
                 "time_budget_min": "--time-budget", "strategy": "--strategy", "supernet": "--supernet",
                 "precision": "--precision", "memory_format": "--memory-format", "compile": "--compile",
                 "keep_freed_memory": "--no-keep-freed-memory"}


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
            same = key not in ("space", "proxy", "epochs", "confirm_protocol") and value == getattr(kept, key)
        if not same:
            out.append(f"{flag} {value}" if not isinstance(value, bool) else flag)
    return out


def options_from_run(run_dir: Path, given: SearchOptions) -> SearchOptions:
    """The options of the run in `run_dir` (its run.yaml), with `given`'s extensions (--trials, resources)."""
    cfg = R.read_run_config(run_dir)
    if not cfg or "budget_m" not in cfg:
        raise RunError(f"{run_dir} has no usable run.yaml", "pass a folder written by `nas search` (results/<name>)")
    o = SearchOptions(**{**asdict(given)})
    o.budget = int(round(float(cfg["budget_m"]) * 1e6))
    o.min_budget = float(cfg.get("min_budget", DEFAULT_MIN_BUDGET))
    o.objective = cfg.get("objective", "top1")
    o.sampler = cfg.get("sampler")
    o.trials = max(int(cfg.get("trials", DEFAULT_TRIALS)), given.trials if given.trials != DEFAULT_TRIALS else 0)
    o.seed = int(cfg.get("seed", 0))
    o.data = cfg.get("data")
    o.name = cfg.get("name", run_dir.name)
    o.early_stop = bool(cfg.get("early_stop", True))
    # --curves changes no result, only how often a search job validates: a resume keeps the run's own choice, and
    # `--resume RUN --curves` turns it on for the jobs still to run (runs made before it was recorded: off)
    o.curves = bool(cfg.get("curves", False)) or given.curves
    o.baselines = bool(cfg.get("baselines", True))
    o.strategy = cfg.get("strategy", "multitrial")
    o.supernet = cfg.get("supernet")
    rt = cfg.get("runtime") or {}  # runs made before the runtime object: the defaults they ran with
    o.precision = str(rt.get("precision", "auto"))
    o.memory_format = str(rt.get("memory_format", "channels_last"))
    o.compile = bool(rt.get("compile", False))
    o.keep_freed_memory = bool(rt.get("keep_freed_memory", True))
    o.results_root = str(run_dir.parent)
    conf = cfg.get("confirm")  # absent in runs made before the confirmation stage: off (`nas confirm` adds it)
    o.confirm = isinstance(conf, dict)
    if isinstance(conf, dict):
        o.confirm_top = int(conf.get("top_k", o.confirm_top))
        o.confirm_seeds = int(conf.get("seeds", o.confirm_seeds))
        o.confirm_protocol = conf.get("protocol")
        # runs confirmed before the headline's extra seeds existed: none (their seeds stay as they were)
        o.confirm_width = float(conf.get("width", 0.0))
        o.confirm_max_seeds = int(conf.get("max_seeds", o.confirm_seeds))
        o.time_budget_min = float(conf.get("time_budget_min", 0.0))
        # runs confirmed before the ladder: no top rung (`nas confirm RUN --top-steps N` adds one)
        o.top_steps = conf.get("top_steps", 0)
        o.top_seeds = int(conf.get("top_seeds", DEFAULT_TOP_SEEDS))
        o.headline_only = bool(conf.get("headline_only", False))
    for k in ("max_concurrent", "gpus_per_trial", "cpus_per_trial"):
        if getattr(given, k) is None and cfg.get(k) is not None:
            setattr(o, k, cfg[k])
    conflicts = _resume_conflicts(given, o)
    if conflicts:
        raise ConfigError(f"{run_dir} keeps the settings it was started with (its run.yaml); {', '.join(conflicts)} "
                          "would change them", "drop those options (`nas search --resume RUN --trials N` extends the "
                          "run), or start a new run")
    return o


def plan_search(opts: SearchOptions, *, command: str = "") -> SearchPlan:
    """Check every input (budget, space, proxy, dataset, run folder) before anything is started."""
    from nas.config import load_yaml
    from nas.data import load_dataset
    from nas.train import load_proxy, proxy_from_dict

    resumed = bool(opts.resume)
    run_dir = Path(str(opts.resume)) if resumed else None
    if run_dir is not None:
        if not (run_dir / R.RUN_FILE).is_file():
            raise RunError(f"cannot resume {run_dir}: no {R.RUN_FILE} there",
                           "pass a run folder written by `nas search` (results/<name>)")
        opts = options_from_run(run_dir, opts)
    _check_opts(opts)
    if not resumed and opts.confirm_protocol and Path(str(opts.confirm_protocol)).is_file():
        # run.yaml records it: absolute, so a resume from another folder finds it (the run keeps a copy too)
        opts = replace(opts, confirm_protocol=str(Path(str(opts.confirm_protocol)).resolve()))
    budget = parse_budget(opts.budget if opts.budget is not None else DEFAULT_BUDGET)
    min_budget = parse_fraction(opts.min_budget)
    if run_dir is not None:
        space = parse_space(load_yaml(run_dir / "space.yaml"), source=str(run_dir / "space.yaml"))
        proxy = proxy_from_dict(load_yaml(run_dir / "proxy.yaml"), where=str(run_dir / "proxy.yaml"))
    else:
        space = load_space(opts.space)
        proxy = load_proxy(opts.proxy, epochs=opts.epochs)
    screen = check_budget(space, budget, min_budget=min_budget, samples=opts.screen_samples, seed=opts.seed)
    dataset = load_dataset(opts.data)
    name = opts.name or f"budget{format_madds(budget)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if run_dir is None:
        run_dir = Path(opts.results_root) / name
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunError(f"run folder {run_dir} already exists",
                           f"continue it with `nas search --resume {run_dir}`, or pick another --name")
    supernet = _supernet_of(opts, proxy=proxy, dataset=str(opts.data) if opts.data else dataset.name,
                            space=space) if opts.strategy == "oneshot" else None
    baselines = (baselines_in_band(budget, min_budget, num_classes=space.num_classes, seed=proxy.seed)
                 if opts.baselines else [])
    return SearchPlan(opts=opts, name=name, run_dir=run_dir, space=space, budget=budget, min_budget=min_budget,
                      proxy=proxy, dataset=dataset, screen=screen, baselines=baselines, resumed=resumed,
                      command=command, supernet=supernet)


def _supernet_of(opts: SearchOptions, *, proxy: Any, dataset: str, space: SearchSpace) -> Path:
    """The supernet folder a one-shot search scores with (--supernet, else the latest that fits), checked."""
    from nas.config import load_yaml
    from nas.supernet.run import check_compatible, find_supernet
    from nas.supernet.score import weights_path

    d = Path(opts.supernet) if opts.supernet else find_supernet(opts.results_root, space=space, dataset=dataset)
    w = weights_path(d)
    if not (w.parent / "supernet.yaml").is_file():  # a plain file (or a folder of one) is no supernet run
        raise RunError(f"{d} is not a supernet run folder (no supernet.yaml beside {w.name})",
                       "pass the folder that `nas supernet train` wrote, e.g. --supernet results/supernet-<name>")
    settings = load_yaml(w.parent / "supernet.yaml")
    check_compatible(settings, proxy=proxy, dataset=dataset, space=space)
    return w.parent.resolve()  # absolute: Ray runs each job in its own trial folder


def baselines_in_band(budget: int, min_budget: float, *, num_classes: int = 1000, seed: int = 0) -> list[TrialJob]:
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
            out.append(TrialJob(kind="baseline", trial=name, variant=name, arch_id=arch.arch_id, madds_m=m / 1e6,
                                seed=seed, family=published(name).get("family", arch.family)))
    return out


def choose_resources(*, cpus: int, gpus: float, cpus_per_trial: int | None, gpus_per_trial: float | None,
                     max_concurrent: int | None) -> Resources:
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
    return Resources(cpus_per_trial=cpt, gpus_per_trial=float(gpus_per_trial),
                     max_concurrent=slots if max_concurrent is None else max_concurrent)
