"""Every use of a private Optuna name lives here, each with a fallback that works on Optuna's public API.

The fallbacks catch what really breaks when Optuna moves an internal: a missing module (ImportError) or a
renamed attribute or constant (AttributeError). tests/search/test_optuna_internals.py checks that each
internal is found on the installed Optuna, so a silent fallback shows up as a failing test, not a slow search.
"""

from __future__ import annotations

from typing import Any

import optuna

try:  # journal op codes: fsync only the appends that change a study or finish a trial
    from optuna.storages.journal._storage import JournalOperation

    DURABLE_JOURNAL_OPS: frozenset[int] | None = frozenset(int(op) for op in (
        JournalOperation.CREATE_STUDY, JournalOperation.DELETE_STUDY, JournalOperation.SET_STUDY_USER_ATTR,
        JournalOperation.SET_STUDY_SYSTEM_ATTR, JournalOperation.SET_TRIAL_STATE_VALUES,
        JournalOperation.DISCARD_TRIALS))
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed Optuna
    DURABLE_JOURNAL_OPS = None  # every append is fsynced

try:  # the constraint prefix of trial system attrs (what `Trial.set_constraint` writes)
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
except (ImportError, AttributeError):  # pragma: no cover
    _CONSTRAINTS_KEY = "constraints"


def cached_rdb(storage: optuna.storages.RDBStorage) -> optuna.storages.BaseStorage:
    """The finished-trial cache Optuna puts in front of every RDB storage it opens from a URL."""
    try:
        from optuna.storages import _CachedStorage

        return _CachedStorage(storage)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover
        return storage


def constraint_system_attrs(constraints: dict[str, float]) -> dict[str, Any]:
    """System attrs that carry `constraints` on a trial added with `study.add_trial`."""
    return {f"{_CONSTRAINTS_KEY}:{k}": float(v) for k, v in constraints.items()}


def constraints_of(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    prefix = f"{_CONSTRAINTS_KEY}:"
    return {k[len(prefix):]: float(v) for k, v in trial.system_attrs.items() if k.startswith(prefix)}
