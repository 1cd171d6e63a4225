"""How well does each search score rank the in-band architectures as the long reference does?

    .venv/bin/python bench/fidelity_table.py            # Markdown table for BENCHMARKS.md

Reference: `bench/long_reference.jsonl` (the confirm protocol stretched to 512 optimizer steps, whole test
split; mean test top-1 over the seeds each architecture has). Scores, each over the same architectures:
- MAdds alone and parameters alone (nothing trained);
- the confirm protocol (128 steps, test subset; `bench/protocol_fidelity.jsonl`): seed 0, and the 3-seed mean;
- the search protocol (64 steps, val split): final val top-1 (seeds 0-1, `bench/protocol_fidelity.jsonl`);
  from `bench/search_scores.jsonl` (seed 0, the same protocol with per-epoch metrics): ASHA's snapshot
  after its first epoch (32 steps: what the default search's early stop reads), the last epoch's mean
  training loss (TSE-E, Ru et al. 2021; lower is better) and the final val loss (lower is better);
- the default supernet's inherited-weight score (`bench/supernet_fidelity.jsonl`, BatchNorm recalibrated on
  128 images).
Each row: Kendall tau against the reference with a bootstrap 95% interval over architectures, and the paired
bootstrap difference to MAdds alone (the score is worth its cost only where that interval lies above 0).
The head gives the reference's size, band, seed SD and ceiling (seed 0 against seed 1), and what ASHA's
32-step decisions cost: how many of the reference's top quarter sit in the bottom half at 32 steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _by_arch(rows: list[dict], value, *, seeds: tuple[int, ...] | None = None) -> dict[str, float]:
    """arch_id -> mean over the rows' seeds of value(row) (None values skipped)."""
    acc: dict[str, list[float]] = {}
    for r in rows:
        if r.get("status", "completed") == "completed" and (seeds is None or r["seed"] in seeds):
            v = value(r)
            if v is not None:
                acc.setdefault(r["arch_id"], []).append(float(v))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def table(bench: Path, steps: int) -> list[str]:
    from nas import stats as S
    from nas.train import load_proxy

    long = [r for r in _log(bench / "long_reference.jsonl") if r["steps"] == steps and r["status"] == "completed"]
    per: dict[str, dict[int, float]] = {}
    meta: dict[str, dict] = {}
    for r in long:
        per.setdefault(r["arch_id"], {})[r["seed"]] = r["test_top1"]
        meta[r["arch_id"]] = r
    if len(per) < 3:
        return [f"long reference at {steps} steps: {len(per)} architectures so far, too few to rank"]
    ref = {k: float(np.mean(list(v.values()))) for k, v in per.items()}
    two = [k for k, v in per.items() if 0 in v and 1 in v]
    sd, dof = S.pooled_sd([list(per[k].values()) for k in two]) if two else (float("nan"), 0)
    ceil = S.rank_agreement([per[k][0] for k in two], [per[k][1] for k in two]) if len(two) >= 3 else None
    vals = np.array(list(ref.values()))
    walls = [r["wall_s"] for r in long]
    loads = [r["load"] for r in long]
    out = [f"Reference: {len(ref)} architectures at {steps} optimizer steps ({len(two)} with 2 seeds, "
           f"{len(long)} jobs), mean test top-1 on the whole 10k test split; band {vals.min():.2f}-{vals.max():.2f}%; "
           f"seed SD {sd:.2f} points (dof {dof}); {np.mean(walls):.0f} s per job (1 thread, load "
           f"{min(loads):.1f}-{max(loads):.1f})."]
    if ceil is not None:
        out.append(f"Ceiling (seed 0 against seed 1 of the reference): tau {ceil.tau:.2f} [{ceil.lo:.2f}, {ceil.hi:.2f}] "
                   f"(n = {ceil.n}).")

    conf_h, search_h = load_proxy("confirm").hash, load_proxy().hash
    fid = _log(bench / "protocol_fidelity.jsonl")
    conf = [r for r in fid if r["protocol"] == conf_h and r["reference"]]
    scores = [r for r in _log(bench / "search_scores.jsonl") if r["protocol"] == search_h]
    # the search protocol's final val top-1, 2 seeds (protocol_fidelity.jsonl, as the search reads it)
    search = [r for r in fid if r["protocol"] == search_h and not r["reference"]]
    sup = [r for r in _log(bench / "supernet_fidelity.jsonl") if r.get("kind") == "score" and r["scoring"] == "cal128"]
    madds = {k: m["madds_m"] for k, m in meta.items()}
    rows = [
        ("MAdds alone (nothing trained)", madds),
        ("parameters alone (nothing trained)", {k: m["params"] for k, m in meta.items()}),
        ("confirm protocol, 128 steps, seed 0 (test subset)", _by_arch(conf, lambda r: r["test_top1"], seeds=(0,))),
        ("confirm protocol, 128 steps, 3-seed mean", _by_arch(conf, lambda r: r["test_top1"])),
        ("search protocol, 64 steps, final val top-1, seed 0", _by_arch(search, lambda r: r["val_top1"], seeds=(0,))),
        ("search protocol, 2-seed mean val top-1", _by_arch(search, lambda r: r["val_top1"])),
        ("ASHA's 32-step snapshot (epoch 1 val top-1), seed 0",
         _by_arch(scores, lambda r: r["val_curve"][0] if r["val_curve"] else None, seeds=(0,))),
        ("TSE-E (last epoch's training loss), seed 0",
         _by_arch(scores, lambda r: -r["train_loss"][-1] if r["train_loss"] else None, seeds=(0,))),
        ("val loss, seed 0", _by_arch(scores, lambda r: -r["val_loss"][-1] if r.get("val_loss") else None, seeds=(0,))),
        ("supernet inherited weights (400 steps, BN recalibrated)", _by_arch(sup, lambda r: r["val_top1"])),
    ]
    out += ["", "| score | n | tau vs the long reference [95% CI] | tau - tau(MAdds) [paired 95% CI] |",
            "|---|---:|---|---|"]
    for name, v in rows:
        ids = [k for k in ref if k in v]
        if len(ids) < 3:
            out.append(f"| {name} | {len(ids)} | not measured | |")
            continue
        ra = S.rank_agreement([v[k] for k in ids], [ref[k] for k in ids])
        d = S.paired_tau_diff([v[k] for k in ids], [madds[k] for k in ids], [ref[k] for k in ids])
        out.append(f"| {name} | {ra.n} | {ra.tau:+.2f} [{ra.lo:+.2f}, {ra.hi:+.2f}] | "
                   + ("-" if v is madds else f"{d.tau:+.2f} [{d.lo:+.2f}, {d.hi:+.2f}]") + " |")

    tse = dict(rows)["TSE-E (last epoch's training loss), seed 0"]
    val0 = _by_arch(scores, lambda r: r["val_top1"], seeds=(0,))  # the same runs as TSE-E's
    ids = [k for k in ref if k in tse and k in val0]
    if len(ids) >= 3:
        d = S.paired_tau_diff([tse[k] for k in ids], [val0[k] for k in ids], [ref[k] for k in ids])
        out.append("")
        out.append(f"TSE-E against final val top-1 (same runs' seed 0): tau difference {d.tau:+.2f} "
                   f"[{d.lo:+.2f}, {d.hi:+.2f}] (paired bootstrap, n = {d.n}).")
    snap = _by_arch(scores, lambda r: r["val_curve"][0] if r["val_curve"] else None, seeds=(0,))
    ids = [k for k in ref if k in snap]
    if len(ids) >= 8:
        top = sorted(ids, key=lambda k: -ref[k])[: max(1, len(ids) // 4)]
        med = float(np.median([snap[k] for k in ids]))
        killed = [meta[k]["arch"] for k in top if snap[k] < med]
        out.append("")
        out.append(f"ASHA at 32 steps (reduction factor 2: the bottom half of a band stops): {len(killed)} of the "
                   f"reference's top quarter ({len(top)} architectures) were below the median 32-step val top-1 "
                   f"({med:.1f}%) of the {len(ids)}: {', '.join(killed) or 'none'}.")
        fam = {}
        for k in ids:
            fam.setdefault(meta[k]["macro"], []).append(snap[k])
        out.append("  32-step val top-1 by family: " + ", ".join(f"{m} mean {np.mean(v):.1f}% (n={len(v)})"
                                                                for m, v in sorted(fam.items())))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--steps", type=int, default=512, help="the reference rung (default 512)")
    args = ap.parse_args()
    print("\n".join(table(args.bench, args.steps)))


if __name__ == "__main__":
    main()
