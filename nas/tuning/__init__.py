"""Ray Tune and Optuna at the edge: the only package that imports Ray.

- `session`: start or join Ray quietly, fail fast on an unreachable cluster, keep its logs;
- `study`: the run's Optuna study (public ask/tell API), samplers, budget constraint, resume bookkeeping;
- `searcher`: Ray Tune `Searcher`s: `BudgetedSearcher` (Optuna proposes, analytic MAdds screen every proposal
  before anything is built) and `JobQueue` (fixed jobs);
- `schedulers`: ASHA per MAdds band (off by default);
- `trainables`: Ray's trainables, each the Ray-free job function (`nas.train.job.train_job`,
  `nas.supernet.train.train_supernet`) with `ray.tune.report` as its report;
- `scoring`: one-shot scoring on a pool of Ray actors that hold the supernet (no Tune trial per architecture);
- `tuner`: the `tune.Tuner` drivers of a search, of fixed jobs and of the supernet training.

Nothing here reads private Ray or Optuna state; the run's rows are written by the caller's hooks.
"""

from nas.tuning.schedulers import MAddsBandedASHA
from nas.tuning.scoring import score_with_pool
from nas.tuning.searcher import BudgetedSearcher, JobQueue, Proposal, SearchHooks
from nas.tuning.session import check_reachable, init_ray, shutdown_ray
from nas.tuning.study import SAMPLERS, default_sampler, make_sampler, prepare_study
from nas.tuning.trainables import supernet_trainable, trainable
from nas.tuning.tuner import TuneSpec, run_jobs, run_supernet_training, run_tune

__all__ = ["BudgetedSearcher", "JobQueue", "MAddsBandedASHA", "Proposal", "SearchHooks", "TuneSpec", "init_ray",
           "shutdown_ray", "check_reachable", "run_tune", "run_jobs", "run_supernet_training", "prepare_study",
           "make_sampler", "default_sampler", "SAMPLERS", "trainable", "supernet_trainable", "score_with_pool"]
