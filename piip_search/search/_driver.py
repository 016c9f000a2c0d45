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
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError, SearchSpaceError, StudyError
from piip_search.search import _optuna_internals
from piip_search.search import _records as R
from piip_search.search._evaluators import EvalContext, Evaluator, resolve_evaluator
from piip_search.search._fidelity import FidelitySchedule
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
from piip_search.search._samplers import AUTO_SWITCH_AT, GPThenTPESampler
from piip_search.search._samplers import SAMPLERS as SAMPLER_REGISTRY
from piip_search.search._storage import default_storage_url, load_study, open_storage, study_dir
from piip_search.search._storage_retry import StorageUnavailableError
from piip_search.search.space import SAMPLER_NAMES, SearchSpace

SAMPLERS = SAMPLER_NAMES  # one list, defined with the space schema
# auto = gp for the first AUTO_SWITCH_AT complete trials (best in benchmarks/bench_search_efficiency.py), then tpe
# (GP's ask cost grows with the study: ~1.3 s at 200 trials, 2.6 s at 400; bench_driver_overhead.py) -- see README
DEFAULT_SAMPLER = "auto"

log = logging.getLogger("piip_search.search")
A_STATUS = R.STATUS  # kept for the Ray backend
#: Where evaluations run: this process (`optuna`), Ray tasks under our loop (`ray`), a Ray Tune experiment.
BACKENDS = ("optuna", "ray", "ray-tune")
#: Builds, for a study and its folder, what to call after each finished trial (the CLI rewrites the report).
TrialHook = Callable[[optuna.Study, Path], Callable[..., Any]]


def make_sampler(name: str, seed: int | None, *, switch_at: int = AUTO_SWITCH_AT,
                 space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    """A seeded sampler from the `SAMPLERS` registry (`known-cost` needs `space`); constraints are read from
    `trial.constraints`."""
    if name not in SAMPLER_REGISTRY:
        raise SearchSpaceError(f"sampler: must be one of {list(SAMPLER_REGISTRY)}, got {name!r}")
    if name == "auto" and switch_at != AUTO_SWITCH_AT:  # benchmarks move the switch
        return GPThenTPESampler(make_sampler("gp", seed), make_sampler("tpe", seed), switch_at=switch_at)
    return SAMPLER_REGISTRY.get(name)(seed, space)


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

    def __init__(self, study: optuna.Study, space: SearchSpace, *, study_path: Path, evaluator: Evaluator,
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
        self.max_retries = space.max_retries
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
        try:
            prepared = self.prepare()
        except UpdateFinishedTrialError as e:  # a sweep took this trial for dead before it got going
            log.warning("a trial of this worker was failed by another worker's sweep before it started (%s)", e)
            return TrialOutcome(-1, R.TAKEN_OVER, None, {"message": str(e)})
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
        except UpdateFinishedTrialError:
            # another worker's sweep took this trial for dead (and re-queued its config) while it trained: the
            # result is recorded as a trial of its own, which the re-queued copy then finds as a duplicate
            save_pending(tdir, trial_id=trial._trial_id, number=trial.number, status=status, values=values,
                         user_attrs=attrs, constraints=constraints)
            replay_pending(self.study, self.study_path)
            log.warning("trial %d was failed by another worker's sweep while it trained; its result is kept",
                        trial.number)
        return TrialOutcome(trial.number, status, values, clean)

    # ---- many trials --------------------------------------------------------------------------------------
    def run(self, n_trials: int | None = None, *, total: int | None = None, progress: bool = True,
            after_trial: Callable[..., Any] | None = None) -> list[TrialOutcome]:
        """Run `n_trials` more trials, or until the study holds `total` trials (all workers together).
        `after_trial()` is called after each finished trial and `after_trial(force=True)` at the end (the
        CLI's report rewrite)."""
        from piip_search.search._progress import SearchProgress, search_log

        outcomes: list[TrialOutcome] = []
        if total is not None:
            planned = max(0, total - started_trials(self.study))
        else:
            planned = int(n_trials if n_trials is not None else self.space.trials or 20)
        with search_log(self.study_path), SearchProgress(self, planned, enabled=progress) as bar, \
                sigterm_as_interrupt():
            # with a study-wide total, re-queued failures of other workers may need more than `planned` here
            limit = planned if total is None else planned * (self.max_retries + 2)
            while len(outcomes) < limit:
                if total is not None and started_trials(self.study) >= total:
                    break
                out = self.run_one()
                outcomes.append(out)
                bar.update(out)
                if after_trial is not None:
                    after_trial()
        if after_trial is not None:
            after_trial(force=True)
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
def objectives_of(space: SearchSpace) -> list[tuple[str, str]]:
    return [(o.name, o.direction) for o in space.objectives]


def proxy_settings(space: SearchSpace) -> dict[str, Any]:
    return dict(space.proxy)


def fidelity_of(space: SearchSpace) -> FidelitySchedule | None:
    return space.fidelity_schedule()


def budget_violations(space: SearchSpace, flops: int, params: int) -> dict[str, float]:
    """Constraint values (<= 0 feasible) in GFLOPs and M params."""
    b = space.budgets
    out: dict[str, float] = {}
    if b.max_gflops is not None:
        out["max_gflops"] = flops / 1e9 - float(b.max_gflops)
    if b.max_params_m is not None:
        out["max_params_m"] = params / 1e6 - float(b.max_params_m)
    return out


def _default_flops_fn(space: SearchSpace) -> Callable[[PIIPConfig], tuple[int, int]]:
    from piip_search.flops import count

    convention = space.flops_convention

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


def open_study(space: SearchSpace, *, name: str, storage_url: str | None, trials_dir: str | Path, sampler: str,
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
        _check_evaluator(study, evaluator or space.evaluator)
        study.sampler = make_sampler(sampler, continuing_seed(study, seed), space=space)
        return study
    directions = [d for _, d in objectives_of(space)]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,  # type: ignore[arg-type]
                                sampler=make_sampler(sampler, seed, space=space))
    study.set_user_attr(SPACE_ATTR, space_dict)
    study.set_user_attr(R.STUDY_OBJECTIVES, objectives_of(space))
    study.set_user_attr(R.STUDY_SAMPLER, sampler)
    study.set_user_attr(R.STUDY_EVALUATOR, evaluator or space.evaluator or DEFAULT_EVALUATOR)
    set_metric_names(study)
    return study


def set_metric_names(study: optuna.Study, names: list[str] | None = None) -> None:
    """Objective names the dashboard shows ("GFLOPs", "AP") instead of "0" and "1"; idempotent."""
    label = {"flops": "GFLOPs", "params": "params (M)", "ap": "AP"}
    names = names or [label.get(n, n) for n, _ in study_objectives_of(study)]
    try:
        if study.metric_names == names:
            return
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


def check_dataset(space: SearchSpace, evaluator: str) -> None:
    """The proxy's dataset must exist before any trial starts: a missing one would fail every trial."""
    data = proxy_settings(space).get("dataset") or proxy_settings(space).get("data")
    if evaluator != DEFAULT_EVALUATOR or data is None:
        return
    task = space.task
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


def run_search(space: SearchSpace, *, name: str | None = None, storage_url: str | None = None,
               trials_dir: str | Path = "trials", n_trials: int | None = None, total: int | None = None,
               sampler: str | None = None, seed: int | None = 0, evaluator: str | None = None,
               enqueue: list[str] | None = None, resume: bool = False, device: str | None = None,
               progress: bool = True, backend: str = "optuna", max_concurrent: int | None = None,
               trial_hook: TrialHook | None = None) -> tuple[optuna.Study, list]:
    """The `piip-search run` entry point as a function."""
    _check_counts(n_trials, total)
    if backend not in BACKENDS:
        raise SearchSpaceError(f"--backend: must be one of {list(BACKENDS)}, got {backend!r}")
    name = name or space.name
    sampler = sampler or space.sampler or DEFAULT_SAMPLER
    study = open_study(space, name=name, storage_url=storage_url, trials_dir=trials_dir, sampler=sampler,
                       seed=seed, resume=resume, evaluator=evaluator)
    spec = _check_evaluator(study, evaluator or space.evaluator)
    fn = resolve_evaluator(spec)
    check_dataset(space, spec)
    if enqueue:
        enqueue_configs(study, space, enqueue)
    sdir = study_dir(trials_dir, name)
    driver = SearchDriver(study, space, study_path=sdir, evaluator=fn, device=device)
    if n_trials is None and total is None:
        n_trials = int(space.trials or 20)
    if backend == "ray-tune":  # Tune restores and retries its own trials (FailureConfig, Tuner.restore)
        from piip_search.search._tune import run_with_tune

        n = int(n_trials or 0) if total is None else max(0, total - started_trials(study))
        return study, run_with_tune(driver, n, storage_url=storage_url or default_storage_url(trials_dir, name),
                                    trials_dir=trials_dir, resume=resume, max_concurrent=max_concurrent,
                                    evaluator_spec=spec, progress=progress)
    driver.recover_stale_trials()
    if backend == "ray":
        from piip_search.search._ray import run_with_ray

        n = int(n_trials or 0) if total is None else max(0, total - started_trials(study))
        url = storage_url or default_storage_url(trials_dir, name)
        return study, run_with_ray(driver, n, storage_url=url, trials_dir=trials_dir, evaluator_spec=spec,
                                   max_concurrent=max_concurrent, progress=progress)
    after = trial_hook(study, sdir) if trial_hook is not None else None
    return study, driver.run(n_trials, total=total, progress=progress, after_trial=after)


def run_worker(name: str, *, storage_url: str, trials_dir: str | Path = "trials", n_trials: int | None = None,
               total: int | None = None, device: str | None = None, evaluator: str | None = None,
               progress: bool = True, trial_hook: TrialHook | None = None) -> list:
    """`piip-search worker`: one more process on a running study (same space, evaluator, budgets, front)."""
    _check_counts(n_trials, total)
    study, space = attach_study(name, storage_url=storage_url, trials_dir=trials_dir)
    spec = _check_evaluator(study, evaluator)
    fn = resolve_evaluator(spec)
    check_dataset(space, spec)
    sdir = study_dir(trials_dir, name)
    driver = SearchDriver(study, space, study_path=sdir, evaluator=fn, device=device)
    driver.recover_stale_trials()
    if n_trials is None and total is None:
        n_trials = int(space.trials or 20)
    after = trial_hook(study, sdir) if trial_hook is not None else None
    return driver.run(n_trials, total=total, progress=progress, after_trial=after)
