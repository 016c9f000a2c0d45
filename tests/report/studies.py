"""Small studies with known trials for the report tests, user attrs set the way _driver.py sets them."""

from __future__ import annotations

import datetime as dt

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

DIST = {"b0.embed_dim": IntDistribution(32, 96, step=32), "b0.resolution": CategoricalDistribution([64, 96, 128]),
        "attention": CategoricalDistribution(["deformable", "global"])}
SPACE = {"name": "known", "budgets": {"max_gflops": 10.0}, "flops_convention": "model"}
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def _cfg(dim: int, res: int, attention: str) -> dict:
    return {"branches": [{"model": None, "embed_dim": dim, "resolution": res}, {"model": "T", "resolution": 64}],
            "interactions": {"count": 2, "direction": "bidirectional", "attention": attention}}


def add(study: optuna.Study, n: int, *, status: str, gflops: float | None, ap: float | None,
        state: TrialState = TrialState.COMPLETE, dim: int = 64, res: int = 96, attention: str = "deformable",
        worker: str = "host:1", minutes: float = 1.0, fingerprint: str | None = None) -> None:
    attrs = {"status": status, "worker": worker, "fingerprint": fingerprint or f"fp{n}",
             "config": _cfg(dim, res, attention)}
    if gflops is not None:
        attrs |= {"flops": int(gflops * 1e9), "params": 1_000_000}
    if ap is not None:
        attrs["metrics"] = {"ap": ap, "iters": 100}
    if status.startswith("failed:"):
        attrs["message"] = "boom"
    values = [gflops, ap] if state == TrialState.COMPLETE and ap is not None else None
    start = T0 + dt.timedelta(minutes=2 * n)
    study.add_trial(optuna.trial.FrozenTrial(
        number=n, state=state, value=None, values=values, datetime_start=start,
        datetime_complete=None if state == TrialState.RUNNING else start + dt.timedelta(minutes=minutes),
        params={"b0.embed_dim": dim, "b0.resolution": res, "attention": attention}, distributions=DIST,
        user_attrs=attrs, system_attrs={}, intermediate_values={}, trial_id=n))


def known_study(name: str = "known", storage: str | None = None) -> optuna.Study:
    """Trials 0-3 ok (0, 1, 3 on the front, 2 dominated, knee among them), then one of each other kind."""
    study = optuna.create_study(study_name=name, storage=storage, directions=["minimize", "maximize"])
    study.set_user_attr("space", SPACE)
    study.set_user_attr("objectives", [["flops", "minimize"], ["ap", "maximize"]])
    study.set_user_attr("sampler", "tpe")
    add(study, 0, status="ok", gflops=1.0, ap=0.30, dim=32, res=64)
    add(study, 1, status="ok", gflops=2.0, ap=0.50, dim=64, res=96, worker="host:2")
    add(study, 2, status="ok", gflops=4.0, ap=0.45, dim=96, res=64, attention="global")
    add(study, 3, status="ok", gflops=8.0, ap=0.55, dim=96, res=128)
    add(study, 4, status="truncated", gflops=3.0, ap=0.60, dim=64, res=128)  # would dominate if it counted
    add(study, 5, status="pruned", gflops=1.5, ap=0.70, dim=32, res=128)
    add(study, 6, status="infeasible", gflops=12.0, ap=0.0, dim=96, res=128, attention="global")
    add(study, 7, status="failed:worker-died", gflops=2.5, ap=None, state=TrialState.FAIL, worker="host:2")
    add(study, 8, status="ok", gflops=3.5, ap=0.40, dim=32, res=96, attention="global")
    add(study, 9, status="ok", gflops=6.0, ap=0.35, dim=64, res=64, worker="host:2")
    return study
