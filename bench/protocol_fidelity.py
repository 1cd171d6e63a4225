"""Search-protocol fidelity over in-band architectures: how well does each candidate search protocol rank
them as the confirm protocol (3 seeds, mean test top-1) does, at what cost and seed noise?

    OMP_NUM_THREADS=1 nohup .venv/bin/python bench/protocol_fidelity.py --log bench/protocol_fidelity.jsonl \\
        --workers 2 > protocol_fidelity.out 2>&1 &
    .venv/bin/python bench/protocol_fidelity.py --log bench/protocol_fidelity.jsonl --summary

Architectures: `--archs` random points of search_spaces/hybrid.yaml whose analytic MAdds lie in
[0.5 x budget, budget] (half from each macro, drawn with `RandomTrial` seeds 0, 1, ...), plus the published
variants in that band. Reference: the shipped confirm protocol, seeds 0..2, scored on the test split
(a fixed subset, `test_images`). Candidates: the protocols named by `--candidates` (shipped names or YAML
paths), each with `--candidate-seeds` seeds, scored on their validation split (what the search reads).

Each job appends one JSON line to --log (arch, protocol hash, seed, accuracies, wall time, load): the bench
resumes where it stopped, and jobs run in `--workers` processes of one thread each (as the search runs
them). The summary reports per candidate: Kendall tau against the reference mean with a bootstrap 95%
interval, the ceiling (one confirm seed against the mean of the other two), the seed SD of both protocols,
the cost per job against the reference, and the rank shift per macro (does a protocol favour a family?).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

DEFAULT_CANDIDATES = ["bench/protocols/p1x512_val1024.yaml:2", "bench/protocols/p2x1024_val512.yaml:1",
                      "bench/protocols/p1x1024_val2048.yaml:1"]


def in_band_archs(n: int, budget: float) -> list[dict]:
    """`n` random in-band points (half per macro) and the in-band published variants, as dicts."""
    from nas.madds import count_madds
    from nas.space import RandomTrial, load_space, sample_arch
    from nas.variants import get_variant, list_variants

    space = load_space(None)
    per = {m: n // len(space.macros) + (i < n % len(space.macros)) for i, m in enumerate(space.macros)}
    got: dict[str, list[dict]] = {m: [] for m in space.macros}
    seed = 0
    while any(len(got[m]) < per[m] for m in per) and seed < 200_000:
        t = RandomTrial(seed)
        arch = sample_arch(t, space)
        macro = t.params.get("macro", next(iter(space.macros)))
        if len(got[macro]) < per[macro] and 0.5 * budget <= count_madds(arch) <= budget:
            got[macro].append({"name": f"r{seed}", "macro": macro, "params": dict(t.params), "arch_id": arch.arch_id,
                               "madds_m": count_madds(arch) / 1e6})
        seed += 1
    out = [a for m in got for a in got[m]]
    for v in list_variants():
        arch = get_variant(v)
        if arch.num_classes == space.num_classes and 0.5 * budget <= count_madds(arch) <= budget:
            macro = "mobile_former" if "former" in v else "mobilevit"
            out.append({"name": v, "macro": macro, "variant": v, "arch_id": arch.arch_id,
                        "madds_m": count_madds(arch) / 1e6})
    return out


def _arch(a: dict):
    from nas.space import load_space, replay
    from nas.variants import get_variant

    return get_variant(a["variant"]) if a.get("variant") else replay(a["params"], load_space(None))


_DATA = {}


def run_job(a: dict, protocol: dict, seed: int, reference: bool) -> dict:
    import torch

    from nas.data import load_dataset
    from nas.train import proxy_from_dict, train_arch

    torch.set_num_threads(1)
    if "d" not in _DATA:
        _DATA["d"] = load_dataset(None)
    p = proxy_from_dict(protocol).replace(seed=seed)
    t = time.perf_counter()
    r = train_arch(_arch(a), _DATA["d"], p, threads=1, final=reference)
    return {"arch": a["name"], "arch_id": a["arch_id"], "macro": a["macro"], "madds_m": a["madds_m"],
            "protocol": proxy_from_dict(protocol).hash, "seed": seed, "reference": reference, "status": r.status,
            "val_top1": r.val_top1, "test_top1": r.test_top1, "wall_s": time.perf_counter() - t,
            "load": os.getloadavg()[0], "at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def load_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def plan_jobs(archs: list[dict], ref: dict, cands: list[tuple[dict, int]], *, ref_seeds: int) -> list[tuple]:
    """Jobs in passes (every arch once per pass) so a partial log already covers all architectures.
    `cands` holds (protocol, seeds) pairs."""
    from nas.train import proxy_from_dict

    passes: list[list[tuple]] = []
    for s in range(max([ref_seeds] + [n for _, n in cands])):
        p = []
        for a in archs:
            if s < ref_seeds:
                p.append((a, ref, s, True))
            for c, n in cands:
                if s < n:
                    p.append((a, c, s, False))
        passes.append(p)
    jobs = [j for p in passes for j in p]
    return [(a, prot, s, r, (a["arch_id"], proxy_from_dict(prot).hash, s)) for a, prot, s, r in jobs]


def summarize(rows: list[dict], ref_hash: str, cand_hashes: dict[str, str]) -> list[str]:
    from nas import stats as S

    ok = [r for r in rows if r["status"] == "completed"]
    ref: dict[str, dict[int, float]] = {}
    meta: dict[str, dict] = {}
    for r in ok:
        if r["protocol"] == ref_hash and r["reference"]:
            ref.setdefault(r["arch"], {})[r["seed"]] = r["test_top1"]
            meta[r["arch"]] = r
    full = {a: v for a, v in ref.items() if len(v) >= 3}
    lines = [f"reference {ref_hash}: {len(ref)} architectures with >= 1 seed, {len(full)} with 3"]
    if len(full) < 3:  # partial log: the reference is the mean of the seeds done so far (no ceiling yet)
        lines.append("  (partial: reference = mean of the seeds done so far)")
        full = ref
    if len(full) < 3:
        return lines
    names = sorted(full)
    ref_mean = np.array([np.mean(list(full[a].values())) for a in names])
    ref_sd, dof = S.pooled_sd([list(full[a].values()) for a in names])
    ceil = []
    for k in range(3 if all(len(v) >= 3 for v in full.values()) else 0):
        one = [full[a][k] for a in names]
        rest = [np.mean([v for s, v in full[a].items() if s != k]) for a in names]
        ceil.append(S.kendall_tau(one, rest))
    ref_wall = np.mean([r["wall_s"] for r in ok if r["protocol"] == ref_hash])
    lines.append(f"  reference band {ref_mean.min():.2f}-{ref_mean.max():.2f}%, seed SD {ref_sd:.2f} points (dof {dof}), "
                 f"{ref_wall:.1f} s/job; ceiling (one confirm seed vs the mean of the other two): tau "
                 f"{np.mean(ceil) if ceil else float('nan'):.2f} (per seed {', '.join(f'{c:.2f}' for c in ceil)})")
    for name, h in cand_hashes.items():
        runs: dict[str, dict[int, float]] = {}
        for r in ok:
            if r["protocol"] == h and not r["reference"]:
                runs.setdefault(r["arch"], {})[r["seed"]] = r["val_top1"]
        common = [a for a in names if a in runs and 0 in runs[a]]
        if len(common) < 3:
            lines.append(f"candidate {name} ({h}): {len(common)} architectures done")
            continue
        x0 = [runs[a][0] for a in common]
        y = [np.mean(list(full[a].values())) for a in common]
        ag = S.rank_agreement(x0, y)
        two = [a for a in common if 1 in runs[a]]
        sd, cdof = S.pooled_sd([list(runs[a].values()) for a in two])
        ag2 = S.rank_agreement([np.mean(list(runs[a].values())) for a in two],
                               [np.mean(list(full[a].values())) for a in two]) if len(two) >= 3 else None
        wall = np.mean([r["wall_s"] for r in ok if r["protocol"] == h])
        lines.append(f"candidate {name} ({h}): n={ag.n} tau {ag.tau:.2f} [{ag.lo:.2f}, {ag.hi:.2f}] vs reference mean; "
                     f"seed SD {sd:.2f} points (dof {cdof}); {wall:.1f} s/job = {wall / ref_wall:.2f}x the reference"
                     + (f"; 2-seed mean tau {ag2.tau:.2f} [{ag2.lo:.2f}, {ag2.hi:.2f}] (n={ag2.n})" if ag2 else ""))
        # family shift: mean rank by the candidate minus mean rank by the reference, per macro (rank 1 = best)
        rc = _ranks(x0)
        rr = _ranks(y)
        for m in sorted({meta[a]["macro"] for a in common}):
            idx = [i for i, a in enumerate(common) if meta[a]["macro"] == m]
            lines.append(f"    {m}: {len(idx)} archs, mean rank {np.mean(rc[idx]):.1f} by the candidate vs "
                         f"{np.mean(rr[idx]):.1f} by the reference (negative shift = favoured: "
                         f"{np.mean(rc[idx]) - np.mean(rr[idx]):+.1f})")
    return lines


def _ranks(v: list[float]) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(-np.asarray(v, dtype=float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, default=Path("bench/protocol_fidelity.jsonl"))
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--budget", type=float, default=300e6)
    ap.add_argument("--reference", default="confirm")
    ap.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES,
                    help="protocols (shipped names or YAML paths), each optionally NAME:SEEDS")
    ap.add_argument("--reference-seeds", type=int, default=3)
    ap.add_argument("--candidate-seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    from nas.train import load_proxy

    ref = load_proxy(args.reference).to_dict()
    seeds = {c.rsplit(":", 1)[0]: int(c.rsplit(":", 1)[1]) if ":" in c else args.candidate_seeds
             for c in args.candidates}
    cands = {c: load_proxy(c).to_dict() for c in seeds}
    from nas.train import proxy_from_dict

    hashes = {c: proxy_from_dict(p).hash for c, p in cands.items()}
    rows = load_log(args.log)
    if args.summary:
        print("\n".join(summarize(rows, proxy_from_dict(ref).hash, hashes)))
        return
    archs = in_band_archs(args.archs, args.budget)
    done = {(r["arch_id"], r["protocol"], r["seed"]) for r in rows}
    jobs = [j for j in plan_jobs(archs, ref, [(cands[c], seeds[c]) for c in cands], ref_seeds=args.reference_seeds)
            if j[4] not in done]
    print(f"{len(archs)} architectures, {len(jobs)} jobs to run ({len(done)} in the log)", flush=True)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    run_pool([(run_job, *j[:4]) for j in jobs], args.log, args.workers, lambda row: (
        f"{row['arch']:<20} {row['protocol']} seed {row['seed']} val {row['val_top1']} test "
        f"{row['test_top1']} {row['wall_s']:.1f}s load {row['load']:.1f}"))


def run_pool(calls: list[tuple], log: Path, workers: int, line) -> None:
    """Run `calls` ((function, *args) each, returning a row dict) in `workers` processes, at most 2 per worker
    queued; append each finished row to `log` as one JSON line the moment it ends and print `line(row)`."""
    with ProcessPoolExecutor(workers) as pool:
        it = iter(calls)
        pending = {}
        for _ in range(workers * 2):
            c = next(it, None)
            if c is not None:
                pending[pool.submit(*c)] = c
        while pending:
            fut = next(as_completed(pending))
            pending.pop(fut)
            row = fut.result()
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(line(row), flush=True)
            c = next(it, None)
            if c is not None:
                pending[pool.submit(*c)] = c

if __name__ == "__main__":
    main()
