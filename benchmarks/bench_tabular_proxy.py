"""Tabular benchmark data: the real proxy AP of every config of a small sub-space of the tiny CPU space.

Enumerates the sub-space below (2 branches, widths 32/64/96, depth 2, 64-192 px, windows global or 8 on every
branch, 1-2 interactions, two directions, deformable; 288 configs, deduplicated by fingerprint), and has the
tool's own workers evaluate them: a study of the sub-space (`builtin:proxy`, `--iters` iterations, one thread,
seed 0, sampler `random`) lives in a git-ignored folder (`--study-dir`, default benchmarks/data/.tabular_study);
every config not yet in it is queued with `study.enqueue_trial`, and `--workers` `piip-search worker` processes
(OMP_NUM_THREADS=1) run with `--total` = the study's trials once the queue is drained, so they stop when every
queued config is done. A killed build continues when rerun: the tool's lifecycle fails and re-queues the trials
of dead workers, and configs already done are not queued again. The JSONL (`--out`, default
benchmarks/data/tabular_proxy.jsonl) is then written from the study's records, one line per config in
enumeration order (params, gflops, params_m, ap, ap50, iters, wall_s, status); `bench_sampler_suite.py
--tabular` replays it as a finite objective.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_tabular_proxy.py [--workers 1] [--limit N]
        [--iters 60] [--out FILE] [--study-dir DIR]

`--limit N` queues only the first N configs (a partial build; workers still drain what an earlier run queued).
Every trial is a queued config (the sampler suggests nothing of its own), with one exception: with several
workers, two that check the study-wide total at the same instant near the end may both ask while one config is
left, and the second then samples a config of the sub-space at random (a copied duplicate when that config is
done); such trials are counted as `not_queued` in the summary line. Exit status 1 when a config is missing or a
worker sampled something other than what was queued for it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from piip_search.search import SearchDriver, SearchSpace, open_study, resolve_evaluator, study_dir  # noqa: E402
from piip_search.search import _records as R  # noqa: E402 - the trial attribute names

OUT = ROOT / "benchmarks" / "data" / "tabular_proxy.jsonl"
STUDY_DIR = ROOT / "benchmarks" / "data" / ".tabular_study"
DEFAULT_ITERS = 60
TAG = "bench_tabular_proxy "  # `enqueued` attribute of a queued config: TAG + its fingerprint
SUBSPACE = {
    "name": "tabular",
    "branches": {"count": [2], "models": {"embed_dim": [32, 64, 96], "depth": [2], "head_dim": 32},
                 "resolutions": [64, 128, 192], "window_size": [None, 8]},
    "inverted": True,
    "interactions": {"count": [1, 2], "direction": ["bidirectional", "top-down"], "attention": ["deformable"]},
    "fixed": {"task": "detection", "branches": {"drop_path_rate": 0.0},
              "interactions": {"heads": 4, "points": 4, "deform_ratio": 0.5, "cffn": True, "cffn_ratio": 0.25,
                               "projection": True, "norm": True, "drop_path_rate": 0.1}},
    "objectives": [{"flops": "minimize"}, {"ap": "maximize"}],
    "flops_convention": "model",
}


def enumerate_space(space: SearchSpace) -> list[dict]:
    """Every distinct config of a finite space, as its params (first params seen per fingerprint)."""
    dims = space.dimensions()
    seen: dict[str, dict] = {}
    for n in space.n_branches.values:
        names = [k for k in dims if k != "n_branches" and not (k.startswith("b") and k[1].isdigit()
                                                                  and int(k[1]) >= n)]
        for combo in itertools.product(*(dims[k] for k in names)):
            params = dict(zip(names, combo, strict=True))
            if "n_branches" in dims:
                params["n_branches"] = n
            cfg = space.config_from_params(params)
            seen.setdefault(cfg.fingerprint(), space.params_from_config(cfg))
    return list(seen.values())


def study_space(iters: int) -> SearchSpace:
    """The sub-space as a study: the builtin proxy at `iters` iterations, one thread, seed 0 (the evaluation
    the data is made of); `random` samples nothing here, since every trial is a queued config."""
    return SearchSpace.from_dict({**SUBSPACE, "proxy": {"iters": iters, "num_threads": 1, "seed": 0},
                                  "evaluator": "builtin:proxy", "sampler": "random"},
                                 source="tabular", check_budgets=False)


def root_fingerprint(t: FrozenTrial, by_number: dict[int, FrozenTrial]) -> str | None:
    """The fingerprint of the config this build queued for `t`: its own tag, or, for a copy the lifecycle
    re-queued after a dead worker, the tag of the trial it retries. None: not queued by this build."""
    while True:
        tag = str(t.user_attrs.get(R.ENQUEUED, ""))
        if tag.startswith(TAG):
            return tag[len(TAG):]
        prev = t.user_attrs.get(R.RETRY_OF)
        if prev is None or prev not in by_number:
            return None
        t = by_number[prev]


def queued_or_done(study: optuna.Study) -> set[str]:
    """Fingerprints of configs waiting, running or finished (COMPLETE) in the study: not to be queued again.
    A failed trial does not count: its config was re-queued (the copy counts) or failed for good (retried)."""
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    out = set()
    for t in trials:
        if t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE):
            fp = t.user_attrs.get(R.FINGERPRINT) or root_fingerprint(t, by_number)
            if fp:
                out.add(fp)
    return out


def prepare_study(space: SearchSpace, todo: list[dict], study_root: Path, name: str) -> tuple[optuna.Study, int]:
    """Create or attach the study, recover trials of dead workers, queue the configs it lacks; returns the
    study and the study-wide `--total` at which the queue is drained."""
    study = open_study(space, name=name, storage_url=None, trials_dir=study_root, sampler="random", seed=0,
                       resume=True, evaluator="builtin:proxy")
    # the lifecycle's own sweep (what every worker runs first): a dead build's running trials are failed and
    # their configs re-queued before this one decides what is missing
    SearchDriver(study, space, study_path=study_dir(study_root, name),
                 evaluator=resolve_evaluator("builtin:proxy")).recover_stale_trials()
    have = queued_or_done(study)
    new = 0
    for params in todo:
        fp = space.config_from_params(params).fingerprint()
        if fp not in have:
            study.enqueue_trial(params, user_attrs={R.ENQUEUED: TAG + fp})
            new += 1
    trials = study.get_trials(deepcopy=False)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    total = R.started_trials(study) + waiting
    print(f"study {name} in {study_root}: {len(todo)} configs asked, {new} queued now, {waiting} waiting, "
          f"workers run until the study holds {total} trials", flush=True)
    return study, total


def run_workers(study: optuna.Study, study_root: Path, total: int, n_workers: int) -> list[int]:
    """`piip-search worker --total` in `n_workers` processes (one thread each), their output in worker_<i>.log
    of the study folder; progress every minute. A signal to this process stops them cleanly (SIGTERM: each
    fails its running trial as interrupted and re-queues the config, so a rerun continues)."""
    name = study.study_name
    sdir = study_dir(study_root, name)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [sys.executable, "-m", "piip_search.cli", "worker", "--study", name, "--storage",
           str(sdir / "journal.log"), "--trials-dir", str(study_root), "--total", str(total)]
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    procs: list[subprocess.Popen] = []
    try:
        for i in range(n_workers):
            with (sdir / f"worker_{i}.log").open("a") as log:
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
        t0 = last = time.monotonic()
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
            if time.monotonic() - last >= 60:
                last = time.monotonic()
                done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
                print(f"  {time.monotonic() - t0:.0f} s: {done} trials finished of {total}", flush=True)
        return [int(p.returncode) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def collect_rows(study: optuna.Study, expected: dict[str, dict]) -> tuple[list[dict], dict[str, int]]:
    """One JSONL row per config of `expected` (fingerprint -> params, in enumeration order) that has a
    result: its first `ok` evaluation (never a copied duplicate), else its last failure for good. Also
    counts what a clean build has none of: trials not queued by this build (sampled beyond the queue),
    trials whose sampled config is not the queued one, duplicate copies."""
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    counts = {"not_queued": 0, "not_the_queued_config": 0, "duplicates": 0}
    chosen: dict[str, FrozenTrial] = {}
    for t in trials:
        fp = t.user_attrs.get(R.FINGERPRINT)
        if not t.state.is_finished() or fp is None:
            continue
        root = root_fingerprint(t, by_number)
        if root is None:
            counts["not_queued"] += 1
        elif root != fp or t.params != expected.get(fp, t.params):
            counts["not_the_queued_config"] += 1
            continue
        if t.user_attrs.get(R.DUPLICATE_OF) is not None:
            counts["duplicates"] += 1
            continue
        status = R.status_of(t.user_attrs, t.state.name)
        if fp not in expected or status in (R.WORKER_DIED, R.INTERRUPTED):  # re-queued: the copy counts
            continue
        if chosen.get(fp) is None or R.status_of(chosen[fp].user_attrs, "") != R.OK:
            chosen[fp] = t
    return [_row(expected[fp], chosen[fp]) for fp in expected if fp in chosen], counts


def _row(params: dict, t: FrozenTrial) -> dict[str, Any]:
    m = t.user_attrs.get(R.METRICS, {}) or {}
    return {"params": params, "gflops": t.user_attrs[R.FLOPS] / 1e9, "params_m": t.user_attrs[R.PARAMS] / 1e6,
            "ap": float(m.get("ap") or 0.0), "ap50": float(m.get("ap50") or 0.0), "iters": m.get("iters"),
            "wall_s": m.get("wall_s", m.get("eval_wall_s")), "status": R.status_of(t.user_attrs, t.state.name)}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)  # a reader never sees half a file


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1, help="piip-search worker processes (default 1)")
    ap.add_argument("--limit", type=int, default=None, help="queue only the first N configs of the enumeration")
    ap.add_argument("--iters", type=int, default=DEFAULT_ITERS, help="proxy iterations per config (default 60)")
    ap.add_argument("--out", type=Path, default=None, help=f"JSONL file (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--study-dir", type=Path, default=STUDY_DIR,
                    help=f"home of the build's study (default {STUDY_DIR.relative_to(ROOT)}, git-ignored)")
    args = ap.parse_args(argv)
    for flag in ("workers", "limit", "iters"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            ap.error(f"--{flag}: must be at least 1, got {v}")
    if args.iters != DEFAULT_ITERS and args.out is None:
        ap.error(f"--iters {args.iters}: give --out too ({OUT.relative_to(ROOT)} holds {DEFAULT_ITERS}-iteration data)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = study_space(args.iters)
    todo = enumerate_space(space)[: args.limit]
    expected = {space.config_from_params(p).fingerprint(): p for p in todo}
    study_root = args.study_dir.resolve()
    study, total = prepare_study(space, todo, study_root, f"tabular-it{args.iters}")
    if R.started_trials(study) < total:
        codes = run_workers(study, study_root, total, args.workers)
        print(f"workers exited with {codes}", flush=True)
    rows, counts = collect_rows(study, expected)
    out = args.out or OUT
    write_jsonl(out, rows)
    ok = sum(r["status"] == R.OK for r in rows)
    print(f"{out}: {len(rows)} rows ({ok} ok) of {len(expected)} configs; {counts}", flush=True)
    if len(rows) < len(expected) or counts["not_the_queued_config"]:
        print("incomplete or not the queued configs: see the study's worker_*.log; a rerun continues",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
