"""Where studies live: `trials/<study>/` folders and the Optuna storage behind them.

Default storage is an Optuna journal file (`trials/<study>/journal.log`): safe for several worker processes
on one machine or a shared NFS folder (SQLite is not, see Optuna's FAQ). Any Optuna storage URL works too
(`postgresql://...` for many machines). Every storage is wrapped in `RetryingStorage`, so a short outage is
waited out instead of killing the workers.

The journal file is fsynced when a study changes and when a trial changes state (it finishes: its values and
state). The ~20 appends before that (a trial's creation, params, attributes) are written and closed under the
file lock like every append - other processes, NFS clients included (close-to-open), see them at once - but not
fsynced: at a few ms per fsync they were most of the driver's per-trial overhead. A trial's finishing fsync makes
all its earlier appends durable too, so a power cut or OS crash (not a killed process) can lose only trials still
running, which had no result yet.

A torn last line (a writer killed mid-append, a full disk) is cut off and kept beside the journal
(`journal.log.torn`) before the next append, so the complete records survive; a corrupt record inside the file
stops every command with the file and line, never a bare JSONDecodeError.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend

from piip_search.errors import StudyError
from piip_search.search._journal_lock import JournalLock
from piip_search.search._optuna_internals import DURABLE_JOURNAL_OPS, cached_rdb
from piip_search.search._storage_retry import DEFAULT_OUTAGE_LIMIT_S, RetryingStorage, _transient

log = logging.getLogger("piip_search.storage")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_study_name(name: str) -> str:
    if not _NAME.match(name):
        raise StudyError(f"study name {name[:100]!r}: use letters, digits, '_', '-', '.' (it names a folder)")
    return name


def study_dir(trials_dir: str | Path, name: str) -> Path:
    return Path(trials_dir) / check_study_name(name)


def default_storage_url(trials_dir: str | Path, name: str) -> str:
    return str(study_dir(trials_dir, name) / "journal.log")


def _cut_torn_tail(path: str) -> int:
    """Cut an unterminated last line (kept in `<path>.torn`); returns the bytes cut. Call under the file lock."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        block = 1 << 16
        pos = size
        while pos > 0:  # find the last newline
            step = min(block, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            i = chunk.rfind(b"\n")
            if i >= 0:
                pos = pos - step + i + 1
                break
            pos -= step
        f.seek(pos)
        torn = f.read()
        with open(path + ".torn", "ab") as keep:
            keep.write(torn + b"\n")
        f.truncate(pos)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: cut a torn last record of %d bytes (kept in %s.torn)", path, len(torn), path)
    return len(torn)


def _first_corrupt_line(path: str) -> tuple[int, bytes] | None:
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    for no, line in enumerate(lines[:-1], start=1):  # lines[-1] is what follows the last newline
        try:
            json.loads(line)
        except ValueError:
            return no, line
    return None


class JournalFile(JournalFileBackend):
    """Optuna's `JournalFileBackend` with a lock that breaks a dead holder's lock safely (`_journal_lock.py`), that
    fsyncs only the appends that must survive a power cut, repairs a torn last line and names the file and line of
    a corrupt record."""

    def __init__(self, file_path: str) -> None:
        if os.path.isdir(file_path):
            raise StudyError(f"storage {file_path}: is a folder, not a journal file")
        self._piip_lock = JournalLock(file_path)
        self._piip_path = file_path
        super().__init__(file_path)  # its own lock object goes unused: every append here takes `_piip_lock`
        self._locked(lambda: _cut_torn_tail(file_path))

    def _locked(self, fn: Any) -> Any:
        self._piip_lock.acquire()
        try:
            return fn()
        finally:
            self._piip_lock.release()

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError:  # JSONDecodeError, "Invalid log format."
            bad = _first_corrupt_line(self._piip_path)
            where = f"line {bad[0]}: {bad[1][:120]!r}" if bad else "a record"
            raise StudyError(f"journal {self._piip_path}: corrupt record at {where}. Records before it are "
                             f"intact; move the file aside and keep the lines before it to recover "
                             f"the study.") from None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        durable = DURABLE_JOURNAL_OPS is None or any(log.get("op_code") in DURABLE_JOURNAL_OPS for log in logs)
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")

        def write() -> None:
            with open(self._piip_path, "ab+") as f:  # appends go to the end whatever the read position
                size = f.seek(0, os.SEEK_END)
                if size:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":  # a writer that died mid-append left an unterminated line
                        _cut_torn_tail(self._piip_path)
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())

        self._locked(write)


HEARTBEAT_S = float(os.environ.get("PIIP_SEARCH_HEARTBEAT_S", 30))  # a running trial's sign of life
GRACE_S = 3 * HEARTBEAT_S  # silence after which another worker fails and re-queues it


def _check_journal_path(path: Path, name: str, *, create: bool) -> None:
    if path.is_dir():
        raise StudyError(f"storage {path}: is a folder, not a journal file (give a file path or a database URL)")
    if not path.exists():
        if not create:
            raise StudyError(f"study {name!r}: no storage at {path} (run `piip-search run --study {name}` "
                             f"first, or pass --storage)")
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise StudyError(f"storage {path}: {parent} is a file, not a folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyError(f"storage {path}: cannot create its folder: {e.strerror or e}") from None
        if not os.access(path.parent, os.W_OK):
            raise StudyError(f"storage {path}: the folder {path.parent} is not writable")
        return
    with open(path, "rb") as f:
        head = f.read(4096)
    first = head.split(b"\n", 1)[0]
    if head and (b"\0" in head or not first.startswith(b"{")):
        raise StudyError(f"storage {path}: not an Optuna journal file (its first line is not a JSON record)")
    if create and not os.access(path, os.W_OK):
        raise StudyError(f"storage {path}: the file is not writable")


def open_storage(url: str | None, trials_dir: str | Path, name: str, *, create: bool) -> optuna.storages.BaseStorage:
    """Open `url` (journal file path, or any Optuna RDB URL); None = the study's default journal file."""
    if url is None:
        url = default_storage_url(trials_dir, name)
    if "://" not in url:  # a journal file path
        path = Path(url)
        _check_journal_path(path, name, create=create)
        try:
            backend = JournalFile(str(path))
        except OSError as e:
            raise StudyError(f"storage {path}: cannot open: {e.strerror or e}") from None
        return RetryingStorage(optuna.storages.JournalStorage(backend),  # type: ignore[abstract]
                               describe=f"journal {path}")
    return RetryingStorage(cached_rdb(_open_rdb(url)), describe=f"database {_redact(url)}")  # type: ignore[abstract]


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _open_rdb(url: str) -> optuna.storages.RDBStorage:
    """RDBStorage, waiting out a database that is briefly down at start (same limit as `RetryingStorage`)."""
    deadline = None
    while True:
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental; the driver records them
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=max(1, int(HEARTBEAT_S)),
                                                  grace_period=max(2, int(GRACE_S)),
                                                  engine_kwargs={"pool_pre_ping": True})
        except Exception as e:  # sqlalchemy raises many types for a bad URL or an unreachable server
            now = time.monotonic()
            deadline = deadline or now + DEFAULT_OUTAGE_LIMIT_S
            if _transient(e) and now < deadline:
                log.warning("database %s unreachable (%s); retrying", _redact(url), type(e).__name__)
                time.sleep(2.0)
                continue
            msg = str(e).splitlines()[0][:300] if str(e) else ""
            raise StudyError(f"storage {_redact(url)!r}: cannot open: {type(e).__name__}: {msg}") from None


def load_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StudyError(f"study {name!r} not found in the storage; it has: {names or 'no studies'}") from None
