"""Pareto tools for mixed min/max objectives: non-dominated ranks, crowding, hypervolume, knee. Pure numpy.

Conventions (every function here):

* `points` is an array-like of shape (n, m): one row per trial, one column per objective.
* `directions` gives one entry per column, "minimize" or "maximize" (an `optuna.study.StudyDirection`
  works too); None means every objective is minimised. Internally maximised columns are negated, so
  "better" always means "smaller" after `as_minimization`.
* Dominance: `a` dominates `b` when `a` is no worse in every objective and strictly better in at least one.
  Identical points do not dominate each other (duplicates share a rank and are all on the front).
* `feasible` is an optional boolean mask of length n. A row that is infeasible or has a non-finite value
  (NaN/inf: a failed trial) is never on the front, never counts towards a hypervolume, and is ranked after
  every feasible row.
* Hypervolume: the measure of the region dominated by the points and bounded by an explicit `reference`
  point, given in the original objective units (e.g. `(max_gflops, 0.0)` for (FLOPs min, AP max)). A point
  contributes only if it is strictly better than the reference in every objective; points on or beyond
  the reference add nothing. Exact: O(n log n) in 2-D, recursive slicing over the last objective for m > 2
  (fine for the few hundred points of a search, exponential in m).
* Knee: among the feasible Pareto set, objectives normalised to [0, 1] over the front (0 = best), the point
  farthest from the line (hyperplane for m > 2) through the extreme points, on the side of the ideal point.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_minimization",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "knee_point",
    "non_dominated_ranks",
    "pareto_indices",
    "pareto_mask",
]

#: Block size of the vectorised dominance test for m > 2 objectives (bounds memory at n * block * m).
_BLOCK = 512


# ---- helpers ----------------------------------------------------------------------------------------------
def _signs(directions: Sequence[Any] | None, m: int) -> np.ndarray:
    """+1 for minimised columns, -1 for maximised ones."""
    if directions is None:
        return np.ones(m)
    if len(directions) != m:
        raise ValueError(f"directions: need one per objective ({m}), got {len(directions)}: "
                         f"{list(directions)}")
    out = np.empty(m)
    for j, d in enumerate(directions):
        name = str(getattr(d, "name", d)).lower()
        if name in ("minimize", "min"):
            out[j] = 1.0
        elif name in ("maximize", "max"):
            out[j] = -1.0
        else:
            raise ValueError(f"directions[{j}]: must be 'minimize' or 'maximize', got {d!r}")
    return out


def _as_2d(points: Any) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim == 1 and arr.size == 0:
        return arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"points: must be a 2-D array (n points x m objectives), got shape {arr.shape}")
    return arr


def as_minimization(points: Any, directions: Sequence[Any] | None = None) -> np.ndarray:
    """A float copy of `points` with maximised columns negated (so smaller is better everywhere)."""
    arr = _as_2d(points)
    return arr * _signs(directions, arr.shape[1]) if arr.size else arr.copy()


def _valid(arr: np.ndarray, feasible: Any | None) -> np.ndarray:
    ok = np.all(np.isfinite(arr), axis=1) if arr.size else np.zeros(len(arr), dtype=bool)
    if feasible is not None:
        f = np.asarray(feasible, dtype=bool)
        if f.shape != (len(arr),):
            raise ValueError(f"feasible: must be a boolean mask of length {len(arr)}, got shape {f.shape}")
        ok &= f
    return ok


def dominates(a: Any, b: Any, directions: Sequence[Any] | None = None) -> bool:
    """Whether point `a` dominates point `b` (no worse everywhere, strictly better somewhere)."""
    a_, b_ = as_minimization([a, b], directions)
    return bool(np.all(a_ <= b_) and np.any(a_ < b_))


# ---- non-dominated sorting --------------------------------------------------------------------------------
def _ranks_2d(p: np.ndarray) -> np.ndarray:
    """Front index of each row of a 2-D minimisation problem, O(n log n).

    Distinct points sorted by (f0, f1): every earlier point with f1 <= this f1 dominates it, so its rank is
    the number of fronts whose smallest f1 so far is <= its f1 (fronts' smallest f1 are non-decreasing).
    """
    uniq, inverse = np.unique(p, axis=0, return_inverse=True)  # sorted lexicographically by (f0, f1)
    front_min: list[float] = []
    ranks_u = np.empty(len(uniq), dtype=int)
    for i, f1 in enumerate(uniq[:, 1].tolist()):
        k = bisect.bisect_right(front_min, f1)  # np.searchsorted would convert the list on every call
        if k == len(front_min):
            front_min.append(f1)
        else:
            front_min[k] = f1
        ranks_u[i] = k
    return ranks_u[inverse.reshape(-1)]


def _ranks_nd(p: np.ndarray) -> np.ndarray:
    """Front index by peeling: count dominators of each point, remove the front, repeat (vectorised)."""
    n = len(p)
    # dominated_by[i] = number of points dominating i; computed in blocks to bound memory.
    dom = np.zeros((n, n), dtype=bool)  # dom[i, j]: i dominates j
    for s in range(0, n, _BLOCK):
        blk = p[s:s + _BLOCK, None, :]
        dom[s:s + _BLOCK] = np.all(blk <= p[None], axis=2) & np.any(blk < p[None], axis=2)
    ranks = np.full(n, -1, dtype=int)
    count = dom.sum(axis=0)
    current = np.flatnonzero(count == 0)
    r = 0
    while current.size:
        ranks[current] = r
        count = count - dom[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        r += 1
    return ranks


def non_dominated_ranks(points: Any, directions: Sequence[Any] | None = None,
                        feasible: Any | None = None) -> np.ndarray:
    """Non-dominated rank of every point: 0 = the Pareto front, 1 = the front once rank 0 is removed, ...

    Infeasible or non-finite rows all get the rank right after the worst feasible one.
    """
    arr = as_minimization(points, directions)
    n = len(arr)
    ranks = np.zeros(n, dtype=int)
    if n == 0:
        return ranks
    ok = _valid(arr, feasible)
    if ok.any():
        p = arr[ok]
        ranks[ok] = _ranks_2d(p) if p.shape[1] == 2 else _ranks_nd(p)
        ranks[~ok] = ranks[ok].max() + 1
    return ranks


def pareto_mask(points: Any, directions: Sequence[Any] | None = None,
                feasible: Any | None = None) -> np.ndarray:
    """Boolean mask of the feasible, finite, non-dominated points (duplicates of a front point included)."""
    arr = as_minimization(points, directions)
    ok = _valid(arr, feasible)
    mask = np.zeros(len(arr), dtype=bool)
    if ok.any():
        mask[ok] = non_dominated_ranks(arr[ok]) == 0
    return mask


def pareto_indices(points: Any, directions: Sequence[Any] | None = None,
                 feasible: Any | None = None) -> np.ndarray:
    """Indices of the Pareto set, ordered by the first objective from best to worst (ties: by index)."""
    mask = pareto_mask(points, directions, feasible)
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return idx
    key = as_minimization(points, directions)[idx, 0]
    return idx[np.argsort(key, kind="stable")]


# ---- crowding distance ------------------------------------------------------------------------------------
def crowding_distance(points: Any, directions: Sequence[Any] | None = None) -> np.ndarray:
    """NSGA-II crowding distance of each point within the given set (usually one front).

    For every objective the points are sorted (stable, so equal values keep index order); the first and last
    get +inf, an interior point adds (next - previous) / (max - min). An objective with max == min adds
    nothing. Sets of one or two points are all +inf. Directions do not change the result (the measure is
    symmetric); the argument exists for a uniform signature.
    """
    arr = as_minimization(points, directions)
    n = len(arr)
    dist = np.zeros(n)
    if n <= 2:
        dist[:] = np.inf
        return dist
    for j in range(arr.shape[1]):
        order = np.argsort(arr[:, j], kind="stable")
        v = arr[order, j]
        span = v[-1] - v[0]
        if not np.isfinite(span) or span <= 0:
            continue
        dist[order[0]] = np.inf
        dist[order[-1]] = np.inf
        dist[order[1:-1]] += (v[2:] - v[:-2]) / span
    return dist


# ---- hypervolume -------------------------------------------------------------------------------------------
def _hv2d(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of minimisation points that all strictly dominate `ref`, O(n log n)."""
    order = np.lexsort((p[:, 1], p[:, 0]))  # by f0, then f1
    vol, best_f1 = 0.0, ref[1]
    for f0, f1 in p[order]:
        if f1 < best_f1:
            vol += (ref[0] - f0) * (best_f1 - f1)
            best_f1 = f1
    return float(vol)


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume by slicing along the last objective; 2-D and 1-D base cases."""
    if len(p) == 0:
        return 0.0
    m = p.shape[1]
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        return _hv2d(p, ref)
    p = p[pareto_mask(p)]
    p = p[np.argsort(p[:, -1], kind="stable")]
    vol = 0.0
    for i in range(len(p)):
        upper = p[i + 1, -1] if i + 1 < len(p) else ref[-1]
        height = upper - p[i, -1]
        if height > 0:
            vol += height * _hv(p[: i + 1, :-1], ref[:-1])
    return float(vol)


def hypervolume(points: Any, reference: Sequence[float], directions: Sequence[Any] | None = None,
                feasible: Any | None = None) -> float:
    """Exact hypervolume dominated by `points` and bounded by `reference` (both in the original units).

    Example: FLOPs (minimise) against AP (maximise) with reference (300 GFLOPs, 0 AP): a point
    (100, 40) alone gives (300 - 100) * (40 - 0) = 8000.
    """
    arr = as_minimization(points, directions)
    m = arr.shape[1] if arr.size else len(reference)
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if ref.size != m:
        raise ValueError(f"reference: needs one value per objective ({m}), got {list(reference)}")
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"reference: must be finite, got {list(reference)}")
    if arr.size == 0:
        return 0.0
    ref = ref * _signs(directions, m)
    ok = _valid(arr, feasible)
    p = arr[ok]
    p = p[np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    return _hv(p, ref)


# ---- knee --------------------------------------------------------------------------------------------------
def knee_point(points: Any, directions: Sequence[Any] | None = None,
               feasible: Any | None = None) -> int | None:
    """Index (into `points`) of the knee of the feasible Pareto set, or None if no point is feasible.

    The front is normalised per objective to [0, 1] (0 = best on the front). The extreme points (best in each
    objective) span a line (hyperplane); the knee is the front point with the largest signed distance to it,
    positive towards the ideal point (0, ..., 0): the most "bulging" trade-off. On a straight or concave front
    every distance is <= 0 and the point nearest to the line wins. Ties go to the point closest to the
    ideal point, then to the lowest index (so one or two points give the one closest to the ideal point).
    """
    idx = np.flatnonzero(pareto_mask(points, directions, feasible))
    if idx.size == 0:
        return None
    f = as_minimization(points, directions)[idx]
    lo, hi = f.min(axis=0), f.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    z = (f - lo) / span
    m = z.shape[1]
    ext = np.array([z[np.lexsort((z.sum(axis=1), z[:, j]))[0]] for j in range(m)])
    # Hyperplane w.x = 1 through the extremes; fall back to sum(x) = 1 when they are degenerate.
    w = np.ones(m)
    if np.linalg.matrix_rank(ext) == m:
        sol = np.linalg.solve(ext, np.ones(m))
        if np.all(np.isfinite(sol)) and np.linalg.norm(sol) > 0:
            w = sol
    signed = np.round((1.0 - z @ w) / np.linalg.norm(w), 12)  # rounding merges float-noise ties
    to_ideal = np.linalg.norm(z, axis=1)
    best = np.lexsort((idx, to_ideal, -signed))[0]
    return int(idx[best])
