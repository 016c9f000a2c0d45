"""Where a study's Ray Tune experiments are and what their trials did, read without importing Ray at start-up
(`piip_search.search` imports this; `_tune.py`, which needs Ray Tune to define its searcher, loads on use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

__all__ = ["ATTR_CURRENT", "ATTR_PREFIX", "TUNE_DIR", "tune_status"]

TUNE_DIR = "tune"  # <trials-dir>/<study>/tune/<experiment>/
ATTR_PREFIX = "tune:"  # study user attribute `tune:<experiment>`: its target and suggested trial numbers
ATTR_CURRENT = "tune:current"  # the study's latest Tune experiment name


def tune_status(study: optuna.Study, study_path: str | Path) -> list[dict[str, Any]]:
    """The study's Tune experiments: each Tune trial's state, failures, study trial number and log folder."""
    out = []
    for key in sorted(k for k in study.user_attrs if k.startswith(ATTR_PREFIX) and k != ATTR_CURRENT):
        name, led = key[len(ATTR_PREFIX):], study.user_attrs[key]
        path = Path(study_path) / TUNE_DIR / name
        trials = []
        if path.is_dir():
            from ray.tune import ExperimentAnalysis  # a second or more to import: only for a study run on Tune

            for t in ExperimentAnalysis(str(path)).trials:
                trials.append({"tune_trial": t.trial_id, "trial": t.config.get("trial_number"), "state": t.status,
                               "failures": t.num_failures, "log_dir": t.path})
        trials += _unsaved(study, name, path, {t["tune_trial"] for t in trials})
        out.append({"experiment": name, "path": str(path), "target": led.get("target"),
                    "suggested": len(led.get("suggested", [])), "trials": trials})
    return out


def _unsaved(study: optuna.Study, name: str, path: Path, saved: set[str]) -> list[dict[str, Any]]:
    """Study trials run by this experiment that Tune's saved state does not name: a driver that died between two
    of Tune's saves (the study recorded them; their Tune folder holds their results)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        exp, _, tid = str(t.user_attrs.get("tune_trial", "")).partition("/")
        if exp == name and tid and tid not in saved:
            log_dir = path / f"trial_{t.number:05d}"
            out.append({"tune_trial": tid, "trial": t.number, "state": f"not in Tune's state (study: {t.state.name})",
                        "failures": None, "log_dir": str(log_dir) if log_dir.is_dir() else None})
    return out
