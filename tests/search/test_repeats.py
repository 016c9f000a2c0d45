"""`repeats:` — near-front configs re-evaluated with other seeds, the front built on the means (_repeats.py)."""

from __future__ import annotations

import copy
import itertools
import statistics

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from piip_search.cli import main
from piip_search.errors import SearchSpaceError
from piip_search.search import SearchSpace
from piip_search.search import _records as R
from piip_search.search._driver import SearchDriver
from piip_search.search._records import started_trials
from piip_search.search._repeats import (
    NOISE_K,
    PRIOR_REL_STD,
    near_front,
    plan_repeats,
    pooled_std,
    repeat_index,
    seeded_proxy,
)
from piip_search.search._results import TrialRecord, config_points, pareto_front, records, select, status_summary
from piip_search.search._run import run_search
from piip_search.search._storage import study_dir
from piip_search.search._study import open_study
from tests.search import noisy_evaluators as noisy
from tests.search.test_driver import BASE

optuna.logging.set_verbosity(optuna.logging.WARNING)
OBJS = [("flops", "minimize"), ("ap", "maximize")]


def space_of(**over) -> SearchSpace:
    d = copy.deepcopy(BASE) | {"evaluator": "tests.search.noisy_evaluators:noisy"}
    d.update(over)
    return SearchSpace.from_dict(d, source="test-space")


@pytest.fixture(autouse=True)
def _reset_seen():
    noisy.SEEN.clear()


# ---- the space key -------------------------------------------------------------------------------------------
def test_repeats_key_defaults_to_one_and_round_trips():
    assert space_of().repeats == 1
    assert "repeats" not in space_of().to_dict()  # studies stored before the key resume unchanged
    s = space_of(repeats=3)
    assert s.repeats == 3 and s.to_dict()["repeats"] == 3
    assert SearchSpace.from_dict(s.to_dict()) == s and SearchSpace.from_dict(s.to_dict()).repeats == 3


@pytest.mark.parametrize(("value", "fragment"), [(0, "must be >= 1"), (11, "at most 10"), ("3", "integer"),
                                                  (True, "integer"), (2.5, "integer")])
def test_bad_repeats_names_the_key(value, fragment):
    with pytest.raises(SearchSpaceError, match=rf"repeats: .*{fragment}"):
        space_of(repeats=value)


def test_bad_repeats_in_a_space_file_exits_2(tmp_path, capsys):
    import yaml

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({**copy.deepcopy(BASE), "repeats": 0}))
    assert main(["run", "--space", str(p), "--trials-dir", str(tmp_path), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "repeats" in err and "must be >= 1" in err and "Traceback" not in err


# ---- the rule, alone -----------------------------------------------------------------------------------------
def test_seeds_move_only_for_repeats():
    assert seeded_proxy({"iters": 5}, {}) == {"iters": 5}  # a first evaluation: settings untouched
    assert seeded_proxy({"seed": 7}, {R.REPEAT_OF: 3, R.REPEAT_INDEX: 2}) == {"seed": 9}
    assert seeded_proxy({}, {R.REPEAT_OF: 3, R.REPEAT_INDEX: 1}) == {"seed": 1}
    assert repeat_index({R.REPEAT_INDEX: 2}) == 0  # an index without its first trial is no repeat


def test_pooled_std_starts_at_the_prior_and_follows_the_data():
    assert pooled_std([[0.5], [0.3], [0.4]]) == pytest.approx(PRIOR_REL_STD * 0.4)
    many = [[0.4 + 0.02 * (-1) ** i, 0.4 - 0.02 * (-1) ** i] for i in range(50)]  # each config: std 0.0283
    assert pooled_std(many) == pytest.approx(statistics.stdev([0.42, 0.38]), rel=0.05)
    assert pooled_std([]) > 0


def test_near_front_is_the_noise_widened_staircase():
    means = np.array([[1.0, 0.50], [2.0, 0.60], [3.0, 0.585], [3.0, 0.50], [4.0, 0.70]])
    noise = np.array([0.0, 0.02])  # FLOPs exact; AP: 2 x 0.02 = 0.04 of optimism at n = 1
    near = near_front(means, np.ones(5, dtype=int), noise, ["minimize", "maximize"])
    # front members (0, 1, 4); 2 is 0.015 below the staircase (within 0.04); 3 is 0.10 below
    assert near.tolist() == [True, True, True, False, True]
    # the same gap with more evaluations: 0.04 / sqrt(4) = 0.02 of optimism, still reaching 0.60 ...
    assert near_front(means, np.array([1, 1, 4, 1, 1]), noise, ["minimize", "maximize"])[2]
    # ... and with 9 evaluations (0.0133) not any more
    assert not near_front(means, np.array([1, 1, 9, 1, 1]), noise, ["minimize", "maximize"])[2]
    assert NOISE_K == 2.0


def _rec(number, flops, ap, *, fp, state="COMPLETE", status="ok", repeat_of=None, index=0, duplicate_of=None):
    values = [flops, ap] if state == "COMPLETE" else None
    return TrialRecord(number, state, status, int(flops * 1e9), 1, ap, values, {}, {"ap": ap}, fp,
                       duplicate_of=duplicate_of, repeat_of=repeat_of, repeat_index=index)


def test_plan_repeats_picks_front_and_near_configs_once_each():
    recs = [_rec(0, 1.0, 0.50, fp="a"), _rec(1, 2.0, 0.60, fp="b"), _rec(2, 3.0, 0.59, fp="c"),
            _rec(3, 3.0, 0.30, fp="far"), _rec(4, 2.0, 0.60, fp="b", duplicate_of=1)]
    plan = plan_repeats(recs, OBJS, repeats=3)
    assert sorted(plan) == [(0, 1), (1, 1), (2, 1)]  # the duplicate (4) is no evaluation and gets nothing
    assert plan_repeats(recs, OBJS, repeats=1) == []


def test_plan_repeats_waits_for_a_running_repeat_and_stops_at_the_limit():
    recs = [_rec(0, 1.0, 0.50, fp="a"), _rec(1, 2.0, 0.60, fp="b"),
            _rec(2, 1.0, 0.51, fp="a", repeat_of=0, index=1),
            _rec(3, 1.0, 0.0, fp="a", state="FAIL", status="failed:x", repeat_of=0, index=2),  # tried: counts
            _rec(4, 2.0, None, fp=None, state="WAITING", status="waiting", repeat_of=1, index=1)]
    assert plan_repeats(recs, OBJS, repeats=3) == []  # a: 3 seeds tried; b: its repeat is queued
    assert plan_repeats(recs, OBJS, repeats=4) == [(0, 3)]


# ---- a search with repeats -----------------------------------------------------------------------------------
def _params(w, r):
    return {"b0.embed_dim": w[0], "b1.embed_dim": w[1], "b0.resolution": r[0], "b1.resolution": r[1]}


def _ordered_configs():
    """Every config of the test space: branch 1 at 64 px first, then 96 (near, the lucky one), then 128 (far)."""
    widths = [w for w in itertools.product((96, 64, 32), repeat=2) if w[0] >= w[1]]
    res = [r for r in itertools.product((64, 96, 128), repeat=2) if r[0] <= r[1]]
    return [_params(w, r) for low in (64, 96, 128) for r in res if r[0] == low for w in widths]


def _search(tmp_path, name="rep", **over):
    """Every config enqueued in `_ordered_configs` order, then run until the queue (with its repeats) is empty."""
    space = space_of(**over)
    study = open_study(space, name=name, storage_url=None, trials_dir=tmp_path, sampler="random", seed=0,
                       resume=False)
    for p in _ordered_configs():
        study.enqueue_trial(p)
    driver = SearchDriver(study, space, study_path=study_dir(tmp_path, name), evaluator=noisy.noisy)
    outcomes = []
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        outcomes.append(driver.run_one())
    return study, outcomes


def _by_fp(study):
    out: dict[str, list] = {}
    for t in study.get_trials():
        out.setdefault(t.user_attrs.get(R.FINGERPRINT), []).append(t)
    return out


def test_near_front_configs_get_other_seeds_far_ones_do_not(tmp_path):
    study, outcomes = _search(tmp_path, repeats=3)
    assert all(o.status == "ok" for o in outcomes)
    n_configs = len(_ordered_configs())
    trials = study.get_trials()
    repeats = [t for t in trials if R.REPEAT_OF in t.user_attrs]
    assert len(trials) == n_configs + len(repeats) and repeats
    for t in repeats:  # a repeat: the same config as its first trial, another seed, never a duplicate
        first = trials[t.user_attrs[R.REPEAT_OF]]
        assert t.params == first.params and R.REPEAT_OF not in first.user_attrs
        assert t.user_attrs[R.FINGERPRINT] == first.user_attrs[R.FINGERPRINT]
        assert R.DUPLICATE_OF not in t.user_attrs and t.user_attrs[R.REPEAT_INDEX] in (1, 2)
    seeds: dict[str, list[int]] = {}
    for fp, seed, _ in noisy.SEEN:
        seeds.setdefault(fp, []).append(seed)
    assert all(sorted(s) == list(range(len(s))) for s in seeds.values())  # each evaluation its own seed
    far = {t.user_attrs[R.FINGERPRINT] for t in trials if t.params["b0.resolution"] == 128}
    assert len(far) == 6 and all(len(seeds[fp]) == 1 for fp in far)  # 0.3 below the front: never repeated
    front = pareto_front(study)
    for p in front.points:  # every front config has its 3 seeds, and its AP is their mean
        assert p.n_evals == 3 and sorted(seeds[p.fingerprint]) == [0, 1, 2]
        aps = [ap for fp, _, ap in noisy.SEEN if fp == p.fingerprint]
        assert p.ap == pytest.approx(statistics.fmean(aps)) and p.values[1] == pytest.approx(p.ap)
        assert p.ap_std == pytest.approx(statistics.stdev(aps))


def test_a_lucky_seed_leaves_the_front_once_its_repeats_average_down(tmp_path):
    study, _ = _search(tmp_path, repeats=3)
    lucky = [t for t in study.get_trials() if t.params == _params(*noisy.LUCKY.values())]
    assert len(lucky) == 3 and [t.user_attrs.get(R.REPEAT_INDEX, 0) for t in lucky] == [0, 1, 2]
    # each repeat is told its own seed's AP: samplers learn from the noisy points, not from the mean
    seen = {(fp, seed): ap for fp, seed, ap in noisy.SEEN}
    fp = lucky[0].user_attrs[R.FINGERPRINT]
    assert [t.values[1] for t in lucky] == pytest.approx([seen[(fp, k)] for k in range(3)])
    # on per-trial values its seed 0 is a front point ...
    recs = [r for r in records(study) if r.on_front_candidate]
    pts = np.array([r.values for r in recs])
    on = [r.number for r, m in zip(recs, _front_mask(pts), strict=True) if m]
    assert lucky[0].number in on
    # ... on the means it is not: its config's point is dominated
    front = pareto_front(study)
    assert fp not in {p.fingerprint for p in front.points}
    point = next(p for p in config_points(records(study)) if p.fingerprint == fp)
    assert point.n_evals == 3 and point.ap < lucky[0].values[1] - 0.05
    with pytest.raises(Exception, match="not on the Pareto front"):
        select(front, f"trial:{lucky[0].number}")


def _front_mask(pts):
    from piip_search.search._pareto import pareto_mask

    return pareto_mask(pts, ["minimize", "maximize"])


def test_totals_count_each_trial_once_and_each_config_once_on_the_front(tmp_path):
    study, _ = _search(tmp_path, repeats=3)
    front = pareto_front(study)
    trials = study.get_trials()
    assert front.n_trials == len(trials)
    assert front.n_candidates == len(_ordered_configs())  # one point per config, not per seed
    assert len({p.fingerprint for p in front.points}) == len(front.points)
    summary = status_summary(study)
    assert summary["n_trials"] == len(trials) and summary["by_status"] == {"ok": len(trials)}
    rep = summary["repeats"]
    assert rep["repeat_trials"] == sum(R.REPEAT_OF in t.user_attrs for t in trials)
    assert rep["configs_repeated"] == sum(p.n_evals > 1 for p in config_points(records(study)))
    assert 0 < rep["ap_noise_std"] < 0.1
    assert "±" in summary["best_ap_label"] and "(n=3)" in summary["best_ap_label"]
    # `trial:<n>` selects a front config by any of its evaluations
    p = front.points[0]
    assert select(front, f"trial:{p.evaluations[-1]}") == [p]


def test_repeats_count_towards_trials_and_total(tmp_path):
    space = space_of(repeats=3)
    study, outcomes = run_search(space, name="cnt", trials_dir=tmp_path, n_trials=14, seed=3, progress=False)
    assert len(outcomes) == 14 and started_trials(study) == 14
    assert any(R.REPEAT_OF in t.user_attrs for t in study.get_trials())  # some of the 14 were repeats
    study, outcomes = run_search(space, name="cnt", trials_dir=tmp_path, total=20, seed=3, resume=True,
                                 progress=False)
    assert started_trials(study) == 20 and len(outcomes) == 6


def test_repeats_use_the_space_seed_as_their_base(tmp_path):
    _search(tmp_path, repeats=2, proxy={"seed": 5})
    assert {seed for _, seed, _ in noisy.SEEN} == {5, 6}


def test_repeats_one_is_todays_search(tmp_path):
    plain, _ = run_search(space_of(), name="plain", trials_dir=tmp_path, n_trials=30, seed=4, progress=False)
    one, _ = run_search(space_of(repeats=1), name="one", trials_dir=tmp_path, n_trials=30, seed=4, progress=False)
    assert plain.user_attrs[R.STUDY_SPACE] == one.user_attrs[R.STUDY_SPACE]
    a, b = plain.get_trials(), one.get_trials()
    assert [t.params for t in a] == [t.params for t in b] and [t.values for t in a] == [t.values for t in b]
    assert [t.user_attrs.get(R.STATUS) for t in a] == [t.user_attrs.get(R.STATUS) for t in b]
    assert not any(R.REPEAT_OF in t.user_attrs for t in b)
    assert any(R.DUPLICATE_OF in t.user_attrs for t in b)  # 30 draws from 36 configs: re-proposals still copy
    assert {seed for _, seed, _ in noisy.SEEN} == {0}
    assert [p.number for p in pareto_front(plain).points] == [p.number for p in pareto_front(one).points]


def test_a_retried_repeat_stays_a_repeat():
    attrs = R.retry_attrs({R.REPEAT_OF: 4, R.REPEAT_INDEX: 2, R.ATTEMPT: 1}, 9, "worker died")
    assert attrs[R.REPEAT_OF] == 4 and attrs[R.REPEAT_INDEX] == 2 and attrs[R.RETRY_OF] == 9


def test_repeats_are_not_stopped_at_a_rung(tmp_path):
    rung_evaluator = "tests.search.fake_evaluators:evaluate"  # reports at every rung
    space = space_of(repeats=2, evaluator=rung_evaluator, fidelity={"rungs": [10, 30], "eta": 3, "min_results": 1})
    from tests.search import fake_evaluators

    study = open_study(space, name="mf", storage_url=None, trials_dir=tmp_path, sampler="random", seed=0,
                       resume=False)
    for p in _ordered_configs()[:12]:
        study.enqueue_trial(p)
    driver = SearchDriver(study, space, study_path=study_dir(tmp_path, "mf"), evaluator=fake_evaluators.evaluate)
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        driver.run_one()
    repeats = [t for t in study.get_trials() if R.REPEAT_OF in t.user_attrs]
    assert repeats and all(t.user_attrs[R.STATUS] == "ok" for t in repeats)
    assert not any(k.startswith("rung_") for t in repeats for k in t.user_attrs)  # no second rung vote
    assert any(t.user_attrs[R.STATUS] == "stopped" for t in study.get_trials())  # promotion still works


# ---- what the user sees ----------------------------------------------------------------------------------------
def test_pareto_and_status_show_mean_and_spread(tmp_path, capsys):
    _search(tmp_path, name="cli", repeats=3)
    assert main(["pareto", "cli", "--trials-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "±" in out and "(n=3)" in out
    assert main(["status", "cli", "--trials-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "repeats (other seeds)" in out and "±" in out
    import json

    assert main(["pareto", "cli", "--json", "--trials-dir", str(tmp_path)]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front and all(p["n_evals"] == 3 and len(p["evaluations"]) == 3 and p["ap_std"] > 0 for p in front)


def test_report_rows_and_front_use_the_means(tmp_path):
    from piip_search.report.data import report_data
    from piip_search.report.figures import front_figure

    study, _ = _search(tmp_path, name="rpt", repeats=3)
    d = report_data(study, importances=False)
    front = pareto_front(study)
    rows = {r["trial"]: r for r in d.rows}
    for p in front.points:
        for n in p.evaluations:
            row = rows[n]
            assert row["ap_mean"] == pytest.approx(p.ap) and row["ap_n"] == 3
            assert row["ap_std"] == pytest.approx(p.ap_std) and not row["dominated"]
            assert row["other_seed_of_front"] == (n != p.number)
    single = [r for r in d.rows if r["ap_n"] is None]
    assert single and all(r["ap_mean"] is None and r["ap_std"] is None for r in single)
    fig = front_figure(d)
    tr = next(t for t in fig.data if str(t.name).startswith("Pareto front"))
    assert list(tr.y) == pytest.approx([p.ap for p in front.points])
    assert any("over 3 seeds" in h for h in tr.hovertext)
    assert d.hv_by_trial[-1][1] == pytest.approx(front.hypervolume)  # the curve ends at the front's hypervolume


def test_the_builtin_proxy_trains_with_the_repeat_seed(monkeypatch, tmp_path):
    import piip_search.proxy as proxy
    from piip_search.search._evaluators import BUILTIN, EvalContext

    got = {}

    class Result:
        def to_dict(self):
            return {"status": "ok", "ap": 0.1}

    def fake_train(cfg, data, settings, **kw):
        got["settings"] = settings
        return Result()

    monkeypatch.setattr(proxy, "train_proxy", fake_train)
    cfg = space_of().sample(optuna.trial.FixedTrial(_ordered_configs()[0]))
    attrs = {R.REPEAT_OF: 0, R.REPEAT_INDEX: 2}
    ctx = EvalContext(trial_dir=tmp_path, fidelity=5, proxy=seeded_proxy({"seed": 3, "dataset": str(tmp_path)}, attrs))
    assert ctx.seed == 5
    BUILTIN.get("builtin:proxy")(cfg, ctx)
    assert got["settings"].seed == 5 and got["settings"].iters == 5


def test_export_records_the_mean_over_seeds(tmp_path, capsys):
    import yaml

    study, _ = _search(tmp_path, name="exp", repeats=3)
    best = max(pareto_front(study).points, key=lambda p: p.ap)
    out = tmp_path / "best.yaml"
    assert main(["export", "exp", "--select", "max-ap", "--out", str(out), "--trials-dir", str(tmp_path)]) == 0
    metrics = yaml.safe_load(out.read_text())["provenance"]["metrics"]
    assert metrics["ap"] == pytest.approx(best.ap) and metrics["ap_n"] == 3
    assert metrics["ap_std"] == pytest.approx(best.ap_std)
