"""Driver overhead per trial (everything except the evaluation) with ~1,000 trials already in the study.

Fills a study with N trials through the real driver (flops-only evaluator: no training), then times the next
trials, per sampler. Overhead per trial = the whole `run_one` minus the evaluator call = ask + sample + analytic
FLOPs + budget check + duplicate lookup + trial folder + tell + storage I/O (journal file). Reports its median
and 90th percentile (wall clock; also the process's CPU time, steadier on a shared machine). Writes
benchmarks/results/driver_overhead.json (or --out). Run with OMP_NUM_THREADS=1.

    python benchmarks/bench_driver_overhead.py [--fill 1000] [--measure 50] [--samplers auto tpe nsga2 random]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import optuna

from piip_search.search import SearchSpace
from piip_search.search._driver import SearchDriver
from piip_search.search._evaluators import resolve_evaluator
from piip_search.search._samplers import GPThenTPESampler
from piip_search.search._study import open_study


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fill", type=int, default=1000)
    ap.add_argument("--measure", type=int, default=50)
    ap.add_argument("--samplers", nargs="+", default=["auto", "tpe", "nsga2", "random"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "driver_overhead.json"))
    ap.add_argument("--space", default=str(Path(__file__).parents[1] / "search_spaces" / "paper.yaml"))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.from_yaml(args.space)
    results = {}
    for sampler in args.samplers:
        with tempfile.TemporaryDirectory() as d:
            study = open_study(space, name="bench", storage_url=None, trials_dir=d, sampler=sampler, seed=0,
                               resume=False)
            flops_only = resolve_evaluator("builtin:flops-only")
            eval_s = []

            def timed_eval(cfg, ctx, _eval_s=eval_s, _fn=flops_only):
                t = time.perf_counter()
                try:
                    return _fn(cfg, ctx)
                finally:
                    _eval_s.append(time.perf_counter() - t)

            drv = SearchDriver(study, space, study_path=Path(d) / "bench", evaluator=timed_eval)
            t0 = time.perf_counter()
            # fill fast: random sampling for the bulk, then the sampler under test for the measured trials
            fill_drv = SearchDriver(optuna.load_study(study_name="bench", storage=study._storage,
                                                      sampler=optuna.samplers.RandomSampler(seed=1)),
                                    space, study_path=Path(d) / "bench", evaluator=flops_only)
            fill_drv.run(args.fill, progress=False)
            fill_s = time.perf_counter() - t0
            times, cpu = [], []
            for _ in range(args.measure):
                eval_s.clear()
                t, c = time.perf_counter(), time.process_time()
                drv.run_one()
                times.append(time.perf_counter() - t - sum(eval_s))  # not evaluated: infeasible or duplicate
                cpu.append(time.process_time() - c)  # this process's CPU (the evaluator's is negligible)
            times.sort()
            cpu.sort()
            results[sampler] = {
                "trials_in_study": args.fill, "fill_s_per_trial": fill_s / args.fill,
                "median_ms": 1000 * times[len(times) // 2], "p90_ms": 1000 * times[int(len(times) * 0.9)],
                "mean_ms": 1000 * sum(times) / len(times), "cpu_median_ms": 1000 * cpu[len(cpu) // 2],
            }
            if isinstance(study.sampler, GPThenTPESampler):  # which of its two samplers the measured trials used
                results[sampler]["auto_uses"] = "tpe" if study.sampler._switched else "gp"
            r = results[sampler]
            print(f"{sampler:8s} {args.fill} trials in study: median {r['median_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms "
                  f"per trial (CPU median {r['cpu_median_ms']:.1f} ms; fill: {1000 * fill_s / args.fill:.1f} ms)")
    out = Path(args.out)
    out.write_text(json.dumps({"space": args.space, "storage": "journal file", "measured": "run_one minus evaluation",
                               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
