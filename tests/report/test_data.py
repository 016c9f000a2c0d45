"""The data behind each view of the report, for a study with known trials."""

from __future__ import annotations

import optuna
import pytest

from piip_search.report import report_data, status_kind
from tests.report.studies import known_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def data():
    return report_data(known_study())


def test_status_kinds_follow_the_vocabulary():
    assert status_kind("ok", "COMPLETE") == "ok"
    assert status_kind("pruned", "COMPLETE") == "stopped"
    assert status_kind("stopped", "COMPLETE") == "stopped"
    assert status_kind("truncated", "COMPLETE") == "truncated"
    assert status_kind("infeasible", "COMPLETE") == "infeasible"
    assert status_kind("failed:worker-died", "FAIL") == "failed"
    assert status_kind("ok", "RUNNING") == "running"


def test_front_holds_only_ok_trials_and_marks_the_rest(data):
    kinds = {r["trial"]: r["kind"] for r in data.rows}
    assert kinds == {0: "ok", 1: "ok", 2: "ok", 3: "ok", 4: "truncated", 5: "stopped", 6: "infeasible",
                     7: "failed", 8: "ok", 9: "ok"}
    assert data.front == [0, 1, 3]  # 4 (truncated) and 5 (stopped) would dominate if they counted
    dominated = {r["trial"] for r in data.rows if r["dominated"]}
    assert dominated == {2, 8, 9}
    assert data.knee == 1
    assert [r["trial"] for r in data.rows if r["knee"]] == [1]
    failed = next(r for r in data.rows if r["trial"] == 7)
    assert failed["reason"] == "worker-died" and failed["ap"] is None
    assert data.header["by_kind"] == {"ok": 6, "truncated": 1, "stopped": 1, "infeasible": 1, "failed": 1}


def test_hypervolume_series(data):
    # reference point (10 GFLOPs budget, AP 0): HV after each ok trial, by hand
    hv0 = (10 - 1) * 0.30
    hv1 = hv0 + (10 - 2) * (0.50 - 0.30)
    hv3 = hv1 + (10 - 8) * (0.55 - 0.50)
    assert [n for n, _ in data.hv_by_trial] == [0, 1, 2, 3, 8, 9]
    assert [h for _, h in data.hv_by_trial] == pytest.approx([hv0, hv1, hv1, hv3, hv3, hv3])
    assert data.compute_unit == "proxy iterations"
    # every trial with metrics costs 100 iterations; the first ok trial is trial 0, the fourth is trial 3
    assert [c for c, _ in data.hv_by_compute][:4] == [100, 200, 300, 400]
    assert data.header["hypervolume"] == pytest.approx(hv3)


def test_importances_cover_every_searched_parameter(data):
    assert data.searched_params == ["attention", "b0.embed_dim", "b0.resolution"]
    for target in ("AP", "GFLOPs"):
        scores = data.importances[target]
        assert set(scores) == set(data.searched_params)
        assert all(v is not None and v >= 0 for v in scores.values())
        assert sum(scores.values()) == pytest.approx(1.0)


def test_composition_counts_front_against_ok_trials(data):
    comp = data.composition
    # ok trials: 0 d32@64, 1 d64@96, 2 d96@64, 3 d96@128, 8 d32@96, 9 d64@64; front 0, 1, 3
    assert comp["branch 1 model"] == {"d32": {"front": 1, "study": 2}, "d64": {"front": 1, "study": 2},
                                      "d96": {"front": 1, "study": 2}}
    assert comp["branch 1 resolution"] == {"64": {"front": 1, "study": 3}, "96": {"front": 1, "study": 2},
                                           "128": {"front": 1, "study": 1}}
    assert comp["interactions attention"] == {"deformable": {"front": 3, "study": 4},
                                              "global": {"front": 0, "study": 2}}
    assert comp["branch 2 model"] == {"T": {"front": 3, "study": 6}}


def test_header_budgets_states_and_workers(data):
    best = {b["budget_gflops"]: b["trial"] for b in data.header["best_under_budgets"]}
    assert best[1] == 0 and best[2] == 1 and best[5] == 1
    assert data.states_over_time["ok"][-1][1] == 6
    assert {w["worker"]: w["trials"] for w in data.throughput} == {"host:1": 7, "host:2": 3}
    assert data.references == []  # model convention: the published (paper-convention) models are not drawn
    assert "not drawn" in data.reference_note


def test_published_models_drawn_for_paper_convention():
    study = known_study()
    study.set_user_attr("space", {"name": "p", "flops_convention": "paper", "budgets": {"max_gflops": 10.0}})
    d = report_data(study, importances=False)
    assert {r["config"] for r in d.references} == {"vit-b-1024", "piip-tsb-1120-896-448"}
