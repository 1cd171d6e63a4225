"""The confirmation stage: retrain the search's best candidates and the published variants of the band under
the longer confirm protocol, with n paired seeds, and score them on the held-out split.

Pairing: every architecture runs the same seeds; a seed fixes the data order, the augmentation stream and
the initial weights' random stream, so two architectures' runs with one seed differ only by architecture.
Candidates: the top `top_k` searched trials of the search front by search-stage accuracy, never all of one
family while the other family has trained candidates (a family bias of the search protocol must not hide
the other family's best). Each finished seed is a ``stage = confirm`` row the moment it ends; a resume
trains only the (trial, seed) pairs that have no row yet. Baselines' confirm seeds are cached across runs
like their search results (same architecture, protocol, seed, data and code).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas import results as R
from nas.errors import ConfigError
from nas.jobs import Resources, TrialJob
from nas.search.folder import params_from_row, record_confirm_settings
from nas.search.plan import DEFAULT_CONFIRM_SEEDS, DEFAULT_CONFIRM_TOP, SearchPlan
from nas.search.recorder import Progress, RunRecorder

DEFAULT_TOP_K = DEFAULT_CONFIRM_TOP
DEFAULT_SEEDS = DEFAULT_CONFIRM_SEEDS
DEFAULT_PROTOCOL = "confirm"
CONFIRM_FILE = "confirm.yaml"


@dataclass(frozen=True)
class ConfirmOptions:
    top_k: int = DEFAULT_TOP_K
    seeds: int = DEFAULT_SEEDS
    protocol: str | None = None  # a protocol YAML or a shipped name; default: the shipped "confirm"

    def check(self) -> None:
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"--confirm-top {self.top_k!r} is invalid", "an integer >= 0 (candidates to confirm)")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"--confirm-seeds {self.seeds!r} is invalid",
                              "an integer >= 1 (2 or more give an interval; 3 is the default)")


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


def confirm_jobs(plan: SearchPlan, df: Any, opts: ConfirmOptions) -> list[TrialJob]:
    """Every (architecture, seed) job of the confirmation: candidates, then the band's baselines."""
    search = R.search_stage(df).drop_duplicates("trial", keep="last").set_index("trial")
    jobs = []
    for t in select_candidates(df, opts.top_k):
        r = search.loc[t].to_dict()
        r["trial"] = t
        params = params_from_row(r, plan.space)
        for s in range(opts.seeds):
            jobs.append(TrialJob(kind="searched", trial=t, number=int(r["number"]), params=params,
                                 arch_id=str(r["arch_id"]), madds_m=float(r["madds_m"]), stage="confirm", seed=s,
                                 evaluate_test=True, family=str(r["family"])))
    for b in plan.baselines:
        for s in range(opts.seeds):
            jobs.append(b.replace(stage="confirm", seed=s, evaluate_test=True))
    return jobs


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
                on_plan: Callable[[list[TrialJob], int], None] | None = None) -> ConfirmOutcome:
    """Run (or extend, or resume) the confirmation of the run in `plan.run_dir` on a started Ray."""
    import yaml

    from nas import tuning

    opts.check()
    t0 = time.time()
    proxy = load_confirm_protocol(plan, opts)
    if proxy.resolution != plan.proxy.resolution:
        raise ConfigError(f"the confirm protocol trains at {proxy.resolution} px, the search at "
                          f"{plan.proxy.resolution} px", "use one resolution for both stages")
    d = plan.run_dir
    R.atomic_write_text(d / CONFIRM_FILE, yaml.safe_dump(proxy.to_dict(), sort_keys=False))
    record_confirm_settings(d, top_k=opts.top_k, seeds=opts.seeds, protocol=opts.protocol)
    rec = RunRecorder(plan, total=0, dashboard=dashboard, on_progress=on_progress, on_note=on_note)
    rec.confirm_proxy = proxy
    jobs = confirm_jobs(plan, rec.frame(), opts)
    rec.keep_variants = {j.trial for j in jobs if j.kind == "searched"}
    pending, cached = [], 0
    for job in jobs:
        if rec.is_trained(job):
            continue
        hit = (rec.cache.get(job.arch_id, proxy.hash, plan.dataset.name, seed=job.seed, stage="confirm")
               if job.kind == "baseline" else None)
        if hit is not None:
            rec.add_cached(job, hit)
            cached += 1
        else:
            pending.append(job)
    rec.total = len(jobs) + len(rec.trained("searched")) + len(rec.trained("baseline"))  # both stages
    rec.finished_here = 0
    rec.flush(quiet=True)
    if on_plan is not None:
        on_plan(jobs, len(pending))
    interrupted = False
    if pending:
        hooks = tuning.SearchHooks(on_refused=lambda _p: None, on_finished=rec.on_finished)
        try:
            queue = tuning.run_jobs(pending, hooks, space=plan.space, proxy=proxy.to_dict(),
                                    data=str(plan.opts.data) if plan.opts.data else plan.dataset.name,
                                    resources=resources, storage_path=d / "ray", on_error=rec.on_error,
                                    on_start=rec.on_start)
            interrupted = queue.interrupted
        except KeyboardInterrupt:
            interrupted = True
    left = [j for j in jobs if not rec.is_trained(j)]
    rec.flush(quiet=True)
    rec.refresh_dashboard()
    return ConfirmOutcome(trials=rec.frame(), jobs=len(jobs), trained=len(pending) - len(left), cached=cached,
                          wall_s=time.time() - t0, interrupted=interrupted or bool(left))
