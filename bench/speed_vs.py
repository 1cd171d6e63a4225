"""Whole-job speed of this tree against another commit, side by side in one run: a `nas train`-equivalent job
(`nas.train.train_arch`, the shipped confirm protocol, scored on its test subset, 1 thread) of each
architecture, alternating old and new code in fresh processes so that both see the same machine load.

    .venv/bin/python bench/speed_vs.py --rev 07bd30f [--archs mobile_former_151m mobilevit_xs] [--repeats 3]
    .venv/bin/python bench/speed_vs.py --rev 07bd30f --search [--repeats 2] [--old-args=--no-early-stop]
    .venv/bin/python bench/speed_vs.py --rev 3e8f38d --same-blas   # one change, both sides with the MKL shim
    .venv/bin/python bench/speed_vs.py --rev 07bd30f --command [--repeats 3]   # the `nas train` command itself
    .venv/bin/python bench/speed_vs.py --rev 07bd30f --command --ceiling --archs mobilevit_xs   # and its ceiling
    .venv/bin/python bench/speed_vs.py --oneshot results/bench-supernet [--repeats 5]   # one-shot vs multi-trial
    .venv/bin/python bench/speed_vs.py --oneshot results/bench-supernet --oneshot-rev 0b2a363   # one-shot, 2 trees

`--search` times the default search stage instead: `nas search --budget 300M --no-confirm` (same space,
protocol and seed in both versions; since 42f2e5d this tree tells Optuna the results in the order the jobs were
sent, so from about the 7th proposal on it trains another set than the old code, whose set varied from run to
run anyway), each run into a fresh results folder (no cached
baselines), and reports its wall time and the median training images/s of its trained jobs.

`--command` times the `nas train` command as a user runs it instead of the job inside one Python process:
`python -m nas train ARCH --proxy confirm --final --threads 1 --no-progress --out FILE`, from the process's start
to its end (its imports, the dataset, the job, the metrics JSON and the process's exit). With `--ceiling` a third
side runs in each round: this tree's command with every SiLU, BatchNorm2d and `scaled_dot_product_attention` replaced
by a stand-in that costs about nothing (`CEILING`, in training and in evaluation: SiLU the identity and no
activation in the folded convolutions, BatchNorm a per-channel scale, attention its query). That network is not
the same one (its accuracy means nothing); its time is the least that any kernel, fusion or rewrite of those
parts could bring the command to, and old/ceiling the most it could gain against the old tree.

`--oneshot SUPERNET` compares two stages of this tree instead of two trees: the default one-shot search stage
(`nas search --budget 300M --strategy oneshot --supernet SUPERNET --no-confirm`) against the default multi-trial
one (`nas search --budget 300M --no-confirm`), alternating, each into a fresh results folder, each rate the
architectures a minute the stage prints (what it scored or trained over its own clock). With `--oneshot-rev REV`
it compares the one-shot stage of REV's tree with this tree's instead (a change of the one-shot path).

Every mode also prints the ratio as a geometric mean over the pairs (each old run with the new run beside it in
time) with a 95% t interval on the log ratios: on a VM whose speed drifts within a session, the pairs' spread is
the measure of how far a ratio can be trusted.

The old code runs from a `git worktree` of REV under /tmp (made once, kept); both use this .venv's packages.
Prints per architecture and version the job's wall seconds (median of the repeats) and old/new, the
seconds of it spent training (the images trained over the job's training images/s; the rest is evaluation,
data and model set-up), with the machine load (1-minute average) before each job: a ratio measured under load says less than one measured idle.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
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
ips = getattr(r, "train_images_per_s", None)
train_s = p.epochs * (p.train_images // p.batch_size) * p.batch_size / ips if ips else None
print(json.dumps({"wall_s": time.perf_counter() - t, "train_s": train_s, "status": r.status, "test_top1": r.test_top1}))
"""


def cpu() -> str:
    """The CPU's model name and core count: ratios here are a machine's (the MKL shim wins on AMD only)."""
    try:
        model = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):  # pragma: no cover - not Linux
        import platform

        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def worktree(rev: str) -> Path:
    d = Path(f"/tmp/nas-{rev}")
    if not d.is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(d), rev], check=True,
                       capture_output=True)
    return d


def job(tree: Path, arch: str, env: dict | None = None, prelude: str = "") -> dict:
    """One whole job of `arch` by the code in `tree`, in a fresh process; `prelude`: Python run before it."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", prelude + JOB, arch], env=env, cwd=tree, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


RATE = re.compile(r"([0-9.]+) architectures/min")


def search(tree: Path, extra: list[str] | None = None) -> dict:
    """One default search stage by the code in `tree` (`extra`: more `nas search` arguments), into a fresh
    results folder: its wall seconds, trained jobs, their median training images/s, how many the scheduler
    stopped early, the epochs trained in all (07bd30f's default stopped trials early; today's does not), and
    the architectures a minute the stage prints with its summary line (None where the code prints no rate)."""
    import tempfile

    import pandas as pd

    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "nas", "search", "--budget", "300M", "--no-confirm", "--name", "s",
                              "--results", tmp, *(extra or [])], env=env, cwd=tree, capture_output=True, text=True,
                             check=True).stdout
        wall = time.perf_counter() - t
        d = pd.read_csv(Path(tmp) / "s" / "trials.csv")
    ips = d["images_per_s"].dropna() if "images_per_s" in d else pd.Series(dtype=float)
    m = RATE.search(out)
    return {"wall_s": wall, "jobs": int(ips.size), "img_per_s": float(ips.median()) if ips.size else float("nan"),
            "stopped": int((d["status"] == "early_stopped").sum()),
            "epochs": int(d["epochs_done"].fillna(0).sum()) if "epochs_done" in d else -1,
            "rate": float(m.group(1)) if m else None,
            "line": next(x for x in out.splitlines() if m.group(0) in x) if m else ""}


# `--ceiling`'s stand-ins, run as the `sitecustomize` of the command's process that trains (the one `nas.preload`
# re-executes with _NAS_REEXEC=1, or the only one where nothing is preloaded: the bench then sets the variable)
CEILING = r"""
import os
if os.environ.get("_NAS_REEXEC") == "1":
    import torch.nn.functional as F
    from torch import nn

    nn.SiLU.forward = lambda self, x: x
    nn.BatchNorm2d.forward = lambda self, x: x * self.weight.view(1, -1, 1, 1)
    F.scaled_dot_product_attention = lambda q, k, v, *a, **kw: q * 1 + 0 * (k.sum() + v.sum())
    import nas.blocks.common

    nas.blocks.common._POST_OPS[nn.SiLU] = "none"
"""


def command(tree: Path, arch: str, site: dict[str, str] | None = None) -> dict:
    """One `nas train` command by the code in `tree` (confirm protocol, test subset, 1 thread): its wall seconds
    from start to exit and the metrics JSON it wrote. `site`: environment entries put over the tree's
    (`ceiling_env`)."""
    import tempfile

    env = {**os.environ, "PYTHONPATH": str(tree), **(site or {})}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.json"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nas", "train", arch, "--proxy", "confirm", "--final", "--threads", "1",
                        "--no-progress", "--out", str(out)], env=env, cwd=tree, capture_output=True, text=True,
                       check=True)
        wall = time.perf_counter() - t
        m = json.loads(out.read_text())
    return {"wall_s": wall, "job_s": m.get("wall_s"), "test_top1": m.get("test_top1")}


def paired_ratio(num: list[float], den: list[float]) -> str:
    """num[i]/den[i] over pairs run side by side: geometric mean, 95% t interval on the log ratios, n."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from nas.stats import summarize, t_interval

    logs = [math.log(a / b) for a, b in zip(num, den, strict=True)]
    s = summarize(logs)
    lo, hi = t_interval(s.mean, s.sd, s.n)
    ci = f"[{math.exp(lo):.2f}, {math.exp(hi):.2f}]" if s.n > 1 else "[no interval from one pair]"
    pairs = ", ".join(f"{math.exp(x):.2f}" for x in logs)
    return f"geometric mean {math.exp(s.mean):.2f}x {ci} (95% t, n={s.n} pairs: {pairs})"


def ceiling_env(site: Path) -> dict[str, str]:
    """Environment entries that make this tree's command run `CEILING` (written into `site`) in its training
    process."""
    (site / "sitecustomize.py").write_text(CEILING)
    env = {"PYTHONPATH": f"{site}:{ROOT}"}
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from nas.preload import libraries

    if not libraries([]):  # no re-exec: the one process trains
        env["_NAS_REEXEC"] = "1"
    return env


def compare_command(old: Path, archs: list[str], repeats: int, ceiling: bool = False) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ceiling-") as site:
        sides = [("old", old, None), ("new", ROOT, None)] + ([("ceiling", ROOT, ceiling_env(Path(site)))]
                                                            if ceiling else [])
        _compare_command(sides, archs, repeats)


def _compare_command(sides: list[tuple[str, Path, dict[str, str] | None]], archs: list[str], repeats: int) -> None:
    for arch in archs:
        t: dict[str, list[float]] = {name: [] for name, _, _ in sides}
        for i in range(repeats):
            for name, tree, sc in sides[i % len(sides):] + sides[:i % len(sides)]:  # rotated: same load for each
                load = os.getloadavg()[0]
                r = command(tree, arch, sc)
                t[name].append(r["wall_s"])
                print(f"  {arch:<20} {name:<7} command {r['wall_s']:6.1f} s (its job {r['job_s']:.1f} s)  test "
                      f"{r['test_top1']}  (load {load:.1f})", flush=True)
        mo = statistics.median(t["old"])
        for name, _, _ in sides[1:]:
            mn = statistics.median(t[name])
            print(f"{arch}: nas train, old {mo:.1f} s, {name} {mn:.1f} s (medians of {repeats}): old/{name} "
                  f"{mo / mn:.2f}x; {paired_ratio(t['old'], t[name])}", flush=True)
        if "ceiling" in t:
            print(f"{arch}: new/ceiling (what the stand-ins' parts cost the command): "
                  f"{paired_ratio(t['new'], t['ceiling'])}", flush=True)


def compare_search(old: Path, repeats: int, old_args: list[str] | None = None) -> None:
    t: dict[str, list[dict]] = {"old": [], "new": []}
    for i in range(repeats):
        for name, tree in (("old", old), ("new", ROOT)) if i % 2 == 0 else (("new", ROOT), ("old", old)):
            load = os.getloadavg()[0]
            r = search(tree, old_args if name == "old" else None)
            t[name].append(r)
            print(f"  search stage {name} {r['wall_s']:7.1f} s, {r['jobs']} trained jobs ({r['stopped']} stopped "
                  f"early, {r['epochs']} epochs in all), median {r['img_per_s']:.1f} img/s  (load {load:.1f})",
                  flush=True)
    med = {k: (statistics.median(x["wall_s"] for x in v), statistics.median(x["img_per_s"] for x in v))
           for k, v in t.items()}
    print(f"search stage: old {med['old'][0]:.1f} s, new {med['new'][0]:.1f} s: old/new {med['old'][0] / med['new'][0]:.2f}x;"
          f" job img/s old {med['old'][1]:.1f}, new {med['new'][1]:.1f}: new/old {med['new'][1] / med['old'][1]:.2f}x",
          flush=True)
    print(f"search stage old/new: {paired_ratio([x['wall_s'] for x in t['old']], [x['wall_s'] for x in t['new']])}",
          flush=True)


def rates(sides: list[tuple[str, Path, list[str]]], repeats: int) -> dict[str, list[float]]:
    """The architectures a minute each side's search stage prints, sides (name, tree, extra `nas search` arguments)
    alternating round by round."""
    r: dict[str, list[float]] = {name: [] for name, _, _ in sides}
    for i in range(repeats):
        for name, tree, extra in sides if i % 2 == 0 else sides[::-1]:
            load = os.getloadavg()[0]
            x = search(tree, extra)
            if x["rate"] is None:
                raise SystemExit(f"the {name} stage printed no 'architectures/min'")
            r[name].append(x["rate"])
            print(f"  {name:<12} {x['rate']:6.1f} architectures/min, {x['wall_s']:6.1f} s with the process  "
                  f"(load {load:.1f}): {x['line'].strip()}", flush=True)
    return r


def compare_oneshot(supernet: str, repeats: int) -> None:
    r = rates([("one-shot", ROOT, ["--strategy", "oneshot", "--supernet", supernet]), ("multi-trial", ROOT, [])],
              repeats)
    print(f"one-shot / multi-trial architectures a minute: {paired_ratio(r['one-shot'], r['multi-trial'])}",
          flush=True)


def compare_oneshot_trees(old: Path, supernet: str, repeats: int) -> None:
    extra = ["--strategy", "oneshot", "--supernet", supernet]
    r = rates([("one-shot old", old, extra), ("one-shot new", ROOT, extra)], repeats)
    print(f"one-shot architectures a minute, new / old: {paired_ratio(r['one-shot new'], r['one-shot old'])}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="07bd30f")
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--search", action="store_true", help="time the default search stage instead of single jobs")
    ap.add_argument("--old-args", nargs="+", default=None, metavar="ARG",
                    help="with --search: more arguments for the old tree's search, e.g. --old-args=--no-early-stop "
                         "(07bd30f's default stopped trials early by ASHA; today's trains each to the end)")
    ap.add_argument("--command", action="store_true",
                    help="time the `nas train` command from start to exit instead of the job inside a process")
    ap.add_argument("--ceiling", action="store_true",
                    help="with --command: a third side, this tree's command with SiLU, BatchNorm and attention "
                         "replaced by stand-ins that cost about nothing (a ceiling, not an option)")
    ap.add_argument("--oneshot", metavar="SUPERNET",
                    help="compare this tree's one-shot search stage on SUPERNET with its multi-trial stage instead")
    ap.add_argument("--oneshot-rev", metavar="REV",
                    help="with --oneshot: compare REV's one-shot stage with this tree's instead of with multi-trial")
    ap.add_argument("--same-blas", action="store_true",
                    help="run the old tree's jobs with the MKL shim too (an A/B of a change after it), two sides")
    a = ap.parse_args()
    if a.oneshot and a.oneshot_rev:
        old = worktree(a.oneshot_rev)
        print(f"machine: {cpu()}; load before {os.getloadavg()[0]:.1f}; one-shot on {a.oneshot}, old: {a.oneshot_rev} "
              f"({old}), new: this tree ({ROOT}); nas search --budget 300M --no-confirm", flush=True)
        compare_oneshot_trees(old, str(Path(a.oneshot).resolve()), a.repeats)
        return
    if a.oneshot:
        print(f"machine: {cpu()}; load before {os.getloadavg()[0]:.1f}; this tree ({ROOT}): one-shot on {a.oneshot} "
              "against multi-trial, nas search --budget 300M --no-confirm", flush=True)
        compare_oneshot(str(Path(a.oneshot).resolve()), a.repeats)
        return
    old = worktree(a.rev)
    print(f"machine: {cpu()}; load before {os.getloadavg()[0]:.1f}", flush=True)
    if a.search:
        print(f"old: {a.rev} ({old}){' ' + ' '.join(a.old_args) if a.old_args else ''}, new: this tree ({ROOT}); "
              "nas search --budget 300M --no-confirm")
        compare_search(old, a.repeats, a.old_args)
        return
    if a.command:
        print(f"old: {a.rev} ({old}), new: this tree ({ROOT}); nas train ARCH --proxy confirm --final --threads 1")
        compare_command(old, a.archs, a.repeats, a.ceiling)
        return
    sys.path.insert(0, str(ROOT))
    from nas.blas import env_with_shim
    from nas.preload import env_for_jobs, libraries

    shim = env_with_shim()  # the `nas` command's jobs run with it on an AMD CPU (nas.blas); None elsewhere
    # the new side's jobs run as the `nas` command runs them: with its preloads (nas.preload: the shim, tcmalloc)
    libs = libraries([])
    preloads = env_for_jobs() if libs else None
    if a.same_blas:
        sides = [("old", old, shim), ("new", ROOT, shim)]
    else:
        sides = [("old", old, None), ("new", ROOT, preloads)] + ([("new, no preloads", ROOT, None)] if preloads else [])
    print(f"old: {a.rev} ({old}), new: this tree ({ROOT})"
          f"{', with ' + ' '.join(libs) + ' preloaded as `nas` runs it' if preloads else ''}; "
          "confirm protocol, 1 thread, whole job")
    for arch in a.archs:
        t: dict[str, list[float]] = {n: [] for n, _, _ in sides}
        tr: dict[str, list[float]] = {n: [] for n, _, _ in sides}
        for i in range(a.repeats):
            for name, tree, env in sides[i % len(sides):] + sides[:i % len(sides)]:  # rotated: same load for each
                load = os.getloadavg()[0]
                r = job(tree, arch, env)
                t[name].append(r["wall_s"])
                tr[name].append(r["train_s"])
                print(f"  {arch:<20} {name:<20} {r['wall_s']:7.1f} s, training {r['train_s']:5.1f} s, the rest "
                      f"{r['wall_s'] - r['train_s']:4.1f} s  test {r['test_top1']}  (load {load:.1f})", flush=True)
        mo, to = statistics.median(t["old"]), statistics.median(tr["old"])
        for name, _, _ in sides[1:]:
            mn, tn = statistics.median(t[name]), statistics.median(tr[name])
            print(f"{arch}: old {mo:.1f} s, {name} {mn:.1f} s (medians of {a.repeats}): old/new {mo / mn:.2f}x; "
                  f"training alone old {to:.1f} s, {name} {tn:.1f} s: {to / tn:.2f}x", flush=True)
            print(f"{arch}: old/{name}: {paired_ratio(t['old'], t[name])}", flush=True)


if __name__ == "__main__":
    main()
