"""How much scoring work does the one-shot ranking need? Inherited-weight scores of the long reference's
architectures at several validation sizes, each ranked against the long reference, with the time each takes.

    .venv/bin/python bench/oneshot_scoring.py --supernet results/bench-supernet

For each architecture of `bench/long_reference.jsonl` (33 in-band architectures, 512 steps, 2 seeds, whole
test split): the subnet is extracted from the supernet, its BatchNorm recalibrated on the scorer's
`CALIBRATION_IMAGES`, then scored on the first 256, 512 and 1,024 images of the search validation split
(the split the one-shot search scores on: a fixed random carve of the training set; the larger sizes extend
the smaller ones, so each image is scored once). One thread, one process, timed per part. Prints, per
validation size: Kendall tau against the long reference with a bootstrap 95% interval over architectures,
the paired tau difference to the full 1,024 images, and the seconds per architecture.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = (256, 512, 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", type=Path, required=True, help="a `nas supernet train` run folder")
    ap.add_argument("--reference", type=Path, default=Path(__file__).resolve().parent / "long_reference.jsonl")
    ap.add_argument("--archs", type=int, default=30)
    args = ap.parse_args()

    import torch
    from long_reference import reference_archs
    from protocol_fidelity import _arch

    from nas import stats as S
    from nas.data import load_dataset
    from nas.supernet.score import calibration_batch, extract, load_supernet, recalibrate_bn
    from nas.train import evaluate, load_proxy
    from nas.train.pipeline import prepare_data

    torch.set_num_threads(1)
    archs, ref = reference_archs(args.reference, args.archs)
    net, _ = load_supernet(args.supernet)
    net.eval()
    prep = prepare_data(load_dataset(None), load_proxy())
    cal = calibration_batch(prep).contiguous(memory_format=torch.channels_last)
    print(f"{len(archs)} architectures, supernet {args.supernet}, load {os.getloadavg()[0]:.1f}", flush=True)
    scores: dict[int, dict[str, float]] = {k: {} for k in SIZES}
    secs: dict[str, list[float]] = {"extract": [], "calibrate": [], **{f"val{k}": [] for k in SIZES}}
    for a in archs:
        arch = _arch(a)
        t = time.perf_counter()
        model = extract(net, arch).to(memory_format=torch.channels_last)
        secs["extract"].append(time.perf_counter() - t)
        t = time.perf_counter()
        recalibrate_bn(model, cal, batch_size=128)
        secs["calibrate"].append(time.perf_counter() - t)
        correct, lo, spent = 0.0, 0, 0.0
        for k in SIZES:
            t = time.perf_counter()
            acc = evaluate(model, prep.val_x[lo:k], prep.val_y[lo:k], prep, batch_size=128)
            spent += time.perf_counter() - t
            correct += acc * (k - lo) / 100
            lo = k
            scores[k][a["arch_id"]] = 100 * correct / k
            secs[f"val{k}"].append(spent)
        print(f"  {a['name']:<22} " + " ".join(f"val{k} {scores[k][a['arch_id']]:.1f}" for k in SIZES)
              + f"  ({secs['extract'][-1] + secs['calibrate'][-1] + secs['val1024'][-1]:.2f} s)", flush=True)
    ids = [a["arch_id"] for a in archs]
    refv = [ref[i] for i in ids]
    ext, calib = float(np.mean(secs["extract"])), float(np.mean(secs["calibrate"]))
    print(f"\nn = {len(ids)}; seconds per architecture (1 thread): extract {ext:.2f}, calibrate {calib:.2f}")
    print("| validation images | tau vs the long reference [95% CI] | tau - tau(1,024) [paired 95% CI] | "
          "s per architecture (extract + calibrate + score) |")
    print("|---:|---|---|---:|")
    full = [scores[1024][i] for i in ids]
    for k in SIZES:
        v = [scores[k][i] for i in ids]
        ra = S.rank_agreement(v, refv)
        d = S.paired_tau_diff(v, full, refv)
        diff = "-" if k == 1024 else f"{d.tau:+.2f} [{d.lo:+.2f}, {d.hi:+.2f}]"
        print(f"| {k} | {ra.tau:+.2f} [{ra.lo:+.2f}, {ra.hi:+.2f}] | {diff} | "
              f"{ext + calib + float(np.mean(secs[f'val{k}'])):.2f} |")


if __name__ == "__main__":
    main()
