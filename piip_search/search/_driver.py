"""The search driver: Optuna ask/tell over a `SearchSpace`, budgets first, then the evaluator.

One trial, in order (cheap before expensive):
1. sample a config (`space.sample`); an impossible draw is told FAIL with the reason;
2. count FLOPs/params analytically (no model built); record them and the budget constraints
   (`trial.set_constraint`, value <= 0 = feasible). Over budget: told COMPLETE with AP 0 and a violated
   constraint, so samplers learn the boundary; never built, never trained;
3. same canonical config already evaluated (any worker): its result is copied, nothing is trained;
4. evaluate (proxy training by default) with multi-fidelity rungs if the space has a `fidelity:` schedule;
   a trial stopped at a rung is told COMPLETE but infeasible (constraint `full_fidelity` > 0, see _fidelity.py),
   its rung results stay in its user attrs;
5. write `trial_NNNNN/{config.yaml, metrics.json}` (the evaluator writes `log.txt`) and tell the values.

The study stores the space it was created with, so `worker`, `pareto` and `export` need only its name.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError, SearchSpaceError, StudyError
from piip_search.search._evaluators import EvalContext, Evaluator, resolve_evaluator
from piip_search.search._samplers import AUTO_SWITCH_AT, CachedTPESampler, GPThenTPESampler
from piip_search.search._storage import default_storage_url, load_study, open_storage, study_dir

SAMPLERS = ("auto", "nsga2", "tpe", "gp", "random", "known-cost")
# auto = gp for the first AUTO_SWITCH_AT complete trials (best in benchmarks/bench_search_efficiency.py), then tpe
# (GP's ask cost grows with the study: ~1.3 s at 200 trials, 2.6 s at 400; bench_driver_overhead.py) -- see README
DEFAULT_SAMPLER = "auto"

# user-attr keys written on every trial
A_STATUS, A_FP, A_CONFIG = "status", "fingerprint", "config"
FULL_FIDELITY = "full_fidelity"  # constraint violated (> 0) by trials stopped at a lower rung


def make_sampler(name: str, seed: int | None, *, switch_at: int = AUTO_SWITCH_AT,
                 space: Any = None) -> optuna.samplers.BaseSampler:
    """Seeded samplers; constraints are read from `trial.constraints` (Optuna >= 5). `known-cost` needs `space`."""
    if name == "known-cost":
        from piip_search.search._known_cost import KnownCostSampler

        if space is None:
            raise SearchSpaceError("sampler: known-cost needs the search space")
        return KnownCostSampler(space, seed=seed)
    if name == "auto":
        return GPThenTPESampler(make_sampler("gp", seed), make_sampler("tpe", seed), switch_at=switch_at)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "tpe":
        with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return CachedTPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True)
    if name == "gp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # conditional b2.*/b3.* fall back to independent sampling by design: no warning per trial
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SearchSpaceError(f"sampler: must be one of {list(SAMPLERS)}, got {name!r}")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class TrialOutcome:
    number: int
    status: str
    values: list[float] | None
    metrics: dict[str, Any] = field(default_factory=dict)


class SearchDriver:
    """Runs trials of one study. Several drivers (processes, machines) may share a study."""

    def __init__(self, study: optuna.Study, space: Any, *, study_path: Path, evaluator: Evaluator,
                 device: str | None = None, flops_fn: Callable[[PIIPConfig], tuple[int, int]] | None = None,
                 build_counter: Callable[[], None] | None = None) -> None:
        self.study = study
        self.space = space
        self.study_path = study_path
        self.evaluator = evaluator
        self.device = device
        self.objectives: list[tuple[str, str]] = objectives_of(space)
        self._flops_fn = flops_fn or _default_flops_fn(space)
        self.schedule = fidelity_of(space)  # multi-fidelity rungs, or None
        self._known: dict[str, FrozenTrial] = {}
        self._scanned = 0  # trials[:_scanned] have been looked at by _refresh_known
        self._open: list[int] = []  # ... of which these were unfinished then

    # ---- helpers --------------------------------------------------------------------------------------
    def _refresh_known(self) -> None:
        """Index finished trials by canonical fingerprint, incrementally: each trial is indexed once, when it is
        first seen finished (trials of other workers included); unfinished ones are looked at again next time."""
        trials = self.study.get_trials(deepcopy=False)
        still_open = []
        for i in [*self._open, *range(self._scanned, len(trials))]:
            t = trials[i]
            if not t.state.is_finished():
                still_open.append(i)
                continue
            fp = t.user_attrs.get(A_FP)
            if fp and t.state in (TrialState.COMPLETE, TrialState.PRUNED) and fp not in self._known:
                if t.user_attrs.get(A_STATUS) in ("ok", "infeasible", "pruned"):
                    self._known[fp] = t
        self._open, self._scanned = still_open, len(trials)

    def _values(self, flops: int, params: int, metrics: dict[str, Any]) -> list[float]:
        out = []
        for name, _ in self.objectives:
            if name == "flops":
                out.append(flops / 1e9)
            elif name == "params":
                out.append(params / 1e6)
            else:
                v = metrics.get(name)
                if v is None or not math.isfinite(float(v)):
                    raise ValueError(f"evaluator result has no finite {name!r} (objective): {metrics}")
                out.append(float(v))
        return out

    def _trial_dir(self, number: int) -> Path:
        d = self.study_path / f"trial_{number:05d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def recover_stale_trials(self) -> list[int]:
        """Fail RUNNING trials left by dead workers on this host and queue them again.

        RDB storages do this across hosts by heartbeat; journal files have no heartbeat, so a crashed
        local worker's trial is recognised by its recorded pid.
        """
        host = socket.gethostname()
        recovered = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            w = t.user_attrs.get("worker", "")
            h, _, pid = w.rpartition(":")
            if h == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                self.study._storage.set_trial_user_attr(t._trial_id, A_STATUS, "failed:worker-died")
                self.study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                if t.params:
                    self.study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
                recovered.append(t.number)
        return recovered

    # ---- one trial --------------------------------------------------------------------------------------
    def run_one(self) -> TrialOutcome:
        prepared = self.prepare()
        if isinstance(prepared, TrialOutcome):
            return prepared
        return self._evaluate(*prepared)

    def prepare(self) -> TrialOutcome | tuple[optuna.Trial, PIIPConfig, Path, int, int]:
        """Everything before training: sample, count, budget check, duplicate check.

        Returns a finished outcome (invalid, infeasible, duplicate) or what `_evaluate` needs.
        """
        trial = self.study.ask()
        trial.set_user_attr("worker", worker_id())
        try:
            cfg = self.space.sample(trial)
        except (ConfigError, SearchSpaceError, ValueError) as e:
            trial.set_user_attr(A_STATUS, "failed:invalid-sample")
            trial.set_user_attr("message", str(e))
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialOutcome(trial.number, "failed:invalid-sample", None, {"message": str(e)})

        fp = cfg.fingerprint()
        flops, params = self._flops_fn(cfg)
        trial.set_user_attr(A_FP, fp)
        trial.set_user_attr("flops", int(flops))
        trial.set_user_attr("params", int(params))
        trial.set_user_attr(A_CONFIG, cfg.to_dict())
        violations = budget_violations(self.space, flops, params)
        for key, v in violations.items():
            trial.set_constraint(key, v)
        tdir = self._trial_dir(trial.number)
        (tdir / "config.yaml").write_text(cfg.to_yaml())

        if any(v > 0 for v in violations.values()):
            metrics = {"status": "infeasible", "ap": 0.0,
                       "message": "over budget: " + ", ".join(f"{k} exceeded by {v:g}"
                                                              for k, v in violations.items() if v > 0)}
            return self._finish(trial, tdir, "infeasible", flops, params, metrics)

        self._refresh_known()
        prev = self._known.get(fp)
        if prev is not None:
            trial.set_user_attr("duplicate_of", prev.number)
            prev_status = prev.user_attrs.get(A_STATUS)
            metrics = dict(prev.user_attrs.get("metrics", {}))
            if prev_status == "pruned":
                return self._finish(trial, tdir, "pruned", flops, params, metrics, pruned=True)
            return self._finish(trial, tdir, prev_status or "ok", flops, params, metrics)
        return trial, cfg, tdir, flops, params

    def _evaluate(self, trial: optuna.Trial, cfg: PIIPConfig, tdir: Path, flops: int, params: int) -> TrialOutcome:
        schedule = self.schedule
        rungs = schedule.rung_iters() if schedule is not None else []
        full = rungs[-1] if rungs else proxy_settings(self.space).get("iters")
        stopped: dict[str, Any] = {}

        def report(iters: int, metrics: dict[str, Any]) -> bool:
            if schedule is None or iters not in rungs:
                return True
            k = rungs.index(iters)
            ap = float(metrics.get("ap", 0.0))
            trial.set_user_attr(f"rung_{k}", {"iters": iters, "ap": ap, "gflops": flops / 1e9})
            if k == len(rungs) - 1:
                return True
            others = []
            for t in self.study.get_trials(deepcopy=False):
                r = t.user_attrs.get(f"rung_{k}")
                if r is not None and t.number != trial.number:
                    others.append((r["gflops"], r["ap"]))
            why = schedule.explain(k, (flops / 1e9, ap), others)
            if not why.promote:
                stopped.update({"rung": k, "iters": iters, "ap": ap, "position": why.position,
                                "n_results": why.n_results})
            return why.promote

        ctx = EvalContext(trial_dir=tdir, fidelity=full, rungs=rungs, device=self.device,
                          proxy=proxy_settings(self.space), trial_number=trial.number, report=report)
        t0 = time.perf_counter()
        try:
            metrics = dict(self.evaluator(cfg, ctx) or {})
        except Exception as e:  # a user's evaluator may raise anything: the trial fails, the search goes on
            metrics = {"status": "failed", "message": f"{type(e).__name__}: {e}"}
        metrics.setdefault("eval_wall_s", time.perf_counter() - t0)
        status = str(metrics.get("status", "ok"))
        if stopped:
            metrics["stopped_at"] = stopped
            return self._finish(trial, tdir, "pruned", flops, params, metrics, pruned=True)
        if status != "ok":
            return self._finish(trial, tdir, f"failed:{status}", flops, params, metrics, failed=True)
        return self._finish(trial, tdir, "ok", flops, params, metrics)

    def _finish(self, trial: optuna.Trial, tdir: Path, status: str, flops: int, params: int,
                metrics: dict[str, Any], *, pruned: bool = False, failed: bool = False) -> TrialOutcome:
        metrics = {k: v for k, v in metrics.items() if k != "history" or status == "ok"} | {
            "flops": int(flops), "params": int(params)}
        clean = json.loads(json.dumps(metrics, default=str))
        trial.set_user_attr(A_STATUS, status)
        trial.set_user_attr("metrics", clean)
        (tdir / "metrics.json").write_text(json.dumps({"trial": trial.number, "status": status, **clean},
                                                      indent=2, sort_keys=True))
        schedule = self.schedule
        if pruned:
            # Stopped at a rung: told COMPLETE with its low-fidelity values but infeasible (constraint
            # `full_fidelity` in (0, 1], graded by how far it got: FidelitySchedule.stop_violation), so samplers
            # learn from it while every front -- ours, Optuna's best_trials, the dashboard's -- excludes it.
            # Without an AP to tell, it is PRUNED (the sampler ignores it).
            try:
                values = self._values(flops, params, clean)
            except ValueError:
                self.study.tell(trial, state=TrialState.PRUNED)
                return TrialOutcome(trial.number, status, None, clean)
            stop = clean.get("stopped_at") or {}
            violation = 1.0 if schedule is None else schedule.stop_violation(
                int(stop.get("rung", 0)), stop.get("position"), stop.get("n_results"))
            trial.set_constraint(FULL_FIDELITY, violation)
            self.study.tell(trial, values)
            return TrialOutcome(trial.number, status, values, clean)
        if schedule is not None:
            # every trial of a multi-fidelity study carries the same constraints (GPSampler refuses a study whose
            # trials have different constraint keys): 0 = not stopped
            trial.set_constraint(FULL_FIDELITY, 0.0)
        if failed:
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialOutcome(trial.number, status, None, clean)
        try:
            values = self._values(flops, params, clean)
        except ValueError as e:
            trial.set_user_attr(A_STATUS, "failed:bad-metrics")
            trial.set_user_attr("message", str(e))
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialOutcome(trial.number, "failed:bad-metrics", None, clean)
        self.study.tell(trial, values)
        return TrialOutcome(trial.number, status, values, clean)

    # ---- many trials --------------------------------------------------------------------------------------
    def run(self, n_trials: int, *, progress: bool = True) -> list[TrialOutcome]:
        from piip_search.search._progress import SearchProgress

        outcomes: list[TrialOutcome] = []
        with SearchProgress(self, n_trials, enabled=progress) as bar:
            for _ in range(n_trials):
                out = self.run_one()
                outcomes.append(out)
                bar.update(out)
        return outcomes


# ---- space accessors (tolerant of the space's representation) ------------------------------------------------
def objectives_of(space: Any) -> list[tuple[str, str]]:
    objs = getattr(space, "objectives", None) or [("flops", "minimize"), ("ap", "maximize")]
    out = []
    for o in objs:
        if isinstance(o, dict):
            ((k, v),) = o.items()
            out.append((str(k), str(v)))
        elif isinstance(o, (tuple, list)):
            out.append((str(o[0]), str(o[1])))
        else:
            out.append((str(o.name), str(o.direction)))
    return out


def proxy_settings(space: Any) -> dict[str, Any]:
    p = getattr(space, "proxy", None) or {}
    return dict(p) if isinstance(p, dict) else p.model_dump(exclude_none=True)


def fidelity_of(space: Any):
    return getattr(space, "fidelity_schedule", lambda: None)()


def budget_violations(space: Any, flops: int, params: int) -> dict[str, float]:
    """Constraint values (<= 0 feasible) in GFLOPs and M params."""
    b = getattr(space, "budgets", None)
    get = (lambda k: b.get(k)) if isinstance(b, dict) else (lambda k: getattr(b, k, None))
    out: dict[str, float] = {}
    if b is not None and get("max_gflops") is not None:
        out["max_gflops"] = flops / 1e9 - float(get("max_gflops"))
    if b is not None and get("max_params_m") is not None:
        out["max_params_m"] = params / 1e6 - float(get("max_params_m"))
    return out


def _default_flops_fn(space: Any) -> Callable[[PIIPConfig], tuple[int, int]]:
    from piip_search.flops import count

    convention = getattr(space, "flops_convention", None) or "model"

    def fn(cfg: PIIPConfig) -> tuple[int, int]:
        r = count(cfg, convention=convention)
        return int(r.flops), int(r.params)

    return fn


# ---- study lifecycle ---------------------------------------------------------------------------------------
SPACE_ATTR = "space"


def open_study(space: Any, *, name: str, storage_url: str | None, trials_dir: str | Path, sampler: str,
               seed: int | None, resume: bool) -> optuna.Study:
    """Create a study for `space`, or load it when `resume` (the stored space must match)."""
    storage = open_storage(storage_url, trials_dir, name, create=True)
    exists = name in [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    space_dict = space.to_dict()
    if exists and not resume:
        raise StudyError(f"study {name!r} already exists; pass --resume to continue it, or choose another --study")
    if exists:
        study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(sampler, seed, space=space))
        stored = study.user_attrs.get(SPACE_ATTR)
        if stored is not None and stored != space_dict:
            raise StudyError(f"study {name!r} was created with a different search space; resume it with the "
                             f"same space file (or use `piip-search worker`)")
        return study
    directions = [d for _, d in objectives_of(space)]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                sampler=make_sampler(sampler, seed, space=space))
    study.set_user_attr(SPACE_ATTR, space_dict)
    study.set_user_attr("objectives", objectives_of(space))
    study.set_user_attr("sampler", sampler)
    return study


def attach_study(name: str, *, storage_url: str | None, trials_dir: str | Path, sampler: str | None = None,
                 seed: int | None = None) -> tuple[optuna.Study, Any]:
    """Load an existing study and the space stored in it (for `worker`, `pareto`, `export`)."""
    from piip_search.search._space import SearchSpace

    storage = open_storage(storage_url, trials_dir, name, create=False)
    study = load_study(name, storage)
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        raise StudyError(f"study {name!r} was not created by piip-search (no stored search space)")
    space = SearchSpace.from_dict(stored, source=f"study {name}")
    sampler = sampler or study.user_attrs.get("sampler", DEFAULT_SAMPLER)
    study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(sampler, seed, space=space))
    return study, space


def enqueue_configs(study: optuna.Study, space: Any, refs: list[str]) -> list[str]:
    """Seed the study with known configs (`--enqueue`): paper models, a previous export, ..."""
    from piip_search.config import load_config

    names = []
    for ref in refs:
        cfg = load_config(ref)
        params = space.params_from_config(cfg)
        study.enqueue_trial(params, user_attrs={"enqueued": str(ref)})
        names.append(str(ref))
    return names


def run_search(space: Any, *, name: str | None = None, storage_url: str | None = None,
               trials_dir: str | Path = "trials", n_trials: int | None = None, sampler: str | None = None,
               seed: int | None = 0, evaluator: str | None = None, enqueue: list[str] | None = None,
               resume: bool = False, device: str | None = None, progress: bool = True,
               backend: str = "optuna", max_concurrent: int | None = None) -> tuple[optuna.Study, list]:
    """The `piip-search run` entry point as a function."""
    name = name or getattr(space, "name", None) or "default"
    sampler = sampler or getattr(space, "sampler", None) or DEFAULT_SAMPLER
    fn = resolve_evaluator(evaluator or getattr(space, "evaluator", None) or "builtin:proxy")
    study = open_study(space, name=name, storage_url=storage_url, trials_dir=trials_dir, sampler=sampler,
                       seed=seed, resume=resume)
    if enqueue:
        enqueue_configs(study, space, enqueue)
    sdir = study_dir(trials_dir, name)
    driver = SearchDriver(study, space, study_path=sdir, evaluator=fn, device=device)
    driver.recover_stale_trials()
    n = n_trials if n_trials is not None else int(getattr(space, "trials", None) or 20)
    if backend == "ray":
        from piip_search.search._ray import run_with_ray

        url = storage_url or default_storage_url(trials_dir, name)
        return study, run_with_ray(driver, n, storage_url=url, trials_dir=trials_dir,
                                   evaluator_spec=evaluator or getattr(space, "evaluator", None) or "builtin:proxy",
                                   max_concurrent=max_concurrent, progress=progress)
    if backend != "optuna":
        raise SearchSpaceError(f"--backend: must be optuna or ray, got {backend!r}")
    return study, driver.run(n, progress=progress)


def run_worker(name: str, *, storage_url: str, trials_dir: str | Path = "trials", n_trials: int | None = None,
               device: str | None = None, evaluator: str | None = None, progress: bool = True) -> list:
    """`piip-search worker`: one more process on a running study (same space, storage, budgets, front)."""
    study, space = attach_study(name, storage_url=storage_url, trials_dir=trials_dir)
    fn = resolve_evaluator(evaluator or getattr(space, "evaluator", None) or "builtin:proxy")
    driver = SearchDriver(study, space, study_path=study_dir(trials_dir, name), evaluator=fn, device=device)
    driver.recover_stale_trials()
    n = n_trials if n_trials is not None else int(getattr(space, "trials", None) or 20)
    return driver.run(n, progress=progress)
