"""Which subnets a supernet step trains: a pool of architectures inside the MAdds band, per macro, and the
sandwich rule over it (the pool's largest and smallest networks plus random ones)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nas.config import ArchConfig
from nas.errors import BudgetError, ConfigError
from nas.madds import count_madds
from nas.space import RandomTrial, SearchSpace, format_madds, sample_arch


class _OneMacro:
    """A RandomTrial that always draws `macro` for the macro choice."""

    def __init__(self, trial: RandomTrial, macro: str):
        self.trial, self.macro = trial, macro

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name == "macro":
            self.trial.params[name] = self.macro
            return self.macro
        return self.trial.suggest_categorical(name, choices)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        return self.trial.suggest_int(name, low, high, step=step)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None) -> float:
        return self.trial.suggest_float(name, low, high, step=step)


@dataclass(frozen=True)
class BandPool:
    """Per macro: distinct architectures inside [low, budget] MAdds, sorted by MAdds (largest last)."""

    budget: int
    low: int
    archs: dict[str, list[ArchConfig]]
    madds: dict[str, list[int]]

    def sandwich(self, macro: str, rng: random.Random, n_random: int) -> list[ArchConfig]:
        """[largest, smallest, n_random uniform draws] of `macro`'s pool."""
        pool = self.archs[macro]
        return [pool[-1], pool[0]] + [pool[rng.randrange(len(pool))] for _ in range(n_random)]


def band_pool(space: SearchSpace, budget: int, *, min_budget: float = 0.5, macros: list[str] | None = None,
              size: int = 256, seed: int = 0, max_draws: int = 40000) -> BandPool:
    """Draw up to `size` distinct in-band architectures per macro (uniform over the knobs, then kept when
    inside the band): the supernet trains only networks the search could propose."""
    low = int(min_budget * budget)
    archs: dict[str, list[ArchConfig]] = {}
    madds: dict[str, list[int]] = {}
    for mname in macros or list(space.macros):
        if mname not in space.macros:
            raise ConfigError(f"unknown macro {mname!r} for space {space.name!r}",
                              f"one of: {', '.join(space.macros)}")
        seen: dict[str, tuple[int, ArchConfig]] = {}
        for i in range(max_draws):
            try:
                a = sample_arch(_OneMacro(RandomTrial(seed * 1_000_003 + i), mname), space)
            except ConfigError:
                continue
            m = count_madds(a)
            if low <= m <= budget and a.arch_id not in seen:
                seen[a.arch_id] = (m, a)
                if len(seen) >= size:
                    break
        if not seen:
            raise BudgetError(f"no architecture of macro {mname!r} of space {space.name!r} falls in the band "
                              f"[{format_madds(low)}, {format_madds(budget)}] ({max_draws} draws)",
                              "change --budget or --min-budget, or leave this macro out (--macro)")
        ordered = sorted(seen.values(), key=lambda t: (t[0], t[1].arch_id))
        archs[mname] = [a for _, a in ordered]
        madds[mname] = [m for m, _ in ordered]
    return BandPool(budget=budget, low=low, archs=archs, madds=madds)
