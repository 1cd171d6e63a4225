"""Same seeds, same proposals: the searcher of this tree against the searcher of another commit, side by side.

    .venv/bin/python bench/same_proposals.py --rev b97553c

Drives each version's budget-screened Optuna searcher (`nas.tuning`) directly, without Ray, exactly as Ray Tune
calls it (suggest, then on_trial_complete with the job's final result), on the shipped default space at
--budget 300M: for each sampler (TPE on top-1, NSGA-II on the Pareto objective, random) and seed, --trials
proposals sent to training, with every proposal the budget screen refused in between. Each sent proposal is
told a made-up top-1 derived from its arch id (so TPE's later proposals depend on what it was told). Prints,
per sampler and seed, how many proposals (sent + refused) agree in order, arch id and status, and exits 1 on
any difference. The old code runs from a `git worktree` of REV under /tmp (made once, kept), with this .venv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from speed_vs import worktree  # noqa: E402  (the old code's `git worktree` under /tmp, made once)

PROBE = r"""
import hashlib, json, sys, tempfile
from pathlib import Path
from nas import tuning
from nas.space import load_space

sampler, objective, seed, trials = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cls = getattr(tuning, "BudgetedSearcher", None) or getattr(tuning, "BudgetedOptunaSearch")
log = []
hooks = tuning.SearchHooks(on_refused=lambda p: log.append([p.number, p.status, p.arch.arch_id]),
                           on_finished=lambda *a: None)
with tempfile.TemporaryDirectory() as d:
    s = cls(space=load_space(None), budget=300_000_000, min_budget=0.5, objective=objective,
            storage_url=f"sqlite:///{d}/optuna.db", study_name="s", seed=seed, trials=trials, jobs=[], hooks=hooks,
            sampler=sampler)
    for i in range(trials):
        cfg = s.suggest(f"t{i}")
        log.append([cfg["number"], "sent", cfg["arch_id"]])
        top1 = int(hashlib.sha1(cfg["arch_id"].encode()).hexdigest()[:6], 16) / 0xFFFFFF * 100
        for epoch in (1, 2):
            s.on_trial_result(f"t{i}", {"val_top1": top1 * epoch / 2, "epoch": epoch, "training_iteration": epoch})
        s.on_trial_complete(f"t{i}", {"val_top1": top1, "madds_m": cfg["madds_m"], "final": True,
                                      "status": "completed"})
print(json.dumps(log))
"""
CASES = [("tpe", "top1", 0), ("tpe", "top1", 7), ("nsga2", "pareto", 0), ("random", "top1", 3)]


def proposals(tree: Path, case: tuple[str, str, int], trials: int) -> list:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PROBE)
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, f.name, case[0], case[1], str(case[2]), str(trials)], cwd=tree, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the commit to compare with")
    ap.add_argument("--trials", type=int, default=16, help="proposals sent to training per case")
    a = ap.parse_args()
    old_tree = worktree(a.rev)
    ok = True
    for case in CASES:
        old, new = proposals(old_tree, case, a.trials), proposals(ROOT, case, a.trials)
        same = sum(1 for x, y in zip(old, new) if x == y)
        first_diff = next((i for i, (x, y) in enumerate(zip(old, new)) if x != y), None)
        good = old == new
        ok &= good
        print(f"{case[0]:>6} {case[1]:>6} seed {case[2]}: {len(new)} proposals ({sum(p[1] == 'sent' for p in new)} "
              f"sent, {sum(p[1] != 'sent' for p in new)} refused); {same} of {max(len(old), len(new))} identical"
              + ("" if good else f"; first difference at {first_diff}: {old[first_diff] if first_diff is not None else '-'}"
                                 f" -> {new[first_diff] if first_diff is not None else '-'}"))
    print("same proposals" if ok else "DIFFERENT proposals")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
