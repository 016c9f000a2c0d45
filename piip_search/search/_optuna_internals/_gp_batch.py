"""GPSampler that keeps every local maximum of its acquisition function, so one fit proposes a batch.

Optuna's GPSampler optimises its acquisition function (q-EHVI over the pending trials) from `n_local_search`
(10) starting points and keeps the best; on this project's spaces that optimisation is ~80% of a GP ask
(~1 s of CPU at 30 trials). `BatchGPSampler` runs the same optimisation with the same random numbers - so it
proposes exactly what GPSampler proposes (tests/search/test_proposals.py checks it) - and also keeps the other,
distinct local maxima in `last_alternatives`, best first, followed (when there are fewer local maxima than workers
to feed, often only 3-5 are distinct) by the distinct best of the 2,048 random points that seeded the local
searches, ranked by the same acquisition value. The proposal queue (`_proposals.py`) hands them to
other workers instead of having each worker fit and optimise again.

`_all_local_maxima` is Optuna 5.0's `optuna._gp.optim_mixed.optimize_acqf_mixed` returning every local search
result rather than the best one (Optuna has no public API for this). If those internals move, the sampler falls
back to GPSampler's own optimisation and proposes no alternatives (the queue then holds one config per fit).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import optuna

try:
    from optuna._gp import optim_mixed as _optim_mixed

    _HAVE_GP_INTERNALS = hasattr(_optim_mixed, "local_search_mixed_batched")
except ImportError:  # pragma: no cover - depends on the installed Optuna
    _HAVE_GP_INTERNALS = False

__all__ = ["MAX_ALTERNATIVES", "BatchGPSampler"]

#: alternatives kept per ask: the other local maxima first, then the best of the random preliminary samples
MAX_ALTERNATIVES = 15


def _all_local_maxima(acqf: Any, *, warmstart: np.ndarray | None, n_preliminary_samples: int,
                      n_local_search: int, tol: float, rng: np.random.RandomState
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`optimize_acqf_mixed` (Optuna 5.0), same random numbers, returning every local search's end point and
    value, and the random preliminary samples and their values."""
    if warmstart is None:
        warmstart = np.empty((0, acqf.search_space.dim))
    sampled_xs = acqf.search_space.sample_normalized_params(n_preliminary_samples, rng=rng)
    f_vals = acqf.eval_acqf_no_grad(sampled_xs)
    max_i = np.argmax(f_vals)
    probs = np.exp(f_vals - f_vals[max_i])
    probs[max_i] = 0.0
    probs /= probs.sum()
    n_non_zero = int(np.count_nonzero(probs > 0.0))
    n_additional = min(n_local_search - len(warmstart) - 1, n_non_zero)
    chosen = np.array([max_i])
    if n_additional > 0:
        chosen = np.append(chosen, rng.choice(len(sampled_xs), size=n_additional, replace=False, p=probs))
    x_starts = np.vstack([sampled_xs[chosen, :], warmstart])
    xs, fvals = _optim_mixed.local_search_mixed_batched(acqf, x_starts, tol=tol)
    return xs, fvals, sampled_xs, f_vals


class BatchGPSampler(optuna.samplers.GPSampler):
    """GPSampler (same proposals) that also remembers the other local maxima of its last acquisition."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_alternatives: list[dict[str, Any]] = []  # relative params, best first, the chosen one excluded

    def _optimize_acqf(self, acqf: Any, best_params: np.ndarray | None) -> np.ndarray:
        self.last_alternatives = []
        if not _HAVE_GP_INTERNALS:  # pragma: no cover
            return super()._optimize_acqf(acqf, best_params)
        xs, fvals, prelim_xs, prelim_f = _all_local_maxima(
            acqf, warmstart=best_params, n_preliminary_samples=self._n_preliminary_samples,
            n_local_search=self._n_local_search, tol=self._tol, rng=self._rng.rng)
        best = int(np.argmax(fvals))  # what GPSampler picks (first of equal maxima)
        seen = {_key(acqf.search_space.get_unnormalized_param(xs[best]))}
        candidates = [xs[i] for i in np.argsort(-fvals, kind="stable")]
        candidates += [prelim_xs[i] for i in np.argsort(-prelim_f, kind="stable")[:4 * MAX_ALTERNATIVES]]
        for x in candidates:
            params = acqf.search_space.get_unnormalized_param(x)
            if _key(params) not in seen and len(self.last_alternatives) < MAX_ALTERNATIVES:
                seen.add(_key(params))
                self.last_alternatives.append(params)
        return xs[best]


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
