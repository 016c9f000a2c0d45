"""Cost of one `known-cost` ask on a study that already has N finished trials (one core).

Fills a study with N random configs of `paper.yaml` told with a synthetic AP (bench_search_efficiency's), then
times asks: the first one (kernel hyperparameters fitted from scratch) and the next ones (cached
hyperparameters, refitted only when the data grew by 15%).

    OMP_NUM_THREADS=1 python benchmarks/bench_known_cost_ask.py [--trials 1000] [--asks 5]
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--asks", type=int, default=5)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = SearchSpace.from_yaml("paper", check_proxy=False)
    study = optuna.create_study(directions=space.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    while len(study.trials) < args.trials:
        t = study.ask()
        cfg = space.sample(t)
        r = count(cfg, convention="paper")
        if r.flops / 1e9 > space.budgets.max_gflops or r.params / 1e6 > space.budgets.max_params_m:
            study.tell(t, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(t, [r.flops / 1e9, synthetic_ap(cfg)])
    study.sampler = KnownCostSampler(space, seed=0)
    times = []
    for _ in range(args.asks):
        t0 = time.perf_counter()
        t = study.ask()
        cfg = space.sample(t)
        times.append(time.perf_counter() - t0)
        r = count(cfg, convention="paper")
        study.tell(t, [r.flops / 1e9, synthetic_ap(cfg)])
    out = {"trials": args.trials, "first_ask_s": times[0], "next_asks_s": times[1:]}
    print(json.dumps(out))
    (ROOT / "benchmarks" / "results" / "known_cost_ask.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
