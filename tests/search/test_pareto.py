"""Pareto tools against brute force: ranks, front, hypervolume (grid, inclusion-exclusion), crowding, knee."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piip_search.search import (
    as_minimization,
    crowding_distance,
    dominates,
    hypervolume,
    knee_point,
    non_dominated_ranks,
    pareto_indices,
    pareto_mask,
)

SETTINGS = settings(max_examples=60, deadline=None)


# ---- brute-force references --------------------------------------------------------------------------------
def _dom(a, b) -> bool:  # minimisation
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def brute_ranks(p: np.ndarray) -> np.ndarray:
    """Peel fronts with an O(n^2) dominance test per round."""
    ranks = np.full(len(p), -1)
    r = 0
    left = set(range(len(p)))
    while left:
        front = {i for i in left if not any(_dom(p[j], p[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = r
        left -= front
        r += 1
    return ranks


def brute_hv_grid(p: np.ndarray, ref: np.ndarray) -> float:
    """Count unit cells of the integer grid covered by some box [p, ref] (exact for integer coordinates)."""
    lo = np.floor(p.min(axis=0)).astype(int) if len(p) else ref.astype(int)
    total = 0
    for cell in itertools.product(*[range(int(lo[j]), int(ref[j])) for j in range(len(ref))]):
        c = np.asarray(cell)
        if any(np.all(q <= c) for q in p):
            total += 1
    return float(total)


def brute_hv_incl_excl(p: np.ndarray, ref: np.ndarray) -> float:
    """Inclusion-exclusion over every subset of boxes [p_i, ref] (points must dominate ref strictly)."""
    p = [q for q in p if np.all(q < ref)]
    total = 0.0
    for k in range(1, len(p) + 1):
        for sub in itertools.combinations(p, k):
            corner = np.max(np.asarray(sub), axis=0)
            total += (-1) ** (k + 1) * float(np.prod(ref - corner))
    return total


def int_points(m: int, max_n: int = 9, hi: int = 6):
    return st.lists(st.tuples(*[st.integers(0, hi)] * m), min_size=0, max_size=max_n).map(
        lambda rows: np.asarray(rows, dtype=float).reshape(-1, m))


def float_points(m: int, max_n: int = 6):
    return st.lists(st.tuples(*[st.floats(0, 10, allow_nan=False)] * m), min_size=0, max_size=max_n).map(
        lambda rows: np.asarray(rows, dtype=float).reshape(-1, m))


DIRS = st.sampled_from(["minimize", "maximize"])


# ---- ranks and the Pareto set ------------------------------------------------------------------------------
@SETTINGS
@given(int_points(2, 25), st.lists(DIRS, min_size=2, max_size=2))
def test_ranks_2d_match_brute_force(points, directions):
    got = non_dominated_ranks(points, directions)
    assert np.array_equal(got, brute_ranks(as_minimization(points, directions)))


@SETTINGS
@given(int_points(3, 20, hi=4), st.lists(DIRS, min_size=3, max_size=3))
def test_ranks_3d_match_brute_force(points, directions):
    got = non_dominated_ranks(points, directions)
    assert np.array_equal(got, brute_ranks(as_minimization(points, directions)))


@SETTINGS
@given(int_points(2, 20), st.lists(DIRS, min_size=2, max_size=2), st.data())
def test_pareto_mask_excludes_infeasible_and_failed(points, directions, data):
    n = len(points)
    feasible = np.asarray(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    pts = points.copy()
    if n:
        pts[data.draw(st.integers(0, n - 1)), 1] = np.nan  # a failed trial
    ok = feasible & np.all(np.isfinite(pts), axis=1)
    mask = pareto_mask(pts, directions, feasible)
    mn = as_minimization(pts, directions)
    idx = np.flatnonzero(ok)
    expected = np.zeros(n, dtype=bool)
    for i in idx:
        expected[i] = not any(_dom(mn[j], mn[i]) for j in idx if j != i)
    assert np.array_equal(mask, expected)
    ranks = non_dominated_ranks(pts, directions, feasible)
    if ok.any() and (~ok).any():
        assert ranks[~ok].min() > ranks[ok].max()  # infeasible rows rank after every feasible one


def test_duplicates_share_the_front_and_mixed_directions():
    pts = np.array([[1.0, 5.0], [1.0, 5.0], [2.0, 6.0], [2.0, 4.0]])
    # FLOPs minimise, AP maximise: (2, 6) dominates (2, 4); (1, 5) twice stays on the front.
    assert pareto_mask(pts, ["minimize", "maximize"]).tolist() == [True, True, True, False]
    assert non_dominated_ranks(pts, ["minimize", "maximize"]).tolist() == [0, 0, 0, 1]
    assert pareto_indices(pts, ["minimize", "maximize"]).tolist() == [0, 1, 2]
    assert dominates([2, 6], [2, 4], ["minimize", "maximize"])
    assert not dominates([1, 5], [1, 5])


def test_direction_errors():
    with pytest.raises(ValueError, match=r"directions\[1\]: must be 'minimize' or 'maximize', got 'up'"):
        pareto_mask([[1, 2]], ["minimize", "up"])
    with pytest.raises(ValueError, match="need one per objective"):
        pareto_mask([[1, 2]], ["minimize"])


# ---- hypervolume -------------------------------------------------------------------------------------------
@SETTINGS
@given(int_points(2, 12), st.lists(DIRS, min_size=2, max_size=2))
def test_hypervolume_2d_equals_grid_count(points, directions):
    ref_min = np.array([5.0, 5.0])  # some points lie on or beyond it
    signs = np.array([1 if d == "minimize" else -1 for d in directions])
    ref = ref_min * signs  # the same reference in the original units
    got = hypervolume(points * signs, ref, directions)
    assert got == brute_hv_grid(points[np.all(points < ref_min, axis=1)], ref_min)


@SETTINGS
@given(int_points(3, 8, hi=4))
def test_hypervolume_3d_equals_grid_count(points):
    ref = np.array([4.0, 4.0, 4.0])
    assert hypervolume(points, ref) == brute_hv_grid(points[np.all(points < ref, axis=1)], ref)


@SETTINGS
@given(float_points(2), st.floats(0, 12), st.floats(0, 12))
def test_hypervolume_2d_equals_inclusion_exclusion(points, r0, r1):
    ref = np.array([r0, r1])
    assert hypervolume(points, ref) == pytest.approx(brute_hv_incl_excl(points, ref), rel=1e-9, abs=1e-9)


@SETTINGS
@given(float_points(3, 6), st.lists(DIRS, min_size=3, max_size=3))
def test_hypervolume_3d_equals_inclusion_exclusion(points, directions):
    ref_min = np.array([8.0, 8.0, 8.0])
    signs = np.array([1 if d == "minimize" else -1 for d in directions])
    got = hypervolume(points * signs, ref_min * signs, directions)
    assert got == pytest.approx(brute_hv_incl_excl(points, ref_min), rel=1e-9, abs=1e-9)


@SETTINGS
@given(float_points(4, 5))
def test_hypervolume_4d_equals_inclusion_exclusion(points):
    ref = np.full(4, 9.0)
    assert hypervolume(points, ref) == pytest.approx(brute_hv_incl_excl(points, ref), rel=1e-9, abs=1e-9)


def test_hypervolume_flops_ap_example_and_edge_cases():
    d = ["minimize", "maximize"]
    assert hypervolume([[100, 40]], [300, 0], d) == 8000
    # a duplicate and a dominated point add nothing; a point worse than the reference in FLOPs adds nothing
    assert hypervolume([[100, 40], [100, 40], [200, 30], [400, 60]], [300, 0], d) == 8000
    # a point on the reference adds nothing; failed/infeasible points are ignored
    assert hypervolume([[300, 50], [100, 40], [50, float("nan")]], [300, 0], d) == 8000
    assert hypervolume([[100, 40], [50, 45]], [300, 0], d, feasible=[True, False]) == 8000
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0
    with pytest.raises(ValueError, match="reference: needs one value per objective"):
        hypervolume([[1, 2]], [1, 2, 3])


# ---- crowding and knee -------------------------------------------------------------------------------------
def test_crowding_distance_known_set():
    pts = np.array([[0, 10], [1, 6], [3, 4], [6, 1], [10, 0]], dtype=float)
    cd = crowding_distance(pts)
    assert math.isinf(cd[0]) and math.isinf(cd[4])
    # f0 span 10: (3-0)/10, (6-1)/10, (10-3)/10; f1 span 10: (10-4)/10, (6-1)/10, (4-0)/10
    assert cd[1:4] == pytest.approx([0.3 + 0.6, 0.5 + 0.5, 0.7 + 0.4])
    assert np.all(np.isinf(crowding_distance([[1, 2], [3, 4]])))
    assert crowding_distance(pts, ["minimize", "maximize"]) == pytest.approx(cd)  # symmetric measure


def test_knee_on_a_quarter_circle():
    # convex front (minimise both): (1 - cos t, 1 - sin t); the knee is t = pi/4
    t = np.linspace(0, np.pi / 2, 9)
    pts = np.stack([1 - np.cos(t), 1 - np.sin(t)], axis=1)
    assert knee_point(pts) == 4
    # the same trade-off as (FLOPs min, AP max), shuffled, with dominated and infeasible points around
    rng = np.random.default_rng(0)
    order = rng.permutation(9)
    mixed = np.stack([100 * (1 - np.cos(t)), 50 * np.sin(t)], axis=1)[order]
    extra = np.array([[60, 10], [1, 60]])  # dominated; better than all but infeasible
    allp = np.vstack([mixed, extra])
    feasible = np.array([True] * 10 + [False])
    k = knee_point(allp, ["minimize", "maximize"], feasible)
    assert k == int(np.flatnonzero(order == 4)[0])


def test_knee_on_known_l_shape_and_straight_line():
    assert knee_point([[0, 1], [0.5, 0.1], [0.1, 0.2], [1, 0]]) == 2
    line = np.stack([np.linspace(0, 1, 5), 1 - np.linspace(0, 1, 5)], axis=1)
    assert knee_point(line) == 2  # all on the chord: the one closest to the ideal point
    assert knee_point([[3, 3]]) == 0
    assert knee_point([[1, 2], [2, 1]]) == 0
    assert knee_point([[1, 2]], feasible=[False]) is None
