"""MobileViT-XXS training speed side by side with the reference implementation (timm's mobilevit_xxs),
same torch, same process, same machine, runs interleaved so that machine noise hits both alike.

timm needs torchvision, and PyPI's torchvision does not import beside the CPU torch 2.13 wheel the project
installs, so this runs in a separate venv with a torch/torchvision pair that does (CPU execution):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/refvenv/bin/pip install --no-deps timm==1.0.31 && /tmp/refvenv/bin/pip install pyyaml huggingface_hub safetensors
    OMP_NUM_THREADS=2 /tmp/refvenv/bin/python bench/reference_speed.py [--threads 2] [--res 32] [--rounds 3]

Both models are built with 10 classes; timm's has the same 1,272,024 parameters at 1000 classes as ours.
Each configuration: median images/s over `rounds` x 5 runs of 20 steps, batch 64, fp32 forward +
backward + SGD momentum step (see train_speed.step_speed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for `nas` outside its own venv

from train_speed import _uptime, step_speed  # noqa: E402  (bench/ is on sys.path when run as a script)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import timm
    except ImportError as e:
        sys.exit(f"error: timm is not importable here ({e}).\nfix: run this in the venv the docstring of "
                 f"{__file__} describes.")
    from nas.builder import build_model
    from nas.variants import get_variant

    torch.manual_seed(0)
    models = {"timm": timm.create_model("mobilevit_xxs", num_classes=10),
              "nas": build_model(get_variant("mobilevit_xxs"), num_classes=10)}
    configs = [("timm", False, False), ("timm", True, True), ("nas", False, False), ("nas", True, True)]
    print(f"torch {torch.__version__}, timm {timm.__version__}, {os.cpu_count()} cores, {args.threads} threads, "
          f"{args.res}x{args.res}, batch {args.batch}, load {_uptime()}")
    runs: dict[tuple, list[float]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for c in configs:
            name, cl, fused = c
            runs[c] += step_speed(models[name], batch=args.batch, res=args.res, channels_last=cl, fused=fused)
    for (name, cl, _), r in runs.items():
        how = "channels_last + fused SGD" if cl else "contiguous + per-tensor SGD"
        print(f"{name:5s} {how:28s} median {statistics.median(r):6.0f} img/s  (min {min(r):.0f}, max {max(r):.0f}, "
              f"{len(r)} runs)")
    print(f"load after {_uptime()}")


if __name__ == "__main__":
    main()
