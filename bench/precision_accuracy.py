"""What bf16 autocast does to accuracy and speed (issue 16, point 2): fp32 against bf16 on paired seeds, per
architecture, under the ladder's top rung (the confirm protocol stretched to 512 steps, where claims are
made; `--steps 128` gives the first rung).

    .venv/bin/python bench/precision_accuracy.py [--archs mobile_former_151m mobilevit_xs] [--seeds 3] \\
        [--steps 512] [--workers 2]

Each (architecture, seed, precision) is one job of the trainer (`nas.train.train_arch`, `final=True`, 1
thread): top-1 on the protocol's 2,000-image test subset and training images/s. One JSON line per job goes
to bench/precision_accuracy.jsonl (resumable: finished jobs are skipped). The summary gives, per
architecture, bf16 - fp32 in test top-1 points paired by seed, with its 95% t interval (`nas.stats.paired_diff`),
and the median images/s of each precision. Speeds taken with 2 workers share the machine: compare them within
one run only. The CPU's flags (native bf16 or not) are printed first: bf16 is only fast where the CPU has it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "precision_accuracy.jsonl"


def run_one(a: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nas.data import load_dataset
    from nas.runtime import Runtime
    from nas.train import load_proxy, train_arch

    p = load_proxy("confirm").stretched(a["steps"]).replace(seed=a["seed"])
    r = train_arch(a["arch"], load_dataset(None), p, final=True, runtime=Runtime(threads=1, precision=a["precision"]))
    return {**a, "status": r.status, "test_top1": r.test_top1, "val_top1": r.val_top1,
            "train_images_per_s": r.train_images_per_s, "wall_s": r.wall_s, "proxy_hash": p.hash,
            "load": os.getloadavg()[0]}


def cpu_flags() -> str:
    try:
        flags = next(x for x in open("/proc/cpuinfo") if x.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none of avx2/avx512"


def summarize(rows: list[dict], archs: list[str], steps: int) -> None:
    from nas.stats import paired_diff

    print(f"\nbf16 - fp32, test top-1 on the 2,000-image test subset, {steps} steps, paired by seed (95% t interval):")
    for arch in archs:
        by = {pr: {r["seed"]: r["test_top1"] for r in rows
                   if r["arch"] == arch and r["precision"] == pr and r["steps"] == steps and r["status"] == "completed"}
              for pr in ("fp32", "bf16")}
        d = paired_diff(by["bf16"], by["fp32"])
        ips = {pr: statistics.median(r["train_images_per_s"] for r in rows if r["arch"] == arch
                                     and r["precision"] == pr and r["steps"] == steps and r["train_images_per_s"])
               for pr in ("fp32", "bf16") if by[pr]}
        fp = ", ".join(f"{by['fp32'][s]:.2f}/{by['bf16'][s]:.2f}" for s in sorted(set(by["fp32"]) & set(by["bf16"])))
        print(f"  {arch}: {d.mean:+.2f} points [{d.lo:+.2f}, {d.hi:+.2f}], n={d.n} ({d.verdict}); "
              f"fp32/bf16 per seed {fp}; training img/s fp32 {ips.get('fp32', float('nan')):.1f}, "
              f"bf16 {ips.get('bf16', float('nan')):.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    print(f"CPU flags: {cpu_flags()}", flush=True)
    rows = [json.loads(x) for x in OUT.read_text().splitlines()] if OUT.is_file() else []
    done = {(r["arch"], r["seed"], r["precision"], r["steps"]) for r in rows}
    todo = [{"arch": arch, "seed": s, "precision": pr, "steps": a.steps}
            for s in range(a.seeds) for arch in a.archs for pr in ("fp32", "bf16")
            if (arch, s, pr, a.steps) not in done]
    with ProcessPoolExecutor(a.workers) as ex:
        for fut in as_completed([ex.submit(run_one, t) for t in todo]):
            r = fut.result()
            rows.append(r)
            with OUT.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"  {r['arch']} seed {r['seed']} {r['precision']}: test {r['test_top1']} "
                  f"({r['train_images_per_s']:.1f} img/s, load {r['load']:.1f})", flush=True)
    summarize(rows, a.archs, a.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
