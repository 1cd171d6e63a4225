"""List the 23 published variants of the unified space (Mobile-Former, MobileViT v1/v2/v3).

For each: family, name, target resolution, parameters (ours, built from the config, against the
authors'), MAdds (ours against the published figure and the difference in %), published ImageNet top-1,
and a note where our MAdds differ from the published figure and why.

MAdds: one multiply-add counted once, at the variant's resolution. By default they come from the analytic
count (tested to agree with fvcore within 0.5%); --fvcore recounts every network with fvcore.

examples:
  nas variants
  nas variants --format csv > variants.csv
  nas variants --format json --family MobileViT-v2
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)")
    p.add_argument("--family", help="only this family (Mobile-Former, MobileViT-v1, MobileViT-v2, MobileViT-v3)")
    p.add_argument("--fvcore", action="store_true", help="count MAdds with fvcore instead of the analytic count (slower)")


def run(args: argparse.Namespace) -> int:
    from nas.errors import ConfigError
    from nas.variants import FAMILIES, list_variants, published, variant_rows

    names = list_variants()
    if args.family:
        if args.family not in FAMILIES:
            raise ConfigError(f"unknown family {args.family!r}", f"one of: {', '.join(FAMILIES)}")
        names = [n for n in names if published(n)["family"] == args.family]
    rows = variant_rows(fvcore=args.fvcore, names=names)
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    else:
        print(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
    head = ["family", "name", "res", "params", "published", "MAdds(M)", "published", "diff%", "top1", "note"]
    body, notes = [], []
    for r in rows:
        exact = "=" if r["params"] == r["params_exact"] else "!"
        mark = ""
        if r["note"]:
            notes.append(f"[{len(notes) + 1}] {r['name']}: {r['note']}")
            mark = f"[{len(notes)}]"
        body.append([r["family"], r["name"], str(r["resolution"]), f"{r['params']:,}{exact}",
                     f"{r['published_params_m']:.1f}M", f"{r['madds_m']:.1f}", f"{r['published_madds_m']:g}",
                     f"{r['madds_diff_pct']:+.1f}", f"{r['published_top1']:g}", mark])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    for b in body:
        lines.append("  ".join(c.rjust(w) if 2 <= i < len(b) - 1 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(b, widths))).rstrip())
    lines.append("")
    lines.append("params: '=' exactly the authors' parameter count (1000-class head), '!' it differs. "
                 "MAdds: one multiply-add counted once, at the variant's resolution.")
    if notes:
        lines.append("Where our MAdds differ from the published figure, and why:")
        lines += [textwrap.fill(n, width=110, subsequent_indent="    ") for n in notes]
    return "\n".join(lines)
