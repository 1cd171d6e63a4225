"""Whole-job speed of this tree against another commit, side by side in one run: a `nas train`-equivalent job
(`nas.train.train_arch`, the shipped confirm protocol, scored on its test subset, 1 thread) of each
architecture, alternating old and new code in fresh processes so that both see the same machine load.

    .venv/bin/python bench/speed_vs.py --rev 07bd30f [--archs mobile_former_151m mobilevit_xs] [--repeats 3]

The old code runs from a `git worktree` of REV under /tmp (made once, kept); both use this .venv's packages.
Prints per architecture and version the job's wall seconds (median of the repeats) and old/new, with the
machine load (1-minute average) before each job: a ratio measured under load says less than one measured idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = """
import json, sys, time, torch
torch.set_num_threads(1)
from nas.data import load_dataset
from nas.train import load_proxy, train_arch
data = load_dataset(None)
p = load_proxy("confirm")
t = time.perf_counter()
r = train_arch(sys.argv[1], data, p, threads=1, final=True)
print(json.dumps({"wall_s": time.perf_counter() - t, "status": r.status, "test_top1": r.test_top1}))
"""


def worktree(rev: str) -> Path:
    d = Path(f"/tmp/nas-{rev}")
    if not d.is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(d), rev], check=True,
                       capture_output=True)
    return d


def job(tree: Path, arch: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", JOB, arch], env=env, cwd=tree, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="07bd30f")
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    old = worktree(a.rev)
    print(f"old: {a.rev} ({old}), new: this tree ({ROOT}); confirm protocol, 1 thread, whole job")
    for arch in a.archs:
        t = {"old": [], "new": []}
        for i in range(a.repeats):
            for name, tree in (("old", old), ("new", ROOT)) if i % 2 == 0 else (("new", ROOT), ("old", old)):
                load = os.getloadavg()[0]
                r = job(tree, arch)
                t[name].append(r["wall_s"])
                print(f"  {arch:<20} {name} {r['wall_s']:7.1f} s  test {r['test_top1']}  (load {load:.1f})", flush=True)
        mo, mn = statistics.median(t["old"]), statistics.median(t["new"])
        print(f"{arch}: old {mo:.1f} s, new {mn:.1f} s (medians of {a.repeats}): old/new {mo / mn:.2f}x", flush=True)


if __name__ == "__main__":
    main()
