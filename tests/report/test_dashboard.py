"""`piip-search dashboard` serves a study that is still running, with the objective names and our plots."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import optuna

from piip_search.report import set_study_metric_names
from piip_search.search._run import run_search
from tests.report.studies import known_study
from tests.search.test_driver import space_of

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_set_study_metric_names_is_idempotent():
    study = known_study()
    assert set_study_metric_names(study) == ["GFLOPs", "AP"]
    assert set_study_metric_names(study) == ["GFLOPs", "AP"]
    assert study.metric_names == ["GFLOPs", "AP"]


def test_dashboard_serves_a_running_study_with_metric_names(tmp_path):
    from piip_search.cli._study_commands import _report_hook

    study, _ = run_search(space_of(), name="live", trials_dir=tmp_path, n_trials=3, seed=0, progress=False,
                          trial_hook=_report_hook)  # what `piip-search run` passes
    running = study.ask()  # a trial still in flight: the study is running
    assert (tmp_path / "live" / "report.html").exists()  # rewritten after the run's trials
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "piip_search.cli", "dashboard", "live", "--trials-dir",
                             str(tmp_path), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        sid = next(s["study_id"] for s in studies if s["study_name"] == "live")
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{sid}")
        assert detail["objective_names"] == ["GFLOPs", "AP"]
        states = {t["number"]: t["state"] for t in detail["trials"]}
        assert len(states) == 4 and states[running.number] == "Running"
        assert {g["id"] for g in detail["plotly_graph_objects"]} == {"piip-front", "piip-composition"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
