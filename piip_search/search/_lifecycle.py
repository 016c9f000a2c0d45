"""A running trial's life: heartbeats while it trains, recovery when its worker dies, clean stops on signals.

- **Heartbeat.** While a trial runs, a thread records a sign of life every `HEARTBEAT_S` (user attr
  `heartbeat`, unix time, on every storage; RDB storages also get Optuna's own heartbeat row). Optuna records
  heartbeats only inside `study.optimize`, which ask/tell drivers never call.
- **Recovery.** Every live worker sweeps RUNNING trials at each ask and once per heartbeat: a trial whose worker
  is a dead process on this host, or that has been silent for `GRACE_S` on any host, is failed with the reason
  and its config re-queued. Many workers may sweep at once: the storage lets only one of them finish the trial
  (the others get `UpdateFinishedTrialError` and skip it), so a config is re-queued once.
- **Bounded retries.** A re-queued copy carries its attempt number and every failure reason; a config whose
  worker died more than `max_retries` times is failed for good (`failed:retries-exhausted`) with all reasons.
- **Signals.** SIGTERM is turned into `KeyboardInterrupt`, so SIGINT and SIGTERM both fail the running trial as
  `failed:interrupted`, re-queue its config (not counted as a retry) and leave the study resumable.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from piip_search.search import _records as R
from piip_search.search import _storage
from piip_search.search._journal_lock import pid_alive as _pid_alive
from piip_search.search._optuna_internals import storage_of, trial_id_of

log = logging.getLogger("piip_search.search")


def worker_id() -> str:
    """`host:pid`; PIIP_SEARCH_WORKER_HOST overrides the host (tests play remote hosts with it)."""
    return f"{os.environ.get('PIIP_SEARCH_WORKER_HOST') or socket.gethostname()}:{os.getpid()}"


def mark_alive(study: optuna.Study, trial_id: int) -> None:
    storage = storage_of(study)
    storage.set_trial_user_attr(trial_id, R.HEARTBEAT, time.time())
    if hasattr(storage, "record_heartbeat"):  # RDB: Optuna's heartbeat table too
        try:
            storage.record_heartbeat(trial_id)
        except Exception as e:  # noqa: BLE001 - a missed beat is retried at the next one
            log.debug("heartbeat row not written: %s", e)


class Heartbeat:
    """Context manager: beats for `trial_id` in a daemon thread and sweeps stale trials of other workers."""

    def __init__(self, study: optuna.Study, trial_id: int, *, max_retries: int,
                 interval_s: float | None = None) -> None:
        self.study, self.trial_id, self.max_retries = study, trial_id, max_retries
        self.interval_s = _storage.HEARTBEAT_S if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{trial_id}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                mark_alive(self.study, self.trial_id)
                recover_stale_trials(self.study, max_retries=self.max_retries)
            except UpdateFinishedTrialError:
                return  # the trial was finished (told, or failed by a sweep): nothing left to beat for
            except Exception as e:  # noqa: BLE001 - an outage longer than the limit: keep training, beat later
                log.warning("heartbeat of trial id %s failed: %s", self.trial_id, str(e)[:300])

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _death_reason(t: FrozenTrial, now: float, host: str, *, trust_silence: bool = True) -> str | None:
    worker = str(t.user_attrs.get(R.WORKER, ""))
    h, _, pid = worker.rpartition(":")
    # a Tune trial runs in an actor and Tune restarts it itself (FailureConfig, Tuner.restore): the proposing
    # driver's pid says nothing about it, only its heartbeat does
    if h == host and pid.isdigit() and R.TUNE_TRIAL not in t.user_attrs:
        if int(pid) == os.getpid():
            return None
        if not _pid_alive(int(pid)):
            return f"worker {worker} died (process gone)"
    if not trust_silence:
        return None
    last = t.user_attrs.get(R.HEARTBEAT)
    if last is None and t.datetime_start is not None:
        last = t.datetime_start.timestamp()
    if last is not None and now - float(last) > _storage.GRACE_S:
        return f"worker {worker or '?'} silent for {now - float(last):.0f} s (grace {_storage.GRACE_S:.0f} s)"
    return None


def fail_and_requeue(study: optuna.Study, t: FrozenTrial, reason: str, *, status: str, max_retries: int,
                     count_attempt: bool = True) -> bool:
    """Fail RUNNING trial `t` with `reason` and re-queue its config unless it has used up its retries.

    Returns False when another process finished the trial first (then it is left alone)."""
    storage = storage_of(study)
    attempt = int(t.user_attrs.get(R.ATTEMPT, 1))
    give_up = count_attempt and attempt > max_retries
    failures = [*list(t.user_attrs.get(R.FAILURES, []) or []), f"trial {t.number}: {reason}"]
    try:
        storage.set_trial_user_attr(trial_id_of(t), R.STATUS, R.RETRIES_EXHAUSTED if give_up else status)
        storage.set_trial_user_attr(trial_id_of(t), R.MESSAGE, (
            f"failed for good after {attempt} attempts: " + "; ".join(failures) if give_up else reason)[:4000])
        storage.set_trial_state_values(trial_id_of(t), TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    if give_up or not t.params:
        log.warning("trial %d: %s%s", t.number, reason, "; retries exhausted, not re-queued" if give_up else "")
        return True
    attrs = R.retry_attrs(t.user_attrs, t.number, reason)
    if not count_attempt:
        attrs[R.ATTEMPT] = attempt
    study.enqueue_trial(t.params, user_attrs=attrs, skip_if_exists=False)
    log.warning("trial %d: %s; its config is queued again (attempt %d)", t.number, reason, attrs[R.ATTEMPT])
    return True


def recover_stale_trials(study: optuna.Study, *, max_retries: int) -> list[int]:
    """Fail and re-queue RUNNING trials of dead workers (any host); safe when many workers do it at once."""
    now, host = time.time(), worker_id().rpartition(":")[0]
    # right after an outage this worker saw, every worker's heartbeats are old: silence proves nothing yet
    trust_silence = now - getattr(storage_of(study), "last_outage_end", -float("inf")) > _storage.GRACE_S
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _death_reason(t, now, host, trust_silence=trust_silence)
        if reason and fail_and_requeue(study, t, reason, status=R.WORKER_DIED, max_retries=max_retries):
            recovered.append(t.number)
    return recovered


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only), so both signals stop cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
