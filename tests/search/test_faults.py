"""Faults that really happen, done for real: SIGKILLed workers on this and on "remote" hosts, a poison config,
a torn journal line, SIGTERM mid-trial, simultaneous starts after a crash. Each asserts that nothing recorded is
lost and nothing is evaluated twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import yaml

from piip_search.search import _records as R
from piip_search.search._study import attach_study
from tests.search.test_driver import BASE
from tests.search.test_workers import ROOT, _cli

FAKE = "tests.search.fake_evaluators"


def _space(tmp_path: Path, **over) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump({**BASE, **over}))
    return p


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _evaluations(study_path: Path) -> list[str]:
    f = study_path / "evaluations.txt"
    return f.read_text().split("\n")[:-1] if f.exists() else []


def test_poison_config_is_failed_for_good_after_max_retries(tmp_path):
    space = _space(tmp_path, max_retries=1)
    marker = tmp_path / "poison"
    env = _env(PIIP_TEST_POISON_FILE=str(marker))
    base = ["--space", str(space), "--study", "p", "--trials-dir", str(tmp_path), "--evaluator", f"{FAKE}:poison"]
    first = subprocess.run(_cli("run", *base, "--trials", "1"), cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == -signal.SIGKILL  # the config killed its worker
    for _ in range(2):  # attempt 2 dies too; the start after that gives up on the config
        res = subprocess.run(_cli("run", *base, "--trials", "1", "--resume"), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert Path(str(marker) + ".deaths").read_text() == "xx"  # max_retries=1: two deaths, not forever
    study, _ = attach_study("p", storage_url=None, trials_dir=tmp_path)
    statuses = [t.user_attrs.get(R.STATUS) for t in study.get_trials()]
    assert statuses[:2] == [R.WORKER_DIED, R.RETRIES_EXHAUSTED] and statuses[2] == R.OK
    gave_up = study.get_trials()[1]
    assert gave_up.user_attrs[R.ATTEMPT] == 2 and "trial 0" in gave_up.user_attrs[R.MESSAGE]
    assert not [t for t in study.get_trials() if t.state == optuna.trial.TrialState.WAITING]


def test_worker_killed_on_a_remote_host_is_recovered_by_a_live_worker(tmp_path):
    """Worker A "on another host" is SIGKILLed mid-trial; worker B, busy training, notices A's silence through
    its heartbeat sweep and re-queues the config, which B then evaluates. Each config is evaluated once."""
    space = _space(tmp_path)
    env = _env(PIIP_SEARCH_HEARTBEAT_S="0.5", PIIP_TEST_SLEEP_S="1.5")
    common = ["--study", "r", "--trials-dir", str(tmp_path)]
    init = subprocess.run(_cli("run", "--space", str(space), *common, "--trials", "0", "--evaluator",
                               f"{FAKE}:marking"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    storage = str(tmp_path / "r" / "journal.log")
    a = subprocess.Popen(_cli("worker", "--storage", storage, *common, "--trials", "1"), cwd=ROOT,
                         env={**env, "PIIP_SEARCH_WORKER_HOST": "remote-node-7", "PIIP_TEST_SLEEP_S": "600"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "r" / "trial_00000" / "started", a)
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=30)
    b = subprocess.run(_cli("worker", "--storage", storage, *common, "--trials", "3"), cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert b.returncode == 0, b.stderr
    study, _ = attach_study("r", storage_url=storage, trials_dir=tmp_path)
    t0 = study.get_trials()[0]
    assert t0.state == optuna.trial.TrialState.FAIL and t0.user_attrs[R.STATUS] == R.WORKER_DIED
    assert "remote-node-7" in t0.user_attrs[R.MESSAGE] and "silent" in t0.user_attrs[R.MESSAGE]
    retried = [t for t in study.get_trials() if t.user_attrs.get(R.RETRY_OF) == 0]
    assert len(retried) == 1 and retried[0].params == t0.params and retried[0].user_attrs[R.STATUS] == R.OK
    numbers = [line.split()[1] for line in _evaluations(tmp_path / "r")]
    # B's three trials, the retried one among them, each evaluated once; a random draw that repeats a config
    # already done is copied from it (`duplicate_of`), not evaluated
    trained = {str(t.number) for t in study.get_trials()[1:] if R.DUPLICATE_OF not in t.user_attrs}
    assert len(study.get_trials()) == 4 and str(retried[0].number) in trained
    assert len(numbers) == len(set(numbers)) and set(numbers) == trained


def test_simultaneous_starts_after_a_crash_recover_each_trial_once(tmp_path):
    space = _space(tmp_path)
    env = _env(PIIP_TEST_SLEEP_S="0.2")
    common = ["--study", "c", "--trials-dir", str(tmp_path)]
    init = subprocess.run(_cli("run", "--space", str(space), *common, "--trials", "0", "--evaluator",
                               f"{FAKE}:marking"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    storage = str(tmp_path / "c" / "journal.log")
    # a crashed multi-trial host: three RUNNING trials of a process that is gone
    study, space_obj = attach_study("c", storage_url=storage, trials_dir=tmp_path)
    from piip_search.search._lifecycle import worker_id

    host = worker_id().rpartition(":")[0]
    from piip_search.search._driver import Prepared, SearchDriver

    driver = SearchDriver(study, space_obj, study_path=tmp_path / "c", evaluator=lambda cfg, ctx: {})
    preps = [driver.prepare() for _ in range(3)]  # sampled and counted, then the process "dies"
    for prep in preps:
        assert isinstance(prep, Prepared)
        study._storage.set_trial_user_attr(prep.trial._trial_id, R.WORKER, f"{host}:{_dead_pid()}")
    procs = [subprocess.Popen(_cli("worker", "--storage", storage, *common, "--trials", "2"), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err  # no UpdateFinishedTrialError from the race
    study, _ = attach_study("c", storage_url=storage, trials_dir=tmp_path)
    for n in range(3):
        assert study.get_trials()[n].user_attrs[R.STATUS] == R.WORKER_DIED
        assert len([t for t in study.get_trials() if t.user_attrs.get(R.RETRY_OF) == n]) == 1
    assert all(t.state.is_finished() for t in study.get_trials())
    numbers = [line.split()[1] for line in _evaluations(tmp_path / "c")]
    assert len(numbers) == len(set(numbers))


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_sigterm_mid_trial_leaves_a_resumable_study(tmp_path):
    space = _space(tmp_path)
    base = ["--space", str(space), "--study", "s", "--trials-dir", str(tmp_path), "--evaluator",
            f"{FAKE}:hang_if_asked"]
    proc = subprocess.Popen(_cli("run", *base, "--trials", "2"), cwd=ROOT, env=_env(PIIP_TEST_HANG="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "s" / "trial_00000" / "started", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    study, _ = attach_study("s", storage_url=None, trials_dir=tmp_path)
    t0 = study.get_trials()[0]
    assert t0.state == optuna.trial.TrialState.FAIL and t0.user_attrs[R.STATUS] == R.INTERRUPTED
    resumed = subprocess.run(_cli("run", *base, "--total", "2", "--resume"), cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    study, _ = attach_study("s", storage_url=None, trials_dir=tmp_path)
    copy = [t for t in study.get_trials() if t.user_attrs.get(R.RETRY_OF) == 0]
    assert len(copy) == 1 and copy[0].params == t0.params and copy[0].user_attrs[R.ATTEMPT] == 1
    assert len([t for t in study.get_trials() if t.user_attrs.get(R.STATUS) == R.OK]) == 2


def test_a_torn_journal_line_is_cut_and_the_study_goes_on(tmp_path):
    space = _space(tmp_path)
    base = ["--space", str(space), "--study", "j", "--trials-dir", str(tmp_path), "--evaluator", f"{FAKE}:evaluate"]
    first = subprocess.run(_cli("run", *base, "--trials", "3"), cwd=ROOT, env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    journal = tmp_path / "j" / "journal.log"
    with open(journal, "ab") as f:  # a writer killed mid-append (power cut, full disk)
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "user_at')
    again = subprocess.run(_cli("run", *base, "--trials", "2", "--resume"), cwd=ROOT, env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    status = subprocess.run(_cli("status", "j", "--trials-dir", str(tmp_path), "--json"), cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr
    study, _ = attach_study("j", storage_url=None, trials_dir=tmp_path)
    assert len(study.get_trials()) == 5 and all(t.state.is_finished() for t in study.get_trials())
    assert b"user_at" in (tmp_path / "j" / "journal.log.torn").read_bytes()


def test_a_corrupt_journal_record_names_the_file_and_line(tmp_path):
    space = _space(tmp_path)
    base = ["--space", str(space), "--study", "g", "--trials-dir", str(tmp_path), "--evaluator", f"{FAKE}:evaluate"]
    assert subprocess.run(_cli("run", *base, "--trials", "2"), cwd=ROOT, env=_env(), capture_output=True,
                          timeout=300).returncode == 0
    journal = tmp_path / "g" / "journal.log"
    lines = journal.read_bytes().split(b"\n")
    lines.insert(3, b"garbage that is not json")
    journal.write_bytes(b"\n".join(lines))
    res = subprocess.run(_cli("status", "g", "--trials-dir", str(tmp_path)), cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert str(journal) in res.stderr and "line 4" in res.stderr
