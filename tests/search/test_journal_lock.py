"""The journal lock: mutual exclusion holds when many processes find a stale lock at once, and a dead local holder
is broken at once rather than after the grace period."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from piip_search.search._journal_lock import JournalLock

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_journal_lock import dead_pid, rounds  # noqa: E402


def test_many_waiters_on_a_stale_lock_never_hold_it_together(tmp_path):
    # Optuna's JournalFileOpenLock double-holds here (benchmarks/bench_journal_lock.py)
    assert rounds("piip-search", tmp_path, b"") == 0  # unnamed: broken after the grace period, by one waiter
    assert rounds("piip-search", tmp_path, f"{socket.gethostname()} {dead_pid()} x".encode()) == 0


def test_a_dead_local_holder_is_broken_at_once_and_a_live_one_is_waited_for(tmp_path):
    journal = str(tmp_path / "journal.log")
    lock = JournalLock(journal, grace_s=60.0)
    with open(lock.path, "wb") as f:
        f.write(f"{socket.gethostname()} {dead_pid()} x".encode())
    t0 = time.monotonic()
    lock.acquire()
    assert time.monotonic() - t0 < 5.0  # not the 60 s grace period
    lock.release()
    assert not os.path.exists(lock.path)

    other = JournalLock(journal, grace_s=0.5)
    with open(lock.path, "wb") as f:  # held by a live process of this host (this one)
        f.write(f"{socket.gethostname()} {os.getpid()} y".encode())
    t0 = time.monotonic()
    other.acquire()  # broken only once silent past its grace period
    assert time.monotonic() - t0 >= 0.5
    other.release()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lock = JournalLock(str(tmp_path / "journal.log"))
    lock.acquire()
    os.unlink(lock.path)
    with open(lock.path, "wb") as f:  # judged stale, broken and taken by another process
        f.write(b"otherhost 1 z")
    lock.release()
    assert open(lock.path, "rb").read() == b"otherhost 1 z"


def test_the_journal_file_storage_takes_it(tmp_path):
    from piip_search.search._storage import JournalFile

    backend = JournalFile(str(tmp_path / "journal.log"))
    assert isinstance(backend._piip_lock, JournalLock)
    backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1, 2]}])
    assert not os.path.exists(str(tmp_path / "journal.log.lock"))
    assert b'"study_name":"s"' in (tmp_path / "journal.log").read_bytes()
