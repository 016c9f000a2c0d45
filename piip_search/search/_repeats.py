"""Noisy proxies: re-evaluate configs that are within noise of the front with other seeds (`repeats:`).

A proxy's AP moves with its seed (three seeds of the default run span AP 0.258-0.273), so one lucky seed can put
a config on the front that does not belong there. With `repeats: N` (space key, 1..10; default 1 = every config
evaluated once) a config *within noise of the front* is evaluated again, one more seed at a time, until it has N
evaluations. The front is built on each config's mean (`_results.config_points`).

The rule, applied after every `ok` evaluation (`enqueue_repeats`), to every config evaluated so far:
- noise: for each objective that is measured (every one but `flops` and `params`, which are counted exactly),
  the pooled standard deviation over the configs already evaluated more than once, shrunk towards a prior of
  `PRIOR_REL_STD` (3%) of the median value with `PRIOR_DOF` (2) pseudo degrees of freedom; the 3% is the
  default proxy's measured seed spread (std ~0.0075 at AP ~0.265), and the prior stops counting once a few
  configs have repeats;
- a config with mean `m` over `n` evaluations is within noise when `m` improved by `NOISE_K` (2) standard
  errors (`NOISE_K * sigma / sqrt(n)`) on its measured objectives is dominated by no config's mean. With FLOPs
  against AP: its AP + 2 sigma / sqrt(n) is at least the front's AP at its FLOPs (the staircase). Front members
  pass by construction, so every front point gets its N seeds;
- it then gets one more evaluation (`study.enqueue_trial` with its params and `repeat_of` = its first trial,
  `repeat_index` = 1, 2, ...), unless it has N evaluations tried (failed ones included) or one waiting/running.
  One at a time: a config whose second seed already sinks it out of reach costs no third.

A repeat is its own Optuna trial, told its own seed's values (samplers learn from noisy points; GP has a noise
term), evaluated with `proxy.seed` = the space's seed (0 if unset) + `repeat_index` (`EvalContext.seed`), never
taken for a duplicate and never stopped at a multi-fidelity rung (the config already reached full fidelity).
Repeats count towards `--trials`/`--total` like every trial: they cost an evaluation each. Two workers that
finish evaluations of one config at the same instant may both queue its next seed (one extra evaluation).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna

from piip_search.search import _pareto
from piip_search.search import _records as R
from piip_search.search._results import TrialRecord, config_groups, records, study_objectives

__all__ = ["EXACT_OBJECTIVES", "NOISE_K", "PRIOR_DOF", "PRIOR_REL_STD", "enqueue_repeats", "near_front",
           "pooled_std", "repeat_index", "seeded_proxy"]

log = logging.getLogger("piip_search.search")

NOISE_K = 2.0  # standard errors of optimism: "within noise" of the front
PRIOR_REL_STD = 0.03  # prior seed noise, relative to the median value (default proxy: ~0.0075 / 0.265)
PRIOR_DOF = 2.0  # the prior's weight, in degrees of freedom
EXACT_OBJECTIVES = ("flops", "params")  # counted, not measured: no noise


def repeat_index(user_attrs: dict[str, Any]) -> int:
    """0 for a config's first evaluation, k for its k-th re-evaluation."""
    return int(user_attrs.get(R.REPEAT_INDEX, 0) or 0) if R.REPEAT_OF in user_attrs else 0


def seeded_proxy(proxy: dict[str, Any], user_attrs: dict[str, Any]) -> dict[str, Any]:
    """The `proxy:` settings an evaluation gets: unchanged for a first evaluation, `seed` moved on by the repeat
    index for a re-evaluation (so repeat k trains with seed `proxy.seed + k`)."""
    out = dict(proxy)
    k = repeat_index(user_attrs)
    if k:
        out["seed"] = int(out.get("seed", 0) or 0) + k
    return out


def pooled_std(groups: Sequence[Sequence[float]]) -> float:
    """Pooled standard deviation of repeated values (one sequence per config), shrunk towards the prior
    `PRIOR_REL_STD * median |mean|` with `PRIOR_DOF` pseudo degrees of freedom."""
    means = [statistics.fmean(g) for g in groups if g]
    prior = PRIOR_REL_STD * (statistics.median(abs(m) for m in means) if means else 0.0) or PRIOR_REL_STD
    ss = sum((len(g) - 1) * statistics.variance(g) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    return math.sqrt((PRIOR_DOF * prior**2 + ss) / (PRIOR_DOF + dof))


def near_front(means: np.ndarray, counts: np.ndarray, noise: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Mask of the configs within noise of the front: each mean, made `NOISE_K` standard errors
    (`noise / sqrt(count)`, per objective; 0 where exact) better, is dominated by no mean."""
    pts = _pareto.as_minimization(means, directions)
    if not len(pts):
        return np.zeros(0, dtype=bool)
    front = pts[_pareto.pareto_mask(pts)]
    hopeful = pts - NOISE_K * noise[None, :] / np.sqrt(counts.astype(float))[:, None]
    le = np.all(front[None, :, :] <= hopeful[:, None, :], axis=2)
    lt = np.any(front[None, :, :] < hopeful[:, None, :], axis=2)
    return ~np.any(le & lt, axis=1)


def _tried(recs: list[TrialRecord]) -> tuple[dict[int, set[int]], set[int]]:
    """Per first-evaluation trial: the repeat indices tried (any state); and those with a repeat in flight."""
    tried: dict[int, set[int]] = {}
    busy: set[int] = set()
    for r in recs:
        if r.repeat_of is not None:
            tried.setdefault(r.repeat_of, set()).add(r.repeat_index)
            if r.state in ("WAITING", "RUNNING"):
                busy.add(r.repeat_of)
    return tried, busy


def plan_repeats(recs: list[TrialRecord], objectives: Sequence[tuple[str, str]],
                 repeats: int) -> list[tuple[int, int]]:
    """(first trial, repeat index) of every config that gets one more evaluation now (the module's rule)."""
    groups = config_groups(recs)
    if repeats <= 1 or not groups:
        return []
    means = np.array([[statistics.fmean(col) for col in zip(*(r.values or [] for r in g), strict=True)]
                      for g in groups], dtype=float)
    counts = np.array([len(g) for g in groups])
    noise = np.zeros(len(objectives))
    for j, (name, _) in enumerate(objectives):
        if name not in EXACT_OBJECTIVES:
            noise[j] = pooled_std([[(r.values or [])[j] for r in g] for g in groups])
    near = near_front(means, counts, noise, [d for _, d in objectives])
    tried, busy = _tried(recs)
    plan = []
    for g, ok in zip(groups, near, strict=True):
        first = g[0].repeat_of if g[0].repeat_of is not None else g[0].number
        done = tried.get(first, set()) | {0}
        if ok and first not in busy and len(done) < repeats:
            plan.append((first, max(done) + 1))
    return plan


def enqueue_repeats(study: optuna.Study, repeats: int) -> list[int]:
    """Queue the next seed of every config the rule picks (see the module docstring); returns their first
    trials' numbers. Called after each `ok` evaluation when `repeats > 1`."""
    recs = records(study)
    plan = plan_repeats(recs, study_objectives(study), repeats)
    if not plan:
        return []
    trials = study.get_trials(deepcopy=False)
    for first, k in plan:
        study.enqueue_trial(trials[first].params, user_attrs={R.REPEAT_OF: first, R.REPEAT_INDEX: k},
                            skip_if_exists=False)
    log.info("re-evaluating %d config(s) within noise of the front with another seed: trials %s", len(plan),
             ", ".join(f"{f} (seed +{k})" for f, k in plan))
    return [f for f, _ in plan]
