"""How well does the supernet rank, here? Inherited-weight accuracy against the confirm protocol's
stand-alone accuracy over the in-band architectures of bench/protocol_fidelity.py (the same list, the same
reference: the confirm protocol, 3 seeds, mean test top-1, read from bench/protocol_fidelity.jsonl).

    OMP_NUM_THREADS=1 nohup .venv/bin/python bench/supernet_fidelity.py > supernet_fidelity.out 2>&1 &
    .venv/bin/python bench/supernet_fidelity.py --summary

Stages, each resumable (a killed bench continues where it stopped):
1. train the supernet with the shipped defaults (`nas supernet train` settings: 400 steps, both macros,
   300M band) into --dir, timed (checkpoints every 2 minutes);
2. score every architecture by inherited weights: BatchNorm recalibrated on 128, 256 or 512 training
   images, and not recalibrated (the shared running statistics); one thread, timed;
3. warm start: train every architecture under the search protocol (seed 0) from its inherited weights
   (`nas train --init`), to compare its tau with the cold start (seed 0 of the same protocol in the
   protocol-fidelity log) at equal cost.
Each scored or trained job appends one JSON line to --log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCORINGS = {"cal128": 128, "cal256": 256, "cal512": 512, "nocal": 0}
_STATE: dict = {}


def _settings(steps: int):
    from nas.space import load_space
    from nas.supernet.train import SupernetSettings
    from nas.train import load_proxy

    sp = load_space(None)
    return SupernetSettings(space=sp.raw, budget=300_000_000, min_budget=0.5, macros=list(sp.macros), steps=steps,
                            protocol=load_proxy("supernet").to_dict(), data="fashion-mnist")


def _state(d: Path):
    if not _STATE:
        import torch

        from nas.data import load_dataset
        from nas.supernet.score import load_supernet
        from nas.train import load_proxy
        from nas.train.pipeline import prepare_data

        torch.set_num_threads(1)
        net, _ = load_supernet(d)
        data = load_dataset(None)
        _STATE.update(net=net, data=data, prep=prepare_data(data, load_proxy()))
    return _STATE


def score_job(d: str, a: dict, scoring: str) -> dict:
    from protocol_fidelity import _arch

    from nas.supernet.score import calibration_batch, score_subnet

    st = _state(Path(d))
    arch = _arch(a)
    n = SCORINGS[scoring]
    t = time.perf_counter()
    cal = calibration_batch(st["prep"], n) if n else None
    top1 = score_subnet(st["net"], arch, st["prep"], recalibrate=bool(n), calibration=cal)
    return {"kind": "score", "scoring": scoring, "arch": a["name"], "arch_id": a["arch_id"], "macro": a["macro"],
            "val_top1": top1, "wall_s": time.perf_counter() - t, "load": os.getloadavg()[0],
            "at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def warm_job(d: str, a: dict) -> dict:
    from protocol_fidelity import _arch

    from nas.supernet.shared import extract
    from nas.train import load_proxy, train_arch

    st = _state(Path(d))
    arch = _arch(a)
    init = extract(st["net"], arch).state_dict()
    proxy = load_proxy()
    t = time.perf_counter()
    r = train_arch(arch, st["data"], proxy, threads=1, init=init)
    return {"kind": "warm", "protocol": proxy.hash, "seed": proxy.seed, "arch": a["name"], "arch_id": a["arch_id"],
            "macro": a["macro"], "status": r.status, "val_top1": r.val_top1, "wall_s": time.perf_counter() - t,
            "load": os.getloadavg()[0], "at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def load_log(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def summarize(rows: list[dict], ref_log: Path, d: Path) -> list[str]:
    import numpy as np

    from nas import stats as S
    from nas.train import load_proxy

    fid = load_log(ref_log)
    ref_hash = load_proxy("confirm").hash
    cold_hash = load_proxy().hash
    ref: dict[str, list[float]] = {}
    cold: dict[str, float] = {}
    macro: dict[str, str] = {}
    for r in fid:
        if r["status"] != "completed":
            continue
        if r["protocol"] == ref_hash and r["reference"]:
            ref.setdefault(r["arch_id"], []).append(r["test_top1"])
        if r["protocol"] == cold_hash and r["seed"] == 0 and not r["reference"]:
            cold[r["arch_id"]] = r["val_top1"]
        macro[r["arch_id"]] = r["macro"]
    refm = {k: float(np.mean(v)) for k, v in ref.items() if len(v) >= 3}
    out = [f"reference: confirm protocol {ref_hash}, 3 seeds, mean test top-1 over {len(refm)} architectures "
           f"({ref_log})"]
    prog = d / "progress.csv"
    if prog.is_file():
        lines = prog.read_text().splitlines()
        last = lines[-1].split(",")
        out.append(f"supernet: {d}, {last[0]} steps in {float(last[-1]):.0f} s of training (progress.csv)")

    def tau_line(name: str, vals: dict[str, float]) -> tuple[str, float]:
        ids = [k for k in refm if k in vals and vals[k] is not None]
        x, y = [vals[k] for k in ids], [refm[k] for k in ids]
        ra = S.rank_agreement(x, y)
        per = []
        for m in sorted({macro[k] for k in ids}):
            sub = [k for k in ids if macro[k] == m]
            rm = S.rank_agreement([vals[k] for k in sub], [refm[k] for k in sub])
            per.append(f"{m} {rm.tau:+.2f} [{rm.lo:+.2f}, {rm.hi:+.2f}] (n={rm.n})")
        return (f"  {name:<28} tau {ra.tau:+.2f} [{ra.lo:+.2f}, {ra.hi:+.2f}] n={ra.n}; within macro: "
                + ", ".join(per)), ra.tau

    def diff_line(name: str, a: dict[str, float], b: dict[str, float]) -> str | None:
        """tau(a) - tau(b) against the reference, with a paired bootstrap over the architectures."""
        ids = [k for k in a if k in b and k in refm]
        if len(ids) < 3:
            return None
        x, z, y = (np.array([v[k] for k in ids]) for v in (a, b, refm))
        d = S.paired_tau_diff(x, z, y)
        lo, hi = d.lo, d.hi
        return (f"  {name}: {S.kendall_tau(x, y) - S.kendall_tau(z, y):+.2f} [{lo:+.2f}, {hi:+.2f}] (paired "
                f"bootstrap over the {len(ids)} architectures); mean val top-1 {np.mean(x):.1f}% vs {np.mean(z):.1f}%")

    out.append("Kendall tau against the reference (bootstrap 95% interval over architectures):")
    scored = {}
    for sc in SCORINGS:
        vals = {r["arch_id"]: r["val_top1"] for r in rows if r["kind"] == "score" and r["scoring"] == sc}
        if vals:
            scored[sc] = vals
            secs = [r["wall_s"] for r in rows if r["kind"] == "score" and r["scoring"] == sc]
            line, _ = tau_line(f"inherited, {sc}", vals)
            out.append(f"{line}; {np.mean(secs):.2f} s per architecture (1 thread)")
    for sc in ("cal256", "cal512", "nocal"):
        if "cal128" in scored and sc in scored:
            out.append(diff_line(f"cal128 - {sc} tau", scored["cal128"], scored[sc]))
    warm = {r["arch_id"]: r["val_top1"] for r in rows if r["kind"] == "warm" and r["status"] == "completed"}
    if warm:
        out.append(tau_line("search protocol, warm start", warm)[0])
        out.append(tau_line("search protocol, cold start", {k: v for k, v in cold.items() if k in warm})[0])
        out.append(diff_line("warm - cold tau", warm, cold))
    return [x for x in out if x is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("results/bench-supernet"))
    ap.add_argument("--log", type=Path, default=Path("bench/supernet_fidelity.jsonl"))
    ap.add_argument("--ref-log", type=Path, default=Path("bench/protocol_fidelity.jsonl"))
    ap.add_argument("--steps", type=int, default=None, help="supernet steps (default: nas supernet train's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-warm", action="store_true")
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    rows = load_log(args.log)
    if args.summary:
        print("\n".join(summarize(rows, args.ref_log, args.dir)))
        return
    from protocol_fidelity import in_band_archs

    from nas.supernet.run import DEFAULT_STEPS
    from nas.supernet.train import WEIGHTS, append_progress, train_supernet

    args.dir.mkdir(parents=True, exist_ok=True)
    if not (args.dir / WEIGHTS).is_file():
        s = _settings(args.steps or DEFAULT_STEPS)
        t = time.time()

        def report(r: dict) -> None:
            append_progress(args.dir, r)
            print(f"step {r['step']}/{r['steps']} largest {r['loss_largest']:.3f} smallest {r['loss_smallest']:.3f} "
                  f"{r['steps_per_s']:.2f}/s load {os.getloadavg()[0]:.1f}", flush=True)

        train_supernet(s, args.dir, report=report, threads=2)
        print(f"supernet trained in {time.time() - t:.0f} s (this session)", flush=True)
    archs = in_band_archs(30, 300e6)
    done = {(r["kind"], r.get("scoring"), r["arch_id"]) for r in rows}
    jobs = [("score", sc, a) for sc in SCORINGS for a in archs if ("score", sc, a["arch_id"]) not in done]
    if not args.no_warm:
        jobs += [("warm", None, a) for a in archs if ("warm", None, a["arch_id"]) not in done]
    print(f"{len(archs)} architectures, {len(jobs)} jobs to run", flush=True)
    with ProcessPoolExecutor(args.workers) as pool, args.log.open("a") as log:
        futs = [pool.submit(score_job, str(args.dir), a, sc) if k == "score" else pool.submit(warm_job, str(args.dir), a)
                for k, sc, a in jobs]
        for f in as_completed(futs):
            r = f.result()
            log.write(json.dumps(r) + "\n")
            log.flush()
            print(f"{r['kind']} {r.get('scoring') or ''} {r['arch']}: {r['val_top1']} ({r['wall_s']:.1f} s)", flush=True)
    print("\n".join(summarize(load_log(args.log), args.ref_log, args.dir)))


if __name__ == "__main__":
    main()
