"""Where the search driver's CPU goes: runs a `nas` command in this process with the driver's main calls wrapped
by CPU-time counters (the recorder's row writing and flushes, the searcher's suggest and refusals, Optuna's
ask and tell, the front), and prints their calls, CPU seconds and milliseconds a call at exit, with the
process's whole CPU time. No profiler: the counters cost microseconds a call, so the figures are the
unprofiled ones (cProfile inflated the driver 1.5-2x, and `cProfile(time.process_time)` far more).

    LD_PRELOAD=~/.cache/hybrid-nas/mkl_intel_path.so _NAS_REEXEC=1 .venv/bin/python bench/driver_cpu.py \\
        search --budget 300M --strategy oneshot --supernet results/bench-supernet --no-confirm --name os-cpu

(`_NAS_REEXEC=1` with the preload keeps the `nas` command from re-executing itself, which would leave the
counters behind.) The driver runs at nice 0 beside Ray's workers at nice 15 on the same cores: each CPU second
it spends is a second the workers do not get.
"""

from __future__ import annotations

import collections
import functools
import resource
import sys
import time

ACC: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])


def wrap(owner: object, name: str, label: str) -> None:
    f = getattr(owner, name, None)
    if f is None:  # an older tree without it (bench/driver_cpu.py runs against other commits too)
        return

    @functools.wraps(f)
    def counted(*a, **kw):
        t0 = time.process_time()
        try:
            return f(*a, **kw)
        finally:
            ACC[label][0] += 1
            ACC[label][1] += time.process_time() - t0

    setattr(owner, name, counted)


def report(t0: float) -> None:
    r = resource.getrusage(resource.RUSAGE_SELF)
    print(f"driver: wall {time.time() - t0:.1f} s, CPU user {r.ru_utime:.1f} s + sys {r.ru_stime:.1f} s",
          file=sys.stderr)
    for k, (n, s) in sorted(ACC.items(), key=lambda kv: -kv[1][1]):
        print(f"  {k:<30} {int(n):5d} calls {s:7.2f} s CPU {1000 * s / max(n, 1):7.1f} ms a call", file=sys.stderr)


def main() -> None:
    import optuna

    import nas.results as R
    from nas.search.recorder import RunRecorder
    from nas.tuning.searcher import BudgetedSearcher

    for n in ("on_finished", "on_refused", "flush", "write_rows", "refresh_dashboard", "_count_params",
              "write_confirmation", "frame"):
        wrap(RunRecorder, n, f"recorder.{n}")
    wrap(BudgetedSearcher, "suggest", "searcher.suggest")
    wrap(BudgetedSearcher, "_tell_infeasible", "searcher._tell_infeasible")
    wrap(optuna.samplers.TPESampler, "infer_relative_search_space", "optuna TPE search space")
    wrap(optuna.samplers.TPESampler, "sample_relative", "optuna TPE sample_relative")
    wrap(optuna.samplers.TPESampler, "sample_independent", "optuna TPE sample_independent")
    wrap(optuna.storages.JournalStorage, "get_all_trials", "optuna journal get_all_trials")
    wrap(optuna.study.Study, "ask", "optuna ask")
    wrap(optuna.study.Study, "tell", "optuna tell")
    wrap(R, "compute_pareto", "results.compute_pareto")
    wrap(R, "write_trials", "results.write_trials")
    from nas.cli import main as nas_main

    t0 = time.time()
    rc = nas_main(sys.argv[1:])  # `nas`'s own command() ends the process at exit before any atexit hook of ours
    report(t0)
    sys.exit(rc)


if __name__ == "__main__":
    main()
