"""One verdict pair retrained longer than a run's top rung, on paired seeds: is a claim still there when
training gets longer? The same job as a `nas confirm RUN --steps N` rung (the confirm protocol stretched to
`--steps` over the dataset's training images, `ProxyConfig.stretched`; each seed replaces the protocol's; 1
thread; scored on the protocol's 2,000-image test subset), for two architectures only, outside a run folder.
The product's own way is `nas confirm RUN --steps N --headline-only` (the same jobs, as rows of the run, with
the verdict and trend printed); this script was written first and checks any two architectures. Its jobs
match the product's: at 128 steps it gives t0012 and mobile_former_151m seed 0 the default run's test top-1 to
the digit (68.4, 64.2).

    .venv/bin/python bench/pair_climb.py bench/archs/default_run_t0012.yaml mobile_former_151m \\
        --steps 16384 --seeds 3 [--workers 2] [--out bench/pair_climb.jsonl]

Each (architecture, seed, steps) job appends one JSON line to `--out`. Kill it at any time: finished jobs are
skipped, and a job in progress goes on from its checkpoint under results/pair_climb-checkpoints/ (saved
between epochs, at most once a minute: `nas.train.checkpoint`; a 32,768-step job's epoch is 2,048 steps).
Jobs run seed by seed, so a stopped run leaves whole pairs. The summary gives A - B in
test top-1 points paired by seed with its 95% t interval (`nas.stats.paired_diff`, `diff_text`), and each
job's wall time and the machine load when it started.

`bench/archs/default_run_t0012.yaml` is t0012 of the default run (`nas search --budget 300M`, seed 0), whose
claim at the rung labelled 8,192 steps (7,436 trained) is +0.37 [+0.22, +0.51] points over mobile_former_151m,
n=3 (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKPOINTS = HERE.parent / "results" / "pair_climb-checkpoints"


def run_one(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nas.data import load_dataset
    from nas.runtime import Runtime
    from nas.search.ladder import available_images
    from nas.train import load_proxy, train_arch

    load = os.getloadavg()[0]
    data = load_dataset(None)
    first = load_proxy("confirm")
    p = first if job["steps"] == first.steps else first.stretched(job["steps"], available=available_images(data, first))
    p = p.replace(seed=job["seed"])
    ck = CHECKPOINTS / f"{Path(job['arch']).stem}-s{job['seed']}-{job['steps']}.pt"
    r = train_arch(job["arch"], data, p, final=True, runtime=Runtime(threads=1), checkpoint=ck)
    return {**job, "status": r.status, "resumed_after_epoch": r.resumed_after_epoch, "test_top1": r.test_top1,
            "val_top1": r.val_top1, "wall_s": r.wall_s, "train_images_per_s": r.train_images_per_s,
            "proxy_hash": p.hash, "epochs": p.epochs, "train_images": p.train_images, "load": load, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def summarize(rows: list[dict], a: str, b: str, steps: int) -> None:
    from nas.stats import diff_text, paired_diff

    acc = {x: {r["seed"]: r["test_top1"] for r in rows if r["arch"] == x and r["steps"] == steps
               and r["status"] == "completed"} for x in (a, b)}
    for r in sorted((r for r in rows if r["steps"] == steps), key=lambda r: (r["seed"], r["arch"])):
        print(f"  seed {r['seed']} {Path(r['arch']).stem:<24} test {r['test_top1']}  {r['wall_s'] / 60:5.1f} min "
              f"(load {r['load']:.1f} at its start)")
    d = paired_diff(acc[a], acc[b])
    print(f"{Path(a).stem} - {Path(b).stem}, {steps} steps, test top-1 on the 2,000-image test subset, paired by "
          f"seed, 95% t: {diff_text(d.mean, d.lo, d.hi, d.n, unit=' points')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="architecture A (a variant name or an architecture YAML)")
    ap.add_argument("b", help="architecture B, its reference")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "pair_climb.jsonl")
    a = ap.parse_args()
    rows = [json.loads(x) for x in a.out.read_text().splitlines() if x.strip()] if a.out.is_file() else []
    done = {(r["arch"], r["seed"], r["steps"]) for r in rows}
    todo = [{"arch": x, "seed": s, "steps": a.steps} for s in range(a.seeds) for x in (a.a, a.b)
            if (x, s, a.steps) not in done]
    print(f"{len(todo)} jobs to train ({len(rows)} lines in {a.out}), {a.workers} at a time", flush=True)
    with ProcessPoolExecutor(a.workers) as pool:
        for fut in as_completed([pool.submit(run_one, j) for j in todo]):  # each line as soon as its job ends
            r = fut.result()
            rows.append(r)
            with a.out.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"  done: {Path(r['arch']).stem} seed {r['seed']}: test {r['test_top1']}, "
                  f"{r['wall_s'] / 60:.1f} min", flush=True)
    summarize(rows, a.a, a.b, a.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
