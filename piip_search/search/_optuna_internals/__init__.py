"""Every use of a private Optuna name lives in this package, each with a fallback that works on Optuna's public
API: journal op codes, the RDB cache, constraint keys and trial/storage handles here; the cached TPE in
`_tpe.py`; the batch GP in `_gp_batch.py`; the GP the known-cost sampler fits in `_gp_fit.py`.

The fallbacks catch what really breaks when Optuna moves an internal: a missing module (ImportError) or a
renamed attribute or constant (AttributeError). tests/search/test_optuna_internals.py checks that each
internal is found on the installed Optuna, so a silent fallback shows up as a failing test, not a slow search.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial

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


log = logging.getLogger("piip_search.search")


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


# ---- handles Optuna keeps private: the storage behind a study, a trial's storage id --------------------------
def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes (Optuna has no public accessor)."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    return study._study_id


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (its `number` counts within the study; storages key by this id)."""
    return trial._trial_id


def trial_handle(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A live `Trial` for an existing RUNNING trial, to report or tell from another process."""
    return optuna.Trial(study, trial_id)


def storage_layers(storage: Any) -> list[Any]:
    """The storage and what it wraps, outermost first: RetryingStorage -> JournalStorage -> its backend, or
    _CachedStorage -> RDBStorage."""
    layers = []
    for _ in range(4):
        if storage is None:
            break
        layers.append(storage)
        storage = getattr(storage, "inner", None) or getattr(storage, "_backend", None)
    return layers


from piip_search.search._optuna_internals._gp_batch import MAX_ALTERNATIVES, BatchGPSampler  # noqa: E402
from piip_search.search._optuna_internals._gp_fit import HAVE_GP_INTERNALS, GPModel, fit_kernel  # noqa: E402
from piip_search.search._optuna_internals._tpe import (  # noqa: E402
    HAVE_TPE_INTERNALS,
    CachedTPESampler,
)

__all__ = [
    "DURABLE_JOURNAL_OPS",
    "HAVE_GP_INTERNALS",
    "HAVE_TPE_INTERNALS",
    "MAX_ALTERNATIVES",
    "BatchGPSampler",
    "CachedTPESampler",
    "GPModel",
    "cached_rdb",
    "constraint_system_attrs",
    "constraints_of",
    "fit_kernel",
    "storage_layers",
    "storage_of",
    "study_id_of",
    "trial_handle",
    "trial_id_of",
]
