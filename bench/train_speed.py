"""Training speed on this machine: images/s of the published variants under the default proxy, the wall
time of full default-proxy trials, and MobileViT-XXS at 32x32 (batch 64, float32, forward+backward+step).

    OMP_NUM_THREADS=2 .venv/bin/python bench/train_speed.py [--threads 2] [--max-madds 600] [--trials NAME ...]

Images/s of a variant: `nas.train.train_arch` on Fashion-MNIST with the default proxy, shortened to two
epochs of 8 batches; the second epoch's images/s (steady state, warm-up excluded) is reported.
Speed is measured here, never asserted in tests. The machine load (uptime) is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch


def _uptime() -> str:
    try:
        return open("/proc/loadavg").read().split(" ", 3)[:3].__repr__()
    except OSError:  # pragma: no cover
        return "n/a"


def variant_speed(name: str, data, proxy, *, steps: int = 8) -> float:
    """Steady-state training images/s of a variant through the real trainer."""
    from nas.train import train_arch

    p = proxy.replace(epochs=2, train_images=proxy.batch_size * steps, val_images=64, warmup_epochs=0.0)
    r = train_arch(name, data, p)
    if r.status != "completed":
        raise RuntimeError(f"{name}: {r.status} {r.error}")
    return r.history[-1]["images_per_s"]


def step_speed(model: torch.nn.Module, *, batch: int = 64, res: int = 32, steps: int = 20, repeats: int = 5,
               channels_last: bool = True, fused: bool = True) -> list[float]:
    """Images/s of `repeats` runs of `steps` training steps (`nas.train.train_step`: fp32 forward +
    cross-entropy backward + SGD momentum step) on one random batch, after 5 warm-up steps.
    `channels_last` and `fused` as our trainer runs (`make_optimizer` of an SGD protocol); both off is how
    a plain reference script runs (per-tensor SGD, contiguous tensors)."""
    from nas.train import ProxyConfig, make_optimizer, train_step

    torch.manual_seed(0)
    if fused:
        opt = make_optimizer(model, ProxyConfig(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0))
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    crit = torch.nn.CrossEntropyLoss()

    for _ in range(5):
        train_step(model, x, y, opt, crit)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            train_step(model, x, y, opt, crit)
        out.append(batch * steps / (time.perf_counter() - t))
    return out


def xxs_32(*, stem_stride1: bool, **kw) -> float:
    """Median images/s of MobileViT-XXS at 32x32, batch 64 (see step_speed); stem as the proxy builds it
    (stride 1 below 64 px) or as the reference code runs a 32 px input (stride 2)."""
    from nas.builder import build_model
    from nas.variants import get_variant

    torch.manual_seed(0)
    model = build_model(get_variant("mobilevit_xxs"), num_classes=10, input_size=32 if stem_stride1 else None)
    return statistics.median(step_speed(model, **kw))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-madds", type=float, default=600.0, help="variants at or under this many M MAdds")
    ap.add_argument("--trials", nargs="*", default=["mobile_former_294m", "mobilevitv3_xxs", "mobile_former_96m"],
                    help="variants to run one full default-proxy trial of")
    ap.add_argument("--skip-variants", action="store_true")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nas.data import load_dataset
    from nas.madds import count_madds
    from nas.train import load_proxy, train_arch
    from nas.variants import get_variant, list_variants

    out: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                            f"torch {torch.__version__}, {args.threads} threads",
                 "load_before": _uptime()}
    print(out["machine"], "load", out["load_before"])
    data = load_dataset()
    proxy = load_proxy()
    print(f"default proxy {proxy.hash}: {proxy.to_dict()}")

    for stride1 in (True, False):
        ips = xxs_32(stem_stride1=stride1)
        key = "xxs32_stem1" if stride1 else "xxs32_stem2"
        out[key] = ips
        print(f"mobilevit_xxs 32x32 b64 fp32 fwd+bwd+step (fused SGD, channels_last), stem stride "
              f"{1 if stride1 else 2}: {ips:.0f} img/s (median of 5 x 20 steps)")
    out["xxs32_stem2_plain"] = xxs_32(stem_stride1=False, channels_last=False, fused=False)
    print(f"  the same, stem stride 2, contiguous + per-tensor SGD: {out['xxs32_stem2_plain']:.0f} img/s")

    if not args.skip_variants:
        rows = []
        for name in list_variants():
            mm = count_madds(get_variant(name)) / 1e6
            if mm > args.max_madds:
                continue
            ips = variant_speed(name, data, proxy)
            est = proxy.epochs * proxy.train_images / ips
            rows.append({"variant": name, "madds_m": round(mm), "images_per_s": round(ips, 1),
                         "est_train_s": round(est, 1)})
            print(f"{name:20s} {mm:6.0f}M  {ips:7.1f} img/s  ~{est:5.1f} s of training per default trial")
        out["variants"] = rows

    trials = []
    for name in args.trials:
        r = train_arch(name, data, proxy)
        trials.append({"variant": name, "madds_m": round(count_madds(get_variant(name)) / 1e6),
                       "wall_s": round(r.wall_s, 1), "val_top1": r.val_top1, "status": r.status,
                       "images_per_s": round(r.train_images_per_s or 0, 1)})
        print(f"full default trial {name}: {r.wall_s:.1f} s, val top-1 {r.val_top1}, {r.status}")
    out["trials"] = trials
    out["load_after"] = _uptime()
    print("load after", out["load_after"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
