"""A recorded result is the truth: truncated runs are never points, retries are bounded, resumes continue,
one study has one evaluator, storage outages are waited out and kept results are told later."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy.exc

from piip_search.errors import StudyError
from piip_search.search import _records as R
from piip_search.search._driver import SearchDriver
from piip_search.search._lifecycle import fail_and_requeue, recover_stale_trials
from piip_search.search._optuna_internals import constraints_of
from piip_search.search._pending import PENDING, replay_pending
from piip_search.search._records import fidelity_shortfall, started_trials
from piip_search.search._results import pareto_front, records, status_summary
from piip_search.search._run import run_search, run_worker
from piip_search.search._storage import open_storage
from piip_search.search._storage_retry import RetryingStorage, StorageUnavailableError
from piip_search.search._study import attach_study
from tests.search import fake_evaluators
from tests.search.test_driver import space_of

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_fidelity_shortfall_is_iterations_not_time():
    assert fidelity_shortfall({"iters": 240, "stop_reason": "iters"}, 240) == 0.0
    assert fidelity_shortfall({"iters": 24, "stop_reason": "time_budget"}, 240) == pytest.approx(0.9)
    assert fidelity_shortfall({"iters": 100}, 240) == pytest.approx(1 - 100 / 240)
    assert fidelity_shortfall({"stop_reason": "time_budget"}, None) == 1.0
    assert fidelity_shortfall({"ap": 0.5}, 240) == 0.0  # an evaluator that does not count iterations


def test_truncated_trials_are_recorded_apart_and_never_on_a_front(tmp_path):
    space = space_of(proxy={"iters": 100})
    study, outs = run_search(space, name="tr", trials_dir=tmp_path, n_trials=5, seed=0, progress=False,
                             evaluator="tests.search.fake_evaluators:truncating")
    assert {o.status for o in outs} <= {R.TRUNCATED, R.INFEASIBLE} and R.TRUNCATED in {o.status for o in outs}
    for t in study.get_trials():
        if t.user_attrs["status"] == R.TRUNCATED:
            assert t.state == optuna.trial.TrialState.COMPLETE  # samplers still learn from it
            assert constraints_of(t)[R.FULL_FIDELITY] == pytest.approx(0.9)
            assert "cut short" in t.user_attrs["message"]
    assert pareto_front(study).points == []
    assert study.best_trials == []  # Optuna's own front (and the dashboard's) honour the constraint
    info = status_summary(study)
    assert info["front_size"] == 0 and info["not_on_front"][R.TRUNCATED] >= 1
    log = (tmp_path / "tr" / "search.log").read_text()
    assert "trial 0: truncated" in log or "trial 0: infeasible" in log
    assert "cut short of its fidelity" in log


def test_every_trial_carries_the_same_constraint_keys(tmp_path):
    space = space_of(budgets={"max_gflops": 0.05})
    study, _ = run_search(space, name="ck", trials_dir=tmp_path, n_trials=6, seed=0, progress=False,
                          evaluator="tests.search.fake_evaluators:full_iters")
    keys = {tuple(sorted(constraints_of(t))) for t in study.get_trials()}
    assert keys == {("full_fidelity", "max_gflops")}


def _running_trial(study: optuna.Study, worker: str, params: dict | None = None) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    if params:
        for name, value in params.items():
            study._storage.set_trial_param(trial._trial_id, name, float(value),
                                           optuna.distributions.IntDistribution(0, 10))
    study._storage.set_trial_user_attr(trial._trial_id, R.WORKER, worker)
    return study._storage.get_trial(trial._trial_id)


def test_a_dead_workers_trial_is_requeued_until_retries_run_out(tmp_path):
    study = optuna.create_study(storage=open_storage(None, tmp_path, "rq", create=True), study_name="rq")
    t = _running_trial(study, "somehost:1", {"x": 3})
    assert fail_and_requeue(study, t, "worker died", status=R.WORKER_DIED, max_retries=1)
    copy = study.ask()  # the queued copy, attempt 2
    assert copy.suggest_int("x", 0, 10) == 3 and copy.params == {"x": 3}
    assert copy.user_attrs[R.ATTEMPT] == 2
    frozen = study._storage.get_trial(copy._trial_id)
    assert fail_and_requeue(study, frozen, "worker died again", status=R.WORKER_DIED, max_retries=1)
    last = study.get_trials()[-1]
    assert last.state == optuna.trial.TrialState.FAIL and last.user_attrs[R.STATUS] == R.RETRIES_EXHAUSTED
    assert "worker died" in last.user_attrs[R.MESSAGE] and "worker died again" in last.user_attrs[R.MESSAGE]
    assert not [x for x in study.get_trials() if x.state == optuna.trial.TrialState.WAITING]  # not re-queued


def test_only_one_sweeper_requeues_a_stale_trial(tmp_path):
    storage = open_storage(None, tmp_path, "race", create=True)
    study = optuna.create_study(storage=storage, study_name="race")
    t = _running_trial(study, "otherhost:1", {"x": 1})
    assert fail_and_requeue(study, t, "silent", status=R.WORKER_DIED, max_retries=2)
    # a second sweeper that saw the trial RUNNING a moment ago: the storage refuses it, nothing is queued twice
    assert not fail_and_requeue(study, t, "silent", status=R.WORKER_DIED, max_retries=2)
    assert len([x for x in study.get_trials() if x.state == optuna.trial.TrialState.WAITING]) == 1


def test_silent_trials_of_other_hosts_are_recovered(tmp_path, monkeypatch):
    from piip_search.search import _storage

    study = optuna.create_study(storage=open_storage(None, tmp_path, "hb", create=True), study_name="hb")
    t = _running_trial(study, "far-away-host:12345", {"x": 2})
    study._storage.set_trial_user_attr(t._trial_id, R.HEARTBEAT, 1.0)  # last beat long ago
    fresh = _running_trial(study, "far-away-host:777", {"x": 5})
    import time

    study._storage.set_trial_user_attr(fresh._trial_id, R.HEARTBEAT, time.time())
    monkeypatch.setattr(_storage, "GRACE_S", 60.0)
    assert recover_stale_trials(study, max_retries=2) == [t.number]
    assert "silent" in study.get_trials()[t.number].user_attrs[R.MESSAGE]


def test_resume_never_replays_the_seed_sequence(tmp_path):
    space = space_of(branches={"count": [2, 3], "models": {"embed_dim": [32, 64, 96, 128], "depth": [2, 3],
                                                           "head_dim": 32},
                               "resolutions": {"low": 64, "high": 256, "step": 32}})
    study, _ = run_search(space, name="rs", trials_dir=tmp_path, n_trials=4, seed=7, progress=False)
    first = [t.params for t in study.get_trials()]
    study, _ = run_search(space, name="rs", trials_dir=tmp_path, n_trials=4, seed=7, resume=True, progress=False)
    resumed = [t.params for t in study.get_trials()[4:]]
    assert resumed != first
    assert all(r != f for r, f in zip(resumed, first, strict=True))


def test_the_evaluator_is_stored_with_the_study(tmp_path):
    space = space_of()
    study, _ = run_search(space, name="ev", trials_dir=tmp_path, n_trials=1, seed=0, progress=False,
                          evaluator="tests.search.fake_evaluators:with_pid")
    assert study.user_attrs[R.STUDY_EVALUATOR] == "tests.search.fake_evaluators:with_pid"
    storage = str(tmp_path / "ev" / "journal.log")
    run_worker("ev", storage_url=storage, trials_dir=tmp_path, n_trials=2, progress=False)  # no --evaluator
    study, _ = attach_study("ev", storage_url=storage, trials_dir=tmp_path)
    assert all("pid" in r.metrics for r in records(study) if r.status == "ok" and "duplicate_of" not in r.metrics)
    with pytest.raises(StudyError, match="mix results of two evaluators"):
        run_worker("ev", storage_url=storage, trials_dir=tmp_path, n_trials=1, progress=False,
                   evaluator="tests.search.fake_evaluators:evaluate")
    with pytest.raises(StudyError, match="mix results"):
        run_search(space, name="ev", trials_dir=tmp_path, n_trials=1, resume=True, progress=False,
                   evaluator="builtin:flops-only")


def test_total_is_a_study_wide_target(tmp_path):
    space = space_of()
    study, _ = run_search(space, name="tot", trials_dir=tmp_path, n_trials=2, seed=0, progress=False)
    study, outs = run_search(space, name="tot", trials_dir=tmp_path, total=5, resume=True, progress=False)
    assert len(outs) == 3 and started_trials(study) == 5
    study, outs = run_search(space, name="tot", trials_dir=tmp_path, total=4, resume=True, progress=False)
    assert outs == []


class _Flaky(RetryingStorage):
    """Raises a connection error for the first `failures` calls of `method`."""


def _operational_error() -> Exception:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("server closed the connection"))


def test_transient_storage_errors_are_retried_within_the_limit():
    inner = optuna.storages.InMemoryStorage()
    calls = {"n": 0}
    real = inner.get_all_studies

    def flaky():
        calls["n"] += 1
        if calls["n"] <= 3:
            raise optuna.exceptions.StorageInternalError("invalid data in the commit") from _operational_error()
        return real()

    inner.get_all_studies = flaky  # type: ignore[method-assign]
    slept: list[float] = []
    storage = RetryingStorage(inner, outage_limit_s=60, sleep=slept.append)
    assert storage.get_all_studies() == []
    assert calls["n"] == 4 and len(slept) == 3 and storage.outages == 1


def test_a_long_outage_stops_with_a_clear_message_and_logic_errors_are_not_retried():
    inner = optuna.storages.InMemoryStorage()

    def down(*a, **k):
        raise _operational_error()

    inner.get_all_studies = down  # type: ignore[method-assign]
    storage = RetryingStorage(inner, outage_limit_s=0.3, sleep=lambda s: None, describe="database X")
    with pytest.raises(StorageUnavailableError, match="database X unreachable"):
        storage.get_all_studies()
    with pytest.raises(KeyError):  # not a connection problem: raised at once
        RetryingStorage(optuna.storages.InMemoryStorage()).get_study_id_from_name("nope")


def test_a_result_the_storage_could_not_take_is_kept_and_told_at_the_next_start(tmp_path, monkeypatch):
    space = space_of()
    storage = open_storage(None, tmp_path, "pend", create=True)
    study = optuna.create_study(storage=storage, study_name="pend", directions=["minimize", "maximize"])
    driver = SearchDriver(study, space, study_path=tmp_path / "pend", evaluator=fake_evaluators.evaluate)
    prep = driver.prepare()
    real_tell = study.tell

    def broken_tell(*a, **k):
        raise StorageUnavailableError("database unreachable for 120 s")

    monkeypatch.setattr(study, "tell", broken_tell)
    with pytest.raises(StorageUnavailableError):
        driver.evaluate(prep)
    assert (prep.tdir / PENDING).exists()
    monkeypatch.setattr(study, "tell", real_tell)
    assert replay_pending(study, tmp_path / "pend") == [prep.trial.number]
    t = study.get_trials()[prep.trial.number]
    assert t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs["status"] == "ok"
    assert t.values[1] == pytest.approx(fake_evaluators.known_ap(prep.cfg))
    assert not (prep.tdir / PENDING).exists()


def test_interactions_label_names_what_the_network_has() -> None:
    from piip_search.search._results import interactions_label

    two = [{"embed_dim": 32, "resolution": 64}, {"embed_dim": 32, "resolution": 128}]
    units = {"count": 2, "direction": "bidirectional", "attention": "deformable"}
    assert interactions_label({"branches": two, "interactions": units}) == "2 bidirectional deformable"
    assert interactions_label({"branches": two, "interactions": {**units, "direction": "none"}}) == "none"
    assert interactions_label({"branches": two[:1], "interactions": units}) == "none"
    assert interactions_label(None) == ""
