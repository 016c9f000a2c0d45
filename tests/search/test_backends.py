"""The backend registry: every registered backend is offered by the CLI, and adding one is registering it."""

from __future__ import annotations

import pytest

from piip_search.cli import build_parser
from piip_search.errors import SearchSpaceError
from piip_search.search._backends import BACKENDS, BackendRun
from piip_search.search._driver import Prepared
from piip_search.search._run import run_search
from tests.search.test_driver import space_of


def test_the_cli_offers_every_registered_backend():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    (backend,) = [a for a in run._actions if a.dest == "backend"]
    assert sorted(backend.choices) == BACKENDS.keys() and {"optuna", "ray", "ray-tune"} <= set(backend.choices)


def test_a_registered_backend_runs_the_driver(tmp_path):
    seen: list[BackendRun] = []

    def inline(run: BackendRun) -> list:
        seen.append(run)
        prepared = [run.driver.prepare() for _ in range(run.more_trials())]
        return [run.driver.evaluate(p) if isinstance(p, Prepared) else p for p in prepared]

    BACKENDS.register("test-inline")(inline)
    try:
        study, outs = run_search(space_of(), name="b", trials_dir=tmp_path, n_trials=3, seed=0,
                                 backend="test-inline", evaluator="tests.search.fake_evaluators:with_pid",
                                 progress=False)
    finally:
        del BACKENDS._items["test-inline"]
    assert len(seen) == 1 and seen[0].more_trials() == 3 and seen[0].storage_url.endswith("journal.log")
    assert len(outs) == 3 and len(study.trials) == 3
    assert all(t.state.is_finished() for t in study.trials)


def test_an_unknown_backend_is_a_clear_error(tmp_path):
    with pytest.raises(SearchSpaceError, match=r"--backend: must be one of \['optuna', 'ray', 'ray-tune'"):
        run_search(space_of(), name="x", trials_dir=tmp_path, n_trials=1, backend="dask", progress=False)
