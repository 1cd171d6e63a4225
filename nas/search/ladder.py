"""The ladder of training lengths: a run's confirmation as rungs, each a frozen spec, the top rung carrying
every claim the run prints.

At 128 optimizer steps the networks are still on the steep part of their learning curves, so a verdict there
measures how fast a network starts to learn (a +9.9-point headline became +1.7 when both networks trained 4x
longer; issue "Claims that hold when training gets longer"). The first rung (stage ``confirm``: the confirm
protocol, every candidate and published variant of the band) picks the candidates and the headline pair. The
top rung (stage ``confirm@<steps>``: the same recipe stretched to >= 4x the steps, `ProxyConfig.stretched`)
retrains, with paired seeds:
- the headline candidate and the best candidate of the other family (by first-rung mean);
- for each, the two best published variants at <= its MAdds on the first rung (the reference a verdict
  compares against is chosen again on the top rung: at 512 steps the best published variant can change).
Every "best" here is by mean validation top-1 over the rung's base seeds (`nas.verdicts.selection_scores`):
the test split the verdicts are measured on chooses nothing.
Then the top rung's headline pair (chosen on the rung's first seeds) gets its extra paired seeds: at least
MIN_HEADLINE_SEEDS, more where --confirm-width asks and the time budget allows (`nas.search.confirm.headline_jobs`).
`nas.verdicts.compute_confirmation` then reads the top rung and gives each verdict its trend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nas.errors import ConfigError
from nas.jobs import rung_stage

MIN_TOP_STEPS = 512  # the long reference's length (bench/long_reference.py)
TOP_FACTOR = 4
REFERENCES_PER_CANDIDATE = 2
# the top rung's headline verdict is measured on at least this many paired seeds (its pair gets them after the
# rung's first `top_seeds`, whatever the time budget; more when --confirm-width asks and the budget allows)
MIN_HEADLINE_SEEDS = 3


@dataclass(frozen=True)
class Rung:
    """One rung of a run's confirmation, as recorded in run.yaml's `confirm.stages`."""

    stage: str
    steps: int
    seeds: int
    takes: str  # which architectures it trains
    split: str  # what it scores
    protocol: str  # the protocol's hash

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_steps(first_steps: int, requested: int | None) -> int:
    """The top rung's optimizer steps: `requested`, or max(4x the first rung's, 512) when None; 0: none."""
    if requested is None:
        return max(TOP_FACTOR * first_steps, MIN_TOP_STEPS)
    if not isinstance(requested, int) or isinstance(requested, bool) or requested < 0:
        raise ConfigError(f"--top-steps (--steps) {requested!r} is invalid",
                          "an integer number of optimizer steps (0: no top rung)")
    if 0 < requested <= first_steps:
        raise ConfigError(f"--top-steps (--steps) {requested} is not longer than the first rung ({first_steps} steps)",
                          f"pass more steps, e.g. --top-steps {max(TOP_FACTOR * first_steps, MIN_TOP_STEPS)}")
    return requested


def rungs(first_proxy: Any, first_seeds: int, top: int, top_seeds: int, *, available: int | None = None) -> list[Rung]:
    """The rungs of a confirmation: the first, and the top one when `top` steps > 0 (the first rung's recipe
    stretched to them on the dataset's `available` training images, `ProxyConfig.stretched`)."""
    out = [Rung("confirm", first_proxy.steps_on(available), first_seeds, "the search front's top candidates and the band's "
                "published variants", "test", first_proxy.hash)]
    if top:
        out.append(Rung(rung_stage(top), top, top_seeds, "the headline candidate, the other family's best "
                        "candidate and the two best published variants at <= the MAdds of each (first rung)",
                        "test", first_proxy.stretched(top, available=available).hash))
    return out


def available_images(dataset: Any, proxy: Any) -> int:
    """The training images a rung can draw on: the dataset's training split less the protocol's validation."""
    return len(dataset.train_y) - int(proxy.val_images)


def rung_trials(df: Any) -> list[str]:
    """The trials the top rung retrains, chosen on the first rung (see the module docstring); [] when the
    first rung has no headline (no candidate with a published variant at <= its MAdds)."""
    from nas import verdicts as V

    accs, sel = V.seed_accuracies(df), V.selection_scores(df)
    table = V.confirmed_table(df)
    h = V.headline(V.verdict_table(df, table=table, accs=accs, sel=sel))
    if h is None:
        return []
    first = V.base_seeds(accs)
    score = {t: V.choice_mean(sel, t, first) for t in accs}
    rows = {r["trial"]: r for r in table.to_dict("records")}
    picks = [str(h["trial"])]
    others = [t for t, r in rows.items() if r["kind"] == "searched" and r["macro"] != rows[picks[0]]["macro"]]
    if others:
        picks.append(max(others, key=lambda t: score[t]))
    out: list[str] = []
    for t in picks:
        refs = sorted((b for b, r in rows.items() if r["kind"] == "baseline" and r["madds_m"] <= rows[t]["madds_m"]),
                      key=lambda b: -score[b])[:REFERENCES_PER_CANDIDATE]
        out += [x for x in [t, *refs] if x not in out]
    return out


def headline_pair(df: Any, steps: int) -> list[str]:
    """The trials a `--headline-only` climb to a rung of `steps` retrains: the headline candidate and its
    reference as the longest rung below it says (the claim the run stands on before the climb, so a resumed
    climb picks the same pair); [] when that rung has no headline."""
    from nas import verdicts as V

    below = [s for s in V.rung_stages(df) if V.stage_steps(df, s) < steps]
    if not below:
        return []
    h = V.headline(V.verdict_table(df, stage=below[-1]))
    return [] if h is None else [str(h["trial"]), str(h["reference"])]


__all__ = ["Rung", "rungs", "rung_trials", "headline_pair", "available_images", "top_steps", "MIN_TOP_STEPS", "TOP_FACTOR",
           "MIN_HEADLINE_SEEDS"]
