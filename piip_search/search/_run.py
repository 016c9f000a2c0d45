"""`piip-search run` and `piip-search worker` as functions: checks first, then the chosen backend runs the driver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from piip_search.errors import SearchSpaceError
from piip_search.search._backends import BACKENDS, BackendRun
from piip_search.search._driver import SearchDriver
from piip_search.search._evaluators import resolve_evaluator
from piip_search.search._samplers import DEFAULT_SAMPLER
from piip_search.search._storage import default_storage_url, study_dir
from piip_search.search._study import DEFAULT_EVALUATOR, attach_study, enqueue_configs, open_study, study_evaluator
from piip_search.search.space import SearchSpace

#: Builds, for a study and its folder, what to call after each finished trial (the CLI rewrites the report).
TrialHook = Callable[[optuna.Study, Path], Callable[..., Any]]


def check_dataset(space: SearchSpace, evaluator: str) -> None:
    """The proxy's dataset must exist before any trial starts: a missing one would fail every trial."""
    data = dict(space.proxy).get("dataset") or dict(space.proxy).get("data")
    if evaluator != DEFAULT_EVALUATOR or data is None:
        return
    task = space.task
    if task == "detection":
        from piip_search.data import coco_layout

        coco_layout(data)  # DatasetError names the missing folder or file
    elif not Path(data).is_dir():
        from piip_search.errors import DatasetError

        raise DatasetError(f"proxy.dataset {data}: image folder not found")


def _check_counts(n_trials: int | None, total: int | None) -> None:
    for flag, v in (("--trials", n_trials), ("--total", total)):
        if v is not None and not 0 <= v <= 1_000_000:
            raise SearchSpaceError(f"{flag}: must be between 0 and 1000000, got {v}")
    if n_trials is not None and total is not None:
        raise SearchSpaceError("--trials (this many more) and --total (until the study holds this many): "
                               "give one of them")


def run_search(space: SearchSpace, *, name: str | None = None, storage_url: str | None = None,
               trials_dir: str | Path = "trials", n_trials: int | None = None, total: int | None = None,
               sampler: str | None = None, seed: int | None = 0, evaluator: str | None = None,
               enqueue: list[str] | None = None, resume: bool = False, device: str | None = None,
               progress: bool = True, backend: str = "optuna", max_concurrent: int | None = None,
               trial_hook: TrialHook | None = None) -> tuple[optuna.Study, list]:
    """The `piip-search run` entry point as a function."""
    _check_counts(n_trials, total)
    if backend not in BACKENDS:
        raise SearchSpaceError(f"--backend: must be one of {BACKENDS.keys()}, got {backend!r}")
    name = name or space.name
    sampler = sampler or space.sampler or DEFAULT_SAMPLER
    study = open_study(space, name=name, storage_url=storage_url, trials_dir=trials_dir, sampler=sampler,
                       seed=seed, resume=resume, evaluator=evaluator)
    spec = study_evaluator(study, evaluator or space.evaluator)
    fn = resolve_evaluator(spec)
    check_dataset(space, spec)
    if enqueue:
        enqueue_configs(study, space, enqueue)
    sdir = study_dir(trials_dir, name)
    driver = SearchDriver(study, space, study_path=sdir, evaluator=fn, device=device)
    if n_trials is None and total is None:
        n_trials = int(space.trials or 20)
    after = trial_hook(study, sdir) if trial_hook is not None else None
    run = BackendRun(driver, n_trials, total, storage_url or default_storage_url(trials_dir, name), trials_dir,
                     spec, resume=resume, max_concurrent=max_concurrent, progress=progress, after_trial=after)
    return study, BACKENDS.get(backend)(run)


def run_worker(name: str, *, storage_url: str, trials_dir: str | Path = "trials", n_trials: int | None = None,
               total: int | None = None, device: str | None = None, evaluator: str | None = None,
               progress: bool = True, trial_hook: TrialHook | None = None) -> list:
    """`piip-search worker`: one more process on a running study (same space, evaluator, budgets, front)."""
    _check_counts(n_trials, total)
    study, space = attach_study(name, storage_url=storage_url, trials_dir=trials_dir)
    spec = study_evaluator(study, evaluator)
    fn = resolve_evaluator(spec)
    check_dataset(space, spec)
    sdir = study_dir(trials_dir, name)
    driver = SearchDriver(study, space, study_path=sdir, evaluator=fn, device=device)
    if n_trials is None and total is None:
        n_trials = int(space.trials or 20)
    after = trial_hook(study, sdir) if trial_hook is not None else None
    return BACKENDS.get("optuna")(BackendRun(driver, n_trials, total, storage_url, trials_dir, spec,
                                             progress=progress, after_trial=after))
