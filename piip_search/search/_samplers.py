"""The samplers by name, and the default ("auto"): `known-cost` where the space allows it, else `gp-tpe`.

`auto` is `known-cost` (`_known_cost.py`: AP modelled alone, FLOPs/params counted exactly) whenever the space's
objectives are one counted cost and one measured, maximised metric: it had the highest median hypervolume at
50/100/200 trials on the objectives of benchmarks/bench_sampler_suite.py but plateau + cliff, where every
sampler is within 0.01 of the front (README, "Sampler suite"). Other objective sets (three
objectives, two measured ones, a minimised metric) get `gp-tpe`, the previous default, below.

`gp-tpe`: Optuna's GPSampler for the first trials, multivariate TPE after. GP found the `paper.yaml` front
fastest up to 200 trials on bench_search_efficiency.py's objective (not on the suite's), but its ask cost
grows with the trials it fits (measured ~1.0 s at 100 trials, 1.3 s at 200, 2.6 s at 400); TPE's grows about
linearly and stays in the tens of ms at 1,000 trials (benchmarks/bench_driver_overhead.py). So: GP while the
study has fewer than `switch_at` COMPLETE trials, TPE from then on. The choice is made once per trial (in
`before_trial`) and every later call for that trial goes to the same sampler; once switched, the study is not
counted again.

The `tpe` sampler is `CachedTPESampler` (in `_optuna_internals/_tpe.py`, since it reuses TPE's private parts).

Samplers are chosen by name from `SAMPLERS` (a registry): adding one is registering a factory `seed -> sampler`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from piip_search._registry import Registry
from piip_search.errors import SearchSpaceError
from piip_search.search._optuna_internals import HAVE_GP_INTERNALS, BatchGPSampler, CachedTPESampler, trial_id_of

#: COMPLETE trials after which "gp-tpe" leaves GP for TPE: GP's proven range (README, search efficiency).
AUTO_SWITCH_AT = 200


class GPThenTPESampler(BaseSampler):
    """`gp-tpe`: `gp` while the study has fewer than `switch_at` COMPLETE trials, then `tpe`; both seeded."""

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
        s = self._by_trial.get(trial_id_of(trial))
        if s is None:
            s = self._by_trial[trial_id_of(trial)] = self._choose(study)
        return s

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._by_trial[trial_id_of(trial)] = s = self._choose(study)
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
        s = self._by_trial.pop(trial_id_of(trial), None) or self._choose(study)
        s.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.gp.reseed_rng()
        self.tpe.reseed_rng()


def _quiet(factory: Callable[[], BaseSampler]) -> BaseSampler:
    with warnings.catch_warnings():  # `group`, GPSampler: marked experimental; they are what the spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return factory()


SAMPLERS: Registry[Callable[[int | None, Any], BaseSampler]] = Registry("sampler")  # (seed, space) -> sampler


@SAMPLERS.register("auto")
def _auto(seed: int | None, space: Any = None) -> BaseSampler:
    """`known-cost` where the space allows it (module docstring), else `gp-tpe`; without a space, `gp-tpe`."""
    from piip_search.search._known_cost import supports

    if space is not None and supports(space) and HAVE_GP_INTERNALS:
        return SAMPLERS.get("known-cost")(seed, space)
    return SAMPLERS.get("gp-tpe")(seed, space)


@SAMPLERS.register("gp-tpe")
def _gp_tpe(seed: int | None, space: Any = None) -> BaseSampler:
    return GPThenTPESampler(SAMPLERS.get("gp")(seed, space), SAMPLERS.get("tpe")(seed, space), switch_at=AUTO_SWITCH_AT)


@SAMPLERS.register("nsga2")
def _nsga2(seed: int | None, space: Any = None) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)


@SAMPLERS.register("tpe")
def _tpe(seed: int | None, space: Any = None) -> BaseSampler:
    return _quiet(lambda: CachedTPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True))


@SAMPLERS.register("gp")
def _gp(seed: int | None, space: Any = None) -> BaseSampler:
    # conditional b2.*/b3.* fall back to independent sampling by design: no warning per trial
    # BatchGPSampler: GPSampler's own proposals, plus the acquisition's other optima for the proposal queue
    return _quiet(lambda: BatchGPSampler(seed=seed, n_startup_trials=10, warn_independent_sampling=False))


@SAMPLERS.register("random")
def _random(seed: int | None, space: Any = None) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("known-cost")
def _known_cost(seed: int | None, space: Any = None) -> BaseSampler:
    """AP modelled alone, FLOPs exact (`_known_cost.py`); it needs the space to count candidates."""
    from piip_search.errors import SearchSpaceError
    from piip_search.search._known_cost import KnownCostSampler

    if space is None:
        raise SearchSpaceError("sampler: known-cost needs the search space")
    return KnownCostSampler(space, seed=seed)


#: known-cost where the space allows it, else gp-tpe (module docstring; README "Sampler suite").
DEFAULT_SAMPLER = "auto"


def make_sampler(name: str, seed: int | None, *, switch_at: int = AUTO_SWITCH_AT,
                 space: Any = None) -> optuna.samplers.BaseSampler:
    """A seeded sampler from the `SAMPLERS` registry (`known-cost` needs `space`); constraints are read from
    `trial.constraints`."""
    if name not in SAMPLERS:
        raise SearchSpaceError(f"sampler: must be one of {list(SAMPLERS)}, got {name!r}")
    if name == "gp-tpe" and switch_at != AUTO_SWITCH_AT:  # benchmarks move the switch
        return GPThenTPESampler(make_sampler("gp", seed), make_sampler("tpe", seed), switch_at=switch_at)
    return SAMPLERS.get(name)(seed, space)
