"""Proxy-train one network (a published variant or an architecture YAML) and write its metrics JSON.

Training follows the proxy protocol (default: the shipped nas/proxy_default.yaml; --proxy for another
YAML or a shipped protocol's name, --epochs / --seed override one field): a seeded subset of the training
set, validation carved from the training set, the network built at the proxy resolution (stem at stride 1
below 64 px). --final also scores the test split, which search never reads.

A long job saves its state between epochs (at most once a minute) to the metrics path with .ckpt.pt for .json;
killed, the same command resumes it after its last saved epoch, with the same result as an uninterrupted run.
The file is removed when the job ends.

Datasets (--data): fashion-mnist (default; `apt-get install dataset-fashion-mnist`), cifar10, cifar100
(looked up under $NAS_DATA_DIR or ~/.cache/nas/data), or a directory (IDX files, CIFAR batches, or an
ImageFolder train/<class>/*.png with val/ or test/).

examples:
  nas train mobilevit_xxs
  nas train mobile_former_96m --epochs 10 --final --out mf96.json
  nas train my_arch.yaml --data ~/data/cifar-10-batches-py --proxy my_proxy.yaml
  nas train mf151/mobile_former_151m.yaml --init mf151/mobile_former_151m.pt   # from `nas supernet extract`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", metavar="VARIANT|CONFIG.yaml", help="a variant name (see `nas variants`) or an ArchConfig YAML")
    p.add_argument("--epochs", type=int, help="override the proxy's epochs")
    p.add_argument("--data", metavar="NAME|PATH", default=None,
                   help="fashion-mnist (default), cifar10, cifar100 or a dataset directory")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", metavar="FILE", help="metrics JSON path (default: results/train/<name>-<proxy>-s<seed>.json)")
    p.add_argument("--proxy", metavar="PATH|NAME",
                   help="proxy protocol: a YAML path or a shipped protocol's name (default: default)")
    p.add_argument("--final", action="store_true", help="also report top-1 on the test split")
    p.add_argument("--seed", type=int, help="override the proxy's seed")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--init", metavar="WEIGHTS.pt", help="initial weights (a state_dict, e.g. inherited from a "
                   "supernet: `nas supernet extract`)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from nas.runtime import add_runtime_arguments

    add_runtime_arguments(p)


def run(args: argparse.Namespace) -> int:
    from nas.data import load_dataset
    from nas.errors import ConfigError
    from nas.runtime import Runtime
    from nas.search.ladder import available_images
    from nas.train import load_proxy, train_arch
    from nas.variants import resolve_arch

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs} is invalid", "pass an integer >= 1")
    runtime = Runtime(device=args.device, threads=args.threads, precision=args.precision,
                      memory_format=args.memory_format, compile=args.compile,
                      keep_freed_memory=args.keep_freed_memory).resolved()
    arch = resolve_arch(args.arch)
    proxy = load_proxy(args.proxy, epochs=args.epochs, seed=args.seed)
    data = load_dataset(args.data)
    if short := proxy.shortfall(available_images(data, proxy)):
        print(short, flush=True)
    out = Path(args.out) if args.out else Path("results") / "train" / f"{arch.name}-{proxy.hash}-s{proxy.seed}.json"
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out {out} is a directory", "pass a file path such as metrics.json")

    if args.init is not None:  # read before the progress bar starts: a bad file gets its error line alone
        from nas.train.loop import read_weights

        read_weights(args.init)

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=proxy.epochs, desc=arch.name, unit="epoch", dynamic_ncols=True)

    def report(m: dict) -> None:
        if bar is not None:
            bar.set_postfix(loss=f"{m['train_loss']:.3f}", val=f"{m['val_top1']:.1f}%",
                            ips=f"{m['images_per_s']:.0f}/s")
            bar.update(m["epoch"] - bar.n)  # a resumed job starts past its checkpoint's epochs

    ckpt = out.with_name(out.stem + ".ckpt.pt")  # a killed run of the same job resumes from it
    try:
        result = train_arch(arch, data, proxy, report=report, final=args.final,
                            init=args.init, runtime=runtime, checkpoint=ckpt)
    finally:
        if bar is not None:
            bar.close()

    from nas.madds import count_madds

    record = {"arch": arch.name, "arch_id": arch.arch_id, "madds_m": count_madds(arch) / 1e6,
              "target_resolution": arch.resolution, "dataset": data.name, "data_source": data.source,
              "proxy": proxy.to_dict(), "proxy_hash": proxy.hash, "final": bool(args.final),
              "runtime": runtime.to_dict(),
              **result.to_dict()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    line = f"{arch.name}: {result.status}, val top-1 {_pct(result.val_top1)}"
    if args.final:
        line += f", test top-1 {_pct(result.test_top1)}"
    line += f", {result.train_images_per_s or 0:.0f} train img/s, {result.wall_s:.1f} s"
    if result.resumed_after_epoch:
        line += f" (resumed after epoch {result.resumed_after_epoch} of {proxy.epochs} from {ckpt})"
    print(line)
    if result.error:
        print(f"  {result.error}")
    print(f"metrics written to {out}")
    return 0 if result.status in ("completed", "early_stopped") else 1


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}%"
