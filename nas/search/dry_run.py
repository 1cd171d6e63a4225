"""The dry run: what a search would do and about how long it would take, with nothing trained.

The time estimate times real training steps (the trainer's own step: `nas.train.time_steps`; one-shot: one real
inherited-weight scoring) and evaluations of up to 3 in-band architectures per macro of the space, at the
protocol's resolution, weights them by each macro's share of the budget band, and scales them to the plan's
jobs and slots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.jobs import Resources, arch_of_job
from nas.search.folder import BaselineCache
from nas.search.plan import SearchPlan, choose_resources
from nas.space import replay

# concurrent jobs share the machine's memory bandwidth: each runs ~1.1x slower than alone (2 jobs x 1 thread gave
# the machine 1.88-1.96x one job's images/s, bench/runtime_options.py; whole 512-step jobs of the default run
# took 1.07-1.24x their timed-alone estimate: BENCHMARKS.md, "The ladder in the default run")
CONCURRENCY_SLOWDOWN = 1.1
RAY_START_S = 15.0


@dataclass(frozen=True)
class StageEstimate:
    """One stage of the plan: its jobs (to train), seconds per job and wall seconds."""

    jobs: int
    job_s: float
    wall_s: float


@dataclass(frozen=True)
class DryRun:
    plan: SearchPlan
    share_by_macro: dict[str, float]
    resources: Resources
    cached_baselines: list[str]
    search: StageEstimate
    confirm: StageEstimate | None = None
    headline: StageEstimate | None = None  # the most the headline verdict's extra seeds can add
    top: StageEstimate | None = None  # the ladder's top rung (its typical 4 architectures)
    top_steps: int = 0
    probe_s: tuple[tuple[str, float, float], ...] = ()  # (macro, share of the band, its probes' seconds a job)

    @property
    def est_wall_s(self) -> float:
        return (RAY_START_S + self.search.wall_s + (self.confirm.wall_s if self.confirm else 0.0)
                + (self.top.wall_s if self.top else 0.0))

    @property
    def max_wall_s(self) -> float:
        return self.est_wall_s + (self.headline.wall_s if self.headline else 0.0)


def share_by_macro(plan: SearchPlan, *, samples: int = 1000) -> dict[str, float]:
    """The share of each macro's random samples whose analytic MAdds fall in the budget band."""
    from nas.madds import count_madds
    from nas.space import RandomTrial, sample_arch

    sc = plan.screen
    counts: dict[str, list[int]] = {m: [0, 0] for m in plan.space.macros}
    for i in range(min(sc.samples, samples)):
        t = RandomTrial(plan.opts.seed * 100003 + i)
        a = sample_arch(t, plan.space)
        m = t.params.get("macro", next(iter(plan.space.macros)))
        counts[m][1] += 1
        counts[m][0] += int(sc.low <= count_madds(a) <= plan.budget)
    return {k: (v[0] / v[1] if v[1] else 0.0) for k, v in counts.items()}


def stage_estimate(jobs: int, job_s: float, res: Resources) -> StageEstimate:
    return stage_of([job_s] * jobs, res)


def schedule_s(seconds: list[float], slots: int) -> float:
    """Wall seconds of jobs taking `seconds` each on `slots` concurrent slots, longest first onto the least
    loaded slot (what a queue of unequal jobs comes to)."""
    load = [0.0] * max(1, slots)
    for s in sorted(seconds, reverse=True):
        load[load.index(min(load))] += s
    return max(load)


def stage_of(seconds: list[float], res: Resources) -> StageEstimate:
    """A stage of jobs taking `seconds` each (timed alone) on `res.max_concurrent` slots, each slowed by
    sharing the machine when slots run at once."""
    slow = CONCURRENCY_SLOWDOWN if res.max_concurrent > 1 else 1.0
    n = len(seconds)
    return StageEstimate(jobs=n, job_s=sum(seconds) / n if n else 0.0,
                         wall_s=schedule_s(seconds, res.max_concurrent) * slow)


@dataclass(frozen=True)
class PerImage:
    """Seconds per training image and per evaluated image of a network under a protocol, timed here."""

    train: float
    eval: float

    @staticmethod
    def mean(weighted: list[tuple[float, PerImage]]) -> PerImage:
        total = sum(w for w, _p in weighted) or 1.0
        return PerImage(train=sum(w * p.train for w, p in weighted) / total,
                        eval=sum(w * p.eval for w, p in weighted) / total)


def seconds_per_image(arch: Any, proxy: Any, dataset: Any, *, threads: int,
                      cache: dict[tuple[Any, ...], PerImage] | None = None) -> PerImage:
    """Seconds per training image (timed real training steps, the fastest of 4 after a warm-up one) and per
    evaluated image (the trainer's evaluation of 256 validation images) of `arch` under `proxy` here. Protocols
    of the same resolution and batch size share a timing in `cache` (the ladder's rungs are one protocol
    stretched)."""
    from nas.train import time_evaluation, time_steps

    cache = {} if cache is None else cache
    key = (arch.arch_id, proxy.resolution, proxy.batch_size)
    if key not in cache:
        cache[key] = PerImage(train=time_steps(arch, proxy, dataset, threads=threads, steps=4),
                              eval=time_evaluation(arch, proxy, dataset, threads=threads))
    return cache[key]


def job_seconds(per_img: PerImage, proxy: Any, dataset: Any, *, test: bool = False, curve: bool = True) -> float:
    """Seconds one training job under `proxy` takes here, for a network timed at `per_img` (`seconds_per_image`,
    under a protocol of the same resolution and batch size): scaled to the protocol's training images and
    evaluations (the validation images every epoch, or after the last only where `curve` is False; the test
    subset when `test`)."""
    n_test = 0
    if test and dataset.test_y is not None:
        n_test = min(proxy.test_images, len(dataset.test_y)) if proxy.test_images else len(dataset.test_y)
    evals = proxy.val_images * (proxy.epochs if curve else 1) + n_test
    from nas.search.ladder import available_images

    images = min(proxy.train_images, available_images(dataset, proxy))  # what the trainer draws
    return per_img.train * images * proxy.epochs + per_img.eval * evals + 2.0


def score_seconds(plan: SearchPlan, arch: Any, *, threads: int) -> float:
    """Seconds one one-shot job takes here: one real inherited-weight scoring of `arch` (extraction,
    BatchNorm recalibration, the validation images a one-shot search scores), after a warm-up one."""
    import dataclasses
    import time

    import torch

    from nas.supernet.score import SCORE_IMAGES, calibration_batch, load_supernet, score_subnet
    from nas.train.pipeline import prepare_data

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        net, _ = load_supernet(plan.supernet)
        prep = prepare_data(plan.dataset, plan.proxy)
        cal = calibration_batch(prep)
        prep = dataclasses.replace(prep, val_x=prep.val_x[:SCORE_IMAGES], val_y=prep.val_y[:SCORE_IMAGES])
        score_subnet(net, arch, prep, calibration=cal)
        t = time.perf_counter()
        score_subnet(net, arch, prep, calibration=cal)
        return time.perf_counter() - t + 0.05  # + the actor call's turnaround
    finally:
        torch.set_num_threads(prev)


PROBES_PER_MACRO = 3


def _by_macro(rows: list[tuple[str, float, Any]]) -> dict[str, list[tuple[float, Any]]]:
    """(macro, weight, value) rows grouped by macro: {macro: [(weight, value), ...]}."""
    out: dict[str, list[tuple[float, Any]]] = {}
    for m, w, v in rows:
        out.setdefault(m, []).append((w, v))
    return out


def family_probes(plan: SearchPlan) -> list[tuple[str, Any, float]]:
    """(macro, architecture, weight): up to PROBES_PER_MACRO in-band architectures of each macro in the budget
    screen's sample, at the quartiles of their MAdds, weighted so that each macro's weights add up to its share
    of the in-band draws. The families train at different speeds (a Mobile-Former-like job took 2-3x a
    MobileViT-like one of the same MAdds: BENCHMARKS.md), and within a family a job's time follows its MAdds
    and depth, so one probe would set every job's time by whichever network it happened to be."""
    from nas.madds import count_madds

    groups: dict[str, list[Any]] = {}
    for params in plan.screen.in_band_params:
        groups.setdefault(str(params.get("macro", next(iter(plan.space.macros)))), []).append(params)
    n = sum(len(g) for g in groups.values())
    out = []
    for m, g in groups.items():
        archs = sorted((replay(p, plan.space) for p in g), key=count_madds)
        k = min(PROBES_PER_MACRO, len(archs))
        picks = [archs[(2 * i + 1) * len(archs) // (2 * k)] for i in range(k)]
        out += [(m, a, len(g) / n / k) for a in picks]
    return out


def dry_run(plan: SearchPlan, *, confirm_proxy: Any = None, top_proxy: Any = None, copts: Any = None) -> DryRun:
    """What `plan` would do and about how long. With `copts` (the confirm options) and `confirm_proxy` the
    confirmation's rungs are estimated job by job: candidates at the family probes' timed steps, the band's
    published variants at their own (the top rung's references are usually the band's slowest networks: BENCHMARKS.md,
    "The ladder in the default run")."""
    res = choose_resources(cpus=os.cpu_count() or 1, gpus=0, cpus_per_trial=plan.opts.cpus_per_trial,
                           gpus_per_trial=plan.opts.gpus_per_trial or 0, max_concurrent=plan.opts.max_concurrent)
    probes = family_probes(plan)
    timed: dict[tuple[Any, ...], PerImage] = {}  # each network timed once per resolution and batch
    cache = BaselineCache(Path(plan.opts.results_root), plan.runtime)
    cached = [] if plan.oneshot else [  # one-shot baselines are scored like any proposal, never cached
        b.trial for b in plan.baselines if cache.get(b.arch_id, plan.proxy.hash, plan.dataset.name, seed=b.seed)]
    n = plan.opts.trials + len(plan.baselines) - len(cached)
    if plan.oneshot:
        per_job = [score_seconds(plan, a, threads=res.cpus_per_trial) for _m, a, _w in probes]
    else:
        per_job = [job_seconds(seconds_per_image(a, plan.proxy, plan.dataset, threads=res.cpus_per_trial,
                                                 cache=timed), plan.proxy, plan.dataset,
                               curve=plan.opts.curves or plan.opts.early_stop) for _m, a, _w in probes]
    trial_s = sum(s * w for s, (_m, _a, w) in zip(per_job, probes))
    by_macro = _by_macro([(m, w, s) for s, (m, _a, w) in zip(per_job, probes)])
    probe_s = tuple((m, sum(w for w, _s in g), sum(w * s for w, s in g) / sum(w for w, _s in g))
                    for m, g in by_macro.items())
    confirm = headline = top = None
    if confirm_proxy is not None and probes and copts is not None:
        confirm, headline, top = _ladder_estimates(plan, copts, confirm_proxy, top_proxy, probes, res, timed)
    return DryRun(plan=plan, share_by_macro=share_by_macro(plan), resources=res, cached_baselines=cached,
                  search=stage_estimate(n, trial_s, res), confirm=confirm, headline=headline, top=top,
                  top_steps=top_proxy.steps if top is not None else 0,
                  probe_s=probe_s)


def _ladder_estimates(plan: SearchPlan, copts: Any, first: Any, top: Any, probes: list[tuple[str, Any, float]],
                      res: Resources, timed: dict[tuple[Any, ...], PerImage],
                      ) -> tuple[StageEstimate, StageEstimate | None, StageEstimate | None]:
    """The first rung, the headline's most extra seeds and the top rung, job by job: each published variant of
    the band timed once (a rung's protocol is the first's stretched: same resolution and batch, so the same
    seconds per image), the candidates at the family probes' (weighted by their share of the band; at the top
    rung, whose two candidates are the best of each family, one at each family's)."""
    from nas.search.ladder import MIN_HEADLINE_SEEDS, REFERENCES_PER_CANDIDATE

    th = res.cpus_per_trial
    ds = plan.dataset
    per_img = {b.trial: seconds_per_image(arch_of_job(b, plan.space), first, ds, threads=th, cache=timed)
               for b in plan.baselines}
    groups = _by_macro([(m, w, seconds_per_image(a, first, ds, threads=th, cache=timed)) for m, a, w in probes])
    cand_img = PerImage.mean([wp for g in groups.values() for wp in g])
    # the top rung's two candidates: the headline's and the other family's best, one of each of the two macros
    # with the largest shares (one macro: both of it)
    pair = sorted(groups, key=lambda m: -sum(w for w, _p in groups[m]))[:2]
    pair_img = ([PerImage.mean(groups[m]) for m in pair] * 2)[:2]

    def job(proxy: Any, p: PerImage) -> float:
        return job_seconds(p, proxy, ds, test=True)

    def secs(proxy: Any) -> tuple[float, list[float]]:
        return job(proxy, cand_img), sorted((job(proxy, v) for v in per_img.values()), reverse=True)

    cand, refs = secs(first)
    conf = stage_of([cand] * (copts.top_k * copts.seeds) + [r for r in refs for _ in range(copts.seeds)], res)
    if top is None or not refs:  # no top rung: the first rung's headline pair gets the extra seeds
        extra = copts.extra_jobs // 2
        head = stage_of([cand, sum(refs) / len(refs)] * extra, res) if extra and refs else None
        return conf, head, None
    cand, refs = secs(top)
    # the headline candidate and the other family's best, and their references: the two best published
    # variants at <= each one's MAdds, mostly shared (the band's slowest ones stand in for them here)
    used = refs[:min(len(refs), REFERENCES_PER_CANDIDATE + 1)]
    ref = sum(used[:REFERENCES_PER_CANDIDATE]) / len(used[:REFERENCES_PER_CANDIDATE])
    floor = max(0, MIN_HEADLINE_SEEDS - copts.top_seeds)
    pair_s = [job(top, p) for p in pair_img]
    rung = stage_of([s for s in [*pair_s, *used] for _ in range(copts.top_seeds)] + [cand, ref] * floor, res)
    extra = max(0, copts.extra_jobs // 2 - floor)
    head = stage_of([cand, ref] * extra, res) if extra else None
    return conf, head, rung
