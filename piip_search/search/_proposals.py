"""A proposal queue: while GP samples, one worker at a time proposes configs for all, the others evaluate.

A GP ask costs ~1 s of CPU at tens of trials (`_optuna_internals/_gp_batch.py`); eight workers of a 3 s evaluator
that each ask for themselves spend more CPU than a 2-core machine has, and reached 0.44 of linear throughput. With
the queue, a worker about to ask first looks at the study's queue (WAITING trials): when it holds less than one
config per active worker (half its target of two), the worker that takes the study's proposer lock fits GP once on
a copy of the study (pending trials included, which GP's q-EHVI accounts for) and enqueues the chosen config and
the other distinct local maxima of the acquisition function and then its best random points
(`BatchGPSampler.last_alternatives`), up to two per active worker. Every worker then `ask`s as before, and Optuna
hands out queued trials first (each to one worker: the storage moves it from WAITING to RUNNING once). Proposals
are ordinary enqueued trials with a `proposal` user attribute, so crashes, retries and duplicate checks treat them
like any other trial.

- Lock: `flock` on `<journal>.proposer.lock` for a journal file, `pg_try_advisory_lock` for PostgreSQL. Both are
  released by the kernel/server when their holder dies, so a killed proposer's lock is taken over at once.
  Other storages have no queue (each worker samples for itself, as before).
- Pipelining: a worker that finds configs queued takes one at once; if the queue is below half its target, the
  refill runs in a thread while the worker evaluates, so workers rarely wait for a fit.
- Liveness: a worker that finds the queue empty while another proposes waits up to `wait_s` for its batch, then
  samples for itself.
- Only while GP is in charge (the `gp` sampler, or `auto` below its switch): TPE and random cost milliseconds
  per ask and sample for themselves. `PIIP_SEARCH_PROPOSALS=0` turns the queue off.
- Trade-off: the configs of one batch come from one fit rather than one fit each (the later ones are the
  acquisition's other local maxima, not the best points after conditioning on the first). Search quality per
  trial is not re-measured with the queue (benchmarks/bench_search_efficiency.py runs one worker, which
  proposes for itself only when it is the only active worker: batches of one, GP as before).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from piip_search.errors import ConfigError, SearchSpaceError
from piip_search.search import _records as R
from piip_search.search._lifecycle import worker_id
from piip_search.search._optuna_internals import BatchGPSampler, storage_layers, storage_of, study_id_of

__all__ = ["PROPOSAL", "FileProposerLock", "PgProposerLock", "ProposalQueue", "proposer_lock_for"]

log = logging.getLogger("piip_search.search")
PROPOSAL = "proposal"  # trial user attr of a queued proposal: {"by": worker, "batch": id, "rank": k}
ENV_SWITCH = "PIIP_SEARCH_PROPOSALS"


class FileProposerLock:
    """Non-blocking `flock` on a file next to the journal (released by the kernel when the holder dies)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PgProposerLock:
    """PostgreSQL session advisory lock keyed on the study (released by the server when the session ends)."""

    def __init__(self, engine: Any, key: str) -> None:
        self.engine = engine
        self.key = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        self._conn: Any = None

    def try_acquire(self) -> bool:
        from sqlalchemy import text

        try:
            conn = self.engine.connect()
        except Exception as e:  # noqa: BLE001 - database unreachable: no proposing now; the storage retries
            log.debug("proposer lock: %s", e)
            return False
        try:
            got = bool(conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        except Exception as e:  # noqa: BLE001
            log.debug("proposer lock: %s", e)
            got = False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        from sqlalchemy import text

        try:
            self._conn.execute(text("select pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception as e:  # noqa: BLE001 - the session is gone, and its lock with it
            log.debug("proposer unlock: %s", e)
        finally:
            self._conn.close()
            self._conn = None


def proposer_lock_for(study: optuna.Study) -> FileProposerLock | PgProposerLock | None:
    """The lock for `study`'s storage, or None when it has none (then there is no queue)."""
    for layer in storage_layers(storage_of(study)):
        path = getattr(layer, "_piip_path", None)  # our JournalFile backend
        if path:
            return FileProposerLock(path + ".proposer.lock")
        engine = getattr(layer, "engine", None)
        if engine is not None and engine.dialect.name == "postgresql":
            return PgProposerLock(engine, f"piip-search proposals {study_id_of(study)} {study.study_name}")
    return None


def _gp_in_charge(study: optuna.Study, n_complete: int) -> BatchGPSampler | None:
    from piip_search.search._samplers import GPThenTPESampler

    s = study.sampler
    if isinstance(s, GPThenTPESampler):
        s = s._choose(study)
    if isinstance(s, BatchGPSampler) and n_complete >= s._n_startup_trials:
        return s
    return None


def _active_workers(trials: list[FrozenTrial], recent_s: float = 60.0) -> int:
    """Workers with a running trial or one finished in the last `recent_s` (this one excluded)."""
    now, me = time.time(), worker_id()
    active = set()
    for t in trials:
        if t.state == TrialState.RUNNING or (t.datetime_complete is not None
                                              and now - t.datetime_complete.timestamp() < recent_s):
            active.add(t.user_attrs.get(R.WORKER))
    active.discard(me)
    active.discard(None)
    return len(active)


class ProposalQueue:
    """Keeps a study's queue of proposed configs filled while GP is in charge (module docstring)."""

    def __init__(self, study: optuna.Study, space: Any, lock: Any, *, wait_s: float = 30.0,
                 poll_s: float = 0.1) -> None:
        self.study, self.space, self.lock = study, space, lock
        self.wait_s, self.poll_s = wait_s, poll_s
        self.proposed = 0  # configs this worker proposed (for benchmarks and logs)
        self._thread: threading.Thread | None = None

    @classmethod
    def for_study(cls, study: optuna.Study, space: Any) -> ProposalQueue | None:
        if os.environ.get(ENV_SWITCH, "1") == "0":
            return None
        lock = proposer_lock_for(study)
        return cls(study, space, lock) if lock is not None else None

    def before_ask(self) -> None:
        """Make sure a queued config is there for this worker's next `ask`, if GP is in charge. With configs in
        the queue it returns at once, and refills a queue running low in a background thread (while this worker
        evaluates); with none it proposes (or waits for the worker proposing) first."""
        deadline = time.monotonic() + self.wait_s
        while True:
            trials = self.study.get_trials(deepcopy=False)
            gp = _gp_in_charge(self.study, sum(t.state == TrialState.COMPLETE for t in trials))
            if gp is None:
                return
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            target = self._target(trials)
            if waiting > 0:
                if 2 * (waiting - 1) < target:  # this worker takes one; below half the target: refill behind it
                    self._refill_in_background(gp)
                return
            if self._refill(gp):
                return
            if time.monotonic() >= deadline:  # sample for itself
                return
            time.sleep(self.poll_s)  # another worker is proposing: wait for its batch

    def _target(self, trials: list[FrozenTrial]) -> int:
        others = _active_workers(trials)
        return 2 * (others + 1) if others else 1  # a batch ahead for every worker; alone: GP as without a queue

    def _refill(self, gp: BatchGPSampler) -> bool:
        """Under the lock, top the queue up to its target; False if another worker holds the lock."""
        if not self.lock.try_acquire():
            return False
        try:
            trials = self.study.get_trials(deepcopy=False)  # what others did before we held the lock
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            target = self._target(trials)
            if 2 * waiting < target:  # a fit for at least half a target's configs, not a top-up of one or two
                self.proposed += len(self._propose(gp, trials, target - waiting))
        finally:
            self.lock.release()
        return True

    def _refill_in_background(self, gp: BatchGPSampler) -> None:
        if self._thread is not None and self._thread.is_alive():
            return

        def run() -> None:
            try:
                self._refill(gp)
            except Exception as e:  # noqa: BLE001 - a failed refill is retried at the next ask
                log.warning("proposing configs failed: %s", str(e)[:300])

        # not a daemon: the interpreter waits for it at exit (torch aborts if its threads die mid-fit)
        self._thread = threading.Thread(target=run, name="piip-propose", daemon=False)
        self._thread.start()

    def _propose(self, gp: BatchGPSampler, trials: list[FrozenTrial], n: int) -> list[dict[str, Any]]:
        """Fit GP once on a copy of the study and enqueue up to `n` distinct configs; returns their params."""
        mem = optuna.create_study(directions=self.study.directions, sampler=gp)
        pending = _copy_into(mem, trials)
        first = self._sample(mem)
        proposals = [first]
        alternatives = list(gp.last_alternatives)
        # the alternatives' conditional params at random, as GP's independent sampler does; seeded without
        # touching GP's random state, so GP's own next proposal stays what it would be without a queue
        seed = int.from_bytes(hashlib.sha256(f"{_params_key(first)}:{len(trials)}".encode()).digest()[:4], "little")
        mem.sampler = optuna.samplers.RandomSampler(seed=seed)
        for alt in alternatives:
            if len(proposals) >= n:
                break
            mem.enqueue_trial(alt, skip_if_exists=False)
            proposals.append(self._sample(mem))
        batch = f"{worker_id()}:{time.time_ns()}"
        seen = set(pending)  # never two pending trials with one config
        tried = {_params_key(t.params) for t in trials if t.state.is_finished()}
        out = []
        for rank, params in enumerate(proposals):
            key = _params_key(params)
            if not params or key in seen or (rank > 0 and key in tried):  # rank 0 is GP's own choice, kept
                continue
            seen.add(key)
            self.study.enqueue_trial(params, user_attrs={PROPOSAL: {"by": worker_id(), "batch": batch,
                                                                    "rank": rank}}, skip_if_exists=False)
            out.append(params)
        log.info("proposed %d configs for %d workers (one GP fit)", len(out), n)
        return out

    def _sample(self, mem: optuna.Study) -> dict[str, Any]:
        trial = mem.ask()
        try:
            self.space.sample(trial)
        except (ConfigError, SearchSpaceError, ValueError):
            pass  # the worker that takes it samples it again and records `failed:invalid-sample`, as without a queue
        return dict(trial.params)


def _params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _copy_into(mem: optuna.Study, trials: list[FrozenTrial]) -> list[str]:
    """Complete trials as they are; running and queued ones as RUNNING (GP's pending points). Returns the
    params keys of the pending ones."""
    dists: dict[str, Any] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            dists.update(t.distributions)
            mem.add_trial(t)
    pending = []
    for t in trials:
        if t.state == TrialState.RUNNING:
            params, d = dict(t.params), dict(t.distributions)
        elif t.state == TrialState.WAITING:
            fixed = t.system_attrs.get("fixed_params", {}) or {}
            params = {k: v for k, v in fixed.items() if k in dists}
            d = {k: dists[k] for k in params}
        else:
            continue
        if params:
            pending.append(_params_key(params if t.state == TrialState.RUNNING else fixed))
            mem.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING, params=params, distributions=d))
    return pending
