"""Reading a dataset decoded from its files against reading it back from the decoded cache (`nas.data._decoded`),
side by side in one run, each load a fresh process (the two ways alternated round by round).

    .venv/bin/python bench/data_load.py [--data fashion-mnist] [--rounds 8] [--command mobilevit_xs]

"decode" is `load_dataset(DATA)` with `NAS_DATA_CACHE=0` (gunzip or unpickle or image decoding, every process);
"cached" reads the file an earlier process kept (a folder of this run's, filled once before the rounds). Each
prints the seconds `load_dataset` took inside the process and the whole process's; `--command ARCH` also times the
whole `nas train ARCH --proxy confirm --final --threads 1` command both ways, with its test top-1 (the cache
changes no number). Ratios are decode over cached: geometric mean of the side-by-side pairs, 95% t interval.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_vs import cpu, paired_ratio  # noqa: E402

LOAD = ("import json, sys, time; t = time.perf_counter(); from nas.data import load_dataset; i = time.perf_counter(); "
        "d = load_dataset(sys.argv[1] or None); "
        "print(json.dumps({'load_s': time.perf_counter() - i, 'import_s': i - t, 'train': len(d.train_x)}))")


def run(argv: list[str], cache: str, *, out: Path | None = None) -> dict:
    env = {**os.environ, "NAS_DATA_CACHE": cache}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{p.stdout[-1000:]}{p.stderr[-2000:]}")
    r = json.loads(out.read_text()) if out is not None else json.loads(p.stdout.strip().splitlines()[-1])
    return {**r, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="", help="a dataset name or folder (default: the embedded fashion-mnist)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--command", metavar="ARCH", help="also time the whole nas train command both ways")
    a = ap.parse_args()
    print(f"# {cpu()}, load before {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        cached = str(Path(tmp) / "decoded")
        run(["-c", LOAD, a.data], cached)  # fills the cache
        ways = {"decode": "0", "cached": cached}
        got: dict[str, list[dict]] = {w: [] for w in ways}
        for i in range(a.rounds):
            for w in (list(ways) if i % 2 == 0 else list(reversed(ways))):
                got[w].append(run(["-c", LOAD, a.data], ways[w]))
        for key in ("load_s", "wall_s"):
            print(f"{key}: " + ", ".join(f"{w} median {statistics.median(r[key] for r in got[w]):.3f} s"
                                         for w in ways)
                  + f"; decode/cached {paired_ratio([r[key] for r in got['decode']], [r[key] for r in got['cached']])}")
        if a.command:
            cmd: dict[str, list[dict]] = {w: [] for w in ways}
            for i in range(max(2, a.rounds // 2)):
                for w in (list(ways) if i % 2 == 0 else list(reversed(ways))):
                    out = Path(tmp) / f"{w}.json"
                    argv = ["-m", "nas", "train", a.command, "--proxy", "confirm", "--final", "--threads", "1",
                            "--no-progress", "--out", str(out)] + (["--data", a.data] if a.data else [])
                    r = run(argv, ways[w], out=out)
                    cmd[w].append(r)
                    print(f"  {a.command} {w:<6} command {r['wall_s']:.2f} s, test top-1 {r['test_top1']} "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
            print(f"nas train {a.command}: " + ", ".join(
                f"{w} median {statistics.median(r['wall_s'] for r in cmd[w]):.2f} s" for w in ways)
                + f"; decode/cached {paired_ratio([r['wall_s'] for r in cmd['decode']], [r['wall_s'] for r in cmd['cached']])}")
    print(f"# load after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
