"""Read a study back: trial records, the Pareto front at full fidelity, hypervolume, knee, selections.

Compute only (no rendering): the CLI, the report and `export` render what these functions return.

A config evaluated more than once (`repeats:` in the space, one proxy seed each; see `_repeats.py`) is one
point: `config_points` averages its evaluations (AP mean, its sample standard deviation `ap_std`, `n_evals`),
and the front, its hypervolume, knee and selections are built on those means. `records` stays one record per
trial with that trial's own (per-seed) AP, as told to Optuna.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from piip_search.errors import StudyError
from piip_search.search import _pareto
from piip_search.search import _records as R


def branches_label(cfg: dict[str, Any] | None) -> str:
    """`B@448 / S@896 / T@1120` (custom widths as `d64`) of a recorded config dict."""
    return " / ".join(f"{b.get('model') or 'd' + str(b.get('embed_dim'))}@{b.get('resolution')}"
                      for b in (cfg or {}).get("branches", []))


def interactions_label(cfg: dict[str, Any] | None) -> str:
    """`2 bidirectional deformable`; `none` for a pyramid without units (its count and attention build nothing)."""
    it = (cfg or {}).get("interactions") or {}
    if not it:
        return ""
    if it.get("direction") == "none" or len((cfg or {}).get("branches", [])) < 2:
        return "none"
    return f"{it.get('count', '')} {it.get('direction', '')} {it.get('attention', '')}".strip()


@dataclass
class TrialRecord:
    number: int
    state: str
    status: str
    flops: int | None
    params: int | None
    ap: float | None
    values: list[float] | None
    config: dict[str, Any] | None
    metrics: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    message: str = ""
    duplicate_of: int | None = None  # a copy of that trial's result (the config was proposed again)
    repeat_of: int | None = None  # a re-evaluation of that trial's config with another seed
    repeat_index: int = 0
    # set on the one point per config of `config_points` (the front's): AP over its evaluations
    ap_std: float | None = None
    n_evals: int = 1
    evaluations: list[int] = field(default_factory=list)

    @property
    def gflops(self) -> float | None:
        return None if self.flops is None else self.flops / 1e9

    @property
    def on_front_candidate(self) -> bool:
        """Full-fidelity, feasible, successful: the only trials the front may use."""
        return self.state == "COMPLETE" and self.status == R.OK and self.values is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trial"] = d.pop("number")
        return d


@dataclass
class FrontInfo:
    objectives: list[tuple[str, str]]
    points: list[TrialRecord]  # non-dominated, sorted by the first objective
    hypervolume: float
    reference_point: list[float]
    knee: TrialRecord | None
    n_trials: int
    n_candidates: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "objectives": [{"name": n, "direction": d} for n, d in self.objectives],
            "front": [p.to_dict() for p in self.points],
            "hypervolume": self.hypervolume,
            "reference_point": self.reference_point,
            "knee": None if self.knee is None else self.knee.number,
            "n_trials": self.n_trials,
            "n_candidates": self.n_candidates,
        }


def records(study: optuna.Study) -> list[TrialRecord]:
    out = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        metrics = ua.get(R.METRICS, {}) or {}
        ap = metrics.get("ap")
        out.append(TrialRecord(
            number=t.number, state=t.state.name, status=R.status_of(ua, t.state.name),
            flops=ua.get(R.FLOPS), params=ua.get(R.PARAMS),
            ap=None if ap is None else float(ap),
            values=list(t.values) if t.state == TrialState.COMPLETE and t.values is not None else None,
            config=ua.get(R.CONFIG), metrics=metrics, fingerprint=ua.get(R.FINGERPRINT),
            message=str(ua.get(R.MESSAGE, metrics.get("message", "")) or ""),
            duplicate_of=ua.get(R.DUPLICATE_OF), repeat_of=ua.get(R.REPEAT_OF),
            repeat_index=int(ua.get(R.REPEAT_INDEX, 0) or 0),
        ))
    return out


def config_groups(recs: list[TrialRecord]) -> list[list[TrialRecord]]:
    """The evaluations of each config (by fingerprint, in trial order): its `ok` full-fidelity trials. A
    duplicate only copies a result, so it is no evaluation (unless the config has nothing else)."""
    groups: dict[str, list[TrialRecord]] = {}
    for r in recs:
        if r.on_front_candidate:
            groups.setdefault(r.fingerprint or f"trial-{r.number}", []).append(r)
    return [[r for r in g if r.duplicate_of is None] or g[:1] for g in groups.values()]


def config_point(group: list[TrialRecord]) -> TrialRecord:
    """One config's point: its first evaluation, with AP, metrics' `ap` and objective values averaged over the
    evaluations (FLOPs and params are the same in each), `ap_std`, `n_evals` and the trial numbers."""
    first = group[0]
    if len(group) == 1:
        return replace(first, evaluations=[first.number])
    aps = [r.ap for r in group if r.ap is not None]
    ap = statistics.fmean(aps) if aps else None
    std = statistics.stdev(aps) if len(aps) > 1 else None
    values = [statistics.fmean(col) for col in zip(*(r.values or [] for r in group), strict=True)]
    metrics = dict(first.metrics)
    if ap is not None:
        metrics.update({"ap": ap, "ap_std": std, "ap_n": len(aps)})
    return replace(first, ap=ap, values=values, metrics=metrics, ap_std=std, n_evals=len(group),
                   evaluations=[r.number for r in group])


def config_points(recs: list[TrialRecord]) -> list[TrialRecord]:
    """One point per evaluated config (see `config_point`), in the order of their first evaluations."""
    return [config_point(g) for g in config_groups(recs)]


def ap_label(r: TrialRecord) -> str:
    """`0.2650 ± 0.0075 (n=3)` for a config evaluated more than once, else `0.2650`."""
    ap = "-" if r.ap is None else f"{r.ap:.4f}"
    if r.n_evals > 1 and r.ap_std is not None and math.isfinite(r.ap_std):
        ap += f" ± {r.ap_std:.4f} (n={r.n_evals})"
    return ap


def study_objectives(study: optuna.Study) -> list[tuple[str, str]]:
    objs = study.user_attrs.get(R.STUDY_OBJECTIVES)
    if objs:
        return [(str(n), str(d)) for n, d in objs]
    return [(f"objective_{i}", d.name.lower()) for i, d in enumerate(study.directions)]


def reference_point(study: optuna.Study, candidates: list[TrialRecord]) -> list[float]:
    """Explicit, documented reference point: for minimised objectives the budget if the space has one
    (FLOPs: `max_gflops`, params: `max_params_m`) else 1.1 x the worst candidate; for maximised ones 0."""
    objs = study_objectives(study)
    space = study.user_attrs.get(R.STUDY_SPACE, {}) or {}
    budgets = space.get("budgets", {}) or {}
    stored = study.user_attrs.get("reference_point")
    if stored is not None:
        return [float(x) for x in stored]
    ref = []
    for i, (name, direction) in enumerate(objs):
        if direction == "maximize":
            ref.append(0.0)
            continue
        budget = {"flops": budgets.get("max_gflops"), "params": budgets.get("max_params_m")}.get(name)
        if budget is not None:
            ref.append(float(budget))
        else:
            worst = max((c.values[i] for c in candidates if c.values is not None), default=1.0)
            ref.append(float(worst) * 1.1)
    return ref


def pareto_front(study: optuna.Study) -> FrontInfo:
    recs = records(study)
    objs = study_objectives(study)
    directions = [d for _, d in objs]
    cand = config_points(recs)  # one point per architecture, repeats averaged
    ref = reference_point(study, cand)
    if not cand:
        return FrontInfo(objs, [], 0.0, ref, None, len(recs), 0)
    pts = np.array([c.values for c in cand], dtype=float)
    mask = _pareto.pareto_mask(pts, directions)
    front = [c for c, m in zip(cand, mask, strict=True) if m]
    front.sort(key=lambda r: r.values[0] if r.values is not None else 0.0)
    fpts = np.array([f.values for f in front], dtype=float)
    hv = float(_pareto.hypervolume(fpts, ref, directions))
    knee_idx = _pareto.knee_point(fpts, directions) if len(front) > 2 else None
    knee = front[knee_idx] if knee_idx is not None else None
    return FrontInfo(objs, front, hv, ref, knee, len(recs), len(cand))


def select(front: FrontInfo, spec: str) -> list[TrialRecord]:
    """`knee` | `max-ap` | `min-flops` | `budget:<gflops>` (best AP within the budget) | `all` | `trial:<n>`."""
    pts = front.points
    if not pts:
        raise StudyError("the study has no feasible, completed trial at full fidelity yet: nothing to select")
    spec = spec.strip()
    if spec == "all":
        return list(pts)
    if spec == "max-ap":
        return [max(pts, key=lambda r: (r.ap or 0.0, -(r.flops or 0)))]
    if spec == "min-flops":
        return [min(pts, key=lambda r: (r.flops or 0, -(r.ap or 0.0)))]
    if spec == "knee":
        if front.knee is not None:
            return [front.knee]
        return [max(pts, key=lambda r: (r.ap or 0.0, -(r.flops or 0)))]  # 1-2 points: no knee, take max AP
    if spec.startswith("budget:"):
        try:
            g = float(spec.split(":", 1)[1])
        except ValueError:
            raise StudyError(f"--select {spec!r}: the budget must be a number of GFLOPs, e.g. budget:250") from None
        within = [r for r in pts if (r.gflops or 0.0) <= g]
        if not within:
            cheapest = min(r.gflops or 0.0 for r in pts)
            raise StudyError(f"--select {spec!r}: no front point within {g:g} GFLOPs (cheapest: {cheapest:.3f})")
        return [max(within, key=lambda r: (r.ap or 0.0, -(r.flops or 0)))]
    if spec.startswith("trial:"):
        n = spec.split(":", 1)[1]
        hit = [r for r in pts if n in {str(x) for x in (r.evaluations or [r.number])}]
        if not hit:
            raise StudyError(f"--select {spec!r}: trial {n} is not on the Pareto front")
        return hit
    raise StudyError(f"--select: must be knee, max-ap, min-flops, budget:<gflops>, all or trial:<n>, got {spec!r}")


def status_summary(study: optuna.Study) -> dict[str, Any]:
    recs = records(study)
    by_status: dict[str, int] = {}
    for r in recs:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    front = pareto_front(study)
    best = max((r for r in front.points if r.ap is not None), key=lambda r: r.ap or 0.0, default=None)
    return {
        "study": study.study_name,
        "n_trials": len(recs),
        "by_status": dict(sorted(by_status.items())),
        "front_size": len(front.points),
        "hypervolume": front.hypervolume,
        "reference_point": front.reference_point,
        "objectives": [{"name": n, "direction": d} for n, d in front.objectives],
        "best_ap": None if best is None else best.ap,
        "best_ap_label": None if best is None else ap_label(best),
        "repeats": repeats_summary(recs),
        "not_on_front": {k: v for k, v in sorted(by_status.items()) if k != R.OK and k != "running"},
        "evaluator": study.user_attrs.get(R.STUDY_EVALUATOR),
        "sampler": study.user_attrs.get(R.STUDY_SAMPLER),
    }


def repeats_summary(recs: list[TrialRecord]) -> dict[str, Any]:
    """Re-evaluations with other seeds (`repeats:`): trials that are repeats, configs evaluated more than once,
    and the pooled AP standard deviation over those configs (None before any)."""
    groups = [g for g in config_groups(recs) if len(g) > 1]
    ss = sum((len(g) - 1) * statistics.variance([r.ap or 0.0 for r in g]) for g in groups)
    dof = sum(len(g) - 1 for g in groups)
    return {"repeat_trials": sum(r.repeat_of is not None for r in recs), "configs_repeated": len(groups),
            "ap_noise_std": math.sqrt(ss / dof) if dof else None}
