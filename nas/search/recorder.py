"""The run's table: every job's row, written to the run folder (trials, front, variants, dashboard) the
moment it changes. Rows are built by the pure functions of `nas.results`; this class keeps them and flushes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas import results as R
from nas.config import ArchConfig
from nas.jobs import TrialJob, arch_of_job, is_confirm_stage
from nas.search.folder import BaselineCache, params_from_row
from nas.search.ladder import available_images
from nas.search.plan import SearchPlan, now
from nas.space import arch_summary, format_madds, knob_values, replay

Key = tuple[str, str, int]
CONFIRMED_CSV = "confirmed.csv"
VERDICTS_CSV = "verdicts.csv"


@dataclass(frozen=True)
class Progress:
    """Where the run stands after a change (the CLI turns it into the progress line)."""

    done: int
    total: int
    searched: int
    baselines: int
    confirmed: int
    best_top1: float | None
    best_madds_m: float | None
    best_trial: str | None
    pareto: int
    refused: int
    elapsed_s: float
    eta_s: float | None
    more_to_plan: bool = False  # the stage may still plan jobs (a higher rung, a headline seed round)


def finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# A baseline row taken from the baseline cache instead of trained (`RunRecorder.add_cached`) says so in its
# `reused_from` column. Runs written before that column existed said it in `error`, with this text.
LEGACY_REUSED_NOTE = "reused from results/.cache/baselines.parquet (same arch, protocol, seed, data and code)"


class RunRecorder:
    """Keeps the rows of a run (keyed by trial, stage, seed) and writes them after every change."""

    def __init__(self, plan: SearchPlan, *, total: int, dashboard: Path | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_note: Callable[[str], None] | None = None):
        self.plan, self.total, self.dashboard = plan, total, dashboard
        self.on_progress = on_progress or (lambda _p: None)
        self.on_note = on_note or (lambda _s: None)
        d = plan.run_dir
        self.rows: dict[Key, dict[str, Any]] = {}
        if (d / R.TRIALS_PARQUET).is_file() or (d / R.TRIALS_CSV).is_file():
            for r in R.read_trials(d).to_dict("records"):
                self.rows[R.row_key(r)] = r
        self.cache = BaselineCache(Path(plan.opts.results_root), plan.runtime)
        self.started: dict[Key, str] = {}
        self.t0 = time.time()
        self.finished_here = 0
        self.more_to_plan = False  # the confirm stage sets it while a higher rung or seed round may follow
        self._params_m: dict[str, float] = {}
        self._viz_failed = False
        self._dashboard_at = 0.0
        self._derived_at = 0.0  # when the front and the files derived from it were last written
        self._progress_at = 0.0  # when a one-shot stage last computed the progress line between flushes
        self._front: Any = None
        self.keep_variants: set[str] = set()  # confirmed trials keep their variants/<trial>.yaml
        self.confirm_proxy: Any = None  # the confirm protocol, once the confirm stage runs
        self.rung_proxies: dict[str, Any] = {}  # higher rungs of the ladder: stage -> protocol

    # -- queries -------------------------------------------------------------------------------------
    def trained(self, kind: str = "searched", stage: str = "search") -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["kind"] == kind and r["stage"] == stage and r["status"] in R.TRAINED]

    def reused(self, kind: str = "baseline", stage: str = "search") -> int:
        """Rows of `kind` and `stage` taken from the baseline cache, not trained by this run."""
        return sum(1 for r in self.trained(kind, stage) if r.get("reused_from") or r.get("error") == LEGACY_REUSED_NOTE)

    def is_trained(self, job: TrialJob) -> bool:
        r = self.rows.get(job.key)
        return r is not None and r["status"] in R.TRAINED

    def known_result(self, arch_id: str) -> float | None:
        for r in self.rows.values():
            if (r["stage"] == "search" and r["arch_id"] == arch_id and r["status"] in R.FINISHED_OK
                    and finite(r["val_top1"])):
                return float(r["val_top1"])
        return None

    # -- rows ----------------------------------------------------------------------------------------
    def base_row(self, job: TrialJob, params_m: float | None = None) -> dict[str, Any]:
        """The row's fields known before a result; `params_m` where the job reported it (else counted here)."""
        p = self.plan
        arch = arch_of_job(job, p.space)
        published = knobs = None
        if job.kind == "baseline":
            from nas.variants import published as published_of

            published = published_of(str(job.variant))
            rebuild = f"nas train {job.variant}"
        else:
            knobs = knob_values(job.params, p.space)
            rebuild = f"nas export {p.run_dir} {job.trial}"
        row = R.job_row(job.to_config(), summary=arch_summary(arch), params_m=params_m or self._count_params(arch),
                        budget_m=p.budget_m, proxy_hash=p.proxy.hash, dataset=p.dataset.name, knobs=knobs,
                        published=published, rebuild_cmd=rebuild)
        row["family"] = job.family or arch.family
        row["started_at"] = self.started.get(job.key, "")
        proxy = self.proxy_for(job.stage)
        row["steps"] = proxy.steps_on(available_images(self.plan.dataset, proxy))  # what it trains
        return row

    def proxy_for(self, stage: str) -> Any:
        """The protocol a stage's jobs train under: the search's, the first confirm rung's, a higher rung's."""
        if stage in self.rung_proxies:
            return self.rung_proxies[stage]
        return self.confirm_proxy if stage == "confirm" and self.confirm_proxy is not None else self.plan.proxy

    def _count_params(self, arch: ArchConfig) -> float:
        """Parameters of the network with the dataset's classes and channels (built once per architecture;
        on the meta device: a refused proposal costs ~25-60 ms here, measured, against the seconds of a trained one)."""
        if arch.arch_id not in self._params_m:
            from nas.builder import build_meta, count_params

            model = build_meta(arch, num_classes=self.plan.dataset.num_classes, in_chans=self.plan.dataset.in_chans)
            self._params_m[arch.arch_id] = count_params(model) / 1e6
        return self._params_m[arch.arch_id]

    def on_start(self, cfg: dict[str, Any]) -> None:
        self.started[TrialJob.from_config(cfg).key] = now()

    def on_refused(self, prop: Any) -> None:
        """A proposal the budget screen refused (a duplicate of a trained architecture is not a row)."""
        if prop.status == "duplicate":
            return
        from nas.jobs import trial_id

        job = TrialJob(kind="searched", trial=trial_id(prop.number), number=prop.number, params=prop.params,
                       arch_id=prop.arch.arch_id, madds_m=prop.madds / 1e6, seed=self.plan.proxy.seed)
        side = "over the budget" if prop.status == "over_budget" else f"under the band floor {self.plan.min_budget:g}x"
        why = f"{format_madds(prop.madds)} MAdds is {side} ({format_madds(self.plan.budget)}); not trained"
        row = R.refused_row(self.base_row(job), why=why, at=now())
        self.rows[job.key] = row
        if self._pending_ok(job.stage):
            R.append_pending(self.plan.run_dir, row)
        else:
            self.write_rows()

    def on_finished(self, cfg: dict[str, Any], result: dict[str, Any] | None, error: bool) -> None:
        job = TrialJob.from_config(cfg)
        proxy = self.proxy_for(job.stage)
        # a job that reports its network's parameters (trainings, one-shot scores) saves the driver a build
        row = R.finished_row(self.base_row(job, params_m=(result or {}).get("params_m") or None), result,
                             error=error, epochs=int(proxy.epochs), at=now())
        row["proxy_hash"] = proxy.hash
        self.rows[job.key] = row
        if job.kind == "baseline" and row["status"] == "completed":
            if not (self.plan.oneshot and job.stage == "search"):  # inherited-weight scores are not trainings
                self.cache.put(row)
        self.finished_here += 1
        if self._pending_ok(job.stage):
            R.append_pending(self.plan.run_dir, row)
            if time.time() - self._progress_at >= self.ONESHOT_PROGRESS_EVERY_S:
                self._progress_at = time.time()
                self.on_progress(self.progress(self.frame(), self._front))
            return
        self.flush()

    def on_error(self, cfg: dict[str, Any], message: str) -> None:
        job = TrialJob.from_config(cfg)
        if job.key in self.rows and self.rows[job.key]["status"] != "running":
            return
        self.on_finished(cfg, {"status": "failed", "error": message, "final": True}, True)

    def add_cached(self, job: TrialJob, cached: dict[str, Any]) -> None:
        row = self.base_row(job)
        for k in ("status", "val_top1", "best_val_top1", "val_curve", "epochs_done", "wall_s", "images_per_s",
                  "params_m", "started_at", "finished_at", "error", "test_top1", "eval_set", "proxy_hash",
                  "resumed_after_epoch"):
            if k in cached:
                row[k] = cached[k]
        row["reused_from"] = str(self.cache.path)
        self.rows[job.key] = row

    # -- files ---------------------------------------------------------------------------------------
    def frame(self):
        import pandas as pd

        return R.normalize_trials(pd.DataFrame(list(self.rows.values()))) if self.rows else R.empty_trials()

    # A one-shot search stage scores an architecture every third of a second or so. There each result's row is
    # appended at once to the run's pending rows (`R.append_pending`: a kill loses nothing, and `R.read_trials`
    # reads them), while trials.parquet and trials.csv, and the front, its variants' YAML files and pareto.csv,
    # which derive from the rows, are rewritten at most this often and at the stage's end (and a resume derives
    # them again). A scored result cost the driver 112 ms of CPU with a full flush and the network built to count
    # its parameters, 31 ms with the two files rewritten for each row, about 1 ms appended (bench/driver_cpu.py;
    # BENCHMARKS.md, "An optimizer without torch._dynamo, the one-shot driver's CPU..." and "Pending rows").
    # The progress line is computed at most once a second there.
    ONESHOT_DERIVED_EVERY_S = 5.0
    ONESHOT_PROGRESS_EVERY_S = 1.0

    def _pending_ok(self, stage: str) -> bool:
        """Whether a row of `stage` may wait in the pending rows for the next rewrite of the trials files: in a
        one-shot search stage, between its full flushes."""
        return (self.plan.oneshot and stage == "search" and self._front is not None
                and time.time() - self._derived_at < self.ONESHOT_DERIVED_EVERY_S)

    def write_rows(self) -> Any:
        """Write trials.parquet and trials.csv alone and return the rows as written: for a row that moves neither
        the front, the variants nor the confirmation (a refused proposal)."""
        import pandas as pd

        return R.write_trials(self.plan.run_dir, pd.DataFrame(list(self.rows.values())))

    def flush(self, *, quiet: bool = False) -> tuple[Any, Any]:
        """Write the rows and what derives from them; (the rows as written, the search front)."""
        d = self.plan.run_dir
        df = self.frame()
        front = R.compute_pareto(df)
        on_front = set(front["trial"].astype(str))
        vdir = d / R.VARIANTS_DIR
        for t in on_front | self.keep_variants:
            path = vdir / f"{t}.yaml"
            if not path.is_file():
                self.arch_of(t).replace(name=t).to_yaml(path)
        if vdir.is_dir():
            for f in vdir.glob("*.yaml"):
                if f.stem not in on_front and f.stem not in self.keep_variants:
                    f.unlink()
        for (t, _stage, _seed), r in self.rows.items():
            r["config_path"] = f"{R.VARIANTS_DIR}/{t}.yaml" if (t in on_front or t in self.keep_variants) else ""
            if r["config_path"]:
                r["rebuild_cmd"] = f"nas train {d / R.VARIANTS_DIR / f'{t}.yaml'}"
            elif r["kind"] == "searched":
                r["rebuild_cmd"] = f"nas export {d} {t}"
        import pandas as pd

        df = R.write_trials(d, pd.DataFrame(list(self.rows.values())))  # normalized once, there
        self.write_confirmation(df, front)
        self._front, self._derived_at = front, time.time()
        if not quiet:
            self.refresh_dashboard(force=False)
            self.on_progress(self.progress(df, front))
        return df, front

    def write_confirmation(self, df: Any, front: Any) -> None:
        """pareto.csv with its confirmation marks; with confirm rows, confirmed.csv and verdicts.csv, and a
        header on each confirmed variant's YAML that says what was measured."""
        from nas import verdicts as V

        d = self.plan.run_dir
        marked = V.mark_front(front, df)
        R.atomic_write(d / R.PARETO_CSV, lambda t: marked.to_csv(t, index=False))
        if not (df["stage"] == "confirm").any():
            return
        import pandas as pd

        conf = V.compute_confirmation(df)  # the top rung's verdicts, with their trends
        tables = [V.confirmed_table(df, s).assign(stage=s, steps=n) for s, n in conf.rungs]
        every = pd.concat(tables, ignore_index=True) if tables else conf.table
        R.atomic_write(d / CONFIRMED_CSV, lambda t: every.to_csv(t, index=False))
        R.atomic_write(d / VERDICTS_CSV, lambda t: conf.verdicts.to_csv(t, index=False))
        verdict = {r["trial"]: r for r in conf.verdicts.to_dict("records")}
        # each confirmed variant's header says what its longest rung measured
        for r in every.drop_duplicates("trial", keep="last").to_dict("records"):
            path = d / R.VARIANTS_DIR / f"{r['trial']}.yaml"
            if r["kind"] != "searched" or not path.is_file():
                continue
            body = "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("# confirmed"))
            v = verdict.get(r["trial"], {})
            head = (f"# confirmed: {r['eval_set']} top-1 {r['mean']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] (mean, 95% t "
                    f"interval, n={r['n']} seeds, {r['steps']} training steps); vs {v.get('reference') or '-'}: "
                    f"{v.get('verdict', '-')}")
            R.atomic_write_text(path, head + "\n" + body + "\n")

    def arch_of(self, trial: str) -> ArchConfig:
        r = min((r for (t, _s, _n), r in self.rows.items() if t == trial), key=lambda r: r["stage"] != "search")
        if r["kind"] == "baseline":
            from nas.variants import get_variant

            return get_variant(str(r["name"]))
        return replay(params_from_row(r, self.plan.space), self.plan.space)

    # The dashboard is rewritten as jobs finish, at most this often, and at the end of each stage. A rewrite
    # takes 0.2-0.3 s of the driver's CPU (2 s the first time with data), on the cores the jobs train on, and
    # holds up Ray Tune's loop meanwhile (BENCHMARKS.md, "Evaluation, a fused BatchNorm kernel, the
    # driver..."). A one-shot search finishes a job every second or two.
    DASHBOARD_EVERY_S = 20.0
    ONESHOT_DASHBOARD_EVERY_S = 60.0

    def refresh_dashboard(self, *, force: bool = True) -> None:
        if self.dashboard is None or self._viz_failed:
            return
        every = self.ONESHOT_DASHBOARD_EVERY_S if self.plan.oneshot else self.DASHBOARD_EVERY_S
        if not force and time.time() - self._dashboard_at < every:
            return
        self._dashboard_at = time.time()
        try:
            from nas.viz import write_dashboard

            write_dashboard(self.plan.run_dir, out=self.dashboard)
        except Exception as e:  # the dashboard must never stop a search
            self._viz_failed = True
            self.on_note(f"(dashboard not written: {type(e).__name__}: {e})")

    @staticmethod
    def done(df: Any) -> int:
        """Jobs the progress line counts as done: the search stage's trained architectures and baselines, and
        every trained confirm row of any rung."""
        search = R.search_stage(df)
        trained = df["status"].isin(R.TRAINED)
        return int((search["kind"].isin(("searched", "baseline")) & search["status"].isin(R.TRAINED)).sum()
                   + (df["stage"].map(is_confirm_stage) & trained).sum())

    def progress(self, df: Any, front: Any) -> Progress:
        search = R.search_stage(df)
        searched = search[(search["kind"] == "searched") & search["status"].isin(R.TRAINED)]
        base = search[(search["kind"] == "baseline") & search["status"].isin(R.TRAINED)]
        confirmed = df[df["stage"].map(is_confirm_stage) & df["status"].isin(R.TRAINED)]
        ok = search[search["status"].isin(R.FINISHED_OK) & (search["madds_m"] <= self.plan.budget_m)]
        best = ok.loc[ok["val_top1"].idxmax()] if len(ok) and ok["val_top1"].notna().any() else None
        done = self.done(df)
        el = time.time() - self.t0
        left = max(0, self.total - done)
        eta = (el / self.finished_here * left) if self.finished_here and left else (0.0 if not left else None)
        return Progress(done=done, total=self.total, searched=len(searched), baselines=len(base),
                        confirmed=len(confirmed), best_top1=None if best is None else float(best["val_top1"]),
                        best_madds_m=None if best is None else float(best["madds_m"]),
                        best_trial=None if best is None else str(best["trial"]), pareto=len(front),
                        refused=int((search["status"] == "over_budget").sum()), elapsed_s=el, eta_s=eta,
                        more_to_plan=self.more_to_plan)
