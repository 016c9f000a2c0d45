"""Fault soak: a study run by several workers while workers are SIGKILLed (and restarted) and the storage fails.

W forked `piip-search worker` processes (`run_worker --total T`, evaluator `tests.search.fake_evaluators:marking`,
which sleeps and appends one line per finished evaluation to the study folder) share one study. At random moments
the script SIGKILLs a random worker and starts a new one in its place (`--kills`), and makes the storage fail
(`--outages`): PostgreSQL is stopped with `pg_ctlcluster <ver> <name> stop -m fast` for `--outage-s` seconds and
started again (always, in a `finally`); a journal file gets a torn last line (a writer that died mid-append,
appended under the journal's lock). When the workers are done, one more worker is started (a user restarting
after a crash), which recovers what the last kills left behind. Reported:

- requested: T; completed: trials recorded `ok`; killed trials failed `failed:worker-died` and re-queued;
- lost: evaluations that finished (a marker line) but whose result is not in the study, plus trials left
  RUNNING, plus killed trials whose config was not re-queued or was re-queued and never run (spare proposals
  of the GP proposal queue still WAITING at the end are counted apart: nothing was evaluated for them);
- duplicated: a trial evaluated more than once, and configs evaluated to the end more than once.

    OMP_NUM_THREADS=1 python benchmarks/bench_fault_soak.py [--quick] [--storages journal postgres]
        [--workers 3] [--total 30] [--kills 4] [--outages 2] [--outage-s 3] [--sleep 2] [--seed 0]

Writes benchmarks/results/fault_soak.json (or --out). PostgreSQL needs root (or sudo) for pg_ctlcluster.
"""

from __future__ import annotations

import os

os.environ.setdefault("PIIP_SEARCH_HEARTBEAT_S", "5")  # grace 15 s: longer than an outage (see README)
# (set before piip_search is imported: the forked workers inherit its settings)

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optuna.trial import TrialState  # noqa: E402

from benchmarks._workers import postgres_url, prefill, read_trials, start_worker  # noqa: E402


def _cluster() -> tuple[str, str]:
    ver, name = subprocess.run(["pg_lsclusters", "-h"], check=True, capture_output=True,
                               text=True).stdout.split()[:2]
    return ver, name


def _pg_ctl(action: str) -> None:
    ver, name = _cluster()
    cmd = ["pg_ctlcluster", ver, name, action] + (["-m", "fast"] if action == "stop" else [])
    if os.geteuid() != 0:
        cmd = ["sudo", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def storage_outage(kind: str, journal: Path, seconds: float) -> str:
    if kind == "postgres":
        _pg_ctl("stop")
        try:
            time.sleep(seconds)
        finally:
            _pg_ctl("start")
        return f"postgres stopped {seconds:g} s"
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(str(journal))
    lock.acquire()
    try:
        with open(journal, "ab") as f:
            f.write(b'{"op_code": 5, "worker_id": "soak-torn", "trial_id": 0, "user_attr')
    finally:
        lock.release()
    return "torn journal line"


def soak(kind: str, pg: str | None, args: argparse.Namespace, rng: random.Random) -> dict:
    name = f"soak-{kind}-{os.getpid()}-{time.time_ns() % 10**9}"
    with tempfile.TemporaryDirectory(prefix="piip-soak-") as d:
        storage = pg if kind == "postgres" else None
        prefill(name, storage, d, args.sampler, 0)
        env = {"PIIP_TEST_SLEEP_S": str(args.sleep), "OMP_NUM_THREADS": "1"}
        workers = [start_worker(name, storage, d, total=args.total, env=env) for _ in range(args.workers)]
        faults = ["kill"] * args.kills + ["outage"] * args.outages
        rng.shuffle(faults)
        events, t0 = [], time.monotonic()
        try:
            for fault in faults:
                time.sleep(rng.uniform(0.5, 2.0) * args.gap_s)
                alive = [w for w in workers if w.is_alive()]
                if not alive:
                    break
                if fault == "kill":
                    victim = rng.choice(alive)
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.join()
                    workers.append(start_worker(name, storage, d, total=args.total, env=env))
                    events.append((round(time.monotonic() - t0, 1), f"SIGKILL worker {victim.pid}, restarted"))
                else:
                    events.append((round(time.monotonic() - t0, 1),
                                   storage_outage(kind, Path(d) / name / "journal.log", args.outage_s)))
                print(f"  {kind}: {events[-1][0]:6.1f} s  {events[-1][1]}", flush=True)
        finally:
            for w in workers:
                w.join()
        exits = [w.exitcode for w in workers]
        final = start_worker(name, storage, d, total=args.total, env=env)  # a user restarting after the soak
        final.join()
        exits.append(final.exitcode)
        wall = time.monotonic() - t0
        trials = read_trials(name, storage, d, delete=True)
        marks_file = Path(d) / name / "evaluations.txt"
        marks = [ln.split() for ln in marks_file.read_text().splitlines()] if marks_file.exists() else []
    return {"storage": kind, "wall_s": wall, "events": events, "worker_exit_codes": exits,
            **account(trials, marks, args.total)}


def account(trials: list, marks: list[list[str]], requested: int) -> dict:
    by_number = {t.number: t for t in trials}
    status = Counter(str(t.user_attrs.get("status", t.state.name.lower())) for t in trials)
    ok = [t for t in trials if t.user_attrs.get("status") == "ok"]
    died = [t for t in trials if t.user_attrs.get("status") == "failed:worker-died"]
    requeued = {t.user_attrs.get("retry_of") for t in trials if t.user_attrs.get("retry_of") is not None}
    mark_numbers = Counter(int(n) for _, n in marks)
    mark_fps = Counter(fp for fp, _ in marks)
    lost_results = [n for n in mark_numbers if n not in by_number or by_number[n].state != TrialState.COMPLETE]
    # a RUNNING trial, or a re-queued config never run again, is lost; spare proposals still queued are not
    unfinished = [t.number for t in trials if t.state == TrialState.RUNNING
                  or (t.state == TrialState.WAITING and t.user_attrs.get("retry_of") is not None)]
    spare = [t.number for t in trials if t.state == TrialState.WAITING and t.user_attrs.get("retry_of") is None]
    # killed before it had a config (while sampling or proposing): nothing to re-queue, nothing lost
    no_config = [t.number for t in died if t.number not in requeued and not t.params]
    not_requeued = [t.number for t in died if t.number not in requeued and t.params]
    return {
        "requested": requested, "trials_in_study": len(trials), "completed_ok": len(ok),
        "statuses": dict(status), "killed_trials_requeued": len(died) - len(not_requeued) - len(no_config),
        "killed_before_sampling": no_config,
        "evaluations_recorded": len(marks), "spare_proposals_queued": len(spare),
        "lost": len(lost_results) + len(unfinished) + len(not_requeued),
        "lost_detail": {"finished_evaluation_not_in_study": lost_results, "unfinished_trials": unfinished,
                        "killed_not_requeued": not_requeued},
        "duplicated": sum(c - 1 for c in mark_numbers.values() if c > 1),
        "configs_evaluated_twice": sum(c - 1 for c in mark_fps.values() if c > 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 workers, 24 trials, 3 kills, 2 outages")
    ap.add_argument("--storages", nargs="+", default=["journal", "postgres"], choices=["journal", "postgres"])
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--total", type=int, default=40)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--outages", type=int, default=3)
    ap.add_argument("--outage-s", type=float, default=3.0)
    ap.add_argument("--gap-s", type=float, default=4.0, help="mean seconds between faults")
    ap.add_argument("--sleep", type=float, default=2.0, help="evaluator seconds")
    ap.add_argument("--sampler", default="auto", help="the default: GP and its proposal queue after 10 trials")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fault_soak.json"))
    args = ap.parse_args()
    if args.quick:
        args.total, args.kills, args.outages = 24, 3, 2
    rng = random.Random(args.seed)
    pg = postgres_url() if "postgres" in args.storages else None
    rows = [soak(kind, pg, args, rng) for kind in args.storages]
    print(f"\n{'storage':9s} {'requested':>9s} {'completed':>9s} {'lost':>5s} {'duplicated':>10s} "
          f"{'kills':>5s} {'outages':>7s} {'requeued':>8s} {'wall_s':>6s}")
    for r in rows:
        kills = sum("SIGKILL" in e for _, e in r["events"])
        print(f"{r['storage']:9s} {r['requested']:9d} {r['completed_ok']:9d} {r['lost']:5d} {r['duplicated']:10d} "
              f"{kills:5d} {len(r['events']) - kills:7d} {r['killed_trials_requeued']:8d} {r['wall_s']:6.0f}")
        print(f"          statuses {r['statuses']}; configs evaluated twice: {r['configs_evaluated_twice']}")
    out = Path(args.out) if Path(args.out).parent != Path(".") else Path(__file__).parent / "results" / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
