"""Train a weight-sharing supernet, or extract a stand-alone subnet from one.

`nas supernet train` trains one supernet per macro of the search space (shared tensors that every
architecture of the macro slices; categorical choices get their own branch) with the sandwich rule: each
step trains the largest and smallest networks of the MAdds band and --random more, the others distilled
in place from the largest. It runs as one Ray Tune trial (a GPU when Ray sees one), checkpoints into
results/<name>/ every --checkpoint-every seconds, and `--resume` continues a killed run from there.
The default (400 steps) takes about 10 minutes on 2 CPU cores.

`nas supernet extract` writes a subnet as a stand-alone network: its YAML, its inherited weights (a
state_dict `nas train --init` reads) and, unless --no-onnx, an ONNX graph with those weights.

examples:
  nas supernet train                                   # hybrid.yaml, 300M band, both macros
  nas supernet train --budget 300M --macro mobilevit --steps 2000 --name vit-300
  nas supernet train --resume results/vit-300
  nas search --budget 300M --strategy oneshot --supernet results/vit-300
  nas supernet extract results/vit-300 mobile_former_151m --out mf151/
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="supernet_command", metavar="{train,extract}")
    t = sub.add_parser("train", help="train a supernet (sandwich rule, in-place distillation) in results/<name>/",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--space", metavar="PATH", help="search-space YAML (default search_spaces/hybrid.yaml)")
    t.add_argument("--budget", help="MAdds budget of the band it trains (default 300M)")
    t.add_argument("--min-budget", type=float, metavar="F", help="lower edge of the band, a fraction of the budget "
                   "(default 0.5)")
    t.add_argument("--macro", action="append", dest="macros", metavar="NAME",
                   help="train this macro only (repeatable; default every macro of the space)")
    t.add_argument("--steps", type=int, help="sandwich steps (default 400: about 10 min on 2 CPU cores; on a GPU "
                   "use 10000 or more)")
    t.add_argument("--data", metavar="NAME|PATH", help="dataset name or directory (default fashion-mnist)")
    t.add_argument("--protocol", metavar="PATH|NAME", help="data/optimizer protocol (default: the shipped "
                   "nas/proxy_supernet.yaml)")
    t.add_argument("--name", help="run folder name under results/ (default supernet-<budget>-<timestamp>)")
    t.add_argument("--seed", type=int, help="seed of the initial weights, batches and subnets (default 0)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    t.add_argument("--checkpoint-every", type=float, dest="checkpoint_every_s", metavar="SECONDS",
                   help="seconds between checkpoints (default 120)")
    t.add_argument("--address", metavar="HOST:PORT|auto", help="run on an existing Ray cluster")
    t.add_argument("--results", default="results", metavar="DIR", help="where run folders go (default results/)")
    t.set_defaults(_sub=_train)
    e = sub.add_parser("extract", help="write a subnet with its inherited weights (YAML, weights, ONNX)")
    e.add_argument("supernet", metavar="SUPERNET", help="a supernet run folder (or its weights.pt)")
    e.add_argument("arch", metavar="VARIANT|CONFIG.yaml", help="a published variant or an ArchConfig YAML "
                   "(e.g. from `nas export`)")
    e.add_argument("--out", metavar="DIR", help="output folder (default <SUPERNET>/extract)")
    e.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the ONNX graph")
    e.set_defaults(_sub=_extract)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "_sub", None):
        print("usage: nas supernet {train,extract} ... (nas supernet train --help)", file=sys.stderr)
        return 2
    return args._sub(args)


def _fmt_s(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 60}m{s % 60:02d}s"


def progress_line(r: dict) -> str:
    return (f"supernet step {r['step']}/{r['steps']}  loss largest {r['loss_largest']:.3f}  smallest "
            f"{r['loss_smallest']:.3f}  {r['steps_per_s']:.2f} steps/s  ETA {_fmt_s(r['eta_s'])}")


def _train(args: argparse.Namespace) -> int:
    from nas.supernet.run import SupernetOptions, plan_supernet, train_run

    o = SupernetOptions(budget=args.budget, min_budget=args.min_budget, space=args.space, macros=args.macros,
                        steps=args.steps, data=args.data, protocol=args.protocol, name=args.name, seed=args.seed,
                        resume=args.resume, results_root=args.results, address=args.address,
                        checkpoint_every_s=args.checkpoint_every_s)
    s, d, resumed = plan_supernet(o)
    print(f"supernet {'resumed' if resumed else 'run'}: {d}  ({', '.join(s.macros)}; band "
          f"{s.min_budget:g}-1 x {s.budget / 1e6:g}M MAdds; {s.steps} steps of {2 + s.n_random} subnets)", flush=True)
    tty = sys.stdout.isatty()
    t0 = time.time()
    last_print = [0.0]

    def on_progress(r: dict) -> None:
        if tty:
            print("\r" + progress_line(r), end="", flush=True)
        elif time.time() - last_print[0] > 30 or r["step"] == r["steps"]:
            print(progress_line(r), flush=True)
            last_print[0] = time.time()

    try:
        train_run(s, d, address=args.address, on_progress=on_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with `nas supernet train --resume {d}`", file=sys.stderr)
        return 130
    if tty:
        print()
    print(f"supernet trained in {_fmt_s(time.time() - t0)}: {d}/weights.pt")
    print(f"next: nas search --budget {s.budget / 1e6:g}M --strategy oneshot --supernet {d}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    import torch

    from nas.supernet.score import load_supernet
    from nas.supernet.shared import extract
    from nas.variants import resolve_arch

    net, settings = load_supernet(args.supernet)
    arch = resolve_arch(args.arch)
    model = extract(net, arch)
    out = Path(args.out) if args.out else Path(args.supernet if Path(args.supernet).is_dir()
                                                else Path(args.supernet).parent) / "extract"
    out.mkdir(parents=True, exist_ok=True)
    arch.to_yaml(out / f"{arch.name}.yaml")
    torch.save(model.state_dict(), out / f"{arch.name}.pt")
    print(f"{out / f'{arch.name}.yaml'}\n{out / f'{arch.name}.pt'}  (inherited weights: nas train "
          f"{out / f'{arch.name}.yaml'} --init {out / f'{arch.name}.pt'})")
    if args.onnx:
        from nas.export import export_onnx

        print(export_onnx(arch, out / f"{arch.name}.onnx", model=model, input_size=net.input_size,
                          num_classes=net.num_classes, in_chans=net.in_chans))
    return 0
