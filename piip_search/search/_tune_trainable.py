"""The `--backend ray-tune` trainable: it runs in a Tune actor (possibly on another node), evaluates one prepared
study trial with the local driver's code and tells the study itself (why there: `_tune.py`'s docstring)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from piip_search.search._optuna_internals import storage_of, trial_handle

__all__ = ["piip_trainable"]


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """What Tune's loggers can plot: the evaluator's numbers (nested dicts, lists and strings stay in the study)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ---- the trainable (runs in a Tune actor, possibly on another node) ---------------------------------------------
_STUDIES: dict[tuple[str, str], Any] = {}  # one attached study per actor process and study


def _attach(spec: dict[str, Any]):
    from piip_search.search._study import attach_study

    key = (spec["storage_url"], spec["study"])
    if key not in _STUDIES:
        _STUDIES[key] = attach_study(spec["study"], storage_url=spec["storage_url"], trials_dir=spec["trials_dir"])
    return _STUDIES[key]


def _streaming(evaluator, tune):
    """The evaluator with every `ctx.report(iters, metrics)` also sent to Tune (the promotion decision included)."""

    def run(cfg, ctx):
        decide = ctx.report

        def report(iters: int, metrics: dict[str, Any]) -> bool:
            promote = decide(iters, metrics)
            tune.report({**_numeric(metrics), "iters": iters, "promoted": bool(promote), "final": False})
            return promote

        ctx.report = report
        return evaluator(cfg, ctx)

    return run


def _final_result(number: int, frozen) -> dict[str, Any]:
    metrics = frozen.user_attrs.get("metrics") or {}
    out = {**_numeric(metrics), "trial_number": number, "status": str(frozen.user_attrs.get("status", "")),
           "final": True}
    out.setdefault("ap", float("nan"))  # Tune checks every result for the searcher's metric
    for i, v in enumerate(frozen.values or []):
        out[f"value_{i}"] = float(v)
    return out


def piip_trainable(config: dict[str, Any]) -> None:
    """Evaluate one prepared study trial and tell the study (see the module docstring for why here)."""
    from ray import tune

    from piip_search.config import PIIPConfig
    from piip_search.search._driver import Prepared, SearchDriver
    from piip_search.search._evaluators import resolve_evaluator

    spec, job = config["piip_spec"], config["piip_trial"]
    if spec["cwd"] not in sys.path:  # user evaluators (`package.module:function`) import from the driver's cwd
        sys.path.insert(0, spec["cwd"])
    study, space = _attach(spec)
    trial_id, number = int(job["trial_id"]), int(job["number"])
    frozen = storage_of(study).get_trial(trial_id)
    if not frozen.state.is_finished():
        flops, params = int(job["flops"]), int(job["params"])
        evaluator = _streaming(resolve_evaluator(spec["evaluator"]), tune)
        driver = SearchDriver(study, space, study_path=Path(job["tdir"]).parent, evaluator=evaluator,
                              device=spec["device"], flops_fn=lambda _cfg: (flops, params))
        driver.evaluate(Prepared(trial_handle(study, trial_id), PIIPConfig.from_dict(job["config"]),
                                 Path(job["tdir"]), flops, params))
        frozen = storage_of(study).get_trial(trial_id)
    tune.report(_final_result(number, frozen))
