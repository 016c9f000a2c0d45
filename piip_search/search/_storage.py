"""Where studies live: `trials/<study>/` folders and the Optuna storage behind them.

Default storage is an Optuna journal file (`trials/<study>/journal.log`): safe for several worker processes
on one machine or a shared NFS folder (SQLite is not, see Optuna's FAQ). Any Optuna storage URL works too
(`postgresql://...` for many machines; RDB storages get a heartbeat so a killed worker's trial is failed and
retried instead of staying RUNNING forever).

The journal file is fsynced when a study changes and when a trial changes state (it finishes: its values and
state). The ~20 appends before that (a trial's creation, params, attributes) are written and closed under the
file lock like every append - other processes, NFS clients included (close-to-open), see them at once - but not
fsynced: at a few ms per fsync they were most of the driver's per-trial overhead. A trial's finishing fsync makes
all its earlier appends durable too, so a power cut or OS crash (not a killed process) can lose only trials still
running, which had no result yet; a lost trial's number and folder are then simply used again.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

try:  # an Optuna internal; without it every append is fsynced (Optuna's own backend)
    from optuna.storages.journal._storage import JournalOperation
except ImportError:  # pragma: no cover - depends on the installed Optuna
    JournalOperation = None

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


# fsynced: study changes and trial state changes (a trial's values are told with its final state)
_DURABLE_OPS = None if JournalOperation is None else frozenset({
    JournalOperation.CREATE_STUDY, JournalOperation.DELETE_STUDY, JournalOperation.SET_STUDY_USER_ATTR,
    JournalOperation.SET_STUDY_SYSTEM_ATTR, JournalOperation.SET_TRIAL_STATE_VALUES, JournalOperation.DISCARD_TRIALS})


class JournalFile(JournalFileBackend):
    """Optuna's `JournalFileBackend` (open-lock) that fsyncs only the appends that must survive a power cut."""

    def __init__(self, file_path: str) -> None:
        self._piip_lock = JournalFileOpenLock(file_path)
        self._piip_path = file_path
        super().__init__(file_path, lock_obj=self._piip_lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if _DURABLE_OPS is None or any(log.get("op_code") in _DURABLE_OPS for log in logs):
            super().append_logs(logs)  # write, flush, fsync
            return
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        self._piip_lock.acquire()
        try:
            with open(self._piip_path, "ab") as f:
                f.write(data)
        finally:
            self._piip_lock.release()


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
        return optuna.storages.JournalStorage(JournalFile(str(path)))
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
