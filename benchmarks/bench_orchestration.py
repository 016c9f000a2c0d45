"""Orchestration scaling: N worker processes on one study with a 3 s sleeping evaluator, against N x one worker.

For each storage (journal file, PostgreSQL), sampler and N, a fresh study gets `--prefill` quick random trials
(so GP is past its 10 start-up trials and every measured trial is the sampler's), then N `piip-search worker`
processes (`run_worker`, forked) run `--per-worker` trials each with `tests.search.fake_evaluators:marking`
(PIIP_TEST_SLEEP_S=3). Throughput counts trials finished between the moment every worker has finished its first
trial and the moment the first worker finishes its last (start-up and tail excluded), and is reported as
throughput / (N x the same setting's one-worker throughput). `auto` runs twice: with the proposal queue
(`piip_search/search/_proposals.py`, the default) and without (`PIIP_SEARCH_PROPOSALS=0`, as before it).
All settings run one after another in the same invocation, so they share the machine's load.

    OMP_NUM_THREADS=1 python benchmarks/bench_orchestration.py [--quick] [--storages journal postgres]
        [--samplers auto auto-noqueue tpe random] [--workers 1 2 4 8] [--per-worker 10]

Writes benchmarks/results/orchestration.json (or --out). PostgreSQL: $PIIP_SEARCH_PG_URL or
scripts/start-postgres.sh; its benchmark studies are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optuna.trial import TrialState  # noqa: E402

from benchmarks._workers import postgres_url, prefill, read_trials, start_worker  # noqa: E402
from piip_search.search._proposals import PROPOSAL  # noqa: E402


def throughput(trials: list, first_measured: int) -> dict:
    """Steady-state trials/s over the window in which every worker was running (module docstring)."""
    done = [t for t in trials if t.number >= first_measured and t.state.is_finished() and t.datetime_complete]
    by_worker: dict[str, list[float]] = {}
    for t in done:
        by_worker.setdefault(t.user_attrs.get("worker", "?"), []).append(t.datetime_complete.timestamp())
    starts = [min(v) for v in by_worker.values()]
    ends = [max(v) for v in by_worker.values()]
    t0, t1 = max(starts), min(ends)
    n = sum(t0 < t.datetime_complete.timestamp() <= t1 for t in done)
    ok = sum(t.state == TrialState.COMPLETE for t in done)
    return {"trials_per_s": n / (t1 - t0) if t1 > t0 else float("nan"), "window_s": t1 - t0, "in_window": n,
            "finished": len(done), "complete": ok, "workers_seen": len(by_worker),
            "from_queue": sum(PROPOSAL in t.user_attrs for t in done),
            "batch_sizes": sorted(Counter(t.user_attrs[PROPOSAL]["batch"] for t in trials
                                          if PROPOSAL in t.user_attrs).values())}


def run_one(storage_kind: str, pg: str | None, sampler: str, n_workers: int, args: argparse.Namespace) -> dict:
    queue = sampler != "auto-noqueue"
    real_sampler = "auto" if sampler.startswith("auto") else sampler
    name = f"orch-{storage_kind}-{sampler}-{n_workers}-{os.getpid()}-{time.time_ns() % 10**9}"
    with tempfile.TemporaryDirectory(prefix="piip-orch-") as d:
        storage = pg if storage_kind == "postgres" else None
        prefill(name, storage, d, real_sampler, args.prefill)
        env = {"PIIP_TEST_SLEEP_S": str(args.sleep), "PIIP_SEARCH_PROPOSALS": "1" if queue else "0",
               "OMP_NUM_THREADS": "1"}
        t = time.perf_counter()
        procs = [start_worker(name, storage, d, n_trials=args.per_worker, env=env) for _ in range(n_workers)]
        for p in procs:
            p.join()
        wall = time.perf_counter() - t
        bad = [p.exitcode for p in procs if p.exitcode != 0]
        trials = read_trials(name, storage, d, delete=True)
    r = throughput(trials, args.prefill)
    r.update({"storage": storage_kind, "sampler": sampler, "workers": n_workers, "wall_s": wall,
              "failed_workers": bad})
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N = 1 and 8 only (samplers auto and auto-noqueue "
                    "unless --samplers is given)")
    ap.add_argument("--storages", nargs="+", default=["journal", "postgres"], choices=["journal", "postgres"])
    ap.add_argument("--samplers", nargs="+", default=None, help="default: auto auto-noqueue tpe random "
                    "(--quick: auto auto-noqueue)")
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--per-worker", type=int, default=10)
    ap.add_argument("--prefill", type=int, default=12)
    ap.add_argument("--sleep", type=float, default=3.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "orchestration.json"))
    args = ap.parse_args()
    if args.quick:
        args.workers, args.samplers = [1, 8], args.samplers or ["auto", "auto-noqueue"]
    args.samplers = args.samplers or ["auto", "auto-noqueue", "tpe", "random"]
    if 1 not in args.workers:
        args.workers = [1, *args.workers]
    pg = postgres_url() if "postgres" in args.storages else None
    rows = []
    for storage in args.storages:
        for sampler in args.samplers:
            base = None
            for n in sorted(args.workers):
                r = run_one(storage, pg, sampler, n, args)
                base = r["trials_per_s"] if n == 1 else base
                r["vs_linear"] = r["trials_per_s"] / (n * base) if base else float("nan")
                rows.append(r)
                failed = f" FAILED {r['failed_workers']}" if r["failed_workers"] else ""
                print(f"{storage:8s} {sampler:12s} N={n}: {r['trials_per_s']:.3f} trials/s, "
                      f"{r['vs_linear']:.2f} of linear ({r['in_window']} trials in {r['window_s']:.0f} s, "
                      f"{r['from_queue']} from the queue){failed}", flush=True)
    print("\nthroughput / (N x one worker's):")
    ns = sorted(args.workers)
    print(f"{'storage':9s} {'sampler':13s} " + " ".join(f"N={n:<5d}" for n in ns))
    for storage in args.storages:
        for sampler in args.samplers:
            cells = {r["workers"]: r["vs_linear"] for r in rows if r["storage"] == storage and r["sampler"] == sampler}
            print(f"{storage:9s} {sampler:13s} " + " ".join(f"{cells[n]:<7.2f}" for n in ns))
    out = Path(args.out) if Path(args.out).parent != Path(".") else Path(__file__).parent / "results" / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sleep_s": args.sleep, "per_worker": args.per_worker, "prefill": args.prefill,
                               "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
