"""The one DataFrame schema of a run, the run folder's files, and the Pareto front.

A run folder ``results/<name>/`` holds ``run.yaml`` (the run config), ``trials.parquet`` and
``trials.csv`` (one row per trial, searched or baseline, columns `TRIAL_COLUMNS` plus ``knob_<name>``
columns), ``pareto.csv`` (the Pareto-optimal rows plus ``gain_vs_published``) and ``variants/``
(the exported ArchConfig YAML of each Pareto-optimal architecture). The search writes through this
module and the dashboard reads through it, so both agree on one schema.

Writes are atomic (temp file in the same folder, then `os.replace`): a dashboard reading while the
search writes sees the old file or the new one, never half of one. pandas is imported lazily.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import RunError
from nas.jobs import KINDS, STAGES

if TYPE_CHECKING:
    import pandas as pd

# Column name -> kind ("str", "int", "float"). Knob columns (``knob_<name>``) come after `attention`.
_SCHEMA: dict[str, str] = {
    "trial": "str", "stage": "str", "seed": "int", "number": "int", "kind": "str", "name": "str",
    "arch_id": "str", "family": "str", "fusion": "str", "attention": "str",
    "madds_m": "float", "params_m": "float", "budget_m": "float",
    "status": "str", "error": "str",
    "val_top1": "float", "best_val_top1": "float", "val_curve": "str", "epochs_done": "int",
    "wall_s": "float", "images_per_s": "float",
    "published_top1": "float", "published_madds_m": "float",
    "config_path": "str", "rebuild_cmd": "str",
    "proxy_hash": "str", "dataset": "str", "started_at": "str", "finished_at": "str",
    "test_top1": "float", "eval_set": "str", "steps": "int", "resumed_after_epoch": "int", "reused_from": "str",
}
TRIAL_COLUMNS: list[str] = list(_SCHEMA)
"""The fixed trial columns, in file order (knob columns are inserted after ``attention``)."""
KNOB_PREFIX = "knob_"
STATUSES: tuple[str, ...] = ("completed", "early_stopped", "failed", "over_budget", "nan", "running")
"""Trial statuses; only ``completed`` and ``early_stopped`` trials carry a usable accuracy."""
FINISHED_OK: tuple[str, ...] = ("completed", "early_stopped")
TRAINED: tuple[str, ...] = ("completed", "early_stopped", "failed", "nan")
"""Statuses of a trial that ran to its end (with or without a usable accuracy): never trained again."""
# KINDS and STAGES are the jobs' own (`nas.jobs`). Stages: ``search``, the searched and baseline trials under
# the search protocol (one row per trial); ``confirm``, the confirmation retrainings, one row per (trial, seed);
# ``confirm@<steps>``, a higher rung of the ladder (nas.search.ladder). A row's ``steps`` is the optimizer steps
# it trained (`ProxyConfig.steps_on`; 0: a run from before steps were recorded); ``resumed_after_epoch``, the
# epochs a killed job's checkpoint held when it went on in a later process (0: trained in one go; its `wall_s`
# counts all its processes); ``reused_from``, where a row taken instead of trained came from (a baseline from
# the cross-run cache: `results/.cache/baselines.parquet`; "": trained by this run).
PARETO_EXTRA = "gain_vs_published"
"""pareto.csv's extra column: val top-1 minus the best published *architecture* at <= MAdds, both
trained under the same search protocol (not the published paper numbers)."""
_INT_DEFAULTS = {"number": -1, "epochs_done": 0, "seed": 0, "steps": 0, "resumed_after_epoch": 0}
_STR_DEFAULTS = {"val_curve": "[]", "kind": "searched", "status": "running", "stage": "search"}

RUN_FILE = "run.yaml"
TRIALS_PARQUET = "trials.parquet"
TRIALS_CSV = "trials.csv"
# Rows finished since trials.parquet and trials.csv were last rewritten, one JSON line each (a one-shot search
# stage rewrites those files every few seconds, not after each of its 3-4 rows a second): `read_trials` reads
# them with the files, and the next rewrite removes the file
TRIALS_PENDING = "trials.pending.jsonl"
PARETO_CSV = "pareto.csv"
VARIANTS_DIR = "variants"
# The run's Optuna study: an Optuna journal file (JournalStorage, one appended and fsync'd line per change; open it
# with `optuna-dashboard results/<run>/optuna.journal`). Runs begun before 2026-12-06 keep their sqlite study,
# optuna.db. A proposal cost the search driver 3x the CPU on sqlite, where every sampled knob re-reads the
# trials from the database (BENCHMARKS.md, "The one-shot driver and its workers: an Optuna journal, one template a
# subnet").
STUDY_JOURNAL = "optuna.journal"
LEGACY_STUDY_DB = "optuna.db"


# ---------------------------------------------------------------------------------------------------------
# Schema


def knob_columns(df: pd.DataFrame) -> list[str]:
    """The ``knob_<name>`` columns of a trials frame, in their order."""
    return [c for c in df.columns if str(c).startswith(KNOB_PREFIX)]


def empty_trials(*, knobs: Iterable[str] = ()) -> pd.DataFrame:
    """A trials frame with no rows and every schema column typed; `knobs` adds ``knob_<name>`` columns."""
    import pandas as pd

    df = pd.DataFrame({c: pd.Series(dtype=_pd_dtype(k)) for c, k in _SCHEMA.items()})
    for k in knobs:
        col = k if k.startswith(KNOB_PREFIX) else KNOB_PREFIX + k
        df[col] = pd.Series(dtype="float64")
    return normalize_trials(df)


def make_row(**values: Any) -> dict[str, Any]:
    """One trial row as a dict with every schema column filled by its default, `values` applied on top.

    Unknown keys must be knob columns (``knob_<name>``); anything else is a typo and raises.
    """
    unknown = [k for k in values if k not in _SCHEMA and not k.startswith(KNOB_PREFIX)]
    if unknown:
        raise RunError(f"unknown trial column {unknown[0]!r}",
                       f"use one of {', '.join(TRIAL_COLUMNS)} or a knob_<name> column")
    row: dict[str, Any] = {c: _default(c, k) for c, k in _SCHEMA.items()}
    row.update(values)
    if not row["name"]:
        row["name"] = row["trial"]
    return row


def normalize_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Schema columns added where missing, typed, and ordered (fixed columns, knobs after `attention`).

    Strings: missing -> "". Ints: missing -> -1 (`number`) or 0. Floats: missing -> NaN. A knob column
    is float when every value present is a number, else str (missing stays NaN/None).
    Extra non-schema columns (e.g. ``gain_vs_published``) are kept at the end.
    """
    import pandas as pd

    src = df.reset_index(drop=True)
    cols: dict[str, pd.Series] = {}  # built apart and framed once: column-by-column assignment was 3x slower
    for col, kind in _SCHEMA.items():
        s = src[col] if col in src.columns else pd.Series([None] * len(src), dtype="object")
        cols[col] = _coerce(s, kind, default=_default(col, kind))
    knobs = knob_columns(src)
    for col in knobs:
        cols[col] = _coerce_knob(src[col])
    extra = [c for c in src.columns if c not in _SCHEMA and c not in knobs]
    for col in extra:
        cols[col] = src[col]
    pos = TRIAL_COLUMNS.index("attention") + 1
    order = TRIAL_COLUMNS[:pos] + knobs + TRIAL_COLUMNS[pos:] + extra
    return pd.DataFrame({c: cols[c].reset_index(drop=True) for c in order}, index=pd.RangeIndex(len(src)))


def _pd_dtype(kind: str) -> str:
    return {"str": "object", "int": "int64", "float": "float64"}[kind]


def _default(col: str, kind: str) -> Any:
    if kind == "int":
        return _INT_DEFAULTS.get(col, 0)
    if kind == "float":
        return math.nan
    return _STR_DEFAULTS.get(col, "")


def _coerce(s: pd.Series, kind: str, *, default: Any) -> pd.Series:
    import pandas as pd

    if kind == "float":
        return pd.to_numeric(s, errors="coerce").astype("float64")
    if kind == "int":
        return pd.to_numeric(s, errors="coerce").fillna(default).astype("int64")
    vals = [default if _missing(v) else str(v) for v in s.tolist()]
    return pd.Series(vals, dtype="object")


def _coerce_knob(s: pd.Series) -> pd.Series:
    import pandas as pd

    vals = s.tolist()
    present = [v for v in vals if not _missing(v)]
    if all(_is_number(v) for v in present):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    return pd.Series([None if _missing(v) else str(v) for v in vals], dtype="object")


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN, pd.NA-safe enough for scalars
    except (TypeError, ValueError):
        return False


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, str)


# ---------------------------------------------------------------------------------------------------------
# Files


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temp file next to `path`, then move it over `path` in one step
    (readers see the old file or the new one, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name in the same folder (so os.replace is atomic), created with the usual umask permissions
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (readers see the old file or the new one)."""
    p = Path(path)
    atomic_write(p, lambda t: t.write_text(text, encoding="utf-8"))
    return p


def study_location(run_dir: str | Path) -> Path:
    """The file of a run folder's Optuna study: its journal, or the sqlite file of a run begun before journals
    (resumed on that file); a new run's journal path when there is neither yet."""
    d = Path(run_dir).resolve()
    if (d / LEGACY_STUDY_DB).is_file() and not (d / STUDY_JOURNAL).exists():
        return d / LEGACY_STUDY_DB
    return d / STUDY_JOURNAL


def _sqlite_engine_kwargs(path: str) -> dict[str, Any]:
    """SQLAlchemy engine arguments for a sqlite study (older runs): write-ahead-log mode with synchronous=NORMAL.
    Each `suggest_*` and `tell` is a transaction, and the default rollback journal syncs every one to disk; in WAL
    mode ask/tell cycles ran 2.1x as fast here (BENCHMARKS.md, "One-shot at 10x, again"). The mode is kept in the
    file, so `optuna-dashboard` and a resume read it as usual. WAL needs a local file system, as sqlite's locking
    does anyway."""
    import sqlite3

    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(path, timeout=30, check_same_thread=False)  # SQLAlchemy's pool hands it around
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    return {"creator": connect}


def open_storage(location: str | Path) -> Any:
    """The Optuna storage at `location`: a database URL (``sqlite:///...``, ``postgresql://...``), a sqlite file
    (``*.db``), or else an Optuna journal file (created if missing)."""
    import optuna

    loc = str(location)
    if "://" in loc:
        sqlite = "sqlite:///"
        kw = _sqlite_engine_kwargs(loc[len(sqlite):]) if loc.startswith(sqlite) else {"connect_args": {"timeout": 30}}
        return optuna.storages.RDBStorage(loc, engine_kwargs=kw)
    if loc.endswith(".db"):
        return open_storage(f"sqlite:///{Path(loc).resolve()}")
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(loc))


def repair_journal(path: str | Path) -> None:
    """Make a journal that a killed driver left behind readable and writable again: drop a last line cut short
    (a kill during a write; every whole line was fsync'd), and its lock (one driver per run folder: the one
    starting now). A sqlite file or a missing journal is left as it is."""
    p = Path(path)
    if p.suffix != Path(STUDY_JOURNAL).suffix or not p.is_file():
        return
    Path(f"{p}.lock").unlink(missing_ok=True)  # optuna's JournalFileSymlinkLock: a symlink next to the file
    data = p.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(p, "rb+") as f:
            f.truncate(data.rfind(b"\n") + 1)


def write_trials(run_dir: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """Write `df` (normalized to the schema) as trials.parquet and trials.csv, each atomically.

    Returns the normalized frame that was written.
    """
    norm = normalize_trials(df)
    d = Path(run_dir)
    atomic_write(d / TRIALS_PARQUET, lambda t: norm.to_parquet(t, index=False))
    atomic_write(d / TRIALS_CSV, lambda t: norm.to_csv(t, index=False))
    (d / TRIALS_PENDING).unlink(missing_ok=True)  # its rows are in both files now
    return norm


def _json_value(v: Any) -> Any:
    """numpy scalars as Python numbers, for a pending row's JSON line."""
    return v.item() if hasattr(v, "item") else str(v)


def append_line(path: str | Path, line: str) -> None:
    """Append one text line to `path`, written and closed before the caller goes on. Where the file ends in a
    line cut short (a write that never finished), the new line starts a line of its own, so that the cut
    line, which readers skip, does not take this one with it."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    with open(path, "a+b") as f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)


def append_pending(run_dir: str | Path, row: Mapping[str, Any]) -> None:
    """Append one finished row to the run's pending rows (`TRIALS_PENDING`): one line (`append_line`), so a
    kill loses no row (Optuna is told a result after its row is kept)."""
    append_line(Path(run_dir) / TRIALS_PENDING, json.dumps(dict(row), default=_json_value, allow_nan=True))


def _pending_rows(d: Path) -> list[dict[str, Any]]:
    """The pending rows of run folder `d`; a line cut short is skipped (its row was never complete, and its
    result was never told to Optuna, so the resume runs that job again; `append_pending` writes the next row on
    a line of its own)."""
    p = d / TRIALS_PENDING
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_trials(run_dir: str | Path) -> pd.DataFrame:
    """The trials of a run folder (trials.parquet, else trials.csv), normalized to the schema.

    A run folder without trials yet (the search just started) gives an empty frame; a folder that is
    not a run (no run.yaml and no trials file) raises RunError.
    """
    import pandas as pd

    d = Path(run_dir)
    _check_run_dir(d)
    pq, csv = d / TRIALS_PARQUET, d / TRIALS_CSV
    try:
        if pq.is_file():
            # through one open handle: a path read stats the file and opens it again, and a writer's atomic
            # replace in between mixes two files ("Page was smaller than expected") while a run is writing
            with open(pq, "rb") as f:
                df = pd.read_parquet(f)
        elif csv.is_file():
            df = pd.read_csv(csv, keep_default_na=False, na_values=[""])
        else:
            df = empty_trials()
    except Exception as e:  # pyarrow/pandas raise many types for a truncated or foreign file
        raise RunError(f"cannot read the trials of {d}: {type(e).__name__}: {e}",
                       "the file is damaged; rerun the search or restore trials.parquet/trials.csv") from None
    latest = {row_key(r): r for r in _pending_rows(d)}  # the last line of a (trial, stage, seed) wins
    if latest:  # rows finished after the files were last written replace theirs
        df = pd.DataFrame([r for r in df.to_dict("records") if row_key(r) not in latest] + list(latest.values()))
    return normalize_trials(df)


def row_key(row: Mapping[str, Any]) -> tuple[str, str, int]:
    """The (trial, stage, seed) identity of a row: repeats of one architecture (confirmation seeds) never
    overwrite each other (missing stage/seed: "search", 0, as in run folders written before stages existed)."""
    seed = row.get("seed")
    return (str(row["trial"]), str(row.get("stage") or "search"), 0 if _missing(seed) else int(seed))


def upsert_trial(run_dir: str | Path, row: Mapping[str, Any]) -> pd.DataFrame:
    """Insert or replace (by trial, stage and seed) one row in the run's trials files; returns the full frame."""
    import pandas as pd

    d = Path(run_dir)
    df = read_trials(d) if (d / TRIALS_PARQUET).is_file() or (d / TRIALS_CSV).is_file() else empty_trials()
    new = normalize_trials(pd.DataFrame([make_row(**dict(row))]))
    key = row_key(new.iloc[0].to_dict())
    keep = df[[row_key(r) != key for r in df.to_dict("records")]] if len(df) else df
    both = [x for x in (keep, new) if len(x)]
    return write_trials(d, pd.concat(both, ignore_index=True) if both else new)


def search_stage(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the search stage (searched and baseline trials under the search protocol)."""
    return df[df["stage"] == "search"] if "stage" in df.columns else df


# ---------------------------------------------------------------------------------------------------------
# Rows of the search: pure functions of what the run knows (tested without Ray)


def job_row(job: Mapping[str, Any], *, summary: Mapping[str, Any], params_m: float, budget_m: float,
            proxy_hash: str, dataset: str, knobs: Mapping[str, Any] | None = None,
            published: Mapping[str, Any] | None = None, rebuild_cmd: str = "") -> dict[str, Any]:
    """The row of one job before it runs: identity, architecture summary, knobs and provenance.

    `job` is a `nas.jobs.TrialJob` as a dict; `summary` is `nas.space.arch_summary(arch)`."""
    row: dict[str, Any] = {"trial": job["trial"], "stage": job.get("stage", "search"),
                           "seed": int(job.get("seed") or 0), "number": int(job.get("number", -1)),
                           "kind": job["kind"], "name": job.get("name") or job["trial"], "arch_id": job["arch_id"],
                           "madds_m": float(job["madds_m"]), "budget_m": budget_m, "proxy_hash": proxy_hash,
                           "dataset": dataset, "rebuild_cmd": rebuild_cmd}
    row.update(summary)
    row["params_m"] = float(params_m)
    if published:
        row.update(published_top1=published.get("top1"), published_madds_m=published.get("madds_m"))
    row.update({f"{KNOB_PREFIX}{k}": v for k, v in (knobs or {}).items()})
    return row


def refused_row(base: Mapping[str, Any], *, why: str, at: str) -> dict[str, Any]:
    """A proposal the budget screen refused: recorded, never trained."""
    return {**base, "status": "over_budget", "epochs_done": 0, "started_at": at, "finished_at": at, "error": why}


def finished_row(base: Mapping[str, Any], result: Mapping[str, Any] | None, *, error: bool, epochs: int,
                 at: str) -> dict[str, Any]:
    """A finished job from its last report: the status rules live here.

    A trial with no final report was stopped by the scheduler (``early_stopped``) or died (``failed``);
    an early stop at the last epoch is a completed trial; an errored trial is ``failed`` unless it
    already says ``nan``. Only completed/early-stopped rows keep an accuracy."""
    res = dict(result or {})
    status = res.get("status") if res.get("final") else ("early_stopped" if res else "failed")
    if status == "early_stopped" and int(res.get("epoch") or 0) >= epochs:
        status = "completed"
    if error and status not in ("failed", "nan"):
        status = "failed"
    status = status or "failed"
    ok = status in FINISHED_OK
    row = {**base, "status": status, "error": str(res.get("error") or ("trial errored" if error else "")),
           "val_top1": res.get("val_top1") if ok else math.nan, "best_val_top1": res.get("best_val_top1"),
           "val_curve": res.get("val_curve", "[]"), "epochs_done": int(res.get("epoch") or 0),
           "wall_s": res.get("wall_s"), "images_per_s": res.get("images_per_s"), "finished_at": at}
    if res.get("test_top1") is not None:
        row["test_top1"] = res["test_top1"] if ok else math.nan
    if res.get("eval_set"):
        row["eval_set"] = res["eval_set"]
    if res.get("params_m"):
        row["params_m"] = float(res["params_m"])
    if res.get("resumed_after_epoch"):
        row["resumed_after_epoch"] = int(res["resumed_after_epoch"])
    return row


def _check_run_dir(d: Path) -> None:
    if not d.exists():
        raise RunError(f"no run folder at {d}", "pass a folder written by `nas search` (results/<name>)")
    if not d.is_dir():
        raise RunError(f"{d} is a file, not a run folder", "pass the run folder (results/<name>), not a file in it")
    if not any((d / f).is_file() for f in (RUN_FILE, TRIALS_PARQUET, TRIALS_CSV, TRIALS_PENDING)):
        raise RunError(f"{d} is not a run folder (it has no {RUN_FILE} and no {TRIALS_PARQUET})",
                       "pass a folder written by `nas search` (results/<name>)")


# ---------------------------------------------------------------------------------------------------------
# Pareto front and gains


def eligible_mask(df: pd.DataFrame, *, x: str = "madds_m", y: str = "val_top1") -> pd.Series:
    """Rows that can be on a front: status completed/early_stopped and finite `x` and `y`."""
    import numpy as np
    import pandas as pd

    if len(df) == 0:
        return pd.Series([], dtype=bool, index=df.index)
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)
    ok = df["status"].isin(FINISHED_OK).to_numpy() if "status" in df.columns else np.ones(len(df), bool)
    return pd.Series(ok & np.isfinite(xs) & np.isfinite(ys), index=df.index)


def pareto_mask(df: pd.DataFrame, *, x: str = "madds_m", y: str = "val_top1") -> pd.Series:
    """Boolean mask of the rows on the Pareto front: minimize `x`, maximize `y`.

    Only completed/early-stopped rows with finite `x` and `y` are considered; NaN, failed, over-budget
    and running rows are never on the front. A row is dropped only when another row is at least as good
    on both axes and strictly better on one; so identical points (same x and y) are all kept.
    Sort-and-sweep, O(n log n).
    """
    import numpy as np
    import pandas as pd

    ok = eligible_mask(df, x=x, y=y).to_numpy()
    out = np.zeros(len(df), dtype=bool)
    if not ok.any():
        return pd.Series(out, index=df.index)
    idx = np.flatnonzero(ok)
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)[idx]
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)[idx]
    order = np.lexsort((-ys, xs))  # x ascending, then y descending
    best = -np.inf  # best y among rows of strictly smaller x
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and xs[order[j]] == xs[order[i]]:
            j += 1
        group = order[i:j]
        top = ys[group[0]]
        if top > best:
            out[idx[group[ys[group] == top]]] = True
            best = top
        i = j
    return pd.Series(out, index=df.index)


def gain_vs_published(df: pd.DataFrame, *, x: str = "madds_m", y: str = "val_top1") -> pd.Series:
    """`y` minus the best baseline `y` at equal or lower `x`, trained under the same proxy.

    Baselines are rows with kind == "baseline" that are eligible (completed/early-stopped, finite);
    a baseline row is compared with the other baselines, never itself. NaN where no baseline is at or
    below the row's `x`, or where the row itself has no finite `x`/`y`.
    """
    import numpy as np
    import pandas as pd

    if len(df) == 0:
        return pd.Series([], dtype="float64", index=df.index, name=PARETO_EXTRA)
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)
    base = (eligible_mask(df, x=x, y=y) & (df["kind"] == "baseline")).to_numpy()
    bpos = np.flatnonzero(base)
    gains = np.full(len(df), np.nan)
    for i in range(len(df)):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            continue
        cand = bpos[(xs[bpos] <= xs[i]) & (bpos != i)]
        if len(cand):
            gains[i] = ys[i] - ys[cand].max()
    return pd.Series(gains, index=df.index, name=PARETO_EXTRA)


def compute_pareto(df: pd.DataFrame) -> pd.DataFrame:
    """The Pareto-optimal search-stage rows (by MAdds and val top-1), sorted by MAdds, with
    `gain_vs_published`. Confirmation rows (stage ``confirm``) never enter the search front."""
    norm = search_stage(normalize_trials(df)).reset_index(drop=True)
    gains = gain_vs_published(norm)
    front = norm[pareto_mask(norm)].copy()
    front[PARETO_EXTRA] = gains[front.index]
    return front.sort_values(["madds_m", "val_top1"], ascending=[True, False], kind="stable").reset_index(drop=True)


def write_pareto(run_dir: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """Compute the front of `df` and write it as pareto.csv (atomically); returns the front."""
    front = compute_pareto(df)
    atomic_write(Path(run_dir) / PARETO_CSV, lambda t: front.to_csv(t, index=False))
    return front


# ---------------------------------------------------------------------------------------------------------
# A whole run


@dataclass
class Run:
    """A run folder read back: its path, run.yaml as a dict, its trials and its Pareto front."""

    path: Path
    config: dict[str, Any]
    trials: pd.DataFrame
    pareto: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """run.yaml as a dict ({} when the folder has trials but no run.yaml)."""
    import yaml

    from nas.config import parse_yaml

    p = Path(run_dir) / RUN_FILE
    if not p.is_file():
        return {}
    try:
        data = parse_yaml(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RunError(f"malformed {p}: {str(e).splitlines()[0]}", "fix or restore the run config YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunError(f"{p} must be a mapping, got {type(data).__name__}", "fix or restore the run config YAML")
    return data


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder: run.yaml, trials (empty while none finished) and the Pareto front.

    The front is recomputed from the trials (so it is never stale against a newer trials file).
    Raises RunError when the folder is missing or is not a run.
    """
    d = Path(run_dir)
    _check_run_dir(d)
    config = read_run_config(d)
    trials = read_trials(d)
    return Run(path=d, config=config, trials=trials, pareto=compute_pareto(trials))


__all__ = [
    "TRIAL_COLUMNS", "STATUSES", "FINISHED_OK", "KINDS", "KNOB_PREFIX", "Run", "empty_trials", "make_row",
    "normalize_trials", "knob_columns", "write_trials", "read_trials", "upsert_trial", "row_key", "search_stage",
    "job_row", "refused_row", "finished_row", "TRAINED", "STAGES", "eligible_mask",
    "pareto_mask", "gain_vs_published", "compute_pareto", "write_pareto", "load_run", "read_run_config",
    "atomic_write", "atomic_write_text", "STUDY_JOURNAL", "LEGACY_STUDY_DB", "study_location", "open_storage",
    "repair_journal",
]
