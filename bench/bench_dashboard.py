"""How long `nas.viz.write_dashboard` takes (the search calls it after every finished trial).

Writes a hand-made run folder of N trials (as tests/test_viz.py does, with a real Optuna study), then times
the first call in a fresh process (imports, Optuna storage, fANOVA, the zoo's MAdds) and the following
calls after one more trial finishes each time (the live case). Prints one line per N.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dashboard.py --trials 40 200 500
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, nargs="+", default=[40, 200, 500])
    ap.add_argument("--repeat", type=int, default=3, help="live calls timed per N (one new trial before each)")
    args = ap.parse_args()
    from test_viz import write_demo_run

    from nas import results as R
    from nas import viz

    print(f"# {platform.node()} {platform.processor() or platform.machine()}, python {platform.python_version()}")
    for n in args.trials:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / f"run{n}"
            df = write_demo_run(d, n=n, with_study=True)
            t0 = time.perf_counter()
            out = viz.write_dashboard(d)
            first = time.perf_counter() - t0
            live = []
            for i in range(args.repeat):
                row = df.iloc[0].to_dict() | {"trial": f"x{i}", "number": n + i, "val_top1": 30.0 + i,
                                              "status": "completed"}
                R.upsert_trial(d, row)
                t0 = time.perf_counter()
                viz.write_dashboard(d)
                live.append(time.perf_counter() - t0)
            mb = out.stat().st_size / 1e6
            print(f"trials={n:4d}  first call {first:6.2f} s  live call {min(live):5.2f}-{max(live):5.2f} s  "
                  f"page {mb:.1f} MB")


if __name__ == "__main__":
    main()
