"""Count the parameters and multiply-adds of a variant or an architecture config YAML.

MAdds are counted with fvcore (one multiply-add counted once, fused attention included) at the
architecture's target resolution, with a per-stage breakdown next to the analytic count from the config
alone. Ops fvcore could not count are listed.

examples:
  nas flops mobilevit_xxs
  nas flops results/my-run/variants/t0007.yaml --format json
  nas flops mobile_former_294m --resolution 256
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", metavar="VARIANT|CONFIG.yaml", help="a variant name (see `nas variants`) or an ArchConfig YAML")
    p.add_argument("--resolution", type=int, help="count at this input size instead of the target resolution")
    p.add_argument("--num-classes", type=int, help="classifier classes (default: the config's, 1000 for variants)")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    from nas.builder import build_model
    from nas.madds import madds_breakdown
    from nas.profile import fvcore_profile
    from nas.variants import resolve_arch

    cfg = resolve_arch(args.arch)
    if args.num_classes:
        cfg = cfg.replace(num_classes=args.num_classes)
    res = args.resolution or cfg.resolution
    prof = fvcore_profile(build_model(cfg), res, in_chans=cfg.in_chans)
    analytic = madds_breakdown(cfg, res)
    if args.format == "json":
        print(json.dumps({
            "name": cfg.name, "arch_id": cfg.arch_id, "resolution": res, "params": prof.params,
            "madds_m": prof.madds / 1e6, "analytic_madds_m": sum(analytic.values()) / 1e6,
            "stages": {k: {"madds_m": v / 1e6, "analytic_madds_m": analytic.get(k, 0) / 1e6,
                           "params": prof.params_by_stage.get(k, 0)} for k, v in prof.by_stage.items()},
            "uncounted_ops": dict(prof.uncounted),
        }, indent=2))
        return 0
    print(f"{cfg.name}  (arch {cfg.arch_id}, {res}x{res}, {cfg.num_classes} classes)")
    print(f"{'part':<14}{'params':>12}{'MAdds(M)':>12}{'analytic':>12}")
    for k, v in prof.by_stage.items():
        print(f"{k:<14}{prof.params_by_stage.get(k, 0):>12,}{v / 1e6:>12.2f}{analytic.get(k, 0) / 1e6:>12.2f}")
    if "tokens" in prof.params_by_stage:
        print(f"{'tokens':<14}{prof.params_by_stage['tokens']:>12,}{0:>12.2f}{0:>12.2f}")
    print(f"{'total':<14}{prof.params:>12,}{prof.madds / 1e6:>12.2f}{sum(analytic.values()) / 1e6:>12.2f}")
    if prof.uncounted:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(prof.uncounted.items()))
        print(f"not counted by fvcore (no multiply-adds of their own): {ops}")
    return 0
