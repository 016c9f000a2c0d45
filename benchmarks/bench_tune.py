"""Throughput of `--backend ray-tune` against local workers: trials/minute at 1, 2, 4, 8 concurrent trials.

Each setting runs 3 x concurrency trials of a 3 s sleeping evaluator (no CPU used by the evaluation) in a fresh
study of a wide test space (every draw distinct, so every trial is evaluated). `ray-tune`: one Tune experiment,
`max_concurrent_trials` = concurrency, on a local Ray with that many logical CPUs. `local`: that many
`piip-search worker` processes on the same study (journal file). Linear = concurrency x 20 trials/min; per-trial
overhead = wall x concurrency / trials - 3 s (slot time a trial costs beyond its evaluation, start-up included),
and its marginal value from two run sizes (n and 2n trials: what one more trial costs, start-up excluded), and the
`steady_*` figures from the trials' timestamps (first evaluation start to last tell: start-up and shutdown
excluded, measured on each run rather than estimated from two). Writes
benchmarks/results/tune.json (or --out). Run from the repository root with OMP_NUM_THREADS=1:

    python benchmarks/bench_tune.py [--concurrency 1 2 4 8] [--sleep 3] [--per-slot 3] [--fresh-actors]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from piip_search.search import SearchSpace  # noqa: E402
from piip_search.search._run import run_search  # noqa: E402
from piip_search.search._study import open_study  # noqa: E402

SPACE = {
    "name": "bench", "sampler": "random", "objectives": [{"flops": "minimize"}, {"ap": "maximize"}],
    "branches": {"count": [2], "models": {"embed_dim": [32, 64, 96, 128, 160, 192, 224, 256], "depth": [2],
                                          "head_dim": 32}, "resolutions": [64, 80, 96, 112, 128, 144, 160]},
    "interactions": {"count": [1], "direction": ["bidirectional"], "attention": ["deformable"]},
    "fixed": {"interactions": {"heads": 4}}, "flops_convention": "model",
    "evaluator": "tests.search.fake_evaluators:sleeping",
}


def _space(sleep_s: float) -> SearchSpace:
    return SearchSpace.from_dict({**SPACE, "proxy": {"sleep_s": sleep_s}}, source="bench-space")


def run_tune(conc: int, n: int, sleep_s: float, reuse: bool) -> dict:
    import ray

    from piip_search.search._tune import run_with_tune  # noqa: F401  (imports Tune before the clock starts)

    ray.init(num_cpus=conc, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    os.environ["PIIP_SEARCH_TUNE_REUSE_ACTORS"] = "1" if reuse else "0"
    try:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            study, outs = run_search(_space(sleep_s), name="bench", trials_dir=d, n_trials=n, seed=0,
                                     backend="ray-tune", progress=False, max_concurrent=conc)
            wall = time.perf_counter() - t0
            steady = _steady(study, conc)
    finally:
        ray.shutdown()
    return {**_summary(conc, n, sleep_s, wall, [o.status for o in outs]), **steady}


def run_local(conc: int, n: int, sleep_s: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        open_study(_space(sleep_s), name="bench", storage_url=None, trials_dir=d, sampler="random", seed=0,
                   resume=False)
        journal = str(Path(d) / "bench" / "journal.log")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        per = [n // conc + (i < n % conc) for i in range(conc)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "piip_search.cli", "worker", "--storage", journal,
                                   "--study", "bench", "--trials", str(k), "--trials-dir", d], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in per]
        for p in procs:
            p.wait()
        wall = time.perf_counter() - t0
        study = optuna.load_study(study_name="bench", storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(journal)))
        statuses = [t.user_attrs.get("status") for t in study.trials]
        return {**_summary(conc, n, sleep_s, wall, statuses), **_steady(study, conc)}


def _steady(study: optuna.Study, conc: int) -> dict:
    """From the trials' own timestamps, without start-up and shutdown: first evaluation start to last tell. The
    slot time a trial costs beyond its evaluation (ask, schedule, attach, tell, Tune's report) and the fraction
    of linear throughput in that window."""
    ends = [t.datetime_complete.timestamp() for t in study.trials]
    evals = [t.user_attrs["metrics"]["eval_wall_s"] for t in study.trials]
    span = max(ends) - min(e - w for e, w in zip(ends, evals, strict=True))
    return {"steady_span_s": round(span, 2),
            "steady_overhead_per_trial_s": round((conc * span - sum(evals)) / len(evals), 3),
            "steady_fraction_of_linear": round(sum(evals) / (conc * span), 3)}


def _summary(conc: int, n: int, sleep_s: float, wall: float, statuses: list) -> dict:
    per_min = n / wall * 60
    linear = conc * 60 / sleep_s
    return {"concurrency": conc, "trials": n, "wall_s": round(wall, 2), "trials_per_min": round(per_min, 2),
            "linear_per_min": round(linear, 2), "fraction_of_linear": round(per_min / linear, 3),
            "overhead_per_trial_s": round(wall * conc / n - sleep_s, 3),
            "all_ok": all(s == "ok" for s in statuses) and len(statuses) == n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--sleep", type=float, default=3.0)
    ap.add_argument("--per-slot", type=int, default=3, help="trials per concurrent slot")
    ap.add_argument("--fresh-actors", action="store_true", help="a new Tune actor per trial (Tune's default)")
    ap.add_argument("--backends", default="ray-tune,local", help="comma-separated: ray-tune, local")
    ap.add_argument("--tune-checkpoint-s", help="TUNE_GLOBAL_CHECKPOINT_S for the ray-tune runs (default: "
                    "what run_with_tune sets)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tune.json"))
    args = ap.parse_args()
    if args.tune_checkpoint_s is not None:
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = args.tune_checkpoint_s
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for conc in args.concurrency:
        for backend in args.backends.split(","):
            runs = []
            for n in (args.per_slot * conc, 2 * args.per_slot * conc):
                runs.append(run_tune(conc, n, args.sleep, not args.fresh_actors) if backend == "ray-tune" else
                            run_local(conc, n, args.sleep))
            small, big = runs
            # marginal slot time per extra trial beyond its evaluation: start-up costs cancel out
            marginal = (big["wall_s"] - small["wall_s"]) * conc / (big["trials"] - small["trials"]) - args.sleep
            rows.append({"backend": backend, **big, "fixed_wall_s_estimate": round(
                         small["wall_s"] - (small["trials"] / conc) * (args.sleep + marginal), 2),
                         "marginal_overhead_per_trial_s": round(marginal, 3), "small_run": small})
            print(json.dumps(rows[-1]), flush=True)
    out = {"sleep_s": args.sleep, "reuse_actors": not args.fresh_actors, "cpus": os.cpu_count(), "rows": rows,
           "tune_checkpoint_s": os.environ.get("TUNE_GLOBAL_CHECKPOINT_S"),
           "command": "python benchmarks/bench_tune.py " + " ".join(sys.argv[1:])}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
