"""Helpers shared by the multi-worker benchmarks: a benchmark space, a pre-filled study, forked workers."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
from pathlib import Path
from typing import Any

import optuna

ROOT = Path(__file__).resolve().parents[1]
SLEEPING = "tests.search.fake_evaluators:marking"  # sleeps $PIIP_TEST_SLEEP_S, one marker line per evaluation
CTX = mp.get_context("fork")  # workers start in milliseconds; each opens its own storage connection


def bench_space():
    """`search_spaces/default.yaml` without its FLOPs budget, so every trial is evaluated (none is infeasible)."""
    from piip_search.search import SearchSpace

    d = SearchSpace.from_yaml(ROOT / "search_spaces" / "default.yaml").to_dict()
    d.pop("budgets", None)
    return SearchSpace.from_dict(d, source="benchmark space")


def postgres_url() -> str:
    url = os.environ.get("PIIP_SEARCH_PG_URL")
    if url:
        return url
    return subprocess.run([str(ROOT / "scripts" / "start-postgres.sh")], check=True, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]


def _prefill(name: str, storage: str | None, trials_dir: str, sampler: str, n: int, seed: int) -> None:
    from piip_search.search._driver import SearchDriver
    from piip_search.search._storage import study_dir
    from piip_search.search._study import open_study
    from tests.search import fake_evaluators

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = bench_space()
    study = open_study(space, name=name, storage_url=storage, trials_dir=trials_dir, sampler=sampler, seed=seed,
                       resume=False, evaluator=SLEEPING)
    study.sampler = optuna.samplers.RandomSampler(seed=seed)  # the first trials quickly, no sleep
    SearchDriver(study, space, study_path=study_dir(trials_dir, name),
                 evaluator=fake_evaluators.evaluate).run(n, progress=False)


def prefill(name: str, storage: str | None, trials_dir: str, sampler: str, n: int, seed: int = 0) -> None:
    """Create study `name` (sampler `sampler`, evaluator `SLEEPING`) with `n` finished trials, in a child
    process so that this one holds no storage connection when it forks workers."""
    p = CTX.Process(target=_prefill, args=(name, storage, trials_dir, sampler, n, seed))
    p.start()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"pre-filling study {name} failed (exit {p.exitcode})")


def _worker(name: str, storage: str | None, trials_dir: str, n_trials: int | None, total: int | None,
            env: dict[str, str]) -> None:
    import logging

    os.environ.update(env)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("piip_search").setLevel(logging.ERROR)
    from piip_search.search._run import run_worker
    from piip_search.search._storage import default_storage_url

    run_worker(name, storage_url=storage or default_storage_url(trials_dir, name), trials_dir=trials_dir,
               n_trials=n_trials, total=total, progress=False)


def start_worker(name: str, storage: str | None, trials_dir: str, *, n_trials: int | None = None,
                 total: int | None = None, env: dict[str, str] | None = None) -> Any:
    """A `piip-search worker` (the same `run_worker` call) in a forked process."""
    p = CTX.Process(target=_worker, args=(name, storage, trials_dir, n_trials, total, env or {}), daemon=False)
    p.start()
    return p


def _read(name: str, storage: str | None, trials_dir: str, delete: bool) -> list:
    from piip_search.search._storage import load_study, open_storage

    st = open_storage(storage, trials_dir, name, create=False)
    trials = load_study(name, st).get_trials()
    if delete and storage is not None:  # the shared database keeps no benchmark studies
        optuna.delete_study(study_name=name, storage=st)
    return trials


def read_trials(name: str, storage: str | None, trials_dir: str, *, delete: bool = False) -> list:
    """The study's trials, read in a child process (this one keeps no storage connection across forks)."""
    with CTX.Pool(1) as pool:
        return pool.apply(_read, (name, storage, trials_dir, delete))
