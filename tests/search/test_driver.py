"""The search driver: budgets before building, duplicates, failures as data, multi-fidelity, resume, export."""

from __future__ import annotations

import copy
import json

import numpy as np
import optuna
import pytest

from piip_search.config import PIIPConfig
from piip_search.flops import count
from piip_search.search import SearchSpace
from piip_search.search._driver import SearchDriver
from piip_search.search._evaluators import BUILTIN as BUILTIN_EVALUATORS
from piip_search.search._results import pareto_front, select, status_summary
from piip_search.search._run import run_search
from piip_search.search._study import attach_study, open_study
from tests.search import fake_evaluators

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE = {
    "name": "t",
    "trials": 6,
    "branches": {"count": [2], "models": {"embed_dim": [32, 64, 96], "depth": [2], "head_dim": 32},
                 "resolutions": [64, 96, 128]},
    "interactions": {"count": [1], "direction": ["bidirectional"], "attention": ["deformable"]},
    "fixed": {"interactions": {"heads": 4}},
    "objectives": [{"flops": "minimize"}, {"ap": "maximize"}],
    "flops_convention": "model",
    "evaluator": "tests.search.fake_evaluators:evaluate",
    "sampler": "random",
}


def space_of(**over) -> SearchSpace:
    d = copy.deepcopy(BASE)
    d.update(over)
    return SearchSpace.from_dict(d, source="test-space")


@pytest.fixture(autouse=True)
def _reset_calls():
    fake_evaluators.CALLS.clear()


def test_run_records_values_folders_and_front(tmp_path):
    space = space_of()
    study, outcomes = run_search(space, name="s1", trials_dir=tmp_path, n_trials=8, seed=1, progress=False)
    assert len(outcomes) == 8
    ok = [o for o in outcomes if o.status == "ok"]
    assert ok, outcomes
    for t in study.get_trials():
        tdir = tmp_path / "s1" / f"trial_{t.number:05d}"
        cfg = PIIPConfig.from_yaml((tdir / "config.yaml").read_text())
        metrics = json.loads((tdir / "metrics.json").read_text())
        assert metrics["flops"] == count(cfg, convention="model").flops == t.user_attrs["flops"]
        if t.user_attrs["status"] == "ok":
            assert t.values[0] == pytest.approx(metrics["flops"] / 1e9)
            assert t.values[1] == pytest.approx(fake_evaluators.known_ap(cfg))
    front = pareto_front(study)
    assert front.points and front.hypervolume > 0
    # every front point is non-dominated among all ok trials
    oks = [t for t in study.get_trials() if t.user_attrs.get("status") == "ok"]
    for p in front.points:
        assert not any(o.values[0] <= p.values[0] and o.values[1] >= p.values[1] and o.values != p.values
                       for o in oks)


def test_over_budget_trials_are_never_built(tmp_path, monkeypatch):
    import piip_search.models as models

    builds = []
    real = models.build_piip

    def counting_build(cfg, **kw):
        builds.append(cfg.fingerprint())
        return real(cfg, **kw)

    monkeypatch.setattr(models, "build_piip", counting_build)

    def building_evaluator(cfg, ctx):
        models.build_piip(cfg)
        return {"status": "ok", "ap": fake_evaluators.known_ap(cfg)}

    flops = sorted({count(PIIPConfig.from_dict({
        "branches": [{"embed_dim": w, "depth": 2, "num_heads": w // 32, "resolution": r0},
                     {"embed_dim": 32, "depth": 2, "num_heads": 1, "resolution": 128}],
        "interactions": {"count": 1, "heads": 4}}), convention="model").flops / 1e9
        for w in (32, 64, 96) for r0 in (64, 96, 128)})
    budget = flops[len(flops) // 2]  # about half the space is over budget
    space = space_of(budgets={"max_gflops": budget})
    study = open_study(space, name="b", storage_url=None, trials_dir=tmp_path, sampler="random", seed=3,
                       resume=False)
    driver = SearchDriver(study, space, study_path=tmp_path / "b", evaluator=building_evaluator)
    outs = driver.run(20, progress=False)
    infeasible = [o for o in outs if o.status == "infeasible"]
    evaluated = [o for o in outs if o.status == "ok" and "duplicate_of" not in study.trials[o.number].user_attrs]
    assert infeasible, "the budget should exclude part of the space"
    assert len(builds) == len(evaluated)
    for o in infeasible:
        t = study.trials[o.number]
        assert t.user_attrs["flops"] / 1e9 > budget
        assert t.user_attrs["fingerprint"] not in builds
        assert t.constraints["max_gflops"] > 0
    # the front never contains an infeasible trial
    assert all(p.flops / 1e9 <= budget for p in pareto_front(study).points)


def test_duplicates_are_not_evaluated_again(tmp_path):
    space = space_of(branches={"count": [2], "models": {"embed_dim": [32, 64], "depth": [2], "head_dim": 32},
                               "resolutions": [64, 128]})
    study, outs = run_search(space, name="d", trials_dir=tmp_path, n_trials=12, seed=0, progress=False)
    fps = [study.trials[o.number].user_attrs["fingerprint"] for o in outs]
    assert len(set(fps)) < len(fps), "the tiny space must repeat configs"
    assert sorted(fake_evaluators.CALLS) == sorted(set(fps))  # one evaluation per distinct architecture
    for o in outs:
        t = study.trials[o.number]
        if "duplicate_of" in t.user_attrs:
            src = study.trials[t.user_attrs["duplicate_of"]]
            assert t.values == src.values


@pytest.mark.parametrize(("evaluator", "status"), [("tests.search.fake_evaluators:failing", "failed:failed"),
                                                   ("tests.search.fake_evaluators:no_ap", "failed:bad-metrics")])
def test_evaluator_failures_are_recorded_not_raised(tmp_path, evaluator, status):
    study, outs = run_search(space_of(), name="f", trials_dir=tmp_path, n_trials=2, evaluator=evaluator,
                             progress=False)
    assert [o.status for o in outs] == [status, status]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    assert pareto_front(study).points == []


def test_multi_fidelity_stops_dominated_trials_and_front_uses_full_fidelity(tmp_path):
    space = space_of(fidelity={"rungs": [10, 30, 90], "eta": 3, "min_results": 2})
    study, outs = run_search(space, name="mf", trials_dir=tmp_path, n_trials=15, seed=2, progress=False)
    pruned = [o for o in outs if o.status == "stopped"]
    full = [o for o in outs if o.status == "ok"]
    assert pruned and full
    for o in pruned:
        t = study.trials[o.number]
        # told with its low-fidelity values but infeasible: samplers learn from it, fronts exclude it
        assert t.state == optuna.trial.TrialState.COMPLETE and t.constraints["full_fidelity"] > 0
        stop = t.user_attrs["metrics"].get("stopped_at")
        if "duplicate_of" not in t.user_attrs:
            assert stop["rung"] in (0, 1)
            assert f"rung_{stop['rung'] + 1}" not in t.user_attrs
    front_numbers = {p.number for p in pareto_front(study).points}
    assert front_numbers <= {o.number for o in full}
    assert {t.number for t in study.best_trials} <= {o.number for o in full}
    for o in full:
        assert "rung_2" in study.trials[o.number].user_attrs or "duplicate_of" in study.trials[o.number].user_attrs


def test_multi_fidelity_promotion_follows_non_dominated_ranks(tmp_path):
    """The fake evaluator's AP at a rung is known (known_ap * iters / full iters), so every decision the driver
    took can be recomputed from the rung results of the trials before it: a trial goes on iff it is among the
    top floor(n / eta) by (non-dominated rank, crowding) of the (GFLOPs, AP) results at its rung."""
    from piip_search.search import crowding_distance, non_dominated_ranks

    space = space_of(fidelity={"rungs": [10, 30, 90], "eta": 3, "min_results": 3},
                     branches={"count": [2], "models": {"embed_dim": [32, 64, 96, 128, 160, 192], "depth": [2],
                                                        "head_dim": 32},
                               "resolutions": [64, 96, 128, 160, 192]})
    schedule = space.fidelity_schedule()
    study, outs = run_search(space, name="mfr", trials_dir=tmp_path, n_trials=30, seed=4, progress=False)
    at_rung: list[list[tuple[float, float]]] = [[] for _ in schedule.rungs]
    checked = {"stopped": 0, "promoted": 0}
    for t in study.trials:  # one worker: trials ran in order
        if "duplicate_of" in t.user_attrs or t.user_attrs.get("status") not in ("ok", "stopped"):
            continue
        cfg = PIIPConfig.from_dict(t.user_attrs["config"])
        for k, iters in enumerate(schedule.rungs):
            r = t.user_attrs.get(f"rung_{k}")
            if r is None:
                break
            assert r["ap"] == pytest.approx(fake_evaluators.known_ap(cfg) * iters / 90)
            p = (r["gflops"], r["ap"])
            if k < len(schedule.rungs) - 1:
                pts = np.array([p, *at_rung[k]])
                n = len(pts)
                went_on = f"rung_{k + 1}" in t.user_attrs
                if n < schedule.min_results:
                    assert went_on
                else:
                    ranks = non_dominated_ranks(pts, ["minimize", "maximize"])
                    crowd = np.empty(n)
                    for rk in np.unique(ranks):
                        crowd[ranks == rk] = crowding_distance(pts[ranks == rk])
                    ahead = int(np.sum((ranks[1:] < ranks[0]) | ((ranks[1:] == ranks[0]) & (crowd[1:] > crowd[0]))))
                    assert went_on == (ahead < max(1, n // 3)), (t.number, k, ahead, n)
                    checked["promoted" if went_on else "stopped"] += 1
                    if not went_on:
                        stop = t.user_attrs["metrics"]["stopped_at"]
                        assert (stop["rung"], stop["position"], stop["n_results"]) == (k, ahead, n)
            at_rung[k].append(p)
    assert checked["stopped"] and checked["promoted"], checked


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_multi_fidelity_constraints_are_consistent_and_graded(tmp_path, sampler):
    """Every trial of a multi-fidelity study carries the `full_fidelity` constraint (GPSampler raises on trials
    with different constraint keys, which failed every trial after the first stopped one): 0 when not stopped,
    in (0, 1] when stopped, lower for a trial stopped at a later rung or better placed at its rung."""
    space = space_of(fidelity={"rungs": [10, 30, 90], "eta": 3, "min_results": 2}, sampler=sampler,
                     branches={"count": [2], "models": {"embed_dim": [32, 64, 96, 128, 160, 192], "depth": [2],
                                                        "head_dim": 32},
                               "resolutions": [64, 96, 128, 160, 192]})
    study, outs = run_search(space, name="mfc", trials_dir=tmp_path, n_trials=16, seed=0, progress=False)
    statuses = [o.status for o in outs]
    assert not [s for s in statuses if s.startswith("failed")], statuses
    assert "stopped" in statuses and "ok" in statuses
    for t in study.trials:
        assert set(t.constraints) == {"full_fidelity"}, t.constraints
        stop = t.user_attrs["metrics"].get("stopped_at")
        if t.user_attrs["status"] == "stopped":
            expected = space.fidelity_schedule().stop_violation(stop["rung"], stop["position"], stop["n_results"])
            assert t.constraints["full_fidelity"] == pytest.approx(expected) and 0 < expected <= 1
        else:
            assert t.constraints["full_fidelity"] == 0.0


def test_resume_and_attach(tmp_path):
    space = space_of()
    run_search(space, name="r", trials_dir=tmp_path, n_trials=3, progress=False)
    from piip_search.errors import StudyError

    with pytest.raises(StudyError, match="already exists"):
        run_search(space, name="r", trials_dir=tmp_path, n_trials=1, progress=False)
    study, _ = run_search(space, name="r", trials_dir=tmp_path, n_trials=2, resume=True, progress=False)
    assert len(study.trials) == 5
    study2, space2 = attach_study("r", storage_url=None, trials_dir=tmp_path)
    assert space2 == space and len(study2.trials) == 5
    assert status_summary(study2)["n_trials"] == 5
    with pytest.raises(StudyError, match="no storage"):
        attach_study("nope", storage_url=None, trials_dir=tmp_path)


def test_enqueue_known_config(tmp_path):
    space = space_of()
    cfg = PIIPConfig.from_dict({
        "branches": [{"embed_dim": 96, "depth": 2, "num_heads": 3, "resolution": 64},
                     {"embed_dim": 32, "depth": 2, "num_heads": 1, "resolution": 128}],
        "interactions": {"count": 1, "heads": 4}})
    path = tmp_path / "known.yaml"
    path.write_text(cfg.to_yaml())
    study, outs = run_search(space, name="e", trials_dir=tmp_path, n_trials=1, enqueue=[str(path)], progress=False)
    assert study.trials[0].user_attrs["fingerprint"] == cfg.fingerprint()


def test_select_specs(tmp_path):
    study, _ = run_search(space_of(), name="sel", trials_dir=tmp_path, n_trials=10, seed=4, progress=False)
    front = pareto_front(study)
    assert select(front, "max-ap")[0].ap == max(p.ap for p in front.points)
    assert select(front, "min-flops")[0].flops == min(p.flops for p in front.points)
    assert len(select(front, "all")) == len(front.points)
    g = front.points[-1].gflops
    assert select(front, f"budget:{g}")[0].gflops <= g
    from piip_search.errors import StudyError

    with pytest.raises(StudyError, match="budget"):
        select(front, "budget:abc")
    with pytest.raises(StudyError, match="no front point within"):
        select(front, "budget:0.0000001")
    with pytest.raises(StudyError, match="must be knee"):
        select(front, "best")


@pytest.mark.parametrize("spec", list(BUILTIN_EVALUATORS))
def test_every_builtin_evaluator_returns_an_ap(spec, tmp_path):
    """Conformance over the evaluator registry, on the tiny shipped config and a 2-iteration proxy."""
    from piip_search.config import load_config
    from piip_search.search import EvalContext, resolve_evaluator

    ctx = EvalContext(trial_dir=tmp_path, fidelity=2, proxy={"iters": 2, "val_images": 4})
    metrics = resolve_evaluator(spec)(load_config("tiny-piip-3branch"), ctx)
    assert metrics["status"] == "ok" and 0.0 <= metrics["ap"] <= 1.0
