"""`--backend ray`: the same driver, with evaluations spread over a Ray cluster's GPUs/CPUs.

Why not `ray.tune.Tuner` + `OptunaSearch`: Tune's Optuna searcher cannot carry Optuna constraints (budgets),
its schedulers are single-metric, and with early stopping it tells a trial's *low-fidelity* AP as final, which
mixes fidelities on the front (tooling-notes §2.3). So the driver keeps ask/tell, budgets, de-duplication and
multi-fidelity exactly as in the local backend, and Ray only runs `_evaluate` remotely: each task re-opens the
study from its storage and tells its own result. The storage must therefore be reachable from every node: an
RDB URL (PostgreSQL/MySQL) or a journal file on a shared filesystem, and `trials/` on a shared filesystem.

Resources per trial come from the space's `proxy:` block (`gpus_per_trial`, default 1 if the cluster has GPUs,
else 0; `cpus_per_trial`, default 1). A task lost with its node marks the trial failed and queues it again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from piip_search.errors import PiipSearchError
from piip_search.search import _records as R
from piip_search.search._optuna_internals import storage_of, trial_handle, trial_id_of


def _remote_evaluate(storage_url: str, trials_dir: str, name: str, trial_id: int, cfg_dict: dict[str, Any],
                     tdir: str, flops: int, params: int, evaluator_spec: str, device: str | None) -> Any:
    from piip_search.config import PIIPConfig
    from piip_search.search._driver import Prepared, SearchDriver
    from piip_search.search._evaluators import resolve_evaluator
    from piip_search.search._study import attach_study

    study, space = attach_study(name, storage_url=storage_url, trials_dir=trials_dir)
    driver = SearchDriver(study, space, study_path=Path(tdir).parent, evaluator=resolve_evaluator(evaluator_spec),
                          device=device, flops_fn=lambda _cfg: (flops, params))
    trial = trial_handle(study, trial_id)
    return driver.evaluate(Prepared(trial, PIIPConfig.from_dict(cfg_dict), Path(tdir), flops, params))


def run_with_ray(driver: Any, n_trials: int, *, storage_url: str, trials_dir: str | Path, evaluator_spec: str,
                 max_concurrent: int | None = None, progress: bool = True) -> list[Any]:
    try:
        import ray
    except ImportError:
        raise PiipSearchError("--backend ray needs Ray: pip install 'piip-search[ray]'") from None
    from piip_search.search._driver import TrialOutcome
    from piip_search.search._progress import SearchProgress

    if not ray.is_initialized():
        # RAY_ADDRESS set (or `ray start` done) -> join that cluster; otherwise a local one on this machine.
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    opts = dict(driver.space.proxy)
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    gpus = float(opts.get("gpus_per_trial", 1 if has_gpu else 0))
    cpus = float(opts.get("cpus_per_trial", 1))
    if max_concurrent is None:
        slots = ray.cluster_resources().get("GPU", 0) / gpus if gpus else ray.cluster_resources().get("CPU", 1) / cpus
        max_concurrent = max(1, int(slots))
    remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_remote_evaluate)
    study = driver.study
    pending: dict[Any, optuna.Trial] = {}
    outcomes: list[Any] = []
    launched = 0
    with SearchProgress(driver, n_trials, enabled=progress) as bar:
        while launched < n_trials or pending:
            while launched < n_trials and len(pending) < max_concurrent:
                launched += 1
                prep = driver.prepare()
                if isinstance(prep, TrialOutcome):
                    outcomes.append(prep)
                    bar.update(prep)
                    continue
                trial, cfg, tdir, flops, params = prep
                ref = remote.remote(storage_url, str(trials_dir), study.study_name, trial_id_of(trial), cfg.to_dict(),
                                    str(tdir), flops, params, evaluator_spec, driver.device)
                pending[ref] = trial
            if not pending:
                continue
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                trial = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as e:  # node lost, worker killed: fail the trial, queue it again
                    msg = f"ray task failed: {type(e).__name__}: {e}"
                    storage_of(study).set_trial_user_attr(trial_id_of(trial), R.STATUS, "failed:worker-died")
                    storage_of(study).set_trial_user_attr(trial_id_of(trial), "message", msg[:2000])
                    if storage_of(study).get_trial(trial_id_of(trial)).state == TrialState.RUNNING:
                        storage_of(study).set_trial_state_values(trial_id_of(trial), TrialState.FAIL)
                    study.enqueue_trial(trial.params, user_attrs={R.RETRY_OF: trial.number,
                                                                  **R.repeat_attrs(trial.user_attrs)})
                    out = TrialOutcome(trial.number, "failed:worker-died", None, {"message": msg})
                outcomes.append(out)
                bar.update(out)
    return outcomes
