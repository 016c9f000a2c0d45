"""The GP the known-cost sampler models AP with: Optuna's own GP code (`optuna._gp`, what GPSampler uses:
per-dimension length scales, a noise term, a prior on both), reached only through this module.

`fit_kernel` fits (or, given the last fit, warm-starts) the kernel hyperparameters; `GPModel` is a regressor on
those hyperparameters with `posterior` and `add_fantasies` in numpy. Without these internals (`HAVE_GP_INTERNALS`
False) the known-cost sampler is unavailable and `auto` uses `gp-tpe` (public GPSampler and TPESampler).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import torch
    from optuna._gp import gp as _gp
    from optuna._gp import prior as _prior

    HAVE_GP_INTERNALS = all(hasattr(_gp, n) for n in ("fit_kernel_params", "GPRegressor")) and all(
        hasattr(_gp.GPRegressor, n) for n in ("_cache_matrix", "posterior")) and all(
        hasattr(_prior, n) for n in ("default_log_prior", "DEFAULT_MINIMUM_NOISE_VAR"))
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed Optuna
    HAVE_GP_INTERNALS = False

__all__ = ["HAVE_GP_INTERNALS", "GPModel", "fit_kernel"]


def fit_kernel(X: np.ndarray, y: np.ndarray, warm: Any = None) -> Any:
    """Kernel hyperparameters for inputs `X` (scaled to [0, 1]) and standardised `y`; `warm`: the last fit."""
    return _gp.fit_kernel_params(X=X, Y=y, is_categorical=np.zeros(X.shape[1], bool),
                                 log_prior=_prior.default_log_prior, minimum_noise=_prior.DEFAULT_MINIMUM_NOISE_VAR,
                                 deterministic_objective=False, gpr_cache=warm)


class GPModel:
    """The GP posterior on (X, y) with fitted kernel hyperparameters `kernel` (from `fit_kernel`). A kernel
    fitted on exactly (X, y) is that posterior already and is used as is (no second factorisation)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, kernel: Any, *, fitted_on_all: bool = False) -> None:
        self._X, self._y, self._kernel = X, y, kernel
        self._reg = kernel if fitted_on_all else self._regressor(X, y)

    def _regressor(self, X: np.ndarray, y: np.ndarray) -> Any:
        k = self._kernel
        reg = _gp.GPRegressor(torch.zeros(X.shape[1], dtype=torch.bool), torch.from_numpy(X), torch.from_numpy(y),
                              k.inverse_squared_lengthscales, k.kernel_scale, k.noise_var)
        reg._cache_matrix()
        return reg

    def posterior(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance at each row of `X`."""
        with torch.no_grad():
            m, v = self._reg.posterior(torch.from_numpy(X))
        return m.numpy(), v.numpy()

    def add_fantasies(self, X: np.ndarray, y: np.ndarray) -> None:
        """Condition on pending points `X` as if they had returned `y` (kriging believer): the same
        hyperparameters on the data plus the fantasies, one factorisation (Optuna's own running-data API differs
        between releases, its constructor and posterior do not)."""
        self._X, self._y = np.vstack([self._X, X]), np.concatenate([self._y, y])
        self._reg = self._regressor(self._X, self._y)
