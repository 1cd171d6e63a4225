"""The confirmation stage: retrain the search's best candidates and the published variants of the band under
the longer confirm protocol, with n paired seeds, and score them on the held-out split.

Pairing: every architecture runs the same seeds; a seed fixes the data order, the augmentation stream and
the initial weights' random stream, so two architectures' runs with one seed differ only by architecture.
Candidates: the top `top_k` searched trials of the search front by search-stage accuracy, never all of one
family while the other family has trained candidates (a family bias of the search protocol must not hide
the other family's best). Then the headline verdict (the best candidate against its published reference,
chosen on those first seeds' validation top-1: `nas.verdicts.headline`) gets the paired seeds that the first stage's noise
says its 95% interval needs to be within `width` points, at most `max_seeds` (`headline_jobs`): the claim
the run leads with gets the seeds, the others keep `seeds` (BENCHMARKS.md, "The default run"). Each
finished seed is a ``stage = confirm`` row the moment it ends; a resume trains only the (trial, seed) pairs
that have no row yet, and a job killed mid-way goes on from its last checkpoint under the run's `checkpoints/`
(saved between epochs, at most once a minute: `nas.train.checkpoint`). Baselines' confirm seeds are cached
across runs like their search results (same architecture, protocol, seed, data and code).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas import results as R
from nas.errors import ConfigError
from nas.jobs import Resources, TrialJob, is_confirm_stage
from nas.search.folder import params_from_row, record_confirm_settings
from nas.search.plan import (
    DEFAULT_CONFIRM_MAX_SEEDS,
    DEFAULT_CONFIRM_SEEDS,
    DEFAULT_CONFIRM_TOP,
    DEFAULT_CONFIRM_WIDTH,
    DEFAULT_TIME_BUDGET_MIN,
    DEFAULT_TOP_SEEDS,
    DEFAULT_TOP_STEPS,
    SearchPlan,
)
from nas.search.recorder import Progress, RunRecorder

DEFAULT_TOP_K = DEFAULT_CONFIRM_TOP
DEFAULT_SEEDS = DEFAULT_CONFIRM_SEEDS
DEFAULT_WIDTH = DEFAULT_CONFIRM_WIDTH
DEFAULT_MAX_SEEDS = DEFAULT_CONFIRM_MAX_SEEDS
DEFAULT_TIME_BUDGET_S = DEFAULT_TIME_BUDGET_MIN * 60.0
JOB_OVERHEAD_S = 3.0  # Ray's per-job start and report, beyond the job's own wall_s (measured ~2-3 s here)
DEFAULT_PROTOCOL = "confirm"
CONFIRM_FILE = "confirm.yaml"
CHECKPOINT_DIR = "checkpoints"  # a running job's state between epochs: a killed run resumes its jobs mid-way


@dataclass(frozen=True)
class ConfirmOptions:
    top_k: int = DEFAULT_TOP_K
    seeds: int = DEFAULT_SEEDS
    protocol: str | None = None  # a protocol YAML or a shipped name; default: the shipped "confirm"
    width: float = DEFAULT_WIDTH  # target 95% half-width (points) of the headline verdict; 0: no extra seeds
    max_seeds: int = DEFAULT_MAX_SEEDS  # most paired seeds the headline pair gets
    time_budget_s: float = DEFAULT_TIME_BUDGET_S  # the command's planned wall time bounds them too; 0: no bound
    top_steps: int | None = DEFAULT_TOP_STEPS  # the ladder's top rung (nas.search.ladder); None: auto, 0: none
    top_seeds: int = DEFAULT_TOP_SEEDS
    headline_only: bool = False  # a higher rung retrains only the headline pair of the rung below it

    def check(self) -> None:
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"--confirm-top {self.top_k!r} is invalid", "an integer >= 0 (candidates to confirm)")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"--confirm-seeds {self.seeds!r} is invalid",
                              f"an integer >= 1 (2 or more give an interval; {DEFAULT_SEEDS} is the default)")
        if not isinstance(self.width, (int, float)) or isinstance(self.width, bool) or not 0 <= self.width < 1e9:
            raise ConfigError(f"--confirm-width {self.width!r} is invalid",
                              f"points >= 0 (0: no extra seeds for the headline; {DEFAULT_WIDTH:g} is the default)")
        if not isinstance(self.time_budget_s, (int, float)) or isinstance(self.time_budget_s, bool) \
                or not 0 <= self.time_budget_s < 1e9:
            shown = f"{self.time_budget_s / 60:g}" if isinstance(self.time_budget_s, (int, float)) else repr(
                self.time_budget_s)
            raise ConfigError(f"--time-budget {shown} is invalid",
                              f"minutes >= 0 (0: no bound; {DEFAULT_TIME_BUDGET_S / 60:g} is the default)")
        if not isinstance(self.top_seeds, int) or isinstance(self.top_seeds, bool) or self.top_seeds < 2:
            raise ConfigError(f"--top-seeds {self.top_seeds!r} is invalid",
                              f"an integer >= 2 (paired seeds give an interval; {DEFAULT_TOP_SEEDS} is the default)")
        if self.top_steps is not None:
            from nas.search.ladder import top_steps

            top_steps(1, self.top_steps)
        if not isinstance(self.max_seeds, int) or isinstance(self.max_seeds, bool) or self.max_seeds < 1:
            raise ConfigError(f"--confirm-max-seeds {self.max_seeds!r} is invalid",
                              f"an integer >= 1 (the headline pair's most seeds; {DEFAULT_MAX_SEEDS} is the default)")

    @property
    def extra_jobs(self) -> int:
        """The most jobs the headline's extra seeds can add (two architectures), at the rung that carries the
        claim: the top rung (at least `MIN_HEADLINE_SEEDS` there), or the first when there is none."""
        from nas.search.ladder import MIN_HEADLINE_SEEDS

        top = self.top_steps != 0
        most = max(MIN_HEADLINE_SEEDS if top else 0, self.max_seeds if self.width > 0 else 0)
        return 2 * max(0, most - (self.top_seeds if top else self.seeds))


def select_candidates(df: Any, top_k: int) -> list[str]:
    """The searched trials to confirm: the best `top_k` of the search front by search-stage accuracy, with
    the family rule (if all picks share a family while the other family has trained trials, the last pick
    goes to the other family's best)."""
    from nas.verdicts import macro_of

    search = R.search_stage(df)
    trained = search[(search["kind"] == "searched") & search["status"].isin(R.FINISHED_OK)
                     & search["val_top1"].notna()]
    if top_k <= 0 or not len(trained):
        return []
    front = R.compute_pareto(df)
    front = front[front["kind"] == "searched"].sort_values("val_top1", ascending=False, kind="stable")
    picks = list(front["trial"].astype(str))[:top_k]
    if len(picks) < top_k:  # a short front: fill with the best of the rest
        rest = trained[~trained["trial"].isin(picks)].sort_values("val_top1", ascending=False, kind="stable")
        picks += list(rest["trial"].astype(str))[: top_k - len(picks)]
    fam = {str(r["trial"]): macro_of(r) for r in trained.to_dict("records")}
    families = {fam[t] for t in picks}
    others = trained[[fam[str(t)] not in families for t in trained["trial"]]]
    if len(families) == 1 and len(others) and top_k >= 1:
        best_other = str(others.sort_values("val_top1", ascending=False, kind="stable")["trial"].iloc[0])
        picks = picks[:-1] + [best_other] if len(picks) >= top_k else picks + [best_other]
    return picks


def _search_rows(df: Any) -> Any:
    """The search stage's last row per trial, indexed by trial (what `_arch_jobs` builds jobs from)."""
    return R.search_stage(df).drop_duplicates("trial", keep="last").set_index("trial")


def _arch_jobs(plan: SearchPlan, search: Any, trial: str, seeds: range, stage: str = "confirm") -> list[TrialJob]:
    """The jobs of one architecture (a searched trial or a baseline of the band) for `seeds` at confirm rung
    `stage`; `search` is `_search_rows` of the run."""
    for b in plan.baselines:
        if b.trial == trial:
            return [b.replace(stage=stage, seed=s, evaluate_test=True) for s in seeds]
    r = search.loc[trial].to_dict()
    r["trial"] = trial
    params = params_from_row(r, plan.space)
    return [TrialJob(kind="searched", trial=trial, number=int(r["number"]), params=params, arch_id=str(r["arch_id"]),
                     madds_m=float(r["madds_m"]), stage=stage, seed=s, evaluate_test=True,
                     family=str(r["family"])) for s in seeds]


def confirm_jobs(plan: SearchPlan, df: Any, opts: ConfirmOptions) -> list[TrialJob]:
    """Every (architecture, seed) job of the confirmation's first part: candidates, then the band's
    baselines, `opts.seeds` each."""
    trials = select_candidates(df, opts.top_k) + [b.trial for b in plan.baselines]
    search = _search_rows(df)
    return [j for t in trials for j in _arch_jobs(plan, search, t, range(opts.seeds))]


def _job_s(df: Any, trial: str, stage: str = "confirm") -> float:
    """Mean seconds per job of `trial` at rung `stage` so far, Ray's overhead included."""
    c = df[(df["trial"] == trial) & (df["stage"] == stage) & df["wall_s"].notna()]
    return float(c["wall_s"].mean()) + JOB_OVERHEAD_S if len(c) else math.nan


def rung_estimate(df: Any, jobs: list[TrialJob], steps: int, slots: int) -> tuple[float, int] | None:
    """About how long `jobs` (one rung of `steps` optimizer steps) take on `slots` concurrent jobs: each trial's
    longest finished confirm job, scaled by steps (its evaluation does not grow with them, so it errs long), plus
    Ray's overhead, queued longest first; with the smallest step count scaled from. None when a trial has none."""
    from nas.search.dry_run import schedule_s

    if not jobs:
        return None
    c = df[df["stage"].map(is_confirm_stage) & df["status"].isin(R.FINISHED_OK) & df["wall_s"].notna()
           & (df["steps"].fillna(0) > 0)]
    times, base = [], []
    for j in jobs:
        r = c[c["trial"] == j.trial]
        if not len(r):
            return None
        top = r[r["steps"] == r["steps"].max()]
        s0 = int(top["steps"].iloc[0])
        times.append(float(top["wall_s"].mean()) * steps / s0 + JOB_OVERHEAD_S)
        base.append(s0)
    return schedule_s(times, slots), min(base)


CLOSING_S = 15.0  # a stage's end after its last job: the run's files, the summary, Ray's shutdown
# the pair's jobs are planned at this much over their first seeds' mean: a plan of 3 more seeds with 306 s left
# ended the default run 6 s over its 20 minutes (BENCHMARKS.md, "The ladder in the default run")
PLAN_MARGIN = 1.1


def seeds_that_fit(pair_s: list[float], seconds: float, *, slots: int, most: int) -> int:
    """How many more paired seeds of a pair whose jobs take `pair_s` seconds fit in `seconds` on `slots`
    concurrent jobs (at most `most`): one round of 2k jobs, longest first onto the least loaded slot (two seeds
    in one round fill both slots where one seed leaves the faster job's slot idle)."""
    from nas.search.dry_run import schedule_s

    k = 0
    while k < most and PLAN_MARGIN * schedule_s(pair_s * (k + 1), slots) <= seconds:
        k += 1
    return k


def headline_jobs(plan: SearchPlan, df: Any, opts: ConfirmOptions, *, seconds_left: float = math.inf,
                  slots: int = 1, stage: str = "confirm", floor: int = 0) -> tuple[list[TrialJob], str]:
    """The headline pair's extra paired seeds at rung `stage` (the rung that carries the claim), planned once
    from that rung's first seeds, and a line saying why.

    The pair (`nas.verdicts.headline`, chosen on the seeds every architecture of the rung has) gets at least
    `floor` seeds whatever the time (the top rung's claim is never made on fewer than
    `nas.search.ladder.MIN_HEADLINE_SEEDS`), then the fewest seeds whose 95% t interval would be within
    `opts.width` for the paired-difference SD pooled over every pair of the rung's architectures; at most
    `opts.max_seeds`, and at most what `seconds_left` allows at the pair's job times on the rung, on `slots`
    concurrent jobs. The count never looks at the pair's own difference: stopping when its own interval
    happens to look narrow would make the printed 95% intervals cover less than 95% (~91% in
    bench/headline_coverage.py at this noise). Nothing when there is no headline or its pair already has
    that many seeds."""
    from nas import stats as S
    from nas import verdicts as V

    if opts.width <= 0 and floor <= 0:
        return [], ""
    accs = V.seed_accuracies(df, stage)
    h = V.headline(V.verdict_table(df, accs=accs, stage=stage))
    if h is None:
        return [], ""
    first = V.base_seeds(accs)
    have = int(h["n"])
    sd, _ = S.paired_noise_sd(accs, first)
    need = S.seeds_for_width(sd, opts.width, start=len(first), cap=10_000) if opts.width > 0 else 0
    pair_s = [_job_s(df, str(h["trial"]), stage), _job_s(df, str(h["reference"]), stage)]
    per_seed = sum(pair_s) / max(1, min(2, slots))
    by_time = have + seeds_that_fit(pair_s, seconds_left - CLOSING_S, slots=slots,
                                  most=max(0, min(need, opts.max_seeds) - have)) \
        if math.isfinite(seconds_left) and all(math.isfinite(x) for x in pair_s) else 10_000
    n = max(have, floor, min(need, opts.max_seeds, by_time))
    why = [f"a +-{opts.width:g}-point interval needs {need if need < 10_000 else 'over 10,000'}"] \
        if opts.width > 0 else ["no --confirm-width"]
    if opts.width > 0 and opts.max_seeds < need:
        why.append(f"--confirm-max-seeds allows {opts.max_seeds}")
    if opts.width > 0 and by_time < min(need, opts.max_seeds):
        why.append(f"the time budget ({max(0.0, seconds_left) / 60:.1f} min left, ~{per_seed:.0f} s per seed) "
                   f"allows {max(have, by_time)}")
    if floor > max(have, min(need, opts.max_seeds, by_time)):
        why.append(f"a top-rung claim takes at least {floor}")
    at = "" if stage == "confirm" else f" at {V.stage_steps(df, stage)} steps"
    plan_line = (f"headline{at} {h['trial']} vs {h['reference']}: paired-difference SD {sd:.2f} points over all "
                 f"pairs of the first {len(first)} seeds; {'; '.join(why)}: {n} seeds planned")
    if have >= n:
        return [], (f"{plan_line}; it has {have}: {h['diff']:+.2f} [{h['diff_lo']:+.2f}, {h['diff_hi']:+.2f}], "
                    f"half-width {V.half_width(h):.2f}")
    upto = range(n)
    search = _search_rows(df)
    jobs = (_arch_jobs(plan, search, str(h["trial"]), upto, stage=stage)
            + _arch_jobs(plan, search, str(h["reference"]), upto, stage=stage))
    return jobs, f"{plan_line}: training seeds {have}-{n - 1} of both"


def load_confirm_protocol(plan: SearchPlan, opts: ConfirmOptions) -> Any:
    """The run's own copy (confirm.yaml) when it has one, else the named or shipped protocol. The confirm
    protocol trains longer than the search's but at the same resolution (the shipped one takes the search
    protocol's; a named one at another resolution is refused by `run_confirm`)."""
    from nas.config import load_yaml
    from nas.train import load_proxy, proxy_from_dict

    own = plan.run_dir / CONFIRM_FILE
    if own.is_file():
        proxy = proxy_from_dict(load_yaml(own), where=str(own))
        if opts.protocol is not None and load_proxy(opts.protocol).hash != proxy.hash:
            raise ConfigError(f"{plan.run_dir} was confirmed under its own {CONFIRM_FILE}; --confirm-protocol "
                              f"{opts.protocol} would change it", "drop --confirm-protocol, or confirm a new run")
        return proxy
    proxy = load_proxy(opts.protocol or DEFAULT_PROTOCOL)
    if opts.protocol is None and proxy.resolution != plan.proxy.resolution:
        # the shipped protocol follows a search protocol of another resolution (both stages, one network)
        proxy = proxy.replace(resolution=plan.proxy.resolution)
    return proxy


@dataclass
class ConfirmOutcome:
    trials: Any
    jobs: int
    trained: int
    cached: int
    wall_s: float
    interrupted: bool = False


def run_confirm(plan: SearchPlan, opts: ConfirmOptions, *, resources: Resources, dashboard: Path | None = None,
                on_progress: Callable[[Progress], None] | None = None, on_note: Callable[[str], None] | None = None,
                on_plan: Callable[[list[TrialJob], int], None] | None = None,
                started: float | None = None) -> ConfirmOutcome:
    """Run (or extend, or resume) the confirmation of the run in `plan.run_dir` on a started Ray.
    `started` (a time.time(); default now) is when the command began: `opts.time_budget_s` counts from it."""
    import yaml

    from nas import tuning

    opts.check()
    t0 = time.time()
    started = t0 if started is None else started
    proxy = load_confirm_protocol(plan, opts)
    if proxy.resolution != plan.proxy.resolution:
        raise ConfigError(f"the confirm protocol trains at {proxy.resolution} px, the search at "
                          f"{plan.proxy.resolution} px", "use one resolution for both stages")
    from nas.search import ladder

    d = plan.run_dir
    available = ladder.available_images(plan.dataset, proxy)
    top = ladder.top_steps(proxy.steps_on(available), opts.top_steps)
    if on_note is not None and (short := proxy.shortfall(available, what="confirm protocol")):
        on_note(short)
    ladder_rungs = ladder.rungs(proxy, opts.seeds, top, opts.top_seeds, available=available)
    R.atomic_write_text(d / CONFIRM_FILE, yaml.safe_dump(proxy.to_dict(), sort_keys=False))
    record_confirm_settings(d, top_k=opts.top_k, seeds=opts.seeds, protocol=opts.protocol, width=opts.width,
                            max_seeds=opts.max_seeds, time_budget_min=opts.time_budget_s / 60, top_steps=top,
                            top_seeds=opts.top_seeds, headline_only=opts.headline_only,
                            stages=[r.to_dict() for r in ladder_rungs])
    rec = RunRecorder(plan, total=0, dashboard=dashboard, on_progress=on_progress, on_note=on_note)
    rec.confirm_proxy = proxy
    rec.more_to_plan = True  # until the last rung and its headline rounds are planned
    for r in ladder_rungs[1:]:
        rec.rung_proxies[r.stage] = proxy.stretched(r.steps, available=available)
    jobs = confirm_jobs(plan, rec.frame(), opts)
    rec.keep_variants = {j.trial for j in jobs if j.kind == "searched"}
    cached = 0

    def untrained(todo: list[TrialJob]) -> list[TrialJob]:
        """The jobs of `todo` with no row yet, once baselines found in the cross-run cache are recorded; each
        of them joins the progress total (rows already there count as done)."""
        nonlocal cached
        out = []
        for job in todo:
            if rec.is_trained(job):
                continue
            rec.total += 1
            hit = (rec.cache.get(job.arch_id, rec.proxy_for(job.stage).hash, plan.dataset.name, seed=job.seed,
                                 stage=job.stage) if job.kind == "baseline" else None)
            if hit is not None:
                rec.add_cached(job, hit)
                cached += 1
            else:
                out.append(job)
        return out

    # the progress total: every row already done (both stages, and rungs climbed before that this ladder does not
    # list), then each job as it is planned (`untrained`)
    rec.total = rec.done(rec.frame())
    pending = untrained(jobs)
    rec.finished_here = 0
    rec.flush(quiet=True)
    if on_plan is not None:
        on_plan(jobs, len(pending))
    hooks = tuning.SearchHooks(on_refused=lambda _p: None, on_finished=rec.on_finished)

    def train(todo: list[TrialJob]) -> bool:
        """Train `todo` (jobs of one rung) through Ray; True when interrupted."""
        if not todo:
            return False
        try:
            return tuning.run_jobs(todo, hooks, space=plan.space, proxy=rec.proxy_for(todo[0].stage).to_dict(),
                                   data=str(plan.opts.data) if plan.opts.data else plan.dataset.name,
                                   resources=resources, storage_path=d / "ray", on_error=rec.on_error,
                                   on_start=rec.on_start, runtime=plan.runtime,
                                   checkpoint_dir=d / CHECKPOINT_DIR).interrupted
        except KeyboardInterrupt:
            return True

    trained = len(pending)

    def extend(more: list[TrialJob]) -> bool:
        """Add `more` jobs to the confirmation and train the ones with no row yet; True when interrupted."""
        nonlocal trained
        jobs.extend(more)
        todo = untrained(more)
        trained += len(todo)
        rec.flush(quiet=True)
        return train(todo)

    def headline_rounds(stage: str, floor: int) -> bool:
        """The headline pair's extra seeds at rung `stage`, a round at a time (a resumed run finds its finished
        rounds as rows); True when interrupted."""
        while all(rec.is_trained(j) for j in jobs):
            left = started + opts.time_budget_s - time.time() if opts.time_budget_s > 0 else math.inf
            more, why = headline_jobs(plan, rec.frame(), opts, seconds_left=left, slots=resources.max_concurrent,
                                      stage=stage, floor=floor)
            known = {j.key for j in jobs}
            more = [j for j in more if j.key not in known]
            if why and on_note is not None:
                on_note(why)
            if not more:
                return False
            if extend(more):
                return True
        return False

    interrupted = train(pending)
    if not interrupted and len(ladder_rungs) == 1:  # no higher rung: the first rung carries the claim
        interrupted = headline_rounds(ladder_rungs[0].stage, 0)
    # the ladder's higher rungs: the pairs the first rung chose, retrained longer (a resume finds its rows);
    # the top one's headline pair then gets its extra seeds
    for rung in ladder_rungs[1:]:
        if interrupted or not all(rec.is_trained(j) for j in jobs):
            break
        f = rec.frame()
        search = _search_rows(f)
        trials = ladder.headline_pair(f, rung.steps) if opts.headline_only else ladder.rung_trials(f)
        more = [j for t in trials for j in _arch_jobs(plan, search, t, range(rung.seeds), stage=rung.stage)]
        if on_note is not None and more:
            todo = [j for j in more if not rec.is_trained(j)]
            est = rung_estimate(f, todo, rung.steps, resources.max_concurrent)
            about = (f"; {len(todo)} jobs to train, about {est[0] / 60:.0f} min {resources.max_concurrent} at a time "
                     f"(their {est[1]}-step jobs' times, scaled)" if est else "")
            on_note(f"top rung ({rung.steps} training steps, {rung.seeds} paired seeds): "
                    f"{', '.join(dict.fromkeys(j.trial for j in more))}{about}")
        interrupted = extend(more)
        if not interrupted and rung is ladder_rungs[-1] and more:
            interrupted = headline_rounds(rung.stage, ladder.MIN_HEADLINE_SEEDS)
    left = [j for j in jobs if not rec.is_trained(j)]
    rec.more_to_plan = False
    df, front = rec.flush(quiet=True)
    rec.refresh_dashboard()
    if rec.finished_here and not interrupted:  # the stage's last progress line: nothing more to plan
        rec.on_progress(rec.progress(df, front))
    return ConfirmOutcome(trials=rec.frame(), jobs=len(jobs), trained=trained - len(left), cached=cached,
                          wall_s=time.time() - t0, interrupted=interrupted or bool(left))
