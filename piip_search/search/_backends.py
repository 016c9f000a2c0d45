"""Where evaluations run: one registered function per `--backend`, each given the driver and the run's plan.

Adding a backend is registering a function `(BackendRun) -> list[TrialOutcome]` in `BACKENDS`; it calls
`driver.prepare()` / `driver.evaluate()` where it likes (this process, Ray tasks, Tune trials) and tells the
study through the driver, so every storage, sampler and report works with it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piip_search._registry import Registry
from piip_search.search._driver import SearchDriver
from piip_search.search._records import started_trials

__all__ = ["BACKENDS", "BackendRun"]


@dataclass(frozen=True)
class BackendRun:
    """One run's plan: `n_trials` more, or until the study holds `total`; where its storage and folders are."""

    driver: SearchDriver
    n_trials: int | None
    total: int | None
    storage_url: str
    trials_dir: str | Path
    evaluator_spec: str
    resume: bool = False
    max_concurrent: int | None = None
    progress: bool = True
    after_trial: Callable[..., Any] | None = None

    def more_trials(self) -> int:
        """How many trials this run starts (`--total` counts every worker's trials so far)."""
        if self.total is not None:
            return max(0, self.total - started_trials(self.driver.study))
        return int(self.n_trials or 0)


BACKENDS: Registry[Callable[[BackendRun], list]] = Registry("backend")


@BACKENDS.register("optuna")
def _local(run: BackendRun) -> list:
    """This process asks, evaluates and tells (more processes join with `piip-search worker`)."""
    run.driver.recover_stale_trials()
    return run.driver.run(run.n_trials, total=run.total, progress=run.progress, after_trial=run.after_trial)


@BACKENDS.register("ray")
def _ray(run: BackendRun) -> list:
    """Ray core tasks under our own ask/tell loop (`search/_ray.py`)."""
    from piip_search.search._ray import run_with_ray

    run.driver.recover_stale_trials()
    return run_with_ray(run.driver, run.more_trials(), storage_url=run.storage_url, trials_dir=run.trials_dir,
                        evaluator_spec=run.evaluator_spec, max_concurrent=run.max_concurrent,
                        progress=run.progress)


@BACKENDS.register("ray-tune")
def _ray_tune(run: BackendRun) -> list:
    """A Ray Tune experiment driven by our searcher; Tune restores and retries its own trials
    (`FailureConfig`, `Tuner.restore`), so no stale-trial sweep runs first."""
    from piip_search.search._tune import run_with_tune

    return run_with_tune(run.driver, run.more_trials(), storage_url=run.storage_url, trials_dir=run.trials_dir,
                         resume=run.resume, max_concurrent=run.max_concurrent, evaluator_spec=run.evaluator_spec,
                         progress=run.progress)
