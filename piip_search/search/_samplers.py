"""The default sampler ("auto"): Optuna's GPSampler for the first trials, multivariate TPE after; and that TPE.

GP found the `paper.yaml` front fastest up to 200 trials (benchmarks/bench_search_efficiency.py), but its ask
cost grows with the trials it fits (measured ~1.0 s at 100 trials, 1.3 s at 200, 2.6 s at 400); TPE's grows about
linearly and stays in the tens of ms at 1,000 trials (benchmarks/bench_driver_overhead.py). So: GP while the
study has fewer than `switch_at` COMPLETE trials, TPE from then on. The choice is made once per trial (in
`before_trial`) and every later call for that trial goes to the same sampler; once switched, the study is not
counted again.

`CachedTPESampler` is Optuna's TPESampler (multivariate, group) with two caches that leave its samples unchanged
(tests/search/test_samplers.py checks this against TPESampler) and cut its ask cost at 1,000 trials by about a
quarter: the group decomposition of the search space takes in each finished trial once (Optuna re-adds every trial
at every ask, a no-op for trials already added), and the split of the trials into "below" and "above" is made
once per ask rather than once per parameter group (the split depends on the trials only).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

try:  # Optuna internals the cached TPE reuses; another Optuna version falls back to plain TPESampler below
    from optuna.samplers._tpe.sampler import _split_trials, default_gamma, default_gamma_multiobjective
    from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup

    _HAVE_TPE_INTERNALS = True
except ImportError:  # pragma: no cover - depends on the installed Optuna
    _GroupDecomposedSearchSpace = object  # type: ignore[assignment,misc]
    _HAVE_TPE_INTERNALS = False

#: COMPLETE trials after which "auto" leaves GP for TPE: GP's proven range (README, search efficiency).
AUTO_SWITCH_AT = 200


class GPThenTPESampler(BaseSampler):
    """`gp` while the study has fewer than `switch_at` COMPLETE trials, then `tpe`; both are given seeded."""

    def __init__(self, gp: BaseSampler, tpe: BaseSampler, *, switch_at: int = AUTO_SWITCH_AT) -> None:
        self.gp, self.tpe, self.switch_at = gp, tpe, int(switch_at)
        self._switched = False
        self._by_trial: dict[int, BaseSampler] = {}  # trial id -> the sampler that handles it

    def _choose(self, study: optuna.Study) -> BaseSampler:
        if not self._switched:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._switched = len(done) >= self.switch_at
        return self.tpe if self._switched else self.gp

    def sampler_for(self, study: optuna.Study, trial: FrozenTrial) -> BaseSampler:
        s = self._by_trial.get(trial._trial_id)
        if s is None:
            s = self._by_trial[trial._trial_id] = self._choose(study)
        return s

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._by_trial[trial._trial_id] = s = self._choose(study)
        s.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler_for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.sampler_for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.sampler_for(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        s = self._by_trial.pop(trial._trial_id, None) or self._choose(study)
        s.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.gp.reseed_rng()
        self.tpe.reseed_rng()


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
        if self._group_decomposed_search_space is not None:
            self._group_decomposed_search_space = _IncrementalGroups()
        self._split_cache: tuple[tuple, tuple[list[FrozenTrial], list[FrozenTrial]]] | None = None

    def _sample(self, study: optuna.Study, trial: FrozenTrial,
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


if not _HAVE_TPE_INTERNALS:  # pragma: no cover
    CachedTPESampler = optuna.samplers.TPESampler  # type: ignore[misc,assignment]  # same samples, without the caches
