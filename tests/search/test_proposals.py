"""The proposal queue (`_proposals.py`) and the batch GP sampler behind it (`_gp_batch.py`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna

from piip_search.search import SearchSpace
from piip_search.search._driver import SearchDriver
from piip_search.search._optuna_internals import BatchGPSampler
from piip_search.search._proposals import PROPOSAL, FileProposerLock, PgProposerLock, proposer_lock_for
from piip_search.search._samplers import make_sampler
from piip_search.search._study import attach_study, open_study
from tests.search import fake_evaluators
from tests.search.test_postgres import pg_url  # noqa: F401 - the PostgreSQL fixture
from tests.search.test_workers import ROOT, _cli

FAKE = "tests.search.fake_evaluators"


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)
    k = trial.suggest_int("k", 1, 8)
    c = trial.suggest_categorical("c", ["a", "b"])
    return x + 0.1 * k, (1 - x) ** 2 + (0.2 if c == "a" else 0.0)


def _gp_study(sampler):
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(_objective, n_trials=13)  # 10 random start-up trials, then GP
    return study


def test_batch_gp_sampler_proposes_what_gp_sampler_proposes():
    plain = _gp_study(optuna.samplers.GPSampler(seed=3, n_startup_trials=10))
    batch = _gp_study(BatchGPSampler(seed=3, n_startup_trials=10))
    assert [t.params for t in plain.trials] == [t.params for t in batch.trials]
    alts = batch.sampler.last_alternatives
    assert alts and len({json.dumps(a, sort_keys=True) for a in alts}) == len(alts)
    last = batch.trials[-1].params
    assert all(a != {k: last[k] for k in a} for a in alts)  # the chosen config is not among the alternatives


def _space_dict() -> dict:
    d = SearchSpace.from_yaml(ROOT / "search_spaces" / "default.yaml").to_dict()
    d.pop("budgets", None)
    return {**d, "sampler": "gp", "evaluator": f"{FAKE}:marking"}


def _prefilled_study(tmp_path: Path, name: str, n: int = 11) -> Path:
    space = SearchSpace.from_dict(_space_dict(), source="test")
    study = open_study(space, name=name, storage_url=None, trials_dir=tmp_path, sampler="gp", seed=0, resume=False)
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    SearchDriver(study, space, study_path=tmp_path / name, evaluator=fake_evaluators.evaluate).run(n, progress=False)
    return tmp_path / name / "journal.log"


def test_workers_share_one_queue_without_duplicates(tmp_path):
    storage = _prefilled_study(tmp_path, "q")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIIP_TEST_SLEEP_S": "1"}
    procs = [subprocess.Popen(_cli("worker", "--storage", str(storage), "--study", "q", "--trials", "3",
                                   "--trials-dir", str(tmp_path)), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study, _ = attach_study("q", storage_url=str(storage), trials_dir=tmp_path)
    trials = study.get_trials()[11:]
    done = [t for t in trials if t.state.is_finished()]
    by_worker: dict[str, int] = {}
    for t in done:
        by_worker[t.user_attrs["worker"]] = by_worker.get(t.user_attrs["worker"], 0) + 1
    assert sorted(by_worker.values()) == [3, 3, 3]  # every worker got work
    queued = [t for t in trials if PROPOSAL in t.user_attrs]
    assert len(queued) >= 6  # most trials came from the queue ...
    assert len({t.user_attrs[PROPOSAL]["batch"] for t in queued}) < len(queued)  # ... several from one fit
    keys = [json.dumps(t.params or t.system_attrs["fixed_params"], sort_keys=True) for t in queued]
    assert len(keys) == len(set(keys))  # no config proposed twice
    assert all(t.state == optuna.trial.TrialState.WAITING for t in trials if t not in done)  # spares stay queued
    numbers = [line.split()[1] for line in (tmp_path / "q" / "evaluations.txt").read_text().splitlines()]
    assert len(numbers) == len(set(numbers)) == 9


def test_one_worker_alone_samples_as_gp_does(tmp_path):
    """Alone on a study, a worker proposes one config per fit: the trials GP would give without the queue."""
    outs = []
    for queue in ("1", "0"):
        d = tmp_path / queue
        _prefilled_study(d, "a")
        env = {**os.environ, "PIIP_SEARCH_PROPOSALS": queue}
        old = dict(os.environ)
        os.environ.update(env)
        try:
            study, space = attach_study("a", storage_url=None, trials_dir=d, seed=5)
            study.sampler = make_sampler("gp", 5)
            drv = SearchDriver(study, space, study_path=d / "a", evaluator=fake_evaluators.evaluate)
            drv.run(2, progress=False)
        finally:
            os.environ.clear()
            os.environ.update(old)
        outs.append([t.params for t in study.get_trials()[11:]])
        if queue == "1":
            assert drv.proposals is not None and drv.proposals.proposed == 2
    assert outs[0] == outs[1]


_HOLD = """
import time
{make}
assert lock.try_acquire()
print("held", flush=True)
time.sleep(600)
"""


def _hold_then_kill(make: str, lock) -> None:
    """A process takes the lock and is SIGKILLed; `lock` cannot be taken while it lives, then can."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD.format(make=make)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "held", proc.stderr.read()
        assert not lock.try_acquire()  # held by a live process
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.time() + 30
        while not lock.try_acquire():  # a dead holder's lock is taken over
            assert time.time() < deadline, "the dead proposer's lock was never released"
            time.sleep(0.2)
        lock.release()
        assert lock.try_acquire()  # released and taken again
        lock.release()
    finally:
        proc.kill()


def test_a_dead_proposers_file_lock_is_taken_over(tmp_path):
    path = str(tmp_path / "journal.log.proposer.lock")
    _hold_then_kill(f"from piip_search.search._proposals import FileProposerLock\nlock = FileProposerLock({path!r})",
                    FileProposerLock(path))


def test_a_dead_proposers_postgres_lock_is_taken_over(tmp_path, pg_url):  # noqa: F811
    name = f"lock-{uuid.uuid4().hex[:8]}"
    study = open_study(SearchSpace.from_dict(_space_dict(), source="test"), name=name, storage_url=pg_url,
                       trials_dir=tmp_path, sampler="gp", seed=0, resume=False)
    try:
        lock = proposer_lock_for(study)
        assert isinstance(lock, PgProposerLock)
        make = (f"import sqlalchemy\nfrom piip_search.search._proposals import PgProposerLock\n"
                f"lock = PgProposerLock(sqlalchemy.create_engine({pg_url!r}), "
                f"{'piip-search proposals ' + str(study._study_id) + ' ' + name!r})")
        _hold_then_kill(make, lock)
    finally:
        optuna.delete_study(study_name=name, storage=study._storage)
