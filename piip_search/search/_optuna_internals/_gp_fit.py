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
        if fitted_on_all:
            self._reg = kernel
            return
        self._reg = _gp.GPRegressor(torch.zeros(X.shape[1], dtype=torch.bool), torch.from_numpy(X),
                                    torch.from_numpy(y), kernel.inverse_squared_lengthscales, kernel.kernel_scale,
                                    kernel.noise_var)
        self._reg._cache_matrix()

    def posterior(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance at each row of `X`."""
        with torch.no_grad():
            m, v = self._reg.posterior(torch.from_numpy(X))
        return m.numpy(), v.numpy()

    def add_fantasies(self, X: np.ndarray, y: np.ndarray) -> None:
        """Condition on pending points `X` as if they had returned `y` (kriging believer)."""
        self._reg.append_running_data(torch.from_numpy(X), torch.from_numpy(y))
