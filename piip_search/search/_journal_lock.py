"""The journal file's lock: Optuna's open-lock (an `O_EXCL` lock file, NFS-safe) that breaks a stale lock safely.

Why not Optuna's `JournalFileOpenLock` as it is: when its holder dies, every waiter breaks the lock once the grace
period passes, and several waiters break each other's fresh locks too (`benchmarks/bench_journal_lock.py`: 6
processes waiting on one stale lock, 6 rounds: 12-18 double holds). Two writers then append at once, and a
torn-tail repair can cut a record that is still being written, so a trial's result is lost. That is what a driver
or worker killed while appending left behind.

What this lock does instead:
- the lock file names its holder (`host pid token`), so a holder on this host whose process is gone is stale at
  once, not after the 30 s grace period (a remote or unnamed holder still waits for the grace period);
- a stale lock is removed by one waiter at a time (an `flock` on `<journal>.lock.break`, released by the kernel if
  that waiter dies), and only if the file is still the one judged stale (same inode and holder);
- release removes the lock file only while it is still this holder's.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["JournalLock"]

log = logging.getLogger("piip_search.storage")
LOCK_SUFFIX = ".lock"  # Optuna's: a plain Optuna process on the same journal takes the same lock file
BREAK_SUFFIX = ".lock.break"
GRACE_S = 30.0  # Optuna's grace period for a lock whose holder cannot be checked


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JournalLock:
    """acquire()/release() of `<journal>.lock`, as Optuna's lock objects."""

    def __init__(self, journal_path: str, grace_s: float = GRACE_S) -> None:
        self.path = journal_path + LOCK_SUFFIX
        self._break_path = journal_path + BREAK_SUFFIX
        self.grace_s = grace_s
        self._host = socket.gethostname()
        self._mine: bytes | None = None

    def acquire(self) -> bool:
        sleep_s, seen, since, warned = 0.001, None, time.monotonic(), time.monotonic()
        token = f"{self._host} {os.getpid()} {uuid.uuid4().hex}".encode()
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                try:
                    os.write(fd, token)
                finally:
                    os.close(fd)
                self._mine = token
                return True
            held = self._holder()
            if held is None:  # released meanwhile
                continue
            if held != seen:  # a new holder (or the first look): its grace period starts now
                seen, since = held, time.monotonic()
            if self._dead_here(held[1]) or time.monotonic() - since > self.grace_s:
                self._break(held)
                sleep_s = 0.001
                continue
            if time.monotonic() - warned > 10.0:
                log.warning("waiting for the journal lock %s (held by %s)", self.path, held[1].decode(errors="replace")
                            or "an unnamed holder")
                warned = time.monotonic()
            time.sleep(sleep_s)
            sleep_s = min(2 * sleep_s, 0.05)

    def release(self) -> None:
        mine, self._mine = self._mine, None
        try:
            with open(self.path, "rb") as f:
                ours = mine is not None and f.read() == mine
        except FileNotFoundError:
            ours = False
        if not ours:  # broken by a waiter that judged it stale: the file (if any) is someone else's now
            log.warning("journal lock %s was no longer ours at release (judged stale by another process)", self.path)
            return
        os.unlink(self.path)

    def _holder(self) -> tuple[tuple[int, int], bytes] | None:
        """(inode, mtime) and contents of the lock file, None if there is none."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                return (st.st_ino, st.st_mtime_ns), f.read()
        except FileNotFoundError:
            return None

    def _dead_here(self, holder: bytes) -> bool:
        parts = holder.split()
        return (len(parts) == 3 and parts[0].decode(errors="replace") == self._host and parts[1].isdigit()
                and not pid_alive(int(parts[1])))

    def _break(self, judged: tuple[tuple[int, int], bytes]) -> None:
        with self._breaking():
            if self._holder() == judged:  # still the stale one, not a lock taken since
                log.warning("journal lock %s: removed a stale lock (holder %s)", self.path,
                            judged[1].decode(errors="replace") or "unnamed, silent past the grace period")
                os.unlink(self.path)

    @contextmanager
    def _breaking(self) -> Iterator[None]:
        fd = os.open(self._break_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock
