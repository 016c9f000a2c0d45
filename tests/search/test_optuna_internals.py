"""Every private Optuna name piip-search uses is found on the installed Optuna (so no fallback is silently
taken), and the fallbacks work."""

from __future__ import annotations

import optuna

from piip_search.search import _optuna_internals as oi
from piip_search.search._storage import open_storage


def test_the_internals_are_present_on_this_optuna():
    assert oi.DURABLE_JOURNAL_OPS is not None and len(oi.DURABLE_JOURNAL_OPS) == 6
    assert oi.HAVE_TPE_INTERNALS
    assert oi.CachedTPESampler(seed=0)._use_cache


def test_constraint_keys_match_what_optuna_writes():
    study = optuna.create_study()
    trial = study.ask()
    trial.set_constraint("full_fidelity", 0.25)
    study.tell(trial, 1.0)
    frozen = study.trials[0]
    assert oi.constraints_of(frozen) == {"full_fidelity": 0.25}
    assert set(oi.constraint_system_attrs({"full_fidelity": 0.25})) <= set(frozen.system_attrs)


def test_the_rdb_cache_wraps_an_rdb_storage(tmp_path):
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    cached = oi.cached_rdb(rdb)
    assert cached is not rdb and isinstance(cached, optuna.storages.BaseStorage)


def test_cached_tpe_falls_back_when_a_private_member_moves(tmp_path, caplog):
    sampler = oi.CachedTPESampler(seed=0, n_startup_trials=2, multivariate=True)
    del sampler._split_cache  # what a renamed attribute looks like to the cached path
    study = optuna.create_study(storage=open_storage(None, tmp_path, "fb", create=True), study_name="fb",
                                sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=5)
    assert len(study.trials) == 5 and not sampler._use_cache
    assert "falls back" in caplog.text


def test_the_handles_reach_the_storage_and_its_trials(tmp_path):
    study = optuna.create_study(storage=open_storage(None, tmp_path, "h", create=True), study_name="h")
    trial = study.ask()
    assert isinstance(oi.storage_of(study), optuna.storages.BaseStorage)
    tid = oi.trial_id_of(trial)
    assert oi.storage_of(study).get_trial(tid).number == trial.number == 0
    oi.trial_handle(study, tid).set_user_attr("seen", 1)
    study.tell(trial, 1.0)
    assert oi.trial_id_of(study.trials[0]) == tid and study.trials[0].user_attrs["seen"] == 1
    assert oi.study_id_of(study) == oi.storage_of(study).get_study_id_from_name("h")
    layers = oi.storage_layers(oi.storage_of(study))
    assert any(getattr(layer, "_piip_path", None) for layer in layers)  # our journal file backend


def test_the_gp_internals_fit_and_condition_on_fantasies():
    import numpy as np

    assert oi.HAVE_GP_INTERNALS
    rng = np.random.default_rng(0)
    X = rng.random((30, 3))
    y = np.sin(3 * X[:, 0]) + 0.1 * X[:, 1]
    y = (y - y.mean()) / y.std()
    model = oi.GPModel(X, y, oi.fit_kernel(X, y))
    m, v = model.posterior(X[:5])
    assert m.shape == v.shape == (5,) and np.abs(m - y[:5]).max() < 0.5
    far = np.array([[0.5, 0.5, 0.5]])
    before = model.posterior(far)[1][0]
    model.add_fantasies(far, model.posterior(far)[0])
    assert model.posterior(far)[1][0] < before  # a pending point is no longer uncertain
