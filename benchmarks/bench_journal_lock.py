"""Mutual exclusion of the journal lock when many processes find a stale lock at once: piip-search's `JournalLock`
against Optuna's `JournalFileOpenLock`.

Each round writes a stale lock file (its holder died holding it), then `--procs` processes wait for it at the same
moment; each takes the lock once, holds it `--hold` s and counts a double hold when another process is inside at
the same time or its own lock file was taken away before it released it. Writes
benchmarks/results/journal_lock.json (or --out). Run from the repository root:

    python benchmarks/bench_journal_lock.py [--rounds 6] [--procs 6] [--hold 0.3] [--grace 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def contend(kind: str, journal: str, start: float, hold_s: float, grace_s: float) -> int:
    """Take the lock once at `start`: 1 per clash (another process inside, or our lock file taken away)."""
    from optuna.storages.journal import JournalFileOpenLock

    from piip_search.search._journal_lock import JournalLock

    warnings.filterwarnings("ignore")
    lock: JournalLock | JournalFileOpenLock = (JournalLock(journal, grace_s=grace_s) if kind == "piip-search"
                                               else JournalFileOpenLock(journal, grace_period=max(1, int(grace_s))))
    while time.time() < start:
        time.sleep(0.001)
    lock.acquire()
    inside = journal + ".inside"
    try:
        os.close(os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        clash = 0
    except FileExistsError:
        clash = 1
    time.sleep(hold_s)
    if not clash:
        os.unlink(inside)
    if isinstance(lock, JournalLock):
        with open(lock.path, "rb") as f:
            held = f.read() == lock._mine
        lock.release()
    else:
        try:
            lock.release()
            held = True
        except RuntimeError:  # Optuna's: its lock file was gone
            held = False
    return clash + (not held)


def rounds(kind: str, folder: str | Path, stale: bytes, *, n_rounds: int = 3, n_procs: int = 6,
           hold_s: float = 0.05, grace_s: float = 1.0) -> int:
    """Double holds over `n_rounds` rounds of `n_procs` processes waiting on a stale lock holding `stale`."""
    bad = 0
    with mp.get_context("spawn").Pool(n_procs) as pool:
        for r in range(n_rounds):
            journal = str(Path(folder) / f"{kind}-{r}.log")
            with open(journal + ".lock", "wb") as f:
                f.write(stale)
            start = time.time() + 1.0  # every process waits from the same moment
            bad += sum(pool.starmap(contend, [(kind, journal, start, hold_s, grace_s)] * n_procs))
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--procs", type=int, default=6)
    ap.add_argument("--hold", type=float, default=0.3)
    ap.add_argument("--grace", type=float, default=3.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "journal_lock.json"))
    args = ap.parse_args(argv)
    out = {"rounds": args.rounds, "procs": args.procs, "hold_s": args.hold, "grace_s": args.grace, "results": []}
    stales = {"unnamed (empty lock file)": b"", "named by a dead local holder":
              f"{socket.gethostname()} {dead_pid()} x".encode()}
    for kind in ("optuna", "piip-search"):
        for what, stale in stales.items():
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                bad = rounds(kind, d, stale, n_rounds=args.rounds, n_procs=args.procs, hold_s=args.hold,
                             grace_s=args.grace)
            row = {"lock": kind, "stale_lock": what, "double_holds": bad, "wall_s": time.perf_counter() - t0}
            out["results"].append(row)
            print(f"{kind:12s} {what:30s} double holds {bad:3d} in {row['wall_s']:.0f} s", flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
