"""`--backend ray-tune`: our search driver plugged into a Ray Tune `Tuner` as its `Searcher`.

Why our own searcher rather than Tune's `OptunaSearch`: Tune's Optuna searcher drops Optuna constraints (budgets),
its schedulers are single-metric, and with early stopping it tells a low-fidelity AP as final (tooling-notes §2.3).
So `PiipSearcher.suggest` is `SearchDriver.prepare` (ask, sample, count, budget and duplicate checks, the chosen
sampler); only configs worth training become Tune trials. The trainable re-opens the study from its storage and
runs `SearchDriver._evaluate`, so multi-fidelity promotion, trial folders and the tell are exactly the local ones;
every evaluation point the evaluator reports is streamed with `tune.report`, so Tune's loggers and callbacks
(TensorBoard, MLflow, W&B) see learning curves.

The tell happens in the trainable, not in `on_trial_complete`: a result is then durable the moment it exists,
even if the driver dies before Tune delivers it (Tune does not re-deliver `on_trial_complete` after a restore).
`on_trial_complete` tells what the trainable could not: a trial whose actor died more than
`FailureConfig(max_failures)` times is recorded `failed:worker-died`. A retried or restored trial whose study trial
is already finished reports the stored result and trains nothing.

The Optuna study is the single source of truth; the searcher's state is the study plus a study user attribute
`tune:<experiment>` (`target`, `suggested` trial numbers) written at every suggestion, so `Tuner.restore` after a
driver crash continues to the same trial count and a restored searcher never suggests more. A restore reads the
running trials from Tune's experiment state, not from the searcher's own snapshot (the two are written one after
the other, so a kill can leave them apart), and the searcher limits concurrency itself (`set_max_concurrency`)
on those trials, since a `ConcurrencyLimiter` restored from such a snapshot can wait forever on trials Tune never
runs again. An experiment that Tune ends while the study says it is unfinished is restored again, at most
`MAX_RESTORES` times; a Ctrl-C ends the run.
Tune's experiment folder is `<trials-dir>/<study>/tune/<experiment>/` (per-trial `result.json`, `progress.csv`,
`params.json`, Tune's logs); the study's `trial_NNNNN/` folders are unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from piip_search.errors import PiipSearchError
from piip_search.search import _records as R
from piip_search.search._optuna_internals import storage_of, trial_handle, trial_id_of
from piip_search.search._tune_status import ATTR_CURRENT, ATTR_PREFIX, TUNE_DIR
from piip_search.search._tune_trainable import piip_trainable

__all__ = ["PiipSearcher", "run_with_tune"]

# one actor runs many trials, as a local worker process does: a fresh actor per trial (Tune's default, =0) costs
# a process start-up per trial (benchmarks/bench_tune.py)
REUSE_ACTORS = os.environ.get("PIIP_SEARCH_TUNE_REUSE_ACTORS", "1") == "1"
DEFAULT_MAX_RETRIES = 2  # the local workers' re-queue limit of a trial whose worker died
MAX_RESTORES = 3  # restores of one run's experiment while the study says it is unfinished
log = logging.getLogger("piip_search.search")


def _import_tune():
    try:
        from ray import tune
    except ImportError:
        raise PiipSearchError("--backend ray-tune needs Ray Tune: pip install 'piip-search[ray]'") from None
    return tune


# ---- the searcher (runs in the driver) ---------------------------------------------------------------------------
# `Tuner.restore` unpickles the searcher it was created with; these hand it the running driver and collect it
_RESTORING: dict[tuple[str, str], tuple[Any, Any]] = {}
_RESTORED: dict[tuple[str, str], Any] = {}

def _searcher_base():
    from ray.tune.search import Searcher

    return Searcher


class PiipSearcher(_searcher_base()):  # type: ignore[misc]
    """Tune `Searcher` whose suggestions are `SearchDriver.prepare()`; its state lives in the study."""

    def __init__(self, driver: Any, spec: dict[str, Any], *, experiment: str, n_trials: int,
                 progress: Any = None) -> None:
        super().__init__(metric="ap", mode="max")  # for Tune's schedulers/loggers; the study keeps all objectives
        self._driver, self._bar = driver, progress
        self.spec, self.experiment, self.n_trials = spec, experiment, n_trials
        self.outcomes: list[Any] = []
        self._live: dict[str, tuple[int, int]] = {}  # Tune trial id -> (study trial number, study trial id)
        self.max_concurrent: int | None = None
        self._ledger()  # records the target on a fresh experiment

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        # limited here on `_live`, which a restore rebuilds from Tune's experiment state: a ConcurrencyLimiter's
        # own set is restored from a snapshot that can name trials Tune will never run again, and then blocks
        self.max_concurrent = int(max_concurrent) if max_concurrent else None
        return True

    # pickled into Tune's experiment state: the spec only; the driver is re-attached from the storage on restore
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_driver=None, _bar=None, outcomes=[], _live=dict(self._live))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # unpickled by `Tuner.restore` in a driver that announced itself (run_with_tune): use its driver and bar
        self._driver, self._bar = _RESTORING.get((self.spec["study"], self.experiment), (None, None))
        _RESTORED[(self.spec["study"], self.experiment)] = self
        # computed by `restore`, or at the first suggestion if Tune could not restore its state
        self._orphans: list[int] | None = None

    def save(self, checkpoint_path: str) -> None:
        # the study holds the search state (written at every suggestion) and a restore reads the running trials from
        # Tune's experiment state (`restore_from_experiment`): the file only names the experiment
        Path(checkpoint_path).write_text(json.dumps({"experiment": self.experiment}))

    def restore(self, checkpoint_path: str) -> None:
        self.restore_from_experiment()

    def restore_from_experiment(self) -> None:
        """Live trials from Tune's experiment state, not from the searcher's snapshot: the two are written one
        after the other, so a kill between them leaves them apart."""
        self._live = self._unfinished_tune_trials()
        self._orphans = self._find_orphans()

    def _busy(self) -> int:
        storage = storage_of(self.driver.study)
        return sum(not storage.get_trial(sid).state.is_finished() for _, sid in self._live.values())

    def _unfinished_tune_trials(self) -> dict[str, tuple[int, int]]:
        """Tune trial id -> (study trial number, study trial id) of the experiment's trials a restore runs again."""
        from ray.tune import ExperimentAnalysis

        path = Path(self.spec["study_dir"]) / TUNE_DIR / self.experiment
        out = {}
        for t in ExperimentAnalysis(str(path)).trials:
            job = (t.config or {}).get("piip_trial")
            if job and t.status != "TERMINATED":  # resume_unfinished and resume_errored rerun all the others
                out[t.trial_id] = (int(job["number"]), int(job["trial_id"]))
        return out

    def _find_orphans(self) -> list[int]:
        """Suggested trials still RUNNING that no restored Tune trial will run (suggested after Tune's last
        experiment checkpoint, or all of them when Tune's restore failed): offered again as new Tune trials."""
        known = {number for number, _ in self._live.values()}
        trials = self.driver.study.get_trials(deepcopy=False)
        return [n for n in self._ledger()["suggested"] if n not in known and trials[n].state == TrialState.RUNNING]

    def unfinished(self) -> int:
        """Trials this experiment still has to suggest, or has suggested and the study has not finished."""
        led, trials = self._ledger(), self.driver.study.get_trials(deepcopy=False)
        return max(0, self.n_trials - len(led["suggested"])) + sum(not trials[n].state.is_finished()
                                                                   for n in led["suggested"])

    @property
    def driver(self) -> Any:
        if self._driver is None:  # restored by Tune without `attach`: re-open the study like a worker would
            from piip_search.search._driver import SearchDriver
            from piip_search.search._evaluators import resolve_evaluator
            from piip_search.search._study import attach_study

            study, space = attach_study(self.spec["study"], storage_url=self.spec["storage_url"],
                                        trials_dir=self.spec["trials_dir"])
            self._driver = SearchDriver(study, space, study_path=Path(self.spec["study_dir"]),
                                        evaluator=resolve_evaluator(self.spec["evaluator"]), device=self.spec["device"])
        return self._driver

    def _ledger(self) -> dict[str, Any]:
        study = self.driver.study
        key = ATTR_PREFIX + self.experiment
        led = study.user_attrs.get(key) or {"target": self.n_trials, "suggested": []}
        if key not in study.user_attrs:
            study.set_user_attr(key, led)
            study.set_user_attr(ATTR_CURRENT, self.experiment)
        self.n_trials = int(led["target"])
        return led

    def _record_suggestion(self, number: int) -> int:
        led = self._ledger()
        led["suggested"].append(number)
        self.driver.study.set_user_attr(ATTR_PREFIX + self.experiment, led)
        return len(led["suggested"])

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        from piip_search.search._driver import TrialOutcome

        if getattr(self, "_orphans", []) is None:  # restored without Tune's searcher checkpoint
            self.restore_from_experiment()
        orphans: list[int] | None = getattr(self, "_orphans", None)  # unset on a searcher Tune unpickled
        limit = getattr(self, "max_concurrent", None)
        if limit is not None and self._busy() >= limit:
            return None  # Tune asks again at its next step
        if orphans:
            frozen = self.driver.study.trials[orphans.pop(0)]
            return self._offer(trial_id, trial_handle(self.driver.study, trial_id_of(frozen)), frozen.user_attrs)
        while len(self._ledger()["suggested"]) < self.n_trials:
            prep = self.driver.prepare()
            if isinstance(prep, TrialOutcome):  # invalid, infeasible or duplicate: decided here, nothing to train
                self._record_suggestion(prep.number)
                self._done(prep)
                continue
            trial, cfg, tdir, flops, params = prep
            self._record_suggestion(trial.number)
            return self._offer(trial_id, trial, {"config": cfg.to_dict(), "flops": flops, "params": params,
                                                 "tdir": str(Path(tdir).resolve())})
        return self.FINISHED

    def _offer(self, trial_id: str, trial: optuna.Trial, attrs: dict[str, Any]) -> dict[str, Any]:
        """The Tune trial config of a prepared study trial (`attrs`: its config, flops and params)."""
        trial.set_user_attr(R.TUNE_TRIAL, f"{self.experiment}/{trial_id}")
        self._live[trial_id] = (trial.number, trial_id_of(trial))
        tdir = attrs.get("tdir") or str(Path(self.spec["study_dir"]) / f"trial_{trial.number:05d}")
        return {"piip_spec": self.spec, "trial_number": trial.number, "gflops": attrs["flops"] / 1e9,
                "piip_trial": {"trial_id": trial_id_of(trial), "number": trial.number, "config": attrs["config"],
                               "tdir": str(tdir), "flops": int(attrs["flops"]), "params": int(attrs["params"])}}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        from piip_search.search._driver import TrialOutcome

        number, study_trial_id = self._live.pop(trial_id, (None, None))
        if number is None or study_trial_id is None:
            return
        storage = storage_of(self.driver.study)
        frozen = storage.get_trial(study_trial_id)
        if not frozen.state.is_finished():  # its actor died more often than FailureConfig allows
            msg = f"Tune trial {self.experiment}/{trial_id} errored (actor lost beyond FailureConfig.max_failures)"
            storage.set_trial_user_attr(study_trial_id, R.STATUS, "failed:worker-died")
            storage.set_trial_user_attr(study_trial_id, "message", msg)
            storage.set_trial_state_values(study_trial_id, TrialState.FAIL)
            frozen = storage.get_trial(study_trial_id)
        self._done(TrialOutcome(number, str(frozen.user_attrs.get(R.STATUS, "")), frozen.values,
                                dict(frozen.user_attrs.get("metrics") or {})))

    def _done(self, outcome: Any) -> None:
        self.outcomes.append(outcome)
        if self._bar is not None:
            self._bar.update(outcome)


# ---- the experiment ------------------------------------------------------------------------------------------------
def _resources(space: Any, cluster: dict[str, float]) -> dict[str, float]:


    opts = dict(space.proxy)
    gpus = float(opts.get("gpus_per_trial", 1 if cluster.get("GPU", 0) > 0 else 0))
    return {"cpu": float(opts.get("cpus_per_trial", 1)), "gpu": gpus}


def _experiment_to_continue(study: optuna.Study, root: Path, resume: bool) -> str | None:
    """The study's latest Tune experiment when `--resume` and it has trials left to suggest or run."""
    tune = _import_tune()
    name = study.user_attrs.get(ATTR_CURRENT)
    if not resume or name is None or not tune.Tuner.can_restore(str(root / name)):
        return None
    led = study.user_attrs.get(ATTR_PREFIX + name) or {}
    unfinished = [n for n in led.get("suggested", []) if not study.trials[n].state.is_finished()]
    return name if len(led.get("suggested", [])) < int(led.get("target", 0)) or unfinished else None


def run_with_tune(driver: Any, n_trials: int, *, storage_url: str, trials_dir: str | Path, evaluator_spec: str,
                  resume: bool = False, max_concurrent: int | None = None, progress: bool = True,
                  reuse_actors: bool = REUSE_ACTORS) -> list[Any]:
    """Run `n_trials` study trials as a Tune experiment (or continue the unfinished one on `resume`)."""
    tune = _import_tune()
    import ray

    from piip_search.search._progress import SearchProgress

    if not ray.is_initialized():
        # RAY_ADDRESS set (or `ray start` done) -> join that cluster; otherwise a local one on this machine
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    # Tune saves its experiment state on its own schedule (TUNE_GLOBAL_CHECKPOINT_S, default at most every 10 s):
    # a save at every step rewrites every trial's state ~10 times a second and cost 0.6-1.6 s per trial at 8
    # slots (benchmarks/bench_tune.py). A stale state loses nothing: the study is the record, and a restore
    # offers again the suggested trials the state does not name (`_find_orphans`)
    study, space = driver.study, driver.space
    root = (Path(driver.study_path) / TUNE_DIR).resolve()
    spec = {"storage_url": str(Path(storage_url).resolve()) if "://" not in storage_url else storage_url,
            "study": study.study_name, "trials_dir": str(Path(trials_dir).resolve()),
            "study_dir": str(Path(driver.study_path).resolve()), "evaluator": evaluator_spec,
            "device": driver.device, "cwd": os.getcwd()}
    res = _resources(space, ray.cluster_resources())
    trainable = tune.with_resources(piip_trainable, res)
    restore_name = _experiment_to_continue(study, root, resume)
    outcomes: list[Any] = []
    with SearchProgress(driver, n_trials, enabled=progress) as bar:
        if restore_name is None:
            name = f"tune-{sum(k.startswith(ATTR_PREFIX) and k != ATTR_CURRENT for k in study.user_attrs):03d}"
            searcher = PiipSearcher(driver, spec, experiment=name, n_trials=n_trials, progress=bar)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                            max_concurrent_trials=max_concurrent or _slots(ray.cluster_resources(),
                                                                                           res),
                                            trial_dirname_creator=lambda t: f"trial_{t.config['trial_number']:05d}",
                                            reuse_actors=reuse_actors),
                run_config=tune.RunConfig(
                    name=name, storage_path=str(root), verbose=0,
                    failure_config=tune.FailureConfig(max_failures=retry_limit(space))))
            interrupted = _fit(tuner)
            outcomes, restore_name = searcher.outcomes, name
            if interrupted or not searcher.unfinished():
                return outcomes
        for attempt in range(MAX_RESTORES):
            searcher, interrupted = _fit_restored(tune, driver, bar, trainable, root / restore_name, restore_name)
            outcomes += searcher.outcomes
            left = searcher.unfinished()
            if interrupted or not left:
                break
            # Tune ended an experiment the study says is unfinished: its restored state was inconsistent
            log.warning("Tune experiment %s ended with %d of its %d trials unfinished; restoring it again (%d/%d)",
                        restore_name, left, searcher.n_trials, attempt + 1, MAX_RESTORES)
    return outcomes


def _fit(tuner: Any) -> bool:
    """`tuner.fit()`; whether a SIGINT (or SIGUSR1) ended it. Tune's handler restores the previous one when it
    fires and otherwise stays installed, where it would swallow a later Ctrl-C: the previous one is put back."""
    before = signal.getsignal(signal.SIGINT)
    try:
        tuner.fit()
    finally:
        during = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, before)
    return during is before


def _fit_restored(tune: Any, driver: Any, bar: Any, trainable: Any, path: Path, name: str) -> tuple[Any, bool]:
    """`Tuner.restore` the experiment at `path` with the running driver as its searcher's; run it to its end."""
    _reseed(driver.study)
    _fail_unsuggested(driver.study, name)
    key = (driver.study.study_name, name)
    _RESTORING[key] = (driver, bar)
    try:
        tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
    finally:
        del _RESTORING[key]
    searcher = _RESTORED.pop(key)
    return searcher, _fit(tuner)


def _fail_unsuggested(study: optuna.Study, experiment: str) -> None:
    """Trials the dead driver asked for but never suggested to Tune (killed inside `prepare`): failed, as a local
    worker's stale trial is; they were never evaluated."""

    from piip_search.search._lifecycle import _pid_alive

    suggested = set((study.user_attrs.get(ATTR_PREFIX + experiment) or {}).get("suggested", []))
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        h, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if t.number not in suggested and h == host and pid.isdigit() and not _pid_alive(int(pid)):
            storage_of(study).set_trial_user_attr(trial_id_of(t), R.STATUS, "failed:worker-died")
            storage_of(study).set_trial_user_attr(trial_id_of(t), "message", "driver died before suggesting it to Tune")
            storage_of(study).set_trial_state_values(trial_id_of(t), TrialState.FAIL)


def _reseed(study: optuna.Study) -> None:
    """A restored run must not replay its sampler's seeded draws: the configs still running in restored Tune
    trials would be proposed again, and the duplicate check sees only finished trials. Seeded by the study's
    size, so a restore is as reproducible as the run it continues."""
    from piip_search.search._samplers import DEFAULT_SAMPLER, make_sampler
    from piip_search.search.space import SearchSpace

    space = SearchSpace.from_dict(study.user_attrs[R.STUDY_SPACE], source=f"study {study.study_name}",
                                  check_budgets=False)
    study.sampler = make_sampler(study.user_attrs.get(R.STUDY_SAMPLER, DEFAULT_SAMPLER), len(study.trials),
                                 space=space)


def retry_limit(space: Any) -> int:
    """Restarts of a trial whose actor died: the study's retry limit (`max_retries`, as for local workers)."""
    return int(space.max_retries)


def _slots(cluster: dict[str, float], res: dict[str, float]) -> int:
    if res["gpu"]:
        return max(1, int(cluster.get("GPU", 0) / res["gpu"]))
    return max(1, int(cluster.get("CPU", 1) / max(res["cpu"], 1e-9)))
