"""The search driver: Optuna ask/tell over a `SearchSpace`, budgets first, then the evaluator.

One trial, in order (cheap before expensive):
1. sample a config (`space.sample`); an impossible draw is told FAIL with the reason;
2. count FLOPs/params analytically (no model built); record them and the budget constraints
   (`trial.set_constraint`, value <= 0 = feasible). Over budget: told COMPLETE with AP 0 and a violated
   constraint, so samplers learn the boundary; never built, never trained;
3. same canonical config already evaluated (any worker): its result is copied, nothing is trained (a repeat,
   `repeats:` in the space, is evaluated again with its own seed; `_repeats.py` queues them after `ok` trials);
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError, SearchSpaceError, StudyError
from piip_search.search import _optuna_internals, _repeats
from piip_search.search import _records as R
from piip_search.search._evaluators import EvalContext, Evaluator
from piip_search.search._lifecycle import (
    Heartbeat,
    fail_and_requeue,
    mark_alive,
    recover_stale_trials,
    sigterm_as_interrupt,
    worker_id,
)
from piip_search.search._optuna_internals import storage_of, trial_id_of
from piip_search.search._pending import replay_pending, save_pending
from piip_search.search._proposals import ProposalQueue
from piip_search.search._storage_retry import StorageUnavailableError
from piip_search.search.space import SearchSpace

log = logging.getLogger("piip_search.search")


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
        self.objectives: list[tuple[str, str]] = space.objective_pairs()
        self._flops_fn = flops_fn or _default_flops_fn(space)
        self.schedule = space.fidelity_schedule()  # multi-fidelity rungs, or None
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
        mark_alive(self.study, trial_id_of(trial))
        try:
            with Heartbeat(self.study, trial_id_of(trial), max_retries=self.max_retries):  # GP may sample for long
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
        violations = self.space.budgets.violations(flops, params)
        tdir = self._trial_dir(trial.number)
        (tdir / "config.yaml").write_text(cfg.to_yaml())

        if any(v > 0 for v in violations.values()):
            metrics = {"status": R.INFEASIBLE, "ap": 0.0,
                       "message": "over budget: " + ", ".join(f"{k} exceeded by {v:g}"
                                                              for k, v in violations.items() if v > 0)}
            return self._finish(trial, tdir, R.INFEASIBLE, flops, params, metrics, violations)

        self._refresh_known()
        prev = None if _repeats.repeat_index(trial.user_attrs) else self._known.get(fp)  # a repeat is no copy
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
            with Heartbeat(self.study, trial_id_of(prep.trial), max_retries=self.max_retries):
                return self._evaluate(*prep)
        except KeyboardInterrupt:
            frozen = storage_of(self.study).get_trial(trial_id_of(prep.trial))
            if frozen.state == TrialState.RUNNING:
                fail_and_requeue(self.study, frozen, "interrupted (SIGINT/SIGTERM)", status=R.INTERRUPTED,
                                 max_retries=self.max_retries, count_attempt=False)
            raise

    def _evaluate(self, trial: optuna.Trial, cfg: PIIPConfig, tdir: Path, flops: int, params: int) -> TrialOutcome:
        schedule = self.schedule
        rungs = schedule.rung_iters() if schedule is not None else []
        full = rungs[-1] if rungs else dict(self.space.proxy).get("iters")
        stopped: dict[str, Any] = {}
        repeat = _repeats.repeat_index(trial.user_attrs)  # a re-evaluation: its config reached full fidelity

        def report(iters: int, metrics: dict[str, Any]) -> bool:
            if schedule is None or iters not in rungs or repeat:
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
                          proxy=_repeats.seeded_proxy(dict(self.space.proxy), trial.user_attrs),
                          trial_number=trial.number, report=report)
        t0 = time.perf_counter()
        try:
            metrics = dict(self.evaluator(cfg, ctx) or {})
        except Exception as e:  # a user's evaluator may raise anything: the trial fails, the search goes on
            metrics = {"status": "failed", "message": f"{type(e).__name__}: {str(e)[:2000]}"}
        metrics.setdefault("eval_wall_s", time.perf_counter() - t0)
        status = str(metrics.get("status", R.OK))
        budgets = self.space.budgets.violations(flops, params)
        if stopped:
            metrics["stopped_at"] = stopped
            stop = stopped
            shortfall = 1.0 if schedule is None else schedule.stop_violation(
                int(stop.get("rung", 0)), stop.get("position"), stop.get("n_results"))
            return self._finish(trial, tdir, R.STOPPED, flops, params, metrics, budgets, shortfall=shortfall)
        if status != R.OK:
            return self._finish(trial, tdir, f"{R.FAILED}{status}", flops, params, metrics, budgets)
        shortfall = R.fidelity_shortfall(metrics, full)
        if shortfall > 0:
            metrics["message"] = (f"cut short of its fidelity: {metrics.get('iters')} of {full} iterations "
                                  f"(stop reason {metrics.get('stop_reason')}); not a valid point")
            return self._finish(trial, tdir, R.TRUNCATED, flops, params, metrics, budgets, shortfall=shortfall)
        outcome = self._finish(trial, tdir, R.OK, flops, params, metrics, budgets)
        if self.space.repeats > 1 and outcome.status == R.OK:
            _repeats.enqueue_repeats(self.study, self.space.repeats)
        return outcome

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
            save_pending(tdir, trial_id=trial_id_of(trial), number=trial.number, status=status, values=values,
                         user_attrs=attrs, constraints=constraints)
            raise
        except UpdateFinishedTrialError:
            # another worker's sweep took this trial for dead (and re-queued its config) while it trained: the
            # result is recorded as a trial of its own, which the re-queued copy then finds as a duplicate
            save_pending(tdir, trial_id=trial_id_of(trial), number=trial.number, status=status, values=values,
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
            planned = max(0, total - R.started_trials(self.study))
        else:
            planned = int(n_trials if n_trials is not None else self.space.trials or 20)
        with search_log(self.study_path), SearchProgress(self, planned, enabled=progress) as bar, \
                sigterm_as_interrupt():
            # with a study-wide total, re-queued failures of other workers may need more than `planned` here
            limit = planned if total is None else planned * (self.max_retries + 2)
            while len(outcomes) < limit:
                if total is not None and R.started_trials(self.study) >= total:
                    break
                out = self.run_one()
                outcomes.append(out)
                bar.update(out)
                if after_trial is not None:
                    after_trial()
        if after_trial is not None:
            after_trial(force=True)
        return outcomes


def _default_flops_fn(space: SearchSpace) -> Callable[[PIIPConfig], tuple[int, int]]:
    from piip_search.flops import count

    convention = space.flops_convention

    def fn(cfg: PIIPConfig) -> tuple[int, int]:
        r = count(cfg, convention=convention)
        return int(r.flops), int(r.params)

    return fn
