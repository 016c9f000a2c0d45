"""The known-cost sampler: closed-form EHVI against Monte Carlo, and a search that uses it end to end."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from piip_search.errors import SearchSpaceError
from piip_search.search import SearchSpace, hypervolume
from piip_search.search._ehvi import expected_hvi, front_staircase, training_subset
from piip_search.search._known_cost import KnownCostSampler
from piip_search.search._samplers import make_sampler

DIRS = ("minimize", "maximize")


def _hvi_mc(c: float, ys: np.ndarray, pts: np.ndarray, ref: tuple[float, float]) -> float:
    base = hypervolume(pts, ref, DIRS)
    return float(np.mean([hypervolume(np.vstack([pts, [c, y]]), ref, DIRS) - base for y in ys]))


@pytest.mark.parametrize("case", range(6))
def test_expected_hvi_matches_monte_carlo(case: int) -> None:
    rng = np.random.default_rng(case)
    pts = np.column_stack([rng.uniform(0, 10, 12), rng.uniform(0, 1, 12)])
    ref = (10.0, 0.1)
    fc, fa = front_staircase(pts[:, 0], pts[:, 1], ref)
    c, mu, sd = rng.uniform(0, 10), rng.uniform(0.3, 1.1), rng.uniform(0.05, 0.3)
    exact = expected_hvi(np.array([c]), np.array([mu]), np.array([sd]), fc, fa, ref)[0]
    ys = rng.normal(mu, sd, 3000)
    mc = _hvi_mc(c, ys, pts, ref)
    se = np.std([hypervolume(np.vstack([pts, [c, y]]), ref, DIRS) for y in ys[:500]]) / np.sqrt(len(ys))
    assert abs(exact - mc) <= 4 * se + 1e-9, (exact, mc, se)


def test_expected_hvi_limits() -> None:
    fc, fa = np.array([2.0, 5.0]), np.array([0.5, 0.8])
    ref = (10.0, 0.0)
    # a certain AP (tiny sd) gives the plain HVI; beyond the reference cost nothing; a dominated point ~0
    e = expected_hvi(np.array([1.0, 11.0, 6.0]), np.array([0.9, 0.9, 0.1]), np.array([1e-9, 0.1, 1e-9]),
                     fc, fa, ref)
    exact = hypervolume(np.array([[2, .5], [5, .8], [1, .9]]), ref, DIRS) - hypervolume(
        np.column_stack([fc, fa]), ref, DIRS)
    assert e[0] == pytest.approx(exact)
    assert e[1] == 0.0 and e[2] == pytest.approx(0.0, abs=1e-9)
    # an empty front: the box from the candidate to the reference
    e0 = expected_hvi(np.array([4.0]), np.array([0.5]), np.array([1e-9]), np.array([]), np.array([]), ref)
    assert e0[0] == pytest.approx(6 * 0.5)


def _space() -> SearchSpace:
    return SearchSpace.from_yaml("default", check_proxy=False)


def _ap(cfg) -> float:
    b = cfg.branches
    return float(np.log(b[0].embed_dim * b[0].depth) + 0.01 * b[-1].resolution / 32 + 0.1 * len(b))


def test_known_cost_search_end_to_end_no_duplicates_within_budget() -> None:
    space = _space()
    sampler = make_sampler("known-cost", 0, space=space)
    assert isinstance(sampler, KnownCostSampler)
    study = optuna.create_study(directions=space.directions, sampler=sampler)
    seen = set()
    for _ in range(20):
        trial = study.ask()
        cfg = space.sample(trial)
        flops, _ = sampler._count(cfg)
        assert flops / 1e9 <= space.budgets.max_gflops  # the pool is budget-filtered before scoring
        assert cfg.fingerprint() not in seen  # and duplicate-filtered
        seen.add(cfg.fingerprint())
        study.tell(trial, [flops / 1e9, _ap(cfg)])
    assert len(study.trials) == 20


@pytest.mark.parametrize("surrogate", ["gp", "forest"])
def test_pending_trials_spread_concurrent_asks(surrogate: str) -> None:
    space = _space()
    study = optuna.create_study(directions=space.directions,
                                sampler=KnownCostSampler(space, seed=1, n_startup_trials=4, surrogate=surrogate))
    for _ in range(8):
        t = study.ask()
        cfg = space.sample(t)
        study.tell(t, [study.sampler._count(cfg)[0] / 1e9, _ap(cfg)])
    asked = [study.ask() for _ in range(4)]  # four workers, none finished
    fps = {space.sample(t).fingerprint() for t in asked}
    assert len(fps) == 4


def test_enqueued_trial_keeps_its_params() -> None:
    space = _space()
    cfg = space.config_from_params(space.params_from_config(_space().cheapest_configs()[0]))
    study = optuna.create_study(directions=space.directions, sampler=KnownCostSampler(space, seed=0))
    study.enqueue_trial(space.params_from_config(cfg))
    assert space.sample(study.ask()).fingerprint() == cfg.fingerprint()


def test_known_cost_needs_one_counted_and_one_measured_objective() -> None:
    data = _space().to_dict()
    data["objectives"] = [{"flops": "minimize"}, {"params": "minimize"}]
    with pytest.raises(SearchSpaceError, match="known-cost needs two objectives"):
        KnownCostSampler(SearchSpace.from_dict(data))


def test_training_subset_keeps_the_front_and_spans_the_costs() -> None:
    rng = np.random.default_rng(0)
    cost, ap = rng.uniform(0, 10, 500), rng.uniform(0, 1, 500)
    keep = training_subset(cost, ap, 60)
    assert len(keep) <= 60 and len(set(keep.tolist())) == len(keep)
    fc, fa = front_staircase(cost, ap, (11.0, -1.0))
    front = {i for i in range(500) if any(cost[i] == c and ap[i] == a for c, a in zip(fc, fa, strict=True))}
    assert front <= set(keep.tolist())  # gap 0: the front is the first half
    assert {int(np.argmin(cost)), int(np.argmax(cost))} <= set(keep.tolist())  # the spread reaches both ends
    assert np.array_equal(training_subset(cost, ap, 60), keep)  # the same data, the same subset
    assert np.array_equal(training_subset(cost[:40], ap[:40], 60), np.arange(40))


def test_past_its_training_cap_the_sampler_still_proposes_new_configs_on_the_budget() -> None:
    space = _space()
    sampler = KnownCostSampler(space, seed=2, n_startup_trials=4, max_train=12, refit_always_below=8)
    study = optuna.create_study(directions=space.directions, sampler=sampler)
    seen = set()
    for _ in range(30):
        t = study.ask()
        cfg = space.sample(t)
        assert cfg.fingerprint() not in seen
        seen.add(cfg.fingerprint())
        flops = sampler._count(cfg)[0] / 1e9
        assert flops <= space.budgets.max_gflops
        study.tell(t, [flops, _ap(cfg)])
    assert len(sampler._finished) == 29  # each finished trial was read once, then served from the cache


def test_the_sampler_front_uses_config_means_as_the_study_does():
    from piip_search.search._ehvi import config_means

    fps = ["a", "b", "b", "b", "c"]
    ap = np.array([0.30, 0.50, 0.20, 0.20, 0.40])  # b: one lucky seed of three
    means = config_means(fps, ap)
    assert means.tolist() == pytest.approx([0.30, 0.30, 0.30, 0.30, 0.40])
    cost = np.array([1.0, 2.0, 2.0, 2.0, 3.0])
    _, fa = front_staircase(cost, means, (4.0, 0.0))
    assert 0.5 not in fa.tolist() and 0.4 in fa.tolist()  # the lucky seed defines no step
    _, fa_raw = front_staircase(cost, ap, (4.0, 0.0))
    assert 0.5 in fa_raw.tolist()


def test_branch_moves_copy_or_remove_any_branch_of_the_pyramid() -> None:
    space = SearchSpace.from_dict({
        "name": "moves", "branches": {"count": [1, 2, 3], "models": ["T", "S", "B"], "resolutions": [224, 448, 672]},
        "interactions": {"count": [1], "direction": ["bidirectional"], "attention": ["deformable"]},
        "flops_convention": "paper"})
    sampler = KnownCostSampler(space, seed=0)
    two = {"n_branches": 2, "b0.model": "B", "b0.resolution": 224, "b1.model": "T", "b1.resolution": 672,
           "interactions.count": 1, "interactions.direction": "bidirectional", "interactions.attention": "deformable"}
    moves = sampler._branch_moves(two)
    shapes = sorted(tuple((b.embed_dim, b.resolution) for b in space.config_from_params(p).branches) for p in moves)
    B, T = (768, 224), (192, 672)
    # a copy of either branch next to itself (the middle of a three-branch pyramid), or either one removed
    assert shapes == sorted([(B, B, T), (B, T, T), (B,), (T,)])
    assert sampler._branch_moves({k: v for k, v in two.items() if k != "n_branches"}) == []  # count is fixed
    three = sampler._branch_moves(moves[0])
    assert all(len(space.config_from_params(p).branches) == 2 for p in three)  # 4 branches are not in the space


def test_encoding_is_a_function_of_the_network() -> None:
    """Draws that build the same network (no units: count and attention do nothing) encode the same; draws
    that change it do not."""
    from piip_search.search._known_cost import _encode

    space = SearchSpace.from_dict({
        "name": "enc", "branches": {"count": [1, 2], "models": ["T", "S"], "resolutions": [224, 448]},
        "interactions": {"count": [1, 2], "direction": ["bidirectional", "none"],
                         "attention": ["deformable", "regular"]},
        "flops_convention": "paper"})
    base = {"n_branches": 2, "b0.model": "S", "b0.resolution": 224, "b1.model": "T", "b1.resolution": 448}

    def enc(**inter):
        cfg = space.config_from_params({**base, **{f"interactions.{k}": v for k, v in inter.items()}})
        return cfg.fingerprint(), _encode(cfg, 2, 1.0)

    none = [enc(direction="none", count=c, attention=a) for c in (1, 2) for a in ("deformable", "regular")]
    assert len({fp for fp, _ in none}) == 1 and all(x == none[0][1] for _, x in none)
    units = [enc(direction="bidirectional", count=c, attention=a) for c in (1, 2) for a in ("deformable", "regular")]
    assert len({fp for fp, _ in units}) == 4 and len({tuple(x) for _, x in units}) == 4
    assert none[0][1] not in [x for _, x in units]


def test_forest_surrogate_fits_its_data_and_takes_fantasies() -> None:
    from piip_search.search._forest import ForestModel

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (80, 3))
    y = np.sin(4 * X[:, 0]) + X[:, 1]
    model = ForestModel(X, y, seed=0)
    m, v = model.posterior(X)
    assert np.corrcoef(m, y)[0, 1] > 0.95 and (v > 0).all()
    far = np.full((1, 3), 3.0)
    model.add_fantasies(far, np.array([5.0]))
    m2, _ = model.posterior(far)
    assert m2[0] > m.max()  # the fantasy is now data


def test_unknown_surrogate_is_named() -> None:
    with pytest.raises(SearchSpaceError, match="surrogate must be 'gp' or 'forest', got 'svm'"):
        KnownCostSampler(_space(), surrogate="svm")
