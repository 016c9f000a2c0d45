"""A storage wrapper that rides out short outages: transient errors are retried with backoff for a bounded time.

A PostgreSQL restart, a dropped connection or an NFS hiccup makes one storage call fail; retrying it after a
pause is all it takes. Only an outage longer than `outage_limit_s` stops the worker, with
`StorageUnavailableError` (a clear message, exit 2), and the driver keeps a finished evaluation on disk so it
is told when the storage is back (`_pending.py`).

A retried write whose first attempt did reach the database before the connection dropped may be applied twice;
the writes the driver retries are idempotent (attributes, state changes checked by the storage) except
`create_new_trial`, whose extra RUNNING trial has no heartbeat and is failed by stale-trial recovery.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import optuna

from piip_search.errors import PiipSearchError

log = logging.getLogger("piip_search.storage")

DEFAULT_OUTAGE_LIMIT_S = float(os.environ.get("PIIP_SEARCH_STORAGE_OUTAGE_S", 120))


class StorageUnavailableError(PiipSearchError):
    """The storage stayed unreachable for longer than the outage limit."""


def _transient(exc: BaseException) -> bool:
    """Connection-level failures (worth retrying), not logic errors such as a finished trial or a bad key."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        mod = type(e).__module__
        name = type(e).__name__
        if mod.startswith("sqlalchemy") and name in ("OperationalError", "InterfaceError", "DisconnectionError",
                                                      "TimeoutError", "PendingRollbackError"):
            return True
        if mod.startswith("sqlalchemy") and getattr(e, "connection_invalidated", False):
            return True
        if mod.startswith(("psycopg", "psycopg2")) and name in ("OperationalError", "InterfaceError"):
            return True
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError,
                                                         NotADirectoryError)):
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


class RetryingStorage(optuna.storages.BaseStorage):
    """Delegates every storage call to `inner`, retrying transient failures for up to `outage_limit_s`."""

    def __init__(self, inner: optuna.storages.BaseStorage, *, outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
                 describe: str = "storage", sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.outage_limit_s = float(outage_limit_s)
        self.describe = describe
        self.outages = 0  # outages survived (shown by `status` through the log)
        self.last_outage_end = -float("inf")  # time.time() when the storage last came back
        self._sleep = sleep

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        start = None
        delay = 0.2
        while True:
            try:
                result = getattr(self.inner, name)(*args, **kwargs)
            except Exception as e:
                if not _transient(e):
                    raise
                now = time.monotonic()
                if start is None:
                    start = now
                    self.outages += 1
                    log.warning("%s unreachable (%s: %s); retrying for up to %.0f s", self.describe,
                                type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "", self.outage_limit_s)
                if now - start >= self.outage_limit_s:
                    raise StorageUnavailableError(
                        f"{self.describe} unreachable for {now - start:.0f} s (limit {self.outage_limit_s:.0f} s, "
                        f"set PIIP_SEARCH_STORAGE_OUTAGE_S to change it): {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300] if str(e) else ''}. Finished results are kept in their "
                        f"trial folders and told at the next start.") from None
                self._sleep(min(delay, max(0.0, self.outage_limit_s - (now - start))))
                delay = min(delay * 2, 5.0)
                continue
            if start is not None:
                self.last_outage_end = time.time()
                log.warning("%s reachable again after %.1f s", self.describe, time.monotonic() - start)
            return result

    def __getattr__(self, name: str) -> Any:  # storage-specific extras (heartbeats, remove_session, ...)
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if callable(attr):
            return lambda *a, **k: self._call(name, *a, **k)
        return attr

    def __getstate__(self) -> dict[str, Any]:
        return {"inner": self.inner, "outage_limit_s": self.outage_limit_s, "describe": self.describe}

    def __setstate__(self, state: dict[str, Any]) -> None:
        RetryingStorage.__init__(self, state["inner"], outage_limit_s=state["outage_limit_s"],
                                 describe=state["describe"])


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    return method


for _name, _fn in inspect.getmembers(optuna.storages.BaseStorage, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(RetryingStorage, _name, _delegate(_name))
RetryingStorage.__abstractmethods__ = frozenset()
