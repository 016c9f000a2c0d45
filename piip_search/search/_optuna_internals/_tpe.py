"""A cheaper TPE with the same samples: Optuna's TPESampler (multivariate, group) with two caches that leave its
samples unchanged (tests/search/test_samplers.py checks this against TPESampler) and cut its ask cost at 1,000
trials by about a quarter: the group decomposition takes in each finished trial once (Optuna re-adds every trial
at every ask, a no-op for trials already added), and the split of the trials into "below" and "above" is made
once per ask rather than once per parameter group (the split depends on the trials only)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

try:  # TPE's private parts the cached TPE reuses; without them `tpe` is Optuna's plain TPESampler
    from optuna.samplers._tpe.sampler import _split_trials, default_gamma, default_gamma_multiobjective
    from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup

    HAVE_TPE_INTERNALS = True
except (ImportError, AttributeError):  # pragma: no cover
    _GroupDecomposedSearchSpace = object  # type: ignore[assignment,misc]
    HAVE_TPE_INTERNALS = False

log = logging.getLogger("piip_search.search")


class _IncrementalGroups(_GroupDecomposedSearchSpace):
    """Optuna's group decomposition, adding each finished trial once (re-adding one changes nothing)."""

    def __init__(self) -> None:
        super().__init__(include_pruned=True)
        self._added: set[int] = set()

    def calculate(self, study: optuna.Study, use_cache: bool = False) -> _SearchSpaceGroup:
        if self._study_id is None:
            self._study_id = study._study_id
        elif self._study_id != study._study_id:
            raise ValueError("`_GroupDecomposedSearchSpace` cannot handle multiple studies.")
        for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED),
                                   use_cache=use_cache):
            if t._trial_id not in self._added:
                self._added.add(t._trial_id)
                self._search_space.add_distributions(t.distributions)
        return copy.deepcopy(self._search_space)


class CachedTPESampler(optuna.samplers.TPESampler):
    """TPESampler with the same samples, cheaper per ask on large studies (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._use_cache = HAVE_TPE_INTERNALS
        if self._use_cache and getattr(self, "_group_decomposed_search_space", None) is not None:
            self._group_decomposed_search_space = _IncrementalGroups()
        self._split_cache: tuple[tuple, tuple[list[FrozenTrial], list[FrozenTrial]]] | None = None

    def _sample(self, study: optuna.Study, trial: FrozenTrial,
                search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not self._use_cache:
            return super()._sample(study, trial, search_space)
        try:
            return self._cached_sample(study, trial, search_space)
        except AttributeError as e:  # a private TPE member moved in this Optuna: plain TPE from now on
            log.warning("CachedTPESampler falls back to Optuna's TPESampler (%s)", e)
            self._use_cache = False
            return super()._sample(study, trial, search_space)

    def _cached_sample(self, study: optuna.Study, trial: FrozenTrial,
                       search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        # TPESampler._sample (Optuna 5.0), the split cached per (trial, trials and their states)
        liar = self._constant_liar  # Optuna 5 default: running trials count as "above"
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) if liar else \
            (TrialState.COMPLETE, TrialState.PRUNED)
        trials = study._get_trials(deepcopy=False, states=states, use_cache=not liar)
        if liar:
            trials = [t for t in trials if t.number != trial.number]
        if self._gamma is None:
            self._gamma = default_gamma if len(study.directions) <= 1 else default_gamma_multiobjective
        n_below = self._gamma(sum(t.state != TrialState.RUNNING for t in trials))
        key = (trial._trial_id, n_below, tuple((t._trial_id, t.state) for t in trials))
        cached = self._split_cache
        if cached is None or cached[0] != key:
            cached = self._split_cache = (key, _split_trials(study, trials, n_below))
        below_trials, above_trials = cached[1]

        mpe_below = self._build_parzen_estimator(study, search_space, below_trials, handle_below=True)
        mpe_above = self._build_parzen_estimator(study, search_space, above_trials, handle_below=False)
        samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
        ret = self._compare(samples_below, acq_func_vals)
        for param_name, dist in search_space.items():
            ret[param_name] = dist.to_external_repr(ret[param_name])
        return ret
