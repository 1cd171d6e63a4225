"""Training speed on a GPU through the same runtime object the CPU path uses (`nas.runtime.Runtime`): images/s
of the trainer's own step (`nas.train.time_steps`: the confirm protocol's data subset, augmentation, fused
optimizer) per family and setting, then whole `nas train` jobs under the shipped confirm protocol.

    python bench/gpu_speed.py [--archs mobile_former_151m mobilevit_xs] [--batches 16 128] [--steps 30]
                              [--settings fp32 bf16 compile] [--jobs] [--device cuda] [--out FILE.jsonl]

Settings: fp32 eager, bf16 autocast eager (`--precision auto` on CUDA) and `torch.compile` at precision auto
(bf16 on CUDA, fp32 on CPU; at the first batch only; its compile time is in `wall_s`, the whole call's
time; inductor's on-disk cache makes a second process's compile of the same network shorter). Each figure is
the fastest of `steps` timed steps after one warm-up, as `time_steps` defines it; the GPU is synchronised
after every step. `--jobs` also times one whole `nas train <arch> --proxy confirm --final` per family in a
fresh process (torch import, CUDA start, data, training, test evaluation: what a search trial pays).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETTINGS = {
    "fp32": ("fp32 eager", {"precision": "fp32"}),
    "bf16": ("bf16 autocast eager", {"precision": "bf16"}),
    "compile": ("torch.compile, precision auto", {"compile": True}),
}


def emit(row: dict, out: Path | None) -> None:
    print(json.dumps(row), flush=True)
    if out is not None:
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 128])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--settings", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "compile"],
                    help="fp32 eager, bf16 autocast eager, torch.compile at precision auto (first batch only)")
    ap.add_argument("--jobs", action="store_true", help="also time one whole `nas train` job per family")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()

    from dataclasses import replace

    from nas.data import load_dataset
    from nas.runtime import Runtime
    from nas.train import load_proxy, time_steps

    data = load_dataset(None)
    proxy = load_proxy("confirm")
    name = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu"
    print(f"device {a.device} ({name}), torch {torch.__version__}", flush=True)
    for arch in a.archs:
        for key in a.settings:
            label, kw = SETTINGS[key]
            for bs in a.batches if key != "compile" else a.batches[:1]:
                rt = Runtime(device=a.device, **kw)
                if a.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                s_per_img = time_steps(arch, replace(proxy, batch_size=bs), data, steps=a.steps, runtime=rt)
                wall = time.perf_counter() - t
                mem = torch.cuda.max_memory_allocated() / 2**20 if a.device.startswith("cuda") else None
                emit({"arch": arch, "setting": label, "batch": bs, "img_per_s": round(1 / s_per_img, 1),
                      "ms_per_step": round(1000 * s_per_img * bs, 2), "wall_s": round(wall, 1),
                      "peak_mib": None if mem is None else round(mem)}, a.out)
    if a.jobs:
        for arch in a.archs:
            t = time.perf_counter()
            dest = Path(f"/tmp/gpu_speed_{arch}.json")
            subprocess.run([sys.executable, "-m", "nas", "train", arch, "--proxy", "confirm", "--final",
                            "--device", a.device.split(":")[0], "--out", str(dest)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            m = json.loads(dest.read_text())
            emit({"arch": arch, "setting": "whole nas train job (confirm protocol, --final)",
                  "wall_s": round(time.perf_counter() - t, 1), "train_img_per_s": m.get("train_images_per_s")
                  or m.get("images_per_s"), "test_top1": m.get("test_top1")}, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
