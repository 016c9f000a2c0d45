"""Driver overhead per trial (everything except the evaluation) with ~1,000 trials already in the study.

Fills a study with N trials through the real driver (flops-only evaluator: no training), then times the next
trials, per sampler. Overhead = ask + sample + analytic FLOPs + budget check + duplicate lookup + trial folder
+ tell + storage I/O. Writes benchmarks/results/driver_overhead.json.

    python benchmarks/bench_driver_overhead.py [--fill 1000] [--measure 50] [--samplers tpe nsga2 random]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import optuna

from piip_search.search import SearchSpace
from piip_search.search._driver import SearchDriver, open_study
from piip_search.search._evaluators import resolve_evaluator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fill", type=int, default=1000)
    ap.add_argument("--measure", type=int, default=50)
    ap.add_argument("--samplers", nargs="+", default=["tpe", "nsga2", "random"])
    ap.add_argument("--space", default=str(Path(__file__).parents[1] / "search_spaces" / "paper.yaml"))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.from_yaml(args.space)
    results = {}
    for sampler in args.samplers:
        with tempfile.TemporaryDirectory() as d:
            study = open_study(space, name="bench", storage_url=None, trials_dir=d, sampler=sampler, seed=0,
                               resume=False)
            drv = SearchDriver(study, space, study_path=Path(d) / "bench",
                               evaluator=resolve_evaluator("builtin:flops-only"))
            t0 = time.perf_counter()
            # fill fast: random sampling for the bulk, then the sampler under test for the measured trials
            fill_drv = SearchDriver(optuna.load_study(study_name="bench", storage=study._storage,
                                                      sampler=optuna.samplers.RandomSampler(seed=1)),
                                    space, study_path=Path(d) / "bench", evaluator=drv.evaluator)
            fill_drv.run(args.fill, progress=False)
            fill_s = time.perf_counter() - t0
            times = []
            for _ in range(args.measure):
                t = time.perf_counter()
                drv.run_one()
                times.append(time.perf_counter() - t)
            times.sort()
            results[sampler] = {
                "trials_in_study": args.fill, "fill_s_per_trial": fill_s / args.fill,
                "median_ms": 1000 * times[len(times) // 2], "p90_ms": 1000 * times[int(len(times) * 0.9)],
                "mean_ms": 1000 * sum(times) / len(times),
            }
            print(f"{sampler:8s} {args.fill} trials in study: median {results[sampler]['median_ms']:.1f} ms, "
                  f"p90 {results[sampler]['p90_ms']:.1f} ms per trial (fill: {1000 * fill_s / args.fill:.1f} ms)")
    out = Path(__file__).parent / "results" / "driver_overhead.json"
    out.write_text(json.dumps({"space": args.space, "storage": "journal file", "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
