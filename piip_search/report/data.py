"""The data behind every view of the report, computed from a study (no rendering; tested alone).

`report_data(study)` returns a `ReportData`: one row per trial with its status kind and front membership,
hypervolume series (over trials and over compute), states over time, per-worker throughput, parameter
importances, front composition, header facts and the published PIIP reference markers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from piip_search.search._pareto import hypervolume
from piip_search.search._results import branches_label, config_points, interactions_label, pareto_front, records

__all__ = ["KINDS", "PUBLISHED_DETECTION", "ReportData", "report_data", "status_kind"]

#: how each status is drawn; only "ok" may be on the front
KINDS = ("ok", "truncated", "stopped", "infeasible", "failed", "running")

#: published COCO box AP (Mask R-CNN 1x) of PIIP/ViT models: /work/shared/reference/piip-architecture.md §7;
#: FLOPs are the paper convention (backbone-only multiply-adds), AP as a fraction
PUBLISHED_DETECTION = (
    {"name": "ViT-B 1024", "config": "vit-b-1024", "gflops": 463.0, "ap": 0.437},
    {"name": "PIIP-TSB 1120/896/448", "config": "piip-tsb-1120-896-448", "gflops": 243.0, "ap": 0.436},
)

#: GFLOPs budgets for "best AP under a budget" in the header (those within the study's range are shown)
COMMON_BUDGETS = (1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def status_kind(status: str, state: str) -> str:
    """One of KINDS; the legacy status "pruned" (older studies) is read as "stopped"."""
    if state == "RUNNING" or state == "WAITING":
        return "running"
    head = status.split(":")[0]
    if head == "pruned" or state == "PRUNED":
        return "stopped"
    if head in ("ok", "truncated", "stopped", "infeasible"):
        return head
    return "failed"


@dataclass
class ReportData:
    study: str
    header: dict[str, Any]
    rows: list[dict[str, Any]]
    front: list[int]  # trial numbers on the front, sorted by FLOPs
    knee: int | None
    hv_by_trial: list[tuple[int, float]]
    hv_by_compute: list[tuple[float, float]]
    compute_unit: str
    hv_by_sampler: dict[str, list[tuple[int, float]]]
    states_over_time: dict[str, list[tuple[float, int]]]  # kind -> (hours since start, cumulative count)
    throughput: list[dict[str, Any]]
    importances: dict[str, dict[str, float | None]]  # target ("AP", "GFLOPs") -> param -> importance
    searched_params: list[str]
    composition: dict[str, dict[str, dict[str, int]]]  # feature -> value -> {"front": n, "study": n}
    references: list[dict[str, Any]]
    reference_note: str
    extra: dict[str, Any] = field(default_factory=dict)


def _duration_s(t: optuna.trial.FrozenTrial) -> float | None:
    if t.datetime_start is None or t.datetime_complete is None:
        return None
    return (t.datetime_complete - t.datetime_start).total_seconds()


def _config_stats(recs: list[Any]) -> dict[int, Any]:
    """Trial number -> its config's point (`config_points`: AP mean, std, n) for every evaluation of a config
    evaluated more than once (`repeats:`, other seeds); duplicates only copy a result and count for nothing."""
    out = {}
    for p in config_points(recs):
        if p.n_evals > 1:
            out.update(dict.fromkeys(p.evaluations, p))
    return out


def _rows(study: optuna.Study, recs: list[Any], front: set[int], knee: int | None) -> list[dict[str, Any]]:
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    stats = _config_stats(recs)
    front_configs = {n for p in stats.values() if p.number in front for n in p.evaluations}
    rows = []
    for r in recs:
        t = trials[r.number]
        ua = t.user_attrs
        kind = status_kind(r.status, r.state)
        std = r.metrics.get("ap_std")
        cp = stats.get(r.number)
        rows.append({
            "trial": r.number, "state": r.state, "status": r.status, "kind": kind,
            "gflops": r.gflops, "params_m": None if r.params is None else r.params / 1e6, "ap": r.ap,
            "ap_std": cp.ap_std if cp is not None else (None if std is None else float(std)),
            "ap_mean": None if cp is None else cp.ap, "ap_n": None if cp is None else cp.n_evals,
            "repeat_of": r.repeat_of,
            "branches": branches_label(r.config), "interactions": interactions_label(r.config),
            "params": {k: v for k, v in t.params.items()},
            "duration_s": _duration_s(t), "worker": ua.get("worker", ""),
            "reason": r.status.split(":", 1)[1] if kind == "failed" and ":" in r.status else ua.get("message", ""),
            "duplicate_of": ua.get("duplicate_of"), "on_front": r.number in front, "knee": r.number == knee,
            "dominated": kind == "ok" and r.number not in front and r.number not in front_configs,
            "other_seed_of_front": r.number in front_configs and r.number not in front,
            "config_path": f"trial_{r.number:05d}/config.yaml", "log_path": f"trial_{r.number:05d}/log.txt",
            "completed": t.datetime_complete.timestamp() if t.datetime_complete else None,
            "started": t.datetime_start.timestamp() if t.datetime_start else None,
            "iters": _iters(r.metrics, ua),
        })
    return rows


def _iters(metrics: dict[str, Any], ua: dict[str, Any]) -> float | None:
    """Proxy iterations this trial cost: its own count, else the last rung it reached."""
    if metrics.get("iters") is not None:
        return float(metrics["iters"])
    rungs = [v["iters"] for k, v in ua.items() if k.startswith("rung_") and isinstance(v, dict) and "iters" in v]
    return float(max(rungs)) if rungs else None


class _HVTracker:
    """Hypervolume of the running front, updated per point: a dominated point changes nothing, a new front point
    drops the points it dominates (O(front) per point instead of re-sorting the whole history)."""

    def __init__(self, ref: list[float], directions: list[str]) -> None:
        self.ref, self.directions, self.hv = ref, directions, 0.0
        self.sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])  # all minimised
        self.pts = np.empty((0, len(ref)))

    def add(self, values: list[float]) -> float:
        p = np.asarray(values, dtype=float) * self.sign
        if len(self.pts) and np.any(np.all(self.pts <= p, axis=1)):
            return self.hv  # dominated by (or equal to) a front point
        keep = ~(np.all(p <= self.pts, axis=1) & np.any(p < self.pts, axis=1))
        self.pts = np.vstack([self.pts[keep], p])
        self.hv = float(hypervolume(self.pts * self.sign, self.ref, self.directions))
        return self.hv


def _hv_series(recs: list[Any], rows: list[dict[str, Any]], ref: list[float], directions: list[str],
               samplers: dict[int, str]) -> tuple[list, list, str, dict]:
    by_trial, by_compute, by_sampler = [], [], {}  # type: ignore[var-annotated]
    use_iters = any(r["iters"] for r in rows)
    unit = "proxy iterations" if use_iters else "evaluation hours"
    spent = 0.0
    tracker, per_sampler = _HVTracker(ref, directions), {}  # type: ignore[var-annotated]
    means = _config_stats(recs)  # a repeated config counts with its mean, as on the front
    for r, row in zip(recs, rows, strict=True):
        spent += (row["iters"] or 0.0) if use_iters else (row["duration_s"] or 0.0) / 3600.0
        if not r.on_front_candidate:
            continue
        values = means[r.number].values if r.number in means else r.values
        hv = tracker.add(values)
        by_trial.append((r.number, hv))
        by_compute.append((spent, hv))
        s = samplers.get(r.number, "")
        per_sampler.setdefault(s, _HVTracker(ref, directions))
        by_sampler.setdefault(s, []).append((r.number, per_sampler[s].add(values)))
    return by_trial, by_compute, unit, by_sampler


def _trial_samplers(study: optuna.Study) -> dict[int, str]:
    """The sampler that drew each trial: `auto` is GP then TPE from its switch point (see _samplers.py)."""
    from piip_search.search._samplers import AUTO_SWITCH_AT

    name = str(study.user_attrs.get("sampler", "") or "")
    out = {}
    n_complete = 0
    for t in study.get_trials(deepcopy=False):
        if name == "auto":
            out[t.number] = "gp" if n_complete < AUTO_SWITCH_AT else "tpe"
        else:
            out[t.number] = name
        n_complete += t.state.name == "COMPLETE"
    return out


def _states_over_time(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, int]]]:
    starts = [r["started"] for r in rows if r["started"] is not None]
    if not starts:
        return {}
    t0 = min(starts)
    out: dict[str, list[tuple[float, int]]] = {}
    for r in sorted((r for r in rows if r["completed"] is not None), key=lambda r: r["completed"]):
        series = out.setdefault(r["kind"], [])
        series.append(((r["completed"] - t0) / 3600.0, (series[-1][1] if series else 0) + 1))
    return out


def _throughput(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_w: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["completed"] is not None:
            by_w.setdefault(r["worker"] or "?", []).append(r)
    out = []
    for w, rs in sorted(by_w.items()):
        span_h = (max(r["completed"] for r in rs) - min(r["started"] or r["completed"] for r in rs)) / 3600.0
        out.append({"worker": w, "trials": len(rs), "ok": sum(r["kind"] == "ok" for r in rs),
                    "trials_per_hour": len(rs) / span_h if span_h > 0 else None})
    return out


#: importances use at most this many (most recent) ok trials: PED-ANOVA's cost grows with the study
IMPORTANCE_MAX_TRIALS = 500


def _importances(study: optuna.Study, recs: list[Any]) -> tuple[dict[str, dict[str, float | None]], list[str]]:
    """Optuna's PED-ANOVA importances (fANOVA needs scikit-learn) over the ok trials only: infeasible trials
    carry AP 0 by construction and would make the budget look like the only thing that matters."""
    ok = {r.number for r in recs if r.on_front_candidate}
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in ok][-IMPORTANCE_MAX_TRIALS:]
    searched = sorted({p for t in study.get_trials(deepcopy=False) for p in t.params})
    objs = [n for n, _ in (study.user_attrs.get("objectives") or [])] or ["flops", "ap"]
    targets = {"AP": objs.index("ap") if "ap" in objs else 1, "GFLOPs": objs.index("flops") if "flops" in objs else 0}
    out: dict[str, dict[str, float | None]] = {}
    sub = None
    if len(trials) >= 4:
        level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line per report
        try:
            sub = optuna.create_study(directions=study.directions)
        finally:
            optuna.logging.set_verbosity(level)
        sub.add_trials(trials)
    for label, idx in targets.items():
        scores: dict[str, float | None] = dict.fromkeys(searched)
        if sub is not None:
            direction = study.directions[idx].name.lower()
            sign = -1.0 if direction == "maximize" else 1.0  # PED-ANOVA explains the low target values
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # its note on the sign, handled above
                    got = optuna.importance.get_param_importances(
                        sub, evaluator=evaluator, target=lambda t, i=idx, s=sign: s * t.values[i], normalize=True)  # type: ignore[misc]
            except (ValueError, RuntimeError):  # e.g. every value equal: nothing to attribute
                got = {}
            scores.update({k: float(v) for k, v in got.items()})
        out[label] = scores
    return out, searched


def _features(cfg: dict[str, Any] | None) -> dict[str, str]:
    if not cfg:
        return {}
    branches = cfg.get("branches", [])
    out = {"branches": str(len(branches))}
    for i, b in enumerate(branches):
        out[f"branch {i + 1} model"] = str(b.get("model") or f"d{b.get('embed_dim')}")
        out[f"branch {i + 1} resolution"] = str(b.get("resolution"))
    it = cfg.get("interactions", {}) or {}
    for k in ("count", "direction", "attention"):
        out[f"interactions {k}"] = str(it.get(k, ""))
    return out


def _composition(recs: list[Any], front: set[int]) -> dict[str, dict[str, dict[str, int]]]:
    """How often each model / resolution / interaction setting appears on the front against the ok trials."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in recs:
        if not r.on_front_candidate:
            continue
        for feat, val in _features(r.config).items():
            cell = out.setdefault(feat, {}).setdefault(val, {"front": 0, "study": 0})
            cell["study"] += 1
            cell["front"] += r.number in front
    return out


def _references(study: optuna.Study) -> tuple[list[dict[str, Any]], str]:
    space = study.user_attrs.get("space", {}) or {}
    convention = space.get("flops_convention") or "model"
    objs = [n for n, _ in (study.user_attrs.get("objectives") or [])]
    if convention != "paper":
        return [], (f"published PIIP models not drawn: this study counts FLOPs with the {convention!r} convention, "
                    "the published numbers use 'paper' (backbone-only)")
    if objs and objs[:2] != ["flops", "ap"]:
        return [], "published PIIP models not drawn: the study's objectives are not FLOPs and AP"
    return [dict(r) for r in PUBLISHED_DETECTION], ("published PIIP models: COCO box AP, Mask R-CNN 1x (a proxy AP "
                                                    "on other data is comparable only in trend)")


def _best_under_budgets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ok = [{**r, "ap": r["ap"] if r["ap_mean"] is None else r["ap_mean"]} for r in rows  # means, as the front
          if r["kind"] == "ok" and r["gflops"] is not None and r["ap"] is not None]
    if not ok:
        return []
    lo, hi = min(r["gflops"] for r in ok), max(r["gflops"] for r in ok)
    budgets = [b for b in COMMON_BUDGETS if lo <= b <= hi]
    if len(budgets) < 2:  # a study of tiny models: budgets at fractions of its own FLOPs range
        budgets = [float(f"{lo + (hi - lo) * q:.3g}") for q in (0.25, 0.5, 1.0)]  # type: ignore[misc]
    out = []
    for b in budgets:
        best = max((r for r in ok if r["gflops"] <= b), key=lambda r: r["ap"], default=None)
        if best is None:  # a budget rounded below the cheapest trial
            continue
        out.append({"budget_gflops": b, "trial": best["trial"], "ap": best["ap"], "gflops": best["gflops"]})
    return out


def report_data(study: optuna.Study, *, importances: bool = True) -> ReportData:
    fi = pareto_front(study)
    recs = records(study)
    front = {p.number for p in fi.points}
    knee = fi.knee.number if fi.knee is not None else None
    rows = _rows(study, recs, front, knee)
    directions = [d for _, d in fi.objectives]
    by_trial, by_compute, unit, by_sampler = _hv_series(recs, rows, fi.reference_point, directions,
                                                        _trial_samplers(study))
    imps, searched = _importances(study, recs) if importances else ({}, [])
    refs, note = _references(study)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    space = study.user_attrs.get("space", {}) or {}
    header = {
        "study": study.study_name, "space": space.get("name", ""), "sampler": study.user_attrs.get("sampler", ""),
        "flops_convention": space.get("flops_convention") or "model", "n_trials": len(rows),
        "by_kind": {k: counts.get(k, 0) for k in KINDS if counts.get(k)}, "front_size": len(front),
        "hypervolume": fi.hypervolume, "reference_point": fi.reference_point, "knee": knee,
        "knee_gflops": fi.knee.gflops if fi.knee else None, "knee_ap": fi.knee.ap if fi.knee else None,
        "best_under_budgets": _best_under_budgets(rows),
        "export_command": f"piip-search export {study.study_name} --select knee --out {study.study_name}-knee.yaml",
    }
    return ReportData(study.study_name, header, rows, [p.number for p in fi.points], knee, by_trial, by_compute,
                      unit, by_sampler, _states_over_time(rows), _throughput(rows), imps, searched,
                      _composition(recs, front), refs, note)


def finite(x: float | None) -> float | None:
    """JSON-safe number (NaN/inf become None)."""
    return None if x is None or not math.isfinite(x) else x
