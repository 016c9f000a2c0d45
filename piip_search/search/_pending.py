"""Finished evaluations the storage could not take: kept in the trial folder, told at the next start.

When the storage stays down past the outage limit while a trial is being told, the driver writes
`trial_NNNNN/pending.json` (values, status, metrics, constraints) before the worker stops. `replay_pending` tells
each one when a worker next starts: to its own trial if that is still RUNNING, otherwise (it was failed and its
config re-queued meanwhile) as a new finished trial with the same params, so a training run is never lost.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from piip_search.search import _records as R
from piip_search.search._optuna_internals import constraint_system_attrs, storage_of, trial_id_of

log = logging.getLogger("piip_search.search")
PENDING = "pending.json"


def save_pending(tdir: Path, *, trial_id: int, number: int, status: str, values: list[float] | None,
                 user_attrs: dict[str, Any], constraints: dict[str, float]) -> Path:
    path = tdir / PENDING
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"trial_id": trial_id, "number": number, "status": status, "values": values,
                               "user_attrs": user_attrs, "constraints": constraints}, default=str))
    tmp.replace(path)
    return path


def replay_pending(study: optuna.Study, study_path: Path) -> list[int]:
    """Tell every kept result of this study folder; returns the trial numbers that were told."""
    told = []
    for path in sorted(Path(study_path).glob(f"trial_*/{PENDING}")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable kept result (%s); left in place", path, e)
            continue
        trial = storage_of(study).get_trial(int(rec["trial_id"]))
        values = rec.get("values")
        state = TrialState.COMPLETE if values is not None else TrialState.FAIL
        attrs = {**trial.user_attrs, **rec["user_attrs"], R.STATUS: rec["status"]}
        if trial.state == TrialState.RUNNING:
            for k, v in attrs.items():
                storage_of(study).set_trial_user_attr(trial_id_of(trial), k, v)
            for k, v in constraint_system_attrs(rec.get("constraints") or {}).items():
                storage_of(study).set_trial_system_attr(trial_id_of(trial), k, v)
            storage_of(study).set_trial_state_values(trial_id_of(trial), state, values)
        else:  # failed by a sweep meanwhile: record the result as its own trial
            study.add_trial(optuna.trial.create_trial(
                params=trial.params, distributions=trial.distributions, values=values, state=state,
                user_attrs={**attrs, "told_late_for": trial.number},
                system_attrs=constraint_system_attrs(rec.get("constraints") or {})))
        path.unlink()
        told.append(int(rec["number"]))
        log.warning("trial %s: told its kept result (%s) now that the storage is back", rec["number"], rec["status"])
    return told
