"""The names under which a trial's facts are stored in Optuna, written and read only through this module.

Every trial carries a `status` user attribute; only `ok` trials may stand on a front:

| status            | Optuna state | meaning                                                                  |
|-------------------|--------------|--------------------------------------------------------------------------|
| `ok`              | COMPLETE     | trained to its full fidelity (iterations), feasible                      |
| `infeasible`      | COMPLETE     | over budget (FLOPs/params known before anything is built); never trained |
| `stopped`         | COMPLETE     | multi-fidelity: stopped at a lower rung by promotion                     |
| `truncated`       | COMPLETE     | cut short of its fidelity (a safety cap, an evaluator that stopped early)|
| `failed:<reason>` | FAIL         | the evaluator failed, the worker died, the trial was interrupted, ...    |

`stopped` and `truncated` trials are told COMPLETE with their values but violate the `full_fidelity`
constraint, so samplers still learn from them while Optuna's `best_trials`, the dashboard and our own front
exclude them. Every trial of a study carries the same constraint keys (GPSampler refuses mixed keys).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

# statuses
OK, INFEASIBLE, STOPPED, TRUNCATED = "ok", "infeasible", "stopped", "truncated"
FAILED = "failed:"  # prefix: failed:<reason>
WORKER_DIED, INTERRUPTED, RETRIES_EXHAUSTED = "failed:worker-died", "failed:interrupted", "failed:retries-exhausted"
TAKEN_OVER = "failed:taken-over"  # what a worker reports when a sweep failed its trial before it started
LEGACY = {"pruned": STOPPED}  # older studies wrote `pruned` for a rung stop
REUSABLE = (OK, INFEASIBLE, STOPPED)  # a duplicate config may copy a result with one of these statuses

# trial user-attribute keys
STATUS, FINGERPRINT, CONFIG, METRICS = "status", "fingerprint", "config", "metrics"
FLOPS, PARAMS, MESSAGE, WORKER = "flops", "params", "message", "worker"
HEARTBEAT = "heartbeat"  # unix time of the worker's last sign of life
DUPLICATE_OF, RETRY_OF, ATTEMPT, FAILURES = "duplicate_of", "retry_of", "attempt", "failures"
ENQUEUED = "enqueued"
# a re-evaluation of a config with another proxy seed (`repeats:`, _repeats.py): the first evaluation's trial
# number and this evaluation's index (1, 2, ...; the first evaluation is index 0 and carries neither)
REPEAT_OF, REPEAT_INDEX = "repeat_of", "repeat_index"
TUNE_TRIAL = "tune_trial"  # `<experiment>/<tune trial id>` of a trial run by the ray-tune backend

# constraint keys (value <= 0 feasible)
FULL_FIDELITY = "full_fidelity"

# study user-attribute keys
STUDY_SPACE, STUDY_OBJECTIVES, STUDY_SAMPLER, STUDY_EVALUATOR = "space", "objectives", "sampler", "evaluator"


def status_of(user_attrs: dict[str, Any], state_name: str) -> str:
    """The recorded status (legacy names mapped), or the Optuna state for a trial not yet finished by us."""
    raw = str(user_attrs.get(STATUS, state_name.lower()))
    return LEGACY.get(raw, raw)


def is_failed(status: str) -> bool:
    return status.startswith(FAILED)


def retry_attrs(user_attrs: dict[str, Any], number: int, reason: str) -> dict[str, Any]:
    """User attrs for the re-queued copy of trial `number`: attempt count and every failure reason so far."""
    failures = [*list(user_attrs.get(FAILURES, []) or []), f"trial {number}: {reason}"]
    return {RETRY_OF: number, ATTEMPT: int(user_attrs.get(ATTEMPT, 1)) + 1, FAILURES: failures,
            **repeat_attrs(user_attrs)}


def repeat_attrs(user_attrs: dict[str, Any]) -> dict[str, Any]:
    """The repeat keys of a trial, for its re-queued copy: a retried repeat stays a repeat (same seed), else it
    would be taken for a duplicate of its config's first evaluation."""
    return {k: user_attrs[k] for k in (REPEAT_OF, REPEAT_INDEX) if k in user_attrs}


def started_trials(study: optuna.Study) -> int:
    """Trials that count towards a study-wide target: every one but those waiting in the queue, and not the
    failed runs that were re-queued (their copy counts instead)."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        if t.state == TrialState.FAIL and t.user_attrs.get(STATUS) in (WORKER_DIED, INTERRUPTED):
            continue
        n += 1
    return n


def fidelity_shortfall(metrics: dict[str, Any], planned: int | None) -> float:
    """0 when a run did its planned iterations; else the missing fraction (a wall-clock cap, an early exit)."""
    done = metrics.get("iters")
    if metrics.get("stop_reason") == "time_budget":
        if isinstance(done, (int, float)) and planned:
            return max(1e-6, 1.0 - float(done) / float(planned))
        return 1.0
    if isinstance(done, (int, float)) and not isinstance(done, bool) and planned and done < planned:
        return max(1e-6, 1.0 - float(done) / float(planned))
    return 0.0
