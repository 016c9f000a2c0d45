"""The "auto" sampler (GP, then TPE), the journal file's fsync policy, and the incremental duplicate index."""

from __future__ import annotations

import os

import optuna
import pytest

from piip_search.errors import SearchSpaceError
from piip_search.search._driver import SearchDriver
from piip_search.search._optuna_internals import CachedTPESampler
from piip_search.search._optuna_internals._tpe import _IncrementalGroups
from piip_search.search._samplers import DEFAULT_SAMPLER, GPThenTPESampler, make_sampler
from piip_search.search._samplers import SAMPLERS as SAMPLER_REGISTRY
from piip_search.search._storage import open_storage
from piip_search.search._study import open_study
from piip_search.search.space import SAMPLER_NAMES
from tests.search import fake_evaluators
from tests.search.test_driver import space_of

optuna.logging.set_verbosity(optuna.logging.WARNING)


class Recording(optuna.samplers.RandomSampler):
    """A random sampler that records the trials it was asked about."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.asked: set[int] = set()
        self.told: set[int] = set()

    def before_trial(self, study, trial):
        self.asked.add(trial.number)

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.asked.add(trial.number)
        return super().sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        self.told.add(trial.number)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2, 2)
    k = trial.suggest_categorical("k", ["a", "b"])
    if trial.number == 2:
        raise optuna.TrialPruned()  # not COMPLETE: does not count towards the switch
    return x * x + (k == "b")


def test_auto_switches_from_gp_to_tpe_after_k_complete_trials():
    gp, tpe = Recording(0), Recording(1)
    study = optuna.create_study(sampler=GPThenTPESampler(gp, tpe, switch_at=4))
    study.optimize(_objective, n_trials=9)
    # trials 0-4 start with fewer than 4 COMPLETE trials (trial 2 was pruned); from trial 5 on, TPE
    assert gp.asked == gp.told == {0, 1, 2, 3, 4}
    assert tpe.asked == tpe.told == {5, 6, 7, 8}


def test_make_sampler_names():
    assert DEFAULT_SAMPLER == "auto" and set(SAMPLER_REGISTRY.keys()) == set(SAMPLER_NAMES)
    for name in SAMPLER_NAMES:
        assert isinstance(make_sampler(name, 0, space=space_of()), optuna.samplers.BaseSampler)
    auto = make_sampler("gp-tpe", 0, switch_at=7)
    assert isinstance(auto, GPThenTPESampler) and auto.switch_at == 7
    assert isinstance(auto.gp, optuna.samplers.GPSampler) and isinstance(auto.tpe, optuna.samplers.TPESampler)
    assert space_of(sampler="auto").sampler == "auto"
    with pytest.raises(SearchSpaceError):
        make_sampler("cmaes", 0)


def test_auto_is_known_cost_where_the_objectives_allow_it_else_gp_then_tpe():
    from piip_search.search._known_cost import KnownCostSampler

    assert isinstance(make_sampler("auto", 0, space=space_of()), KnownCostSampler)  # flops + ap
    assert isinstance(make_sampler("auto", 0, space=space_of(objectives=[{"params": "minimize"}, {"ap": "maximize"}])),
                      KnownCostSampler)
    for objectives in ([{"flops": "minimize"}, {"latency_ms": "minimize"}],  # a measured objective, minimised
                       [{"flops": "minimize"}, {"params": "minimize"}, {"ap": "maximize"}]):  # three objectives
        assert isinstance(make_sampler("auto", 0, space=space_of(objectives=objectives)), GPThenTPESampler)
    assert isinstance(make_sampler("auto", 0), GPThenTPESampler)  # no space to count with


def test_auto_before_the_switch_is_gp():
    """Delegation changes nothing: the same seed gives GP's own trials (12 trials: one GP fit after startup)."""
    def run(sampler):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 0.5) ** 2 + t.suggest_int("n", 0, 3), n_trials=12)
        return [t.params for t in study.trials]

    assert run(make_sampler("auto", 3)) == run(make_sampler("gp-tpe", 3)) == run(make_sampler("gp", 3))


def test_gp_tpe_runs_real_gp_and_tpe_in_the_driver(tmp_path):
    space = space_of()
    study = open_study(space, name="a", storage_url=None, trials_dir=tmp_path, sampler="gp-tpe", seed=0,
                       resume=False)
    study.sampler.switch_at = 3
    outs = SearchDriver(study, space, study_path=tmp_path / "a", evaluator=fake_evaluators.evaluate).run(
        6, progress=False)
    assert len(outs) == 6 and study.sampler._switched
    assert study.user_attrs["sampler"] == "gp-tpe"


def test_journal_fsyncs_only_finished_trials(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    storage = open_storage(None, tmp_path, "j", create=True)
    study = optuna.create_study(study_name="j", storage=storage)
    other = optuna.load_study(study_name="j", storage=open_storage(None, tmp_path, "j", create=False))
    synced.clear()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("a", 1)
    assert synced == []
    # ... but another worker (its own storage object on the same file) sees them at once
    (seen,) = other.get_trials(deepcopy=False)
    assert seen.params == trial.params and seen.user_attrs == {"a": 1}
    study.tell(trial, 0.5)
    assert len(synced) == 1
    assert other.get_trials(deepcopy=False)[0].value == 0.5


def test_duplicate_index_sees_other_workers_trials_once_they_finish(tmp_path):
    space = space_of(branches={"count": [2], "models": {"embed_dim": [32], "depth": [2], "head_dim": 32},
                               "resolutions": [64]})  # one architecture: every trial after the first is a duplicate
    study = open_study(space, name="w", storage_url=None, trials_dir=tmp_path, sampler="random", seed=0,
                       resume=False)
    a = SearchDriver(study, space, study_path=tmp_path / "w", evaluator=fake_evaluators.evaluate)
    other = optuna.load_study(study_name="w", storage=open_storage(None, tmp_path, "w", create=False))
    b = SearchDriver(other, space, study_path=tmp_path / "w", evaluator=fake_evaluators.evaluate)
    fake_evaluators.CALLS.clear()
    running = a.prepare()  # a's trial 0 is sampled but not evaluated yet
    trial, cfg = running[0], running[1]
    b._refresh_known()
    assert b._known == {} and b._open == [0]
    a.evaluate(running)
    out = b.run_one()  # sees trial 0 finished now: a duplicate, not evaluated again
    assert other.trials[out.number].user_attrs["duplicate_of"] == trial.number
    assert fake_evaluators.CALLS == [cfg.fingerprint()]
    b._refresh_known()
    assert b._open == [] and b._scanned == 2


def _conditional(trial: optuna.Trial) -> tuple[float, float]:
    """Conditional, constrained, two objectives: what the PIIP spaces look like to TPE."""
    n = trial.suggest_int("n", 1, 3)
    xs = [trial.suggest_float(f"x{i}", 0, 1) for i in range(n)]
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    cost = sum(xs) + n * 0.3
    trial.set_constraint("budget", cost - 1.8)
    if trial.number % 7 == 6:
        raise optuna.TrialPruned()
    return cost, -sum(x * x for x in xs) - (kind == "b") * 0.2


@pytest.mark.parametrize("liar", [True, False])  # Optuna 5's default is constant_liar=True
def test_cached_tpe_samples_like_tpe(liar):
    def run(cls):
        sampler = cls(seed=4, n_startup_trials=10, multivariate=True, group=True, constant_liar=liar)
        study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
        study.optimize(_conditional, n_trials=45)
        return sampler, [t.params for t in study.trials]

    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        _, plain = run(optuna.samplers.TPESampler)
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        sampler, cached = run(CachedTPESampler)
    assert sampler._split_cache is not None and isinstance(sampler._group_decomposed_search_space, _IncrementalGroups)
    assert cached == plain
    assert len({len(p) for p in plain}) == 3  # the conditional parameters did vary


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_registered_sampler_runs_a_study(name, tmp_path):
    """Conformance over the sampler registry: seeded, in-space proposals, every trial recorded."""
    from piip_search.search._run import run_search
    from tests.search.test_driver import space_of

    study, outs = run_search(space_of(), name=f"c-{name}", trials_dir=tmp_path, n_trials=12, sampler=name, seed=3,
                             progress=False)
    assert len(outs) == 12 and all(not o.status.startswith("failed") for o in outs)
    assert study.user_attrs["sampler"] == name
