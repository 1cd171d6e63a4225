"""Dashboards of a run: accuracy against MAdds, Pareto fronts against the published variants.

Laid out as Optuna's ``visualization`` package: one module per chart, each a pure ``compute_*`` function
that turns a run (or its trials frame) into plain data, tested on its own, and a ``plot_*`` function that
turns that data into a ``go.Figure``:

- `confirm`: the confirmation stage: the confirmed front (means and 95% intervals over the faded search
  points), the verdicts and dominance claims, the trust meter and the headline the page leads with, all
  read from `nas.verdicts` (no statistic is computed here);
- `accuracy`: val top-1 against MAdds, the Pareto front, the baselines and the budget band;
- `reference`: the published variants' ImageNet numbers beside our MAdds count;
- `importance`: fANOVA knob importance (the only Optuna code here);
- `parallel`: parallel coordinates of the knobs; `curves`: learning curves;
- `compare`: the fronts of several runs; `tables`: the page's summary and tables;
- `page`: the self-contained HTML pages and their writers; `png`: PNG export through Chromium;
- `budget`: the run's budget (a number in run.yaml) as lines; `_style`, `_plotly`: shared look, one
  guarded plotly import.

The search charts draw only the rows of the search stage (a trials frame may carry a `stage` column); the
page leads with the confirmed numbers when a run has confirm rows, and says its numbers are unconfirmed
single short runs when it has none.
"""

from nas.viz.accuracy import (
    COLOR_DIMS,
    compute_front_steps,
    compute_points,
    hover_text,
    plot_accuracy_vs_madds,
)
from nas.viz.budget import BudgetLines, compute_budget_lines
from nas.viz.compare import CompareRun, compute_compare, plot_compare
from nas.viz.confirm import (
    ConfirmedFront,
    ConfirmedHeadline,
    TrustMeter,
    compute_confirm_problems,
    compute_confirmed_front,
    compute_dominance_rows,
    compute_headline,
    compute_trust_meter,
    compute_verdict_rows,
    has_confirm_rows,
    plot_confirmed_front,
)
from nas.viz.curves import compute_curves, plot_curves
from nas.viz.importance import Importance, compute_importance, plot_importance
from nas.viz.page import (
    CONFIRM_FIGURES,
    FIGURES,
    build_figures,
    compare_output,
    default_output,
    export_output,
    render_compare,
    render_dashboard,
    write_compare,
    write_dashboard,
)
from nas.viz.parallel import ParallelDim, compute_parallel, plot_parallel
from nas.viz.png import find_chrome, write_pngs
from nas.viz.reference import compute_reference, plot_reference
from nas.viz.tables import (
    BestTrial,
    RunSummary,
    compute_pareto_table,
    compute_problem_trials,
    compute_summary,
)

__all__ = [
    "COLOR_DIMS", "FIGURES", "BestTrial", "BudgetLines", "CompareRun", "Importance", "ParallelDim", "RunSummary",
    "compute_budget_lines", "compute_front_steps", "compute_points", "compute_summary", "compute_pareto_table",
    "compute_problem_trials", "compute_curves", "compute_reference", "compute_importance", "compute_parallel",
    "compute_compare", "plot_accuracy_vs_madds", "plot_reference", "plot_importance", "plot_parallel",
    "plot_curves", "plot_compare", "build_figures", "render_dashboard", "render_compare", "write_dashboard",
    "write_compare", "write_pngs", "find_chrome", "default_output", "export_output", "compare_output",
    "hover_text", "CONFIRM_FIGURES", "ConfirmedFront", "ConfirmedHeadline", "TrustMeter", "compute_confirmed_front",
    "plot_confirmed_front", "compute_verdict_rows", "compute_dominance_rows", "compute_trust_meter",
    "compute_headline", "compute_confirm_problems", "has_confirm_rows",
]
