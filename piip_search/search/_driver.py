"""The search driver: Optuna ask/tell over a `SearchSpace`, budgets first, then the evaluator.

One trial, in order (cheap before expensive):
1. sample a config (`space.sample`); an impossible draw is told FAIL with the reason;
2. count FLOPs/params analytically (no model built); record them and the budget constraints
   (`trial.set_constraint`, value <= 0 = feasible). Over budget: told COMPLETE with AP 0 and a violated
   constraint, so samplers learn the boundary; never built, never trained;
3. same canonical config already evaluated (any worker): its result is copied, nothing is trained;
4. evaluate (proxy training by default) with multi-fidelity rungs if the space has a `fidelity:` schedule;
   a trial stopped at a rung, or cut short of its iterations (a wall-clock safety cap), is told COMPLETE but
   infeasible (constraint `full_fidelity` > 0; statuses in `_records.py`), so it is never on a front;
5. write `trial_NNNNN/{config.yaml, metrics.json}` (the evaluator writes `log.txt`) and tell the values.

The study stores the space it was created with, so `worker`, `pareto` and `export` need only its name.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError, SearchSpaceError, StudyError
from piip_search.search import _optuna_internals
from piip_search.search import _records as R
from piip_search.search._evaluators import EvalContext, Evaluator, resolve_evaluator
from piip_search.search._gp_batch import BatchGPSampler
from piip_search.search._lifecycle import (
    Heartbeat,
    fail_and_requeue,
    mark_alive,
    recover_stale_trials,
    sigterm_as_interrupt,
    worker_id,
)
from piip_search.search._pending import replay_pending, save_pending
from piip_search.search._proposals import ProposalQueue
from piip_search.search._samplers import AUTO_SWITCH_AT, CachedTPESampler, GPThenTPESampler
from piip_search.search._space import DEFAULT_MAX_RETRIES, SAMPLER_NAMES
from piip_search.search._storage import default_storage_url, load_study, open_storage, study_dir
from piip_search.search._storage_retry import StorageUnavailableError

SAMPLERS = SAMPLER_NAMES  # one list, defined with the space schema
# auto = gp for the first AUTO_SWITCH_AT complete trials (best in benchmarks/bench_search_efficiency.py), then tpe
# (GP's ask cost grows with the study: ~1.3 s at 200 trials, 2.6 s at 400; bench_driver_overhead.py) -- see README
DEFAULT_SAMPLER = "auto"

A_STATUS = R.STATUS  # kept for the Ray backend


def make_sampler(name: str, seed: int | None, *, switch_at: int = AUTO_SWITCH_AT) -> optuna.samplers.BaseSampler:
    """Seeded samplers; constraints are read from `trial.constraints` (Optuna >= 5)."""
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
            return BatchGPSampler(seed=seed, n_startup_trials=10, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SearchSpaceError(f"sampler: must be one of {list(SAMPLERS)}, got {name!r}")


@dataclass
class TrialOutcome:
    number: int
    status: str
    values: list[float] | None
    metrics: dict[str, Any] = field(default_factory=dict)


class Prepared(NamedTuple):
    """A trial sampled, counted and within budget, ready for `SearchDriver.evaluate`."""

    trial: optuna.Trial
    cfg: PIIPConfig
    tdir: Path
    flops: int
    params: int


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
        self.max_retries = int(getattr(space, "max_retries", DEFAULT_MAX_RETRIES))
        self._known: dict[str, FrozenTrial] = {}
        self._scanned = 0  # trials[:_scanned] have been looked at by _refresh_known
        self._open: list[int] = []  # ... of which these were unfinished then
        self.proposals = ProposalQueue.for_study(study, space)  # while GP samples: one fit proposes for all

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
            fp = t.user_attrs.get(R.FINGERPRINT)
            if fp and t.state == TrialState.COMPLETE and fp not in self._known:
                if R.status_of(t.user_attrs, t.state.name) in R.REUSABLE:
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
                    raise ValueError(f"evaluator result has no finite {name!r} (objective): {str(metrics)[:300]}")
                out.append(float(v))
        return out

    def _trial_dir(self, number: int) -> Path:
        d = self.study_path / f"trial_{number:05d}"
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyError(f"trials folder {self.study_path}: cannot create {d.name}: {e.strerror or e}") from None
        return d

    def recover_stale_trials(self) -> list[int]:
        """Tell results kept during a storage outage, then fail and re-queue trials of dead workers."""
        replay_pending(self.study, self.study_path)
        return recover_stale_trials(self.study, max_retries=self.max_retries)

    # ---- one trial --------------------------------------------------------------------------------------
    def run_one(self) -> TrialOutcome:
        prepared = self.prepare()
        if isinstance(prepared, TrialOutcome):
            return prepared
        return self.evaluate(prepared)

    def prepare(self) -> TrialOutcome | Prepared:
        """Everything before training: sample, count, budget check, duplicate check.

        Returns a finished outcome (invalid, infeasible, duplicate) or what `evaluate` needs.
        """
        recover_stale_trials(self.study, max_retries=self.max_retries)
        if self.proposals is not None:
            self.proposals.before_ask()
        trial = self.study.ask()
        trial.set_user_attr(R.WORKER, worker_id())
        mark_alive(self.study, trial._trial_id)
        try:
            with Heartbeat(self.study, trial._trial_id, max_retries=self.max_retries):  # GP may sample for long
                cfg = self.space.sample(trial)
        except (ConfigError, SearchSpaceError, ValueError) as e:
            trial.set_user_attr(R.STATUS, "failed:invalid-sample")
            trial.set_user_attr(R.MESSAGE, str(e)[:2000])
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialOutcome(trial.number, "failed:invalid-sample", None, {"message": str(e)})

        fp = cfg.fingerprint()
        flops, params = self._flops_fn(cfg)
        trial.set_user_attr(R.FINGERPRINT, fp)
        trial.set_user_attr(R.FLOPS, int(flops))
        trial.set_user_attr(R.PARAMS, int(params))
        trial.set_user_attr(R.CONFIG, cfg.to_dict())
        violations = budget_violations(self.space, flops, params)
        tdir = self._trial_dir(trial.number)
        (tdir / "config.yaml").write_text(cfg.to_yaml())

        if any(v > 0 for v in violations.values()):
            metrics = {"status": R.INFEASIBLE, "ap": 0.0,
                       "message": "over budget: " + ", ".join(f"{k} exceeded by {v:g}"
                                                              for k, v in violations.items() if v > 0)}
            return self._finish(trial, tdir, R.INFEASIBLE, flops, params, metrics, violations)

        self._refresh_known()
        prev = self._known.get(fp)
        if prev is not None:
            trial.set_user_attr(R.DUPLICATE_OF, prev.number)
            prev_status = R.status_of(prev.user_attrs, prev.state.name)
            metrics = dict(prev.user_attrs.get(R.METRICS, {}))
            shortfall = _optuna_internals.constraints_of(prev).get(R.FULL_FIDELITY, 0.0)
            return self._finish(trial, tdir, prev_status, flops, params, metrics, violations, shortfall=shortfall)
        return Prepared(trial, cfg, tdir, flops, params)

    def evaluate(self, prep: Prepared) -> TrialOutcome:
        """Train/evaluate a prepared trial and tell its result. SIGINT/SIGTERM fail it and re-queue its config."""
        try:
            with Heartbeat(self.study, prep.trial._trial_id, max_retries=self.max_retries):
                return self._evaluate(*prep)
        except KeyboardInterrupt:
            frozen = self.study._storage.get_trial(prep.trial._trial_id)
            if frozen.state == TrialState.RUNNING:
                fail_and_requeue(self.study, frozen, "interrupted (SIGINT/SIGTERM)", status=R.INTERRUPTED,
                                 max_retries=self.max_retries, count_attempt=False)
            raise

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
            metrics = {"status": "failed", "message": f"{type(e).__name__}: {str(e)[:2000]}"}
        metrics.setdefault("eval_wall_s", time.perf_counter() - t0)
        status = str(metrics.get("status", R.OK))
        budgets = budget_violations(self.space, flops, params)
        if stopped:
            metrics["stopped_at"] = stopped
            stop = stopped
            shortfall = 1.0 if schedule is None else schedule.stop_violation(
                int(stop.get("rung", 0)), stop.get("position"), stop.get("n_results"))
            return self._finish(trial, tdir, R.STOPPED, flops, params, metrics, budgets, shortfall=shortfall)
        if status != R.OK:
            return self._finish(trial, tdir, f"{R.FAILED}{status}", flops, params, metrics, budgets)
        shortfall = fidelity_shortfall(metrics, full)
        if shortfall > 0:
            metrics["message"] = (f"cut short of its fidelity: {metrics.get('iters')} of {full} iterations "
                                  f"(stop reason {metrics.get('stop_reason')}); not a valid point")
            return self._finish(trial, tdir, R.TRUNCATED, flops, params, metrics, budgets, shortfall=shortfall)
        return self._finish(trial, tdir, R.OK, flops, params, metrics, budgets)

    def _finish(self, trial: optuna.Trial, tdir: Path, status: str, flops: int, params: int,
                metrics: dict[str, Any], budgets: dict[str, float], *, shortfall: float = 0.0) -> TrialOutcome:
        """Record and tell. `shortfall` > 0 (stopped, truncated) makes the trial infeasible on `full_fidelity`:
        told COMPLETE with its values so samplers learn from it, excluded from every front."""
        metrics = {k: v for k, v in metrics.items() if k != "history" or status == R.OK} | {
            "flops": int(flops), "params": int(params)}
        clean = json.loads(json.dumps(metrics, default=str))
        (tdir / "metrics.json").write_text(json.dumps({"trial": trial.number, "status": status, **clean},
                                                      indent=2, sort_keys=True))
        values: list[float] | None = None
        if not R.is_failed(status):
            try:
                values = self._values(flops, params, clean)
            except ValueError as e:
                status, clean = "failed:bad-metrics", {**clean, "message": str(e)}
        if values is None and status in (R.STOPPED, R.TRUNCATED):
            status = f"{R.FAILED}{status}-without-ap"
        constraints = {**budgets, R.FULL_FIDELITY: float(shortfall)}
        attrs = {R.STATUS: status, R.METRICS: clean}
        if "message" in clean:
            attrs[R.MESSAGE] = str(clean["message"])[:2000]
        try:
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            for k, v in constraints.items():
                trial.set_constraint(k, v)
            if values is None:
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, values)
        except StorageUnavailableError:
            save_pending(tdir, trial_id=trial._trial_id, number=trial.number, status=status, values=values,
                         user_attrs=attrs, constraints=constraints)
            raise
        return TrialOutcome(trial.number, status, values, clean)

    # ---- many trials --------------------------------------------------------------------------------------
    def run(self, n_trials: int | None = None, *, total: int | None = None, progress: bool = True
            ) -> list[TrialOutcome]:
        """Run `n_trials` more trials, or until the study holds `total` trials (all workers together)."""
        from piip_search.search._progress import SearchProgress

        outcomes: list[TrialOutcome] = []
        planned = n_trials if total is None else max(0, total - started_trials(self.study))
        with SearchProgress(self, planned, enabled=progress) as bar, sigterm_as_interrupt():
            while len(outcomes) < (n_trials if n_trials is not None else planned):
                if total is not None and started_trials(self.study) >= total:
                    break
                out = self.run_one()
                outcomes.append(out)
                bar.update(out)
        return outcomes


def started_trials(study: optuna.Study) -> int:
    """Trials that count towards a study-wide target: every one but those waiting in the queue, and not the
    failed runs that were re-queued (their copy counts instead)."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        if t.state == TrialState.FAIL and t.user_attrs.get(R.STATUS) in (R.WORKER_DIED, R.INTERRUPTED):
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
SPACE_ATTR = R.STUDY_SPACE
DEFAULT_EVALUATOR = "builtin:proxy"


def continuing_seed(study: optuna.Study, seed: int | None) -> int | None:
    """The seed for a sampler joining `study`: `seed` on a new study (a run is reproducible), and on a study
    that already has trials a seed derived from it, the trial count and this process, so a resumed or added
    worker never replays the seed sequence that proposed the trials already there."""
    n = len(study.get_trials(deepcopy=False))
    if n == 0:
        return seed
    import hashlib

    digest = hashlib.sha256(f"{seed}:{n}:{worker_id()}:{time.time_ns()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _check_evaluator(study: optuna.Study, asked: str | None) -> str:
    """The evaluator stored with the study; asking for another one is an error (one study, one evaluator)."""
    stored = study.user_attrs.get(R.STUDY_EVALUATOR)
    if stored is None:  # a study from before the evaluator was stored
        return asked or DEFAULT_EVALUATOR
    if asked is not None and asked != stored:
        raise StudyError(f"study {study.study_name!r} was created with evaluator {stored!r}; --evaluator "
                         f"{asked!r} would mix results of two evaluators in one study (start a new --study)")
    return str(stored)


def open_study(space: Any, *, name: str, storage_url: str | None, trials_dir: str | Path, sampler: str,
               seed: int | None, resume: bool, evaluator: str | None = None) -> optuna.Study:
    """Create a study for `space`, or load it when `resume` (the stored space and evaluator must match)."""
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
        _check_evaluator(study, evaluator or getattr(space, "evaluator", None))
        study.sampler = make_sampler(sampler, continuing_seed(study, seed))
        return study
    directions = [d for _, d in objectives_of(space)]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                sampler=make_sampler(sampler, seed))
    study.set_user_attr(SPACE_ATTR, space_dict)
    study.set_user_attr(R.STUDY_OBJECTIVES, objectives_of(space))
    study.set_user_attr(R.STUDY_SAMPLER, sampler)
    study.set_user_attr(R.STUDY_EVALUATOR, evaluator or getattr(space, "evaluator", None) or DEFAULT_EVALUATOR)
    set_metric_names(study)
    return study


def set_metric_names(study: optuna.Study) -> None:
    """Objective names the dashboard shows ("GFLOPs", "AP") instead of "0" and "1"."""
    label = {"flops": "GFLOPs", "params": "params (M)", "ap": "AP"}
    names = [label.get(n, n) for n, _ in study_objectives_of(study)]
    try:
        with warnings.catch_warnings():  # experimental in Optuna; what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    except Exception as e:  # noqa: BLE001 - an older study or storage without metric names: cosmetic only
        warnings.warn(f"could not set metric names on study {study.study_name!r}: {e}", stacklevel=2)


def study_objectives_of(study: optuna.Study) -> list[tuple[str, str]]:
    objs = study.user_attrs.get(R.STUDY_OBJECTIVES)
    if objs:
        return [(str(n), str(d)) for n, d in objs]
    return [(f"objective_{i}", d.name.lower()) for i, d in enumerate(study.directions)]


def attach_study(name: str, *, storage_url: str | None, trials_dir: str | Path, sampler: str | None = None,
                 seed: int | None = None) -> tuple[optuna.Study, Any]:
    """Load an existing study and the space stored in it (for `worker`, `pareto`, `export`)."""
    from piip_search.search._space import SearchSpace

    storage = open_storage(storage_url, trials_dir, name, create=False)
    study = load_study(name, storage)
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        raise StudyError(f"study {name!r} was not created by piip-search (no stored search space)")
    space = SearchSpace.from_dict(stored, source=f"study {name}", check_budgets=False)
    sampler = sampler or study.user_attrs.get(R.STUDY_SAMPLER, DEFAULT_SAMPLER)
    study.sampler = make_sampler(sampler, continuing_seed(study, seed))
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


def check_dataset(space: Any, evaluator: str) -> None:
    """The proxy's dataset must exist before any trial starts: a missing one would fail every trial."""
    data = proxy_settings(space).get("dataset") or proxy_settings(space).get("data")
    if evaluator != DEFAULT_EVALUATOR or data is None:
        return
    task = (getattr(space, "fixed", None) or {}).get("task", "detection")
    if task == "detection":
        from piip_search.data import coco_layout

        coco_layout(data)  # DatasetError names the missing folder or file
    elif not Path(data).is_dir():
        from piip_search.errors import DatasetError

        raise DatasetError(f"proxy.dataset {data}: image folder not found")


def _check_counts(n_trials: int | None, total: int | None) -> None:
    for flag, v in (("--trials", n_trials), ("--total", total)):
        if v is not None and not 0 <= v <= 1_000_000:
            raise SearchSpaceError(f"{flag}: must be between 0 and 1000000, got {v}")
    if n_trials is not None and total is not None:
        raise SearchSpaceError("--trials (this many more) and --total (until the study holds this many): "
                               "give one of them")


def run_search(space: Any, *, name: str | None = None, storage_url: str | None = None,
               trials_dir: str | Path = "trials", n_trials: int | None = None, total: int | None = None,
               sampler: str | None = None, seed: int | None = 0, evaluator: str | None = None,
               enqueue: list[str] | None = None, resume: bool = False, device: str | None = None,
               progress: bool = True, backend: str = "optuna", max_concurrent: int | None = None
               ) -> tuple[optuna.Study, list]:
    """The `piip-search run` entry point as a function."""
    _check_counts(n_trials, total)
    if backend not in ("optuna", "ray"):
        raise SearchSpaceError(f"--backend: must be optuna or ray, got {backend!r}")
    name = name or getattr(space, "name", None) or "default"
    sampler = sampler or getattr(space, "sampler", None) or DEFAULT_SAMPLER
    study = open_study(space, name=name, storage_url=storage_url, trials_dir=trials_dir, sampler=sampler,
                       seed=seed, resume=resume, evaluator=evaluator)
    spec = _check_evaluator(study, evaluator or getattr(space, "evaluator", None))
    fn = resolve_evaluator(spec)
    check_dataset(space, spec)
    if enqueue:
        enqueue_configs(study, space, enqueue)
    sdir = study_dir(trials_dir, name)
    driver = SearchDriver(study, space, study_path=sdir, evaluator=fn, device=device)
    driver.recover_stale_trials()
    if n_trials is None and total is None:
        n_trials = int(getattr(space, "trials", None) or 20)
    if backend == "ray":
        from piip_search.search._ray import run_with_ray

        n = n_trials if total is None else max(0, total - started_trials(study))
        url = storage_url or default_storage_url(trials_dir, name)
        return study, run_with_ray(driver, n, storage_url=url, trials_dir=trials_dir, evaluator_spec=spec,
                                   max_concurrent=max_concurrent, progress=progress)
    return study, driver.run(n_trials, total=total, progress=progress)


def run_worker(name: str, *, storage_url: str, trials_dir: str | Path = "trials", n_trials: int | None = None,
               total: int | None = None, device: str | None = None, evaluator: str | None = None,
               progress: bool = True) -> list:
    """`piip-search worker`: one more process on a running study (same space, evaluator, budgets, front)."""
    _check_counts(n_trials, total)
    study, space = attach_study(name, storage_url=storage_url, trials_dir=trials_dir)
    spec = _check_evaluator(study, evaluator)
    fn = resolve_evaluator(spec)
    check_dataset(space, spec)
    driver = SearchDriver(study, space, study_path=study_dir(trials_dir, name), evaluator=fn, device=device)
    driver.recover_stale_trials()
    if n_trials is None and total is None:
        n_trials = int(getattr(space, "trials", None) or 20)
    return driver.run(n_trials, total=total, progress=progress)
