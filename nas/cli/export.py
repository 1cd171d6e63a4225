"""Write one trial's architecture as a config YAML and an ONNX file.

TRIAL is a trial id of the run (t0007) or a baseline name. The YAML is an ArchConfig that `nas train` and
`nas flops` accept. The ONNX graph takes "image" [batch, C, R, R] (any batch) at the architecture's target
resolution and gives "logits" [batch, classes]; its weights are a fresh initialization: the architecture,
not a trained model. A trial that was never trained (refused by the budget screen, failed) is refused
unless --untrained is given.

examples:
  nas export results/budget300M-20250101-120000 t0007
  nas export results/mf300 mobile_former_294m --out exported/ --no-onnx
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a run folder written by `nas search` (results/<name>)")
    p.add_argument("trial", metavar="TRIAL", help="trial id (e.g. t0007) or baseline name")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN/export/)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", help="write the YAML only")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18, the exporter's own)")
    p.add_argument("--untrained", action="store_true",
                   help="export a trial that was never trained (over budget, failed) anyway")


def run(args: argparse.Namespace) -> int:
    from nas.export import export_trial

    paths = export_trial(args.run_dir, args.trial, out=args.out, onnx=args.onnx, opset=args.opset,
                         untrained=args.untrained)
    for kind, path in paths.items():
        print(f"{kind:<5} {path}")
    return 0
