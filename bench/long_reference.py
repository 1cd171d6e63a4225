"""The long reference: the in-band architectures of `bench/protocol_fidelity.py` (both macros, plus the
in-band published variants) trained 4x longer than the confirm protocol, with paired seeds, scored on the
whole test split. Every bench ranks against this log (`bench/fidelity_table.py`).

    OMP_NUM_THREADS=1 nohup .venv/bin/python bench/long_reference.py --workers 2 > long_reference.out 2>&1 &
    .venv/bin/python bench/long_reference.py --steps 2048 --subset 8 --workers 2   # a longer rung on a subset
    .venv/bin/python bench/long_reference.py --protocol default --log bench/search_scores.jsonl  # search scores

Protocol: the shipped confirm protocol (nas/proxy_confirm.yaml: AdamW lr 2e-3, cosine, batch 16, 32 px) with
`--steps` optimizer steps as 2 epochs of steps * 16 / 2 training images (512 steps: 2 x 4096 images, 4x the
confirm protocol's 128), `test_images: 0` (all 10,000 test images). One JSON line per job is appended to
`--log` (arch, arch_id, macro, madds_m, params, protocol, steps, seed, val_top1 per epoch, test_top1, wall_s,
load; with `--protocol NAME` a shipped or YAML protocol as it is, scored on its validation split only, for
the search scores: val top-1 and loss per epoch, mean training loss per epoch): a killed run resumes where it stopped, and jobs run in passes (seed 0 of every architecture before
seed 1) so a partial log already covers every architecture.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from protocol_fidelity import _arch, in_band_archs, load_log, run_pool  # noqa: E402

_DATA: dict = {}


def reference_archs(log: Path, archs: int = 30, budget: float = 300e6) -> tuple[list[dict], dict[str, float]]:
    """The architectures of the long reference `log` that finished (as `in_band_archs` dicts) and their mean
    test top-1 over the seeds each has, by arch_id."""
    per: dict[str, list[float]] = {}
    for r in load_log(log):
        if r["status"] == "completed":
            per.setdefault(r["arch_id"], []).append(r["test_top1"])
    ref = {k: sum(v) / len(v) for k, v in per.items()}
    return [a for a in in_band_archs(archs, budget) if a["arch_id"] in ref], ref


def long_protocol(steps: int) -> dict:
    """The confirm protocol stretched to `steps` optimizer steps (2 epochs), scored on the whole test split."""
    from nas.train import load_proxy

    return load_proxy("confirm").stretched(steps).replace(test_images=0).to_dict()


def run_job(a: dict, protocol: dict, seed: int, steps: int, final: bool = True) -> dict:
    import torch

    from nas.data import load_dataset
    from nas.train import proxy_from_dict, train_arch

    torch.set_num_threads(1)
    if "d" not in _DATA:
        _DATA["d"] = load_dataset(None)
    p = proxy_from_dict(protocol).replace(seed=seed)
    t = time.perf_counter()
    r = train_arch(_arch(a), _DATA["d"], p, threads=1, final=final)
    return {"arch": a["name"], "arch_id": a["arch_id"], "macro": a["macro"], "madds_m": a["madds_m"],
            "params": r.params, "protocol": proxy_from_dict(protocol).hash, "steps": steps, "seed": seed,
            "status": r.status, "val_top1": r.val_top1, "val_curve": [h["val_top1"] for h in r.history],
            "val_loss": [h.get("val_loss") for h in r.history],
            "train_loss": [h["train_loss"] for h in r.history], "test_top1": r.test_top1,
            "wall_s": time.perf_counter() - t, "load": os.getloadavg()[0], "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "error": r.error}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, default=Path("bench/long_reference.jsonl"))
    ap.add_argument("--archs", type=int, default=30, help="random in-band points (plus the in-band published variants)")
    ap.add_argument("--budget", type=float, default=300e6)
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--protocol", default=None, help="a shipped protocol name or YAML, run as it is (default: the "
                    "confirm protocol stretched to --steps, scored on the test split)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--subset", type=int, default=0, help="only every k-th architecture, k = n / subset (0: all)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from nas.train import load_proxy, proxy_from_dict

    final = args.protocol is None
    if final:
        prot = long_protocol(args.steps)
    else:
        pp = load_proxy(args.protocol)
        prot, args.steps = pp.to_dict(), pp.epochs * (pp.train_images // pp.batch_size)
    h = proxy_from_dict(prot).hash
    archs = in_band_archs(args.archs, args.budget)
    if args.subset:
        archs = archs[:: max(1, len(archs) // args.subset)][: args.subset]
    done = {(r["arch_id"], r["protocol"], r["seed"]) for r in load_log(args.log) if r["status"] == "completed"}
    jobs = [(a, s) for s in range(args.seeds) for a in archs if (a["arch_id"], h, s) not in done]
    print(f"{len(archs)} architectures at {args.steps} steps (protocol {h}), {len(jobs)} jobs to run", flush=True)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    run_pool([(run_job, j[0], prot, j[1], args.steps, final) for j in jobs], args.log, args.workers, lambda row: (
        f"{row['arch']:<20} seed {row['seed']} {row['status']} val {row['val_curve']} test {row['test_top1']} "
        f"{row['wall_s']:.0f}s load {row['load']:.1f}"))

if __name__ == "__main__":
    main()
