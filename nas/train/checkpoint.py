"""A training job's checkpoint between epochs, so that a killed long job resumes where it stood.

A ladder rung of 32,768 steps trains for about 100 minutes on one core of this machine (BENCHMARKS.md); killed
in its last minute, it would start over. `train_arch(..., checkpoint=FILE)` writes the job's whole state to
FILE after an epoch (at most every `CHECKPOINT_EVERY_S` seconds or $NAS_CHECKPOINT_EVERY_S, never after the
last epoch): the weights and BatchNorm statistics, the optimizer, the data generator and torch's random streams,
and the epochs' metrics so far.
A later `train_arch` with the same FILE and the same job (architecture, protocol, test scoring, runtime,
initial weights, code version) goes on from there, and ends with the same weights and metrics as an
uninterrupted run (tests/test_checkpoint.py). A file written for another job is ignored and overwritten. The file is written
whole, then renamed over the previous one (a kill while writing leaves the previous one), and removed when
`train_arch` returns.

Who passes a FILE: `nas train` (next to its metrics JSON), the confirm stage and its ladder rungs (one per job
under the run's `checkpoints/`), and `bench/pair_climb.py`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.code_version import code_version

# The least time between two checkpoints of a job. A checkpoint of Mobile-Former-151M (weights and two AdamW
# moments, 77 MB) took 0.13-0.24 s to write on this machine and 0.15 s to read: at most 0.4% of a minute's training.
# The environment variable NAS_CHECKPOINT_EVERY_S replaces it (seconds; 0 saves after every epoch but the last),
# in this process and in the Ray workers it starts.
CHECKPOINT_EVERY_S = 60.0
ENV_VAR = "NAS_CHECKPOINT_EVERY_S"


def checkpoint_every_s() -> float:
    """The least seconds between two checkpoints: $NAS_CHECKPOINT_EVERY_S, else CHECKPOINT_EVERY_S; a ConfigError
    when the variable is not a number of seconds >= 0 (`nas` checks it before any command runs)."""
    raw = os.environ.get(ENV_VAR)
    if raw is None or not raw.strip():
        return CHECKPOINT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        from nas.errors import ConfigError

        raise ConfigError(f"{ENV_VAR}={raw!r} is not a number of seconds",
                          f"unset it (checkpoints at most every {CHECKPOINT_EVERY_S:g} s) or give seconds >= 0")
    return value


@dataclass
class JobCheckpoint:
    """The checkpoint FILE of one job; `key` names the job (a file holding another key is not this job's)."""

    path: Path
    key: dict[str, Any]
    every_s: float | None = None  # None: `checkpoint_every_s()` when asked
    wall_before_s: float = 0.0  # the job's wall seconds in the processes before this one (from the file)
    _last: float = field(default_factory=time.perf_counter)

    def due(self) -> bool:
        """Whether enough time has passed since the last write (or since this process started the job)."""
        every = checkpoint_every_s() if self.every_s is None else self.every_s
        return time.perf_counter() - self._last >= every

    def load(self) -> dict[str, Any] | None:
        """The saved state of this job, or None (no file, another job's, or unreadable)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - whatever torch.load raises on a file that is not a checkpoint
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        self.wall_before_s = float(state.get("wall_s", 0.0))
        return state

    def save(self, state: dict[str, Any], *, wall_s: float) -> None:
        """Write `state`, with the job's key and `wall_s` (its wall seconds so far, in all its processes), whole,
        then rename it over FILE."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({**state, "key": self.key, "wall_s": wall_s}, tmp)
        os.replace(tmp, self.path)
        self._last = time.perf_counter()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)


def job_key(*, arch_id: str, proxy_hash: str, final: bool, runtime_key: str, init: Any) -> dict[str, Any]:
    """What makes two training jobs the same job: a checkpoint resumes only the job it was written for, by the
    same network and training code (`nas.code_version`, as the baseline cache keys on it: a job killed before
    an update of the blocks or the trainer starts over instead of mixing two codes' arithmetic)."""
    return {"arch_id": arch_id, "proxy_hash": proxy_hash, "final": bool(final), "runtime": runtime_key,
            "init": None if init is None else (str(init) if isinstance(init, (str, Path)) else "state_dict"),
            "code_version": code_version()}


__all__ = ["CHECKPOINT_EVERY_S", "ENV_VAR", "JobCheckpoint", "checkpoint_every_s", "job_key"]
