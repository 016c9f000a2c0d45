"""A tree-ensemble surrogate of AP for the known-cost sampler: scikit-learn's random forest, in the form SMAC uses
(bootstrapped trees, 5/6 of the features per split, leaves of at least 2 points).

Its mean is the trees' mean and its variance their spread plus a small floor, so that EHVI still sees some
uncertainty at observed points. It has the `GPModel` interface (`posterior`, `add_fantasies`); pending trials are
added as data and the forest refitted. scikit-learn is imported when a forest is asked for, so it is needed only
by `KnownCostSampler(surrogate="forest")` (it is in the test extra, which the suite comparison runs under).
"""

from __future__ import annotations

import numpy as np

from piip_search.errors import PiipSearchError

__all__ = ["ForestModel"]

_VAR_FLOOR = 1e-4  # in units of the standardised AP's variance


class ForestModel:
    """A random forest on (X, y) with the posterior interface of `GPModel`."""

    def __init__(self, X: np.ndarray, y: np.ndarray, *, seed: int | None = None, n_trees: int = 64) -> None:
        try:
            from sklearn.ensemble import RandomForestRegressor
        except ImportError as e:  # pragma: no cover - scikit-learn is in the test extra
            raise PiipSearchError("sampler: the forest surrogate needs scikit-learn (pip install scikit-learn)"
                                   ) from e
        self._X, self._y = X, y
        self._forest = RandomForestRegressor(n_estimators=n_trees, max_features=5 / 6, min_samples_leaf=2,
                                             bootstrap=True, random_state=seed, n_jobs=1)
        self._forest.fit(X, y)

    def posterior(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance at each row of `X`: the trees' mean and spread."""
        per_tree = np.stack([t.predict(X) for t in self._forest.estimators_])
        return per_tree.mean(axis=0), per_tree.var(axis=0) + _VAR_FLOOR

    def add_fantasies(self, X: np.ndarray, y: np.ndarray) -> None:
        """Refit with pending points `X` as if they had returned `y` (kriging believer)."""
        self._X, self._y = np.vstack([self._X, X]), np.concatenate([self._y, y])
        self._forest.fit(self._X, self._y)
