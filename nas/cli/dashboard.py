"""Write the HTML dashboard of a search run: val top-1 against MAdds with the Pareto front, the budget
and the published variants trained under the same proxy; the published variants' ImageNet numbers;
knob importance; parallel coordinates; learning curves; the table of discovered Pareto variants.

The page is one self-contained HTML file (plotly.js embedded): it opens offline, and can be mailed.

examples:
  nas dashboard results/mf300                      # -> dashboards/mf300.html
  nas dashboard results/mf300 -o /tmp/mf300.html --png figs/
  nas dashboard --compare results/mf300 results/vit300 -o dashboards/300m.html
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", metavar="RUN", help="run folder written by `nas search` (results/<name>)")
    p.add_argument("-o", "--out", metavar="HTML",
                   help="output file (default: dashboards/<name>.html, or dashboards/compare-<A>-<B>.html)")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="overlay the Pareto fronts of these runs in one page")
    p.add_argument("--png", metavar="DIR", help="also write PNGs of the main figures here (needs Chrome/Chromium)")
    p.add_argument("--refresh", type=int, metavar="SECONDS",
                   help="make the page reload itself every SECONDS (to follow a live search)")


def run(args: argparse.Namespace) -> int:
    from nas import results, viz
    from nas.errors import RunError

    if args.refresh is not None and args.refresh < 1:
        raise RunError(f"--refresh {args.refresh} must be at least 1 second", "e.g. --refresh 30")
    if args.compare:
        runs = [results.load_run(d) for d in ([args.run_dir] if args.run_dir else []) + list(args.compare)]
        path = viz.write_compare(runs, args.out)
        print(f"wrote {path} ({len(runs)} runs)")
        if args.png:
            pngs = viz.write_pngs({"compare": viz.plot_compare(viz.compute_compare(runs))}, args.png)
            print("wrote " + ", ".join(map(str, pngs)))
        return 0
    if not args.run_dir:
        raise RunError("no run folder given", "nas dashboard results/<name>  (or --compare RUN_A RUN_B)")
    run_ = results.load_run(args.run_dir)
    path = viz.write_dashboard(run_, args.out or viz.export_output(run_.name), refresh_s=args.refresh)
    print(f"wrote {path} ({len(run_.trials)} trials, {int((run_.pareto['kind'] == 'searched').sum())} Pareto variants)")
    if args.png:
        pngs = viz.write_pngs(viz.build_figures(run_), args.png)
        print("wrote " + ", ".join(map(str, pngs)))
    return 0
