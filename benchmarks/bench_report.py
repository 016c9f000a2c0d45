"""HTML report generation time and file size for synthetic studies of 100 / 1,000 / 5,000 trials.

    python benchmarks/bench_report.py [--sizes 100,1000,5000] [--out report.json]

Goal: < 2 s and < 10 MB at 5,000 trials. Trials carry the user attrs _driver.py writes, with a COCO-like status
mix (80% ok, 8% stopped, 5% infeasible, 4% failed, 3% truncated).
Time = report_data + render_report, median of 3, wall and CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from piip_search.report import render_report, report_data  # noqa: E402

MODELS, RES = ["T", "S", "B", "L"], [448, 672, 896, 1120, 1344]
DIST = {f"b{i}.{k}": CategoricalDistribution(v) for i in range(3) for k, v in (("model", MODELS), ("res", RES))}
DIST |= {"count": CategoricalDistribution([2, 4, 6, 12]), "direction": CategoricalDistribution(["bi", "td", "bu"])}
T0 = dt.datetime(2026, 1, 1)


def synthetic_study(n: int, seed: int = 0) -> optuna.Study:
    rng = np.random.default_rng(seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"], study_name=f"bench{n}")
    study.set_user_attr("space", {"name": "bench", "budgets": {"max_gflops": 2000.0}, "flops_convention": "paper"})
    study.set_user_attr("objectives", [["flops", "minimize"], ["ap", "maximize"]])
    study.set_user_attr("sampler", "auto")
    trials = []
    for i in range(n):
        params = {k: d.choices[rng.integers(len(d.choices))] for k, d in DIST.items()}
        g = float(np.exp(rng.uniform(np.log(100), np.log(2500))))
        ap = float(np.clip(0.3 + 0.05 * np.log(g / 100) + rng.normal(0, 0.02), 0, 1))
        status = rng.choice(["ok", "pruned", "infeasible", "failed:worker-died", "truncated"],
                            p=[0.8, 0.08, 0.05, 0.04, 0.03])
        state = TrialState.FAIL if status.startswith("failed") else TrialState.COMPLETE
        cfg = {"branches": [{"model": params[f"b{j}.model"], "resolution": params[f"b{j}.res"]} for j in range(3)],
               "interactions": {"count": params["count"], "direction": params["direction"], "attention": "deform"}}
        ua = {"status": str(status), "worker": f"host:{i % 4}", "fingerprint": f"fp{i}", "config": cfg,
              "flops": int(g * 1e9), "params": 150_000_000, "metrics": {"ap": ap, "iters": 1000}}
        start = T0 + dt.timedelta(minutes=5 * i)
        trials.append(optuna.trial.create_trial(
            state=state, values=[g, ap] if state == TrialState.COMPLETE else None, params=params,
            distributions=DIST, user_attrs=ua))
        trials[-1].datetime_start, trials[-1].datetime_complete = start, start + dt.timedelta(minutes=4)
    study.add_trials(trials)
    return study


def measure(n: int, repeats: int = 3) -> dict:
    study = synthetic_study(n)
    times, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            path = render_report(report_data(study), Path(tmp) / "report.html")
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # CPU seconds: robust when the machine is shared
        size = path.stat().st_size
    return {"trials": n, "seconds_median": statistics.median(times), "cpu_seconds_median": statistics.median(cpu),
            "seconds_all": times, "mb": size / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "report.json"))
    args = ap.parse_args()
    rows = [measure(int(n)) for n in args.sizes.split(",")]
    for r in rows:
        print(f"{r['trials']:6d} trials  {r['seconds_median']:.2f} s wall  {r['cpu_seconds_median']:.2f} s CPU  "
              f"{r['mb']:.2f} MB")
    out = Path(args.out)
    out = out if out.parent != Path(".") else Path(__file__).parent / "results" / out  # bare name: results/
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
