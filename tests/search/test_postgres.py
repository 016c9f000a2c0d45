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

from piip_search.search._study import attach_study
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


def _pg_cluster(action: str) -> None:
    ver, name = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True,
                               check=True).stdout.split()[:2]
    cmd = ["pg_ctlcluster", ver, name, action] + (["-m", "immediate"] if action == "stop" else [])
    if os.getuid() != 0:
        cmd = ["sudo", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def test_a_database_outage_is_survived_by_every_worker(tmp_path, pg_url):
    """PostgreSQL goes down for a few seconds under three workers: they wait, go on, and the run completes
    with every trial recorded once and every config evaluated once."""
    import time

    study_name = f"pgout-{uuid.uuid4().hex[:8]}"
    space = _space_file(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIIP_TEST_SLEEP_S": "1.0"}
    common = ["--study", study_name, "--storage", pg_url, "--trials-dir", str(tmp_path)]
    init = subprocess.run(_cli("run", "--space", str(space), *common, "--trials", "0",
                               "--evaluator", "tests.search.fake_evaluators:marking"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    procs = [subprocess.Popen(_cli("worker", *common, "--trials", "4"), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        marks = tmp_path / study_name / "evaluations.txt"
        deadline = time.time() + 120
        while not (marks.exists() and len(marks.read_text().splitlines()) >= 2):
            assert time.time() < deadline, "the workers never got going"
            time.sleep(0.2)
        _pg_cluster("stop")
        time.sleep(3)
        _pg_cluster("start")
        errs = []
        for p in procs:
            _, err = p.communicate(timeout=300)
            errs.append(err)
            assert p.returncode == 0, err
        assert any("unreachable" in e for e in errs)  # they did meet the outage, and said so
        study, _ = attach_study(study_name, storage_url=pg_url, trials_dir=tmp_path)
        trials = study.get_trials()
        assert len(trials) == 12 and all(t.state.is_finished() for t in trials)
        assert sorted(t.number for t in trials) == list(range(12))
        evaluated = [line.split()[1] for line in marks.read_text().splitlines()]
        assert len(evaluated) == len(set(evaluated))  # nothing evaluated twice
        assert not list((tmp_path / study_name).glob("trial_*/pending.json"))  # every result was told
        beats = study._storage.get_trial(trials[0]._trial_id).user_attrs.get("heartbeat")
        assert beats is not None  # ask/tell trials record heartbeats
        import sqlalchemy

        ids = [t._trial_id for t in trials]
        with sqlalchemy.create_engine(pg_url).connect() as conn:  # and Optuna's own heartbeat table too
            rows = conn.execute(sqlalchemy.text("select count(*) from trial_heartbeats where trial_id = any(:ids)"),
                                {"ids": ids}).scalar()
        assert rows >= 1
    finally:
        if "online" not in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout:
            _pg_cluster("start")
        optuna.delete_study(study_name=study_name, storage=pg_url)
