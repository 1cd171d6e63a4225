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

    .venv/bin/python bench/oneshot_scoring.py --supernet results/bench-supernet --calibration 32 64 128 \\
        [--run results/<a one-shot run>] [--log bench/oneshot_calibration.jsonl]

`--calibration` asks the same of the BatchNorm recalibration instead: each architecture is recalibrated on the
first N training images for each N given, and once more on the N images after the largest N (another draw of
the largest size: the yardstick of how much a score moves with the images alone), then scored on the
scorer's `SCORE_IMAGES` validation images. With `--run`, the architectures are those a one-shot run scored (its
searched and baseline rows: a default search's 203), and each size is ranked against the largest size's score
(no long reference holds them); without it, the long reference's. One JSON line per architecture in `--log`
(resumable: an architecture already there is not scored again).
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
    ap.add_argument("--calibration", type=int, nargs="+", help="recalibration sizes to compare (see above)")
    ap.add_argument("--run", type=Path, help="with --calibration: the architectures a one-shot run scored")
    ap.add_argument("--log", type=Path, default=Path(__file__).resolve().parent / "oneshot_calibration.jsonl")
    args = ap.parse_args()
    if args.calibration:
        calibration_sizes(args)
        return

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


def run_archs(run: Path) -> list[tuple[str, object]]:
    """(trial, ArchConfig) of the searched and baseline rows a one-shot run scored."""
    from nas import results as R
    from nas.search.folder import params_from_row
    from nas.space import load_space, replay
    from nas.variants import get_variant

    space = load_space(run / "space.yaml")
    df = R.read_trials(run)
    df = df[(df["stage"] == "search") & (df["status"] == "completed")]
    return [(str(r["trial"]), get_variant(str(r["name"])) if r["kind"] == "baseline"
             else replay(params_from_row(r, space), space)) for r in df.to_dict("records")]


def calibration_sizes(args: argparse.Namespace) -> None:
    import json

    import torch
    from long_reference import reference_archs
    from protocol_fidelity import _arch

    from nas import stats as S
    from nas.data import load_dataset
    from nas.supernet.score import SCORE_IMAGES, calibration_batch, extract, load_supernet, recalibrate_bn
    from nas.train import evaluate, load_proxy
    from nas.train.pipeline import prepare_data

    torch.set_num_threads(1)
    sizes = sorted(set(args.calibration))
    top = sizes[-1]
    if args.run:
        archs, ref = run_archs(args.run), None
    else:
        found, ref = reference_archs(args.reference, args.archs)
        archs = [(a["arch_id"], _arch(a)) for a in found]
    net, _ = load_supernet(args.supernet)
    prep = prepare_data(load_dataset(None), load_proxy())
    every = calibration_batch(prep, 2 * top).contiguous(memory_format=torch.channels_last)
    sets = {str(k): every[:k] for k in sizes} | {f"{top}b": every[top:2 * top]}
    val_x, val_y = prep.val_x[:SCORE_IMAGES], prep.val_y[:SCORE_IMAGES]
    done = {}
    if args.log.is_file():
        done = {(r["supernet"], r["key"]): r for r in map(json.loads, args.log.read_text().splitlines()) if r}
    print(f"{len(archs)} architectures, calibration sets {list(sets)}, {SCORE_IMAGES} validation images, "
          f"supernet {args.supernet}, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for key, arch in archs:
        r = done.get((str(args.supernet), key))
        if r is None or set(sets) - set(r["score"]):  # not scored yet, or not on every set asked for now
            r = {"supernet": str(args.supernet), "key": key, "arch_id": arch.arch_id, "score": {}, "calibrate_s": {}}
            model = extract(net, arch).to(memory_format=torch.channels_last)
            for name, images in sets.items():
                t = time.perf_counter()
                recalibrate_bn(model, images, batch_size=128)
                r["calibrate_s"][name] = time.perf_counter() - t
                r["score"][name] = evaluate(model, val_x, val_y, prep, batch_size=128)
            with args.log.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"  {key:<22} " + " ".join(f"{k} {v:.1f}" for k, v in r["score"].items()), flush=True)
        rows.append(r)
    print(f"\nn = {len(rows)}; each size against the {top}-image score (and the long reference, where known)")
    print(f"| calibration images | tau vs {top} images [95% CI] | top-10 shared with {top} | "
          "tau vs the long reference [95% CI] | s to recalibrate |")
    print("|---|---|---:|---|---:|")
    base = [r["score"][str(top)] for r in rows]
    best = set(np.argsort(base)[-10:])
    for name in sets:
        v = [r["score"][name] for r in rows]
        ra = S.rank_agreement(v, base) if name != str(top) else None
        shared = len(best & set(np.argsort(v)[-10:]))
        lr = "-"
        if ref is not None:
            la = S.rank_agreement(v, [ref[r["arch_id"]] for r in rows])
            lr = f"{la.tau:+.2f} [{la.lo:+.2f}, {la.hi:+.2f}]"
        agree = "-" if ra is None else f"{ra.tau:+.2f} [{ra.lo:+.2f}, {ra.hi:+.2f}]"
        secs = float(np.mean([r["calibrate_s"][name] for r in rows]))
        print(f"| {name} | {agree} | {shared} | {lr} | {secs:.3f} |")


if __name__ == "__main__":
    main()
