"""Cost of one `known-cost` ask on a study that already has N finished trials (one core).

Fills a study with N COMPLETE random configs of `paper.yaml` (over-budget draws are told FAIL and not
counted) told with a synthetic AP (bench_search_efficiency's), then times asks of a fresh sampler, as a resumed
study sees them: the first one (kernel hyperparameters fitted from scratch) and the next ones (warm-started
hyperparameters). Wall and CPU time (the process's own, less sensitive to a busy machine) are both reported,
with the load average. Torch and Optuna's GP module are imported before the clock starts (the sampler imports them
when it is built).

    OMP_NUM_THREADS=1 python benchmarks/bench_known_cost_ask.py [--trials 1000] [--asks 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import optuna  # noqa: E402
from bench_search_efficiency import synthetic_ap  # noqa: E402

from piip_search.flops import count  # noqa: E402
from piip_search.search import SearchSpace  # noqa: E402
from piip_search.search._known_cost import KnownCostSampler  # noqa: E402


def fill(study: optuna.Study, space: SearchSpace, n_complete: int) -> None:
    done = 0
    while done < n_complete:
        t = study.ask()
        cfg = space.sample(t)
        r = count(cfg, convention="paper")
        if r.flops / 1e9 > space.budgets.max_gflops or r.params / 1e6 > space.budgets.max_params_m:
            study.tell(t, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(t, [r.flops / 1e9, synthetic_ap(cfg)])
        done += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000, help="COMPLETE trials in the study before the asks")
    ap.add_argument("--asks", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "known_cost_ask.json"))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = SearchSpace.from_yaml("paper", check_proxy=False)
    study = optuna.create_study(directions=space.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    fill(study, space, args.trials)
    study.sampler = KnownCostSampler(space, seed=0)
    times, cpu = [], []
    for _ in range(args.asks):
        t0, c0 = time.perf_counter(), time.process_time()
        t = study.ask()
        cfg = space.sample(t)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        r = count(cfg, convention="paper")
        study.tell(t, [r.flops / 1e9, synthetic_ap(cfg)] if r.flops / 1e9 <= space.budgets.max_gflops else None,
                   state=None if r.flops / 1e9 <= space.budgets.max_gflops else optuna.trial.TrialState.FAIL)
    out = {"complete_trials": args.trials, "first_ask_s": times[0], "next_asks_s": times[1:],
           "next_median_s": statistics.median(times[1:]) if len(times) > 1 else None, "max_s": max(times),
           "cpu_first_s": cpu[0], "cpu_next_median_s": statistics.median(cpu[1:]) if len(cpu) > 1 else None,
           "load_average": list(os.getloadavg())}
    print(json.dumps(out))
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
