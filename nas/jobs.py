"""One training job of a run, as data: what the search hands to Ray and what the run folder records.

A job is a searched architecture (Optuna parameters replayed through the space), a published baseline
(a variant name) or a confirmation retraining of either (same architecture, a given seed, the confirm
protocol, scored on the held-out split). Ray passes a job as its `config` dict (`to_config`), and the
trainable reads it back (`from_config`): one shape from the searcher to the trainable to the row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

KINDS = ("searched", "baseline")
STAGES = ("search", "confirm")
"""``search``; ``confirm``, the first confirm rung. Higher rungs of the ladder are ``confirm@<steps>``
(`rung_stage`): the same architectures retrained for more optimizer steps (nas.search.ladder)."""
RUNG_PREFIX = "confirm@"


def rung_stage(steps: int) -> str:
    """The stage name of a ladder rung above the first: ``confirm@512``."""
    return f"{RUNG_PREFIX}{int(steps)}"


def is_confirm_stage(stage: str) -> bool:
    """Whether a stage retrains with paired seeds and scores the held-out split (any rung of the ladder)."""
    return stage == "confirm" or (stage.startswith(RUNG_PREFIX) and stage[len(RUNG_PREFIX):].isdigit())


def trial_id(number: int) -> str:
    """The id of the searched trial with Optuna number `number` (t0007)."""
    return f"t{int(number):04d}"


@dataclass(frozen=True)
class TrialJob:
    """A job: `kind` searched (with `params`) or baseline (with `variant`), in `stage` search or confirm.

    `seed` is the training seed (the protocol's own seed in the search stage); `evaluate_test` scores the
    trained network on the dataset's held-out split (the confirm stage). `gpus` is the GPU share Ray gives it."""

    kind: str
    trial: str
    arch_id: str
    madds_m: float
    number: int = -1
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    stage: str = "search"
    seed: int = 0
    evaluate_test: bool = False
    gpus: float = 0.0
    family: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"job kind {self.kind!r} is not one of {KINDS}")
        if self.stage != "search" and not is_confirm_stage(self.stage):
            raise ValueError(f"job stage {self.stage!r} is not one of {STAGES} or {RUNG_PREFIX}<steps>")
        if self.kind == "baseline" and not self.variant:
            raise ValueError("a baseline job names its variant")
        if not self.name:
            object.__setattr__(self, "name", self.trial)

    @property
    def key(self) -> tuple[str, str, int]:
        """The row identity (trial, stage, seed), as `nas.results.row_key`."""
        return (self.trial, self.stage, int(self.seed))

    def to_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TrialJob:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})

    def replace(self, **changes: Any) -> TrialJob:
        return dataclasses.replace(self, **changes)


def arch_of_job(job: TrialJob, space: Any) -> Any:
    """The architecture a job trains: its published variant, or its Optuna parameters replayed in `space`
    (a SearchSpace, or its raw dict as Ray ships it). The one place a job becomes an ArchConfig."""
    from nas.space import SearchSpace, parse_space, replay
    from nas.variants import get_variant

    if job.kind == "baseline":
        return get_variant(str(job.variant))
    return replay(job.params, space if isinstance(space, SearchSpace) else parse_space(space, source="run"))


@dataclass(frozen=True)
class Resources:
    """What each job gets from Ray, and how many run at once."""

    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    max_concurrent: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


__all__ = ["TrialJob", "arch_of_job", "Resources", "trial_id", "KINDS", "STAGES", "RUNG_PREFIX", "rung_stage", "is_confirm_stage"]
