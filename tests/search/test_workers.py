"""Several worker processes on one study, and a crashed worker's trial recovered on resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import yaml

from piip_search.search._study import attach_study
from tests.search.test_driver import BASE

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "piip_search.cli", *args]


def _space_file(tmp_path: Path) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(BASE))
    return p


def test_two_workers_share_one_study(tmp_path):
    space = _space_file(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(_cli("run", "--space", str(space), "--study", "w", "--trials", "1", "--trials-dir",
                                str(tmp_path), "--evaluator", "tests.search.fake_evaluators:slow"),
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    storage = str(tmp_path / "w" / "journal.log")
    procs = [subprocess.Popen(_cli("worker", "--storage", storage, "--study", "w", "--trials", "3",
                                   "--trials-dir", str(tmp_path)), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study, _ = attach_study("w", storage_url=storage, trials_dir=tmp_path)
    trials = study.get_trials()
    assert len(trials) == 7
    assert sorted(t.number for t in trials) == list(range(7))
    assert all(t.state.is_finished() for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 3  # the first run and two workers


def test_killed_worker_trial_is_failed_and_retried_on_resume(tmp_path):
    space = _space_file(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli("run", "--space", str(space), "--study", "k", "--trials", "3", "--trials-dir",
                                 str(tmp_path), "--evaluator", "tests.search.fake_evaluators:hang_if_asked"),
                            cwd=ROOT, env={**env, "PIIP_TEST_HANG": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started = tmp_path / "k" / "trial_00000" / "started"
    deadline = time.time() + 120
    while not started.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, "the trial never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    study, _ = attach_study("k", storage_url=None, trials_dir=tmp_path)
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING  # left behind by the dead process
    params = study.trials[0].params

    resumed = subprocess.run(_cli("run", "--space", str(space), "--study", "k", "--trials", "1", "--resume",
                                  "--trials-dir", str(tmp_path),
                                  "--evaluator", "tests.search.fake_evaluators:hang_if_asked"),
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    study, _ = attach_study("k", storage_url=None, trials_dir=tmp_path)
    t0, t1 = study.trials[0], study.trials[1]
    assert t0.state == optuna.trial.TrialState.FAIL and t0.user_attrs["status"] == "failed:worker-died"
    assert t1.params == params and t1.user_attrs.get("retry_of") == 0
    assert t1.state == optuna.trial.TrialState.COMPLETE
