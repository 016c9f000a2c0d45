"""Where studies live: `trials/<study>/` folders and the Optuna storage behind them.

Default storage is an Optuna journal file (`trials/<study>/journal.log`): safe for several worker processes
on one machine or a shared NFS folder (SQLite is not, see Optuna's FAQ). Any Optuna storage URL works too
(`postgresql://...` for many machines; RDB storages get a heartbeat so a killed worker's trial is failed and
retried instead of staying RUNNING forever).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import optuna

from piip_search.errors import StudyError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
HEARTBEAT_S = 60


def check_study_name(name: str) -> str:
    if not _NAME.match(name):
        raise StudyError(f"study name {name!r}: use letters, digits, '_', '-', '.' (it names a folder)")
    return name


def study_dir(trials_dir: str | Path, name: str) -> Path:
    return Path(trials_dir) / check_study_name(name)


def default_storage_url(trials_dir: str | Path, name: str) -> str:
    return str(study_dir(trials_dir, name) / "journal.log")


def open_storage(url: str | None, trials_dir: str | Path, name: str, *, create: bool) -> optuna.storages.BaseStorage:
    """Open `url` (journal file path, or any Optuna RDB URL); None = the study's default journal file."""
    if url is None:
        url = default_storage_url(trials_dir, name)
    if "://" not in url:  # a journal file path
        path = Path(url)
        if not create and not path.exists():
            raise StudyError(f"study {name!r}: no storage at {path} (run `piip-search run --study {name}` first, "
                             f"or pass --storage)")
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

        return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    try:
        with warnings.catch_warnings():  # heartbeat is marked experimental; it is what makes crashes recoverable
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=3 * HEARTBEAT_S,
                                              engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # sqlalchemy raises many types for a bad URL or an unreachable server
        raise StudyError(f"storage {url!r}: cannot open: {type(e).__name__}: {e}") from None


def load_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StudyError(f"study {name!r} not found in the storage; it has: {names or 'no studies'}") from None
