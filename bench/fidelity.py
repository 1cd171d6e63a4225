"""Proxy fidelity: does the default proxy rank published variants as a 4x longer proxy does, and as
ImageNet does?

    OMP_NUM_THREADS=2 nohup .venv/bin/python bench/fidelity.py --log bench/fidelity.jsonl > fidelity.out &
    .venv/bin/python bench/fidelity.py --log bench/fidelity.jsonl --summary     # taus of what is done

Each (variant, protocol) trial appends one JSON line to --log, so the script resumes where it stopped
and several protocols can be compared from one file. The "4x longer" protocol doubles both epochs and
train_images (4x the training images seen; same validation split). Kendall tau (scipy.stats.kendalltau)
is computed between the two proxies' val top-1 rankings and between each and the published top-1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_VARIANTS = ["mobile_former_26m", "mobile_former_52m", "mobile_former_96m", "mobile_former_151m",
                    "mobile_former_294m", "mobilevitv3_xxs", "mobilevit_xxs", "mobilevitv2_050",
                    "mobilevit_xs", "mobilevitv2_100"]


def longer(proxy, factor: int = 4):
    """The reference protocol: `factor`x the training images seen (epochs x2, train_images x factor/2)."""
    return proxy.replace(epochs=proxy.epochs * 2, train_images=proxy.train_images * factor // 2)


def load_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(rows: list[dict], base_hash: str, long_hash: str) -> dict:
    from scipy.stats import kendalltau

    from nas.variants import published

    by = {(r["variant"], r["proxy_hash"]): r for r in rows}
    names = sorted({r["variant"] for r in rows})
    both = [n for n in names if (n, base_hash) in by and (n, long_hash) in by]
    base = [by[(n, base_hash)]["val_top1"] for n in both]
    long_ = [by[(n, long_hash)]["val_top1"] for n in both]
    pub = [published(n)["top1"] for n in both]
    out = {"variants": both, "base": base, "long": long_, "published": pub}
    if len(both) >= 3:
        out["tau_base_long"] = kendalltau(base, long_).statistic
        out["tau_base_published"] = kendalltau(base, pub).statistic
        out["tau_long_published"] = kendalltau(long_, pub).statistic
    only_base = [n for n in names if (n, base_hash) in by]
    if len(only_base) >= 3:
        out["tau_base_published_all"] = kendalltau([by[(n, base_hash)]["val_top1"] for n in only_base],
                                                   [published(n)["top1"] for n in only_base]).statistic
        out["n_base"] = len(only_base)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", default="bench/fidelity.jsonl")
    ap.add_argument("--proxy", help="base proxy YAML (default: the shipped default)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override base proxy fields")
    ap.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--summary", action="store_true", help="only print the taus of what the log holds")
    ap.add_argument("--base-only", action="store_true", help="run only the base protocol")
    ap.add_argument("--reference", metavar="HASH", help="compare against this logged protocol instead of the "
                    "4x longer one of the base (e.g. a candidate base against an existing reference)")
    args = ap.parse_args()

    import yaml

    from nas.train import load_proxy

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    base = load_proxy(args.proxy, **overrides)
    long_ = longer(base)
    log = Path(args.log)
    print(f"base {base.hash} {base.to_dict()}\nlong {long_.hash} epochs={long_.epochs} "
          f"train_images={long_.train_images}", flush=True)
    if not args.summary:
        import torch

        from nas.data import load_dataset
        from nas.madds import count_madds
        from nas.train import train_arch
        from nas.variants import get_variant

        torch.set_num_threads(args.threads)
        data = load_dataset()
        protocols = [base] if args.base_only else [base, long_]
        for proxy in protocols:
            for name in args.variants:
                done = {(r["variant"], r["proxy_hash"]) for r in load_log(log)}
                if (name, proxy.hash) in done:
                    continue
                r = train_arch(name, data, proxy)
                row = {"variant": name, "proxy_hash": proxy.hash, "proxy": proxy.to_dict(),
                       "madds_m": round(count_madds(get_variant(name)) / 1e6), "status": r.status,
                       "val_top1": r.val_top1, "wall_s": round(r.wall_s, 1),
                       "images_per_s": round(r.train_images_per_s or 0, 1),
                       "load": open("/proc/loadavg").read().split()[:3], "time": time.strftime("%H:%M:%S")}
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    ref = args.reference or long_.hash
    print(json.dumps(summary(load_log(log), base.hash, ref), indent=1), flush=True)


if __name__ == "__main__":
    main()
