"""Many workers on one database: two `worker` processes and a `run` sharing a PostgreSQL storage.

The server comes from scripts/start-postgres.sh (run by `make test`; the fixture runs it too when
PIIP_SEARCH_PG_URL is not set), so this test needs no manual setup.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import optuna
import pytest

from piip_search.search._driver import attach_study
from tests.search.test_workers import ROOT, _cli, _space_file


@pytest.fixture(scope="module")
def pg_url():
    url = os.environ.get("PIIP_SEARCH_PG_URL")
    if not url:
        res = subprocess.run([str(ROOT / "scripts" / "start-postgres.sh")], capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, f"could not start PostgreSQL: {res.stderr}"
        url = res.stdout.strip().splitlines()[-1]
    return url


def test_workers_on_postgres(tmp_path, pg_url):
    study_name = f"pg-{uuid.uuid4().hex[:8]}"
    space = _space_file(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(_cli("run", "--space", str(space), "--study", study_name, "--storage", pg_url,
                                "--trials", "2", "--trials-dir", str(tmp_path),
                                "--evaluator", "tests.search.fake_evaluators:slow"),
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    procs = [subprocess.Popen(_cli("worker", "--storage", pg_url, "--study", study_name, "--trials", "3",
                                   "--trials-dir", str(tmp_path)), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        study, space_back = attach_study(study_name, storage_url=pg_url, trials_dir=tmp_path)
        trials = study.get_trials()
        assert len(trials) == 8 and all(t.state.is_finished() for t in trials)
        assert len({t.user_attrs["worker"] for t in trials}) == 3
        assert space_back.name == "t"
    finally:
        optuna.delete_study(study_name=study_name, storage=pg_url)
