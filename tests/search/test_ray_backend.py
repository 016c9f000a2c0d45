"""`--backend ray`: evaluations run as Ray tasks in other processes; budgets, storage and front stay the same."""

from __future__ import annotations

import os

import pytest

from piip_search.search._results import pareto_front
from piip_search.search._run import run_search
from tests.search.test_driver import space_of

pytestmark = pytest.mark.ray


def test_ray_backend_runs_trials_remotely(tmp_path):
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"working_dir": None, "env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        space = space_of(budgets={"max_gflops": 0.02})
        study, outs = run_search(space, name="ray", trials_dir=tmp_path, n_trials=6, seed=0, backend="ray",
                                 evaluator="tests.search.fake_evaluators:with_pid", progress=False)
    finally:
        ray.shutdown()
    assert len(outs) == 6
    evaluated = [study.trials[o.number] for o in outs if o.status == "ok"
                 and "duplicate_of" not in study.trials[o.number].user_attrs]
    assert evaluated
    pids = {t.user_attrs["metrics"]["pid"] for t in evaluated}
    assert os.getpid() not in pids  # the work ran in Ray worker processes
    for o in outs:  # infeasible ones were decided by the driver, never shipped to Ray
        t = study.trials[o.number]
        if o.status == "infeasible":
            assert "pid" not in t.user_attrs["metrics"]
    assert pareto_front(study).points
