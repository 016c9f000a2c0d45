"""A study's life: created for a space (storing the space, objectives, sampler and evaluator with it), resumed or
joined by more workers without replaying the seed sequence, and named for the dashboard."""

from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from piip_search.errors import StudyError
from piip_search.search import _records as R
from piip_search.search._lifecycle import worker_id
from piip_search.search._results import study_objectives
from piip_search.search._samplers import DEFAULT_SAMPLER, make_sampler
from piip_search.search._storage import load_study, open_storage
from piip_search.search.space import SearchSpace

SPACE_ATTR = R.STUDY_SPACE
DEFAULT_EVALUATOR = "builtin:proxy"


def continuing_seed(study: optuna.Study, seed: int | None) -> int | None:
    """The seed for a sampler joining `study`: `seed` on a new study (a run is reproducible), and on a study
    that already has trials a seed derived from it, the trial count and this process, so a resumed or added
    worker never replays the seed sequence that proposed the trials already there."""
    n = len(study.get_trials(deepcopy=False))
    if n == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{n}:{worker_id()}:{time.time_ns()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def study_evaluator(study: optuna.Study, asked: str | None = None) -> str:
    """The evaluator stored with the study; asking for another one is an error (one study, one evaluator)."""
    stored = study.user_attrs.get(R.STUDY_EVALUATOR)
    if stored is None:  # a study from before the evaluator was stored
        return asked or DEFAULT_EVALUATOR
    if asked is not None and asked != stored:
        raise StudyError(f"study {study.study_name!r} was created with evaluator {stored!r}; --evaluator "
                         f"{asked!r} would mix results of two evaluators in one study (start a new --study)")
    return str(stored)


def open_study(space: SearchSpace, *, name: str, storage_url: str | None, trials_dir: str | Path, sampler: str,
               seed: int | None, resume: bool, evaluator: str | None = None) -> optuna.Study:
    """Create a study for `space`, or load it when `resume` (the stored space must match; the caller checks
    the evaluator with `study_evaluator`)."""
    storage = open_storage(storage_url, trials_dir, name, create=True)
    exists = name in [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    space_dict = space.to_dict()
    if exists and not resume:
        raise StudyError(f"study {name!r} already exists; pass --resume to continue it, or choose another --study")
    if exists:
        study = optuna.load_study(study_name=name, storage=storage)
        stored = study.user_attrs.get(SPACE_ATTR)
        if stored is not None and stored != space_dict:
            raise StudyError(f"study {name!r} was created with a different search space; resume it with the "
                             f"same space file (or use `piip-search worker`)")
        study.sampler = make_sampler(sampler, continuing_seed(study, seed), space=space)
        return study
    directions = [d for _, d in space.objective_pairs()]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,  # type: ignore[arg-type]
                                sampler=make_sampler(sampler, seed, space=space))
    study.set_user_attr(SPACE_ATTR, space_dict)
    study.set_user_attr(R.STUDY_OBJECTIVES, space.objective_pairs())
    study.set_user_attr(R.STUDY_SAMPLER, sampler)
    study.set_user_attr(R.STUDY_EVALUATOR, evaluator or space.evaluator or DEFAULT_EVALUATOR)
    set_metric_names(study)
    return study


#: What the dashboard and Optuna's plots call each objective (instead of "0" and "1").
METRIC_LABELS = {"flops": "GFLOPs", "params": "M params", "ap": "AP"}


def metric_names(study: optuna.Study) -> list[str]:
    return [METRIC_LABELS.get(n, n) for n, _ in study_objectives(study)]


def set_metric_names(study: optuna.Study) -> list[str]:
    """Name the study's objectives for the dashboard; idempotent (old studies are named when served)."""
    names = metric_names(study)
    try:
        if study.metric_names != names:
            with warnings.catch_warnings():  # experimental in Optuna; what the dashboard reads
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(names)
    except Exception as e:  # noqa: BLE001 - an older study or storage without metric names: cosmetic only
        warnings.warn(f"could not set metric names on study {study.study_name!r}: {e}", stacklevel=2)
    return names


def attach_study(name: str, *, storage_url: str | None, trials_dir: str | Path, sampler: str | None = None,
                 seed: int | None = None) -> tuple[optuna.Study, Any]:
    """Load an existing study and the space stored in it (for `worker`, `pareto`, `export`)."""
    from piip_search.search.space import SearchSpace

    storage = open_storage(storage_url, trials_dir, name, create=False)
    study = load_study(name, storage)
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        raise StudyError(f"study {name!r} was not created by piip-search (no stored search space)")
    space = SearchSpace.from_dict(stored, source=f"study {name}", check_budgets=False)
    sampler = sampler or study.user_attrs.get(R.STUDY_SAMPLER, DEFAULT_SAMPLER)
    study.sampler = make_sampler(sampler, continuing_seed(study, seed), space=space)
    return study, space


def enqueue_configs(study: optuna.Study, space: Any, refs: list[str]) -> list[str]:
    """Seed the study with known configs (`--enqueue`): paper models, a previous export, ..."""
    from piip_search.config import load_config

    names = []
    for ref in refs:
        cfg = load_config(ref)
        params = space.params_from_config(cfg)
        study.enqueue_trial(params, user_attrs={R.ENQUEUED: str(ref)})
        names.append(str(ref))
    return names
