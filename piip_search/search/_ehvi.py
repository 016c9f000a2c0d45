"""Closed-form expected hypervolume improvement in two dimensions (one exact cost, one Gaussian metric) over a
front staircase, and the subset of observations the known-cost sampler's GP is fitted on."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

__all__ = ["config_means", "expected_hvi", "front_staircase", "training_subset"]


def config_means(fingerprints: Sequence[str], ap: np.ndarray) -> np.ndarray:
    """Each evaluation's AP replaced by the mean over its config's evaluations (`repeats:`, other seeds)."""
    groups: dict[str, list[int]] = {}
    for i, fp in enumerate(fingerprints):
        groups.setdefault(fp, []).append(i)
    out = np.array(ap, dtype=float)
    for rows in groups.values():
        if len(rows) > 1:
            out[rows] = out[rows].mean()
    return out


def front_staircase(cost: np.ndarray, ap: np.ndarray, ref: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Non-dominated points (min cost, max AP) inside the reference box, sorted by cost (AP then increases)."""
    keep = (cost < ref[0]) & (ap > ref[1])
    c, a = cost[keep], ap[keep]
    order = np.lexsort((-a, c))
    fc, fa, best = [], [], -math.inf
    for i in order:
        if a[i] > best:
            fc.append(c[i])
            fa.append(a[i])
            best = a[i]
    return np.asarray(fc, float), np.asarray(fa, float)


def _psi(t: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[(Y - t)^+] for Y ~ N(mu, sd^2); t may be +inf (then 0)."""
    z = (mu - t) / sd
    out = sd * norm.pdf(z) + (mu - t) * norm.cdf(z)
    return np.where(np.isposinf(t), 0.0, out)


def expected_hvi(cost: np.ndarray, mu: np.ndarray, sd: np.ndarray, front_cost: np.ndarray,
                 front_ap: np.ndarray, ref: tuple[float, float]) -> np.ndarray:
    """Expected hypervolume improvement of candidates with exact `cost` and AP ~ N(mu, sd^2).

    The region a candidate (c, y) adds is, at each AP level a in (A0, y], the cost interval [c, g(a)), where A0
    is the best front AP at cost <= c and g(a) the cheapest front cost reaching a (else the reference cost).
    g is a step function over the staircase, so E[HVI] = sum_j width_j * (psi(lower_j) - psi(upper_j)).
    """
    cost, mu = np.asarray(cost, float)[:, None], np.asarray(mu, float)[:, None]
    sd = np.maximum(np.asarray(sd, float), 1e-12)[:, None]
    fc, fa = np.asarray(front_cost, float)[None, :], np.asarray(front_ap, float)[None, :]
    cheaper = fc <= cost
    a0 = np.maximum(np.max(np.where(cheaper, fa, -np.inf), axis=1, initial=-np.inf), ref[1])[:, None]
    prev_ap = np.concatenate([np.full((1, 1), ref[1]), fa[:, :-1]], axis=1)
    lower = np.maximum(prev_ap, a0)
    upper = fa
    valid = (~cheaper) & (upper > lower)
    width = np.where(valid, fc - cost, 0.0)
    terms = width * (_psi(np.where(valid, lower, 0.0), mu, sd) - _psi(np.where(valid, upper, 0.0), mu, sd))
    last = np.maximum(fa[:, -1:] if fa.size else np.full((1, 1), -np.inf), a0)
    tail = np.maximum(ref[0] - cost, 0.0) * _psi(last, mu, sd)
    return np.where(cost[:, 0] < ref[0], terms.sum(axis=1) + tail[:, 0], 0.0)


def training_subset(cost: np.ndarray, ap: np.ndarray, max_train: int) -> np.ndarray:
    """Indices of at most `max_train` points: the half with the smallest AP gap to the observed front (the best AP
    at equal or lower cost), then an even spread over cost of the others. Deterministic for the same data."""
    n = len(cost)
    if n <= max_train:
        return np.arange(n)
    order = np.argsort(cost, kind="stable")
    best_so_far = np.maximum.accumulate(ap[order])
    gap = np.empty(n)
    gap[order] = best_so_far - ap[order]
    near = np.argsort(gap, kind="stable")[: max_train // 2]
    rest = np.setdiff1d(order, near, assume_unique=True)
    rest = rest[np.argsort(cost[rest], kind="stable")]
    spread = rest[np.linspace(0, len(rest) - 1, max_train - len(near)).round().astype(int)]
    return np.unique(np.concatenate([near, spread]))
