"""Sampler suite: fraction of the TRUE front's hypervolume per sampler, on objectives it was not tuned on.

No training: each objective maps a config to an AP (synthetic shapes, or the real proxy results of
`bench_tabular_proxy.py` looked up in benchmarks/data/tabular_proxy.jsonl). FLOPs are the exact analytic counts.
Every space is small enough to enumerate, so the true front and its hypervolume are known (reference point:
the FLOPs budget or 1.1 x the largest cost, AP 0). Over-budget trials are told (GFLOPs, 0) with a violated
constraint, like the driver does.

Samplers: `known-cost` (ours; `known-cost-forest`: the same with a random-forest surrogate), `random` and
`auto` (ours, through `space.sample`), and plain Optuna `gp`,
`tpe`, `nsga2` on a naive encoding (every parameter of the largest config suggested flat, on every trial;
the unused ones are ignored). Reported: HV fraction at 25/50/100/200 (and 400, where run) trials (median and
worst seed) and trials to 0.95 / 0.98.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_sampler_suite.py [--spaces tiny,paper-like]
        [--objectives capacity,...] [--samplers known-cost,random,...] [--seeds 5] [--seed-from 0]
        [--trials 200] [--out FILE] [--workers 2]   (resumable: runs already in FILE are skipped)

A space's table (every config's count) is cached in benchmarks/data/.cache/ (git-ignored), keyed by the space
and the sources of the FLOPs counter: the paper space takes minutes to count, a second to load.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from piip_search.flops import count  # noqa: E402
from piip_search.search import SearchSpace, hypervolume, pareto_mask  # noqa: E402
from piip_search.search._known_cost import KnownCostSampler  # noqa: E402
from piip_search.search._samplers import make_sampler  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sampler_suite.json"
TABULAR = ROOT / "benchmarks" / "data" / "tabular_proxy.jsonl"
CHECKPOINTS = (25, 50, 100, 200, 400)  # a checkpoint no run reaches is not printed
DIRS = ("minimize", "maximize")
_FIXED = {"task": "detection", "branches": {"drop_path_rate": 0.0},
          "interactions": {"heads": 4, "points": 4, "deform_ratio": 0.5, "cffn": True, "cffn_ratio": 0.25,
                           "projection": True, "norm": True, "drop_path_rate": 0.1}}
SPACES: dict[str, dict[str, Any]] = {
    # the paper's design space, coarsened to enumerate in about a minute (858,600 configs at step 224 and six
    # counts take ~10 CPU minutes to count): 2-4 DeiT T/S/B/L, 224-1568 px step 448, window 14, 1/2/4/12
    # interactions, five directions, two attentions, inverted, 3,000 GFLOPs (paper convention)
    "paper-like": {
        "name": "paper-like", "branches": {"count": [2, 3, 4], "models": ["T", "S", "B", "L"],
                                           "resolutions": [224, 672, 1120, 1568], "window_size": [14]},
        "interactions": {"count": [1, 2, 4, 12], "direction": ["bidirectional", "top-down", "bottom-up",
                                                               "all-pairs", "none"],
                         "attention": ["deformable", "regular"]},
        "fixed": {**_FIXED, "interactions": {**_FIXED["interactions"], "heads": 16}},
        "budgets": {"max_gflops": 3000}, "flops_convention": "paper"},
    # the paper's design space itself (858,600 configs; counted once, then cached: see `table`)
    "paper": {
        "name": "paper", "branches": {"count": [2, 3, 4], "models": ["T", "S", "B", "L"],
                                      "resolutions": list(range(224, 1793, 224)), "window_size": [14]},
        "interactions": {"count": [1, 2, 3, 4, 6, 12], "direction": ["bidirectional", "top-down", "bottom-up",
                                                                     "all-pairs", "none"],
                         "attention": ["deformable", "regular"]},
        "fixed": {**_FIXED, "interactions": {**_FIXED["interactions"], "heads": 16}},
        "budgets": {"max_gflops": 3000}, "flops_convention": "paper"},
    # the tiny CPU space, coarsened
    "tiny": {
        "name": "tiny", "branches": {"count": [2, 3], "models": {"embed_dim": [32, 64, 128], "depth": [2, 4],
                                                                 "head_dim": 32},
                                     "resolutions": [64, 128, 192, 256], "window_size": [None, 8]},
        "interactions": {"count": [1, 2], "direction": ["bidirectional", "top-down", "none"],
                         "attention": ["deformable", "regular"]},
        "fixed": _FIXED, "budgets": {"max_gflops": 0.6}, "flops_convention": "model"},
}
_DIR_GAIN = {"bidirectional": 1.0, "all-pairs": 1.05, "top-down": 0.8, "bottom-up": 0.7, "none": 0.0}


# ---- objectives: config -> AP in about [0, 0.5] ------------------------------------------------------------
def _terms(cfg) -> dict[str, float]:
    bs = cfg.branches
    cap = sum(b.embed_dim ** 2 * b.depth for b in bs)
    top = max(b.resolution for b in bs)
    lo = min(b.resolution for b in bs)
    k = cfg.n_interactions if len(bs) > 1 else 0
    gain = _DIR_GAIN[cfg.interactions.direction] * (1.0 if cfg.interactions.attention == "deformable" else 0.9)
    return {"cap": math.log(cap), "top": math.log(top), "lo": math.log(lo), "k": k, "gain": gain,
            "n": len(bs)}


# log capacity (sum of width^2 x depth) and log resolution ranges that the objectives map to [0, 1]: the smallest
# and largest pyramid of each space (paper and paper-like: 2 x T to 4 x L, DeiT T = 192 wide x 12, L = 1024 x 24)
_RANGES = {
    "tiny": ((64 ** 2 * 2 * 2, 128 ** 2 * 4 * 3), (64, 256)),
    "paper-like": ((192 ** 2 * 12 * 2, 1024 ** 2 * 24 * 4), (224, 1568)),
    "paper": ((192 ** 2 * 12 * 2, 1024 ** 2 * 24 * 4), (224, 1792)),
}


def _rescale(space_name: str) -> tuple[float, float]:
    lo, hi = _RANGES[space_name][0]
    return math.log(lo), math.log(hi)


def make_objectives(space_name: str) -> dict[str, Any]:
    c0, c1 = _rescale(space_name)
    r0, r1 = (math.log(r) for r in _RANGES[space_name][1])

    def cap(t): return (t["cap"] - c0) / (c1 - c0)
    def res(t): return (t["top"] - r0) / (r1 - r0)
    def lo(t): return (t["lo"] - r0) / (r1 - r0)
    def fus(t): return (1 - math.exp(-t["k"] / 2)) * t["gain"]

    return {
        "capacity": lambda t: 0.30 * cap(t) + 0.05 * res(t) + 0.02 * fus(t),
        "resolution": lambda t: 0.05 * cap(t) + 0.25 * res(t) + 0.05 * lo(t) + 0.02 * fus(t),
        "interaction": lambda t: 0.08 * cap(t) + 0.05 * res(t) + 0.25 * fus(t) * (t["n"] - 1) / 3,
        "multiplicative": lambda t: 0.4 * (0.2 + cap(t)) * (0.2 + res(t)) * (0.5 + 0.5 * fus(t)),
        "plateau-cliff": lambda t: (0.1 + 0.2 * min(1.0, 2 * cap(t)) + 0.1 * res(t))
        * (0.4 if lo(t) < 0.2 and t["k"] < 2 else 1.0),
        "noisy": lambda t: 0.15 * cap(t) + 0.12 * res(t) + 0.03 * fus(t),
    }


NOISE_SD = 0.006  # three seeds of the default proxy run span AP 0.258-0.273: sd about 0.006-0.008


# ---- the space, enumerated -------------------------------------------------------------------------------
def enumerate_space(space: SearchSpace) -> list[dict[str, Any]]:
    """Params of every distinct config: draws already in the inverted order, so each is canonical."""
    return list(iter_space(space))


def iter_space(space: SearchSpace):
    """`enumerate_space`, one params dict at a time."""
    dims = space.dimensions()
    glob = [k for k in ("window_size", "interactions.direction", "interactions.count", "interactions.attention")
            if k in dims]
    for n in space.n_branches.values:
        if space.presets is not None:
            models = [dict(zip([f"b{i}.model" for i in range(n)], c, strict=True))
                      for c in itertools.combinations_with_replacement(space.presets.values[::-1], n)]
        else:
            models = [{**{f"b{i}.embed_dim": e for i, e in enumerate(ec)}, **{f"b{i}.depth": d for i, d in
                                                                               enumerate(dc)}}
                      for ec in itertools.combinations_with_replacement(space.embed_dims.values[::-1], n)
                      for dc in itertools.combinations_with_replacement(space.depths.values[::-1], n)]
        res = [{f"b{i}.resolution": r for i, r in enumerate(rc)}
               for rc in itertools.combinations_with_replacement(space.resolutions.values, n)]
        for m, r, g in itertools.product(models, res, itertools.product(*(dims[k] for k in glob))):
            p = {**m, **r, **dict(zip(glob, g, strict=True))}
            if "n_branches" in dims:
                p["n_branches"] = n
            yield p


# ---- the table of a space, cached --------------------------------------------------------------------------
CACHE_DIR = ROOT / "benchmarks" / "data" / ".cache"
# what a table's rows depend on besides the space: the FLOPs counter, the config (fingerprints, canonical form)
# and the space's params -> config mapping; a change to any of them (or to this file's table code) rebuilds it
_COUNT_SOURCES = ("piip_search/flops", "piip_search/config", "piip_search/search/space")


def _row(space: SearchSpace, p: dict[str, Any]) -> tuple[str, tuple[float, float, dict, None]]:
    """fingerprint, (GFLOPs, M params, terms, None) of one config (its params are not kept: 858,600 dicts of the
    paper space would take about 1 GB, and nothing reads them back)."""
    cfg = space.config_from_params(p)
    r = count(cfg, convention=space.flops_convention, cache=False)
    return cfg.fingerprint(), (r.flops / 1e9, r.params / 1e6, _terms(cfg), None)


def cache_key(space_dict: dict[str, Any]) -> str:
    """Hash of the space dict, of the sources that count it and of this file's table code."""
    import hashlib
    import inspect

    h = hashlib.sha256(json.dumps(space_dict, sort_keys=True, default=str).encode())
    for d in _COUNT_SOURCES:
        for f in sorted((ROOT / d).rglob("*.py")):
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    for fn in (iter_space, _row, _terms):
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()[:16]


_WORKER_SPACE: SearchSpace | None = None


def _init_worker(space_dict: dict[str, Any], source: str) -> None:
    global _WORKER_SPACE
    _WORKER_SPACE = SearchSpace.from_dict(space_dict, source=source)


def _rows(chunk: list[dict[str, Any]]) -> list[tuple]:
    assert _WORKER_SPACE is not None
    return [_row(_WORKER_SPACE, p) for p in chunk]


def _chunks(it, n: int):
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def build_table(space: SearchSpace, space_dict: dict[str, Any] | None = None, workers: int = 1,
                ) -> dict[str, tuple[float, float, dict, None]]:
    """fingerprint -> (GFLOPs, M params, terms, None) of every config; with `workers` > 1 (and the space's dict)
    counted in that many processes."""
    if workers <= 1 or space_dict is None:
        return dict(_row(space, p) for p in iter_space(space))
    import multiprocessing as mp

    out: dict[str, tuple] = {}
    with mp.get_context("fork").Pool(workers, _init_worker, (space_dict, space.source or "")) as pool:
        for rows in pool.imap(_rows, _chunks(iter_space(space), 5000)):
            out.update(rows)
    return out


def table(space: SearchSpace, space_dict: dict[str, Any] | None = None, *, cache_dir: Path | None = CACHE_DIR,
          workers: int = 1, log=None) -> dict[str, tuple[float, float, dict, None]]:
    """`build_table`, cached under `cache_dir` as <space>-<cache_key>.pkl when the space's dict is given (a
    changed space, counter or table code gets a new file). `log(msg)` is told how long it took and how."""
    import pickle

    t0 = time.perf_counter()
    path = None
    if space_dict is not None and cache_dir is not None:
        path = Path(cache_dir) / f"{space_dict.get('name', 'space')}-{cache_key(space_dict)}.pkl"
        if path.exists():
            with path.open("rb") as fh:
                tab = pickle.load(fh)
            if log:
                log(f"{len(tab)} configs loaded from {path.name} in {time.perf_counter() - t0:.1f} s")
            return tab
    tab = build_table(space, space_dict, workers)
    if log:
        log(f"{len(tab)} configs enumerated and counted in {time.perf_counter() - t0:.1f} s ({workers} process"
            f"{'es' if workers > 1 else ''})")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(tab, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    return tab


# ---- one run ---------------------------------------------------------------------------------------------
def naive_params(trial, space: SearchSpace) -> dict[str, Any]:
    """Every parameter of the largest config, suggested on every trial (what a user of plain Optuna writes)."""
    return {k: trial.suggest_categorical(k, list(v)) for k, v in space.dimensions().items()}


def _ours(name: str, seed: int, space: SearchSpace, tab) -> optuna.samplers.BaseSampler:
    """Our sampler by name; known-cost counts by table lookup (the same exact counts, 15x less benchmark CPU)."""
    if name not in ("known-cost", "known-cost-forest"):
        return make_sampler(name, seed, space=space)

    def lookup(cfg):
        gflops, params_m = tab[cfg.fingerprint()][:2]
        return int(gflops * 1e9), int(params_m * 1e6)

    return KnownCostSampler(space, seed=seed, count_fn=lookup,
                            surrogate="forest" if name == "known-cost-forest" else "gp")


def run_one(space, tab, ap_of, sampler: str, seed: int, n_trials: int, noise: float) -> list[tuple]:
    naive = sampler.startswith("optuna-")
    name = sampler.removeprefix("optuna-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = (optuna.samplers.GPSampler(seed=seed) if name == "gp" else
             optuna.samplers.TPESampler(seed=seed) if name == "tpe" else
             optuna.samplers.NSGAIISampler(seed=seed) if name == "nsga2" else
             None) if naive else _ours(name, seed, space, tab)
    study = optuna.create_study(directions=list(DIRS), sampler=s)
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n_trials):
        trial = study.ask()
        cfg = space.config_from_params(naive_params(trial, space)) if naive else space.sample(trial)
        gflops, _, terms, _ = tab[cfg.fingerprint()]
        ok = gflops <= (space.budgets.max_gflops or math.inf)
        if space.budgets.max_gflops is not None:
            trial.set_constraint("max_gflops", gflops - space.budgets.max_gflops)
        ap = ap_of(terms, cfg) if ok else 0.0
        study.tell(trial, [gflops, ap + (rng.normal(0, noise) if ok and noise else 0.0)])
        points.append((gflops, ap, ok))
    return points


def hv_fractions(points, ref, true_hv) -> list[float]:
    out, front = [], np.empty((0, 2))
    for f, a, ok in points:
        if ok:
            front = np.vstack([front, [f, a]])
            front = front[pareto_mask(front, DIRS)]
        out.append((hypervolume(front, ref, DIRS) if len(front) else 0.0) / true_hv)
    return out


def first_at(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v >= target), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spaces", default="tiny,paper-like")
    ap.add_argument("--objectives", default="capacity,resolution,interaction,multiplicative,plateau-cliff,noisy,"
                    "tabular")
    ap.add_argument("--samplers", default="known-cost,random,auto,optuna-gp,optuna-tpe,optuna-nsga2")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-from", type=int, default=0, help="run seeds seed-from..seeds-1 (breadth first)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--workers", type=int, default=2, help="processes that count a space not yet cached")
    ap.add_argument("--summarise", nargs="*", default=None, help="only print the table of these result files")
    ap.add_argument("--compact", action="store_true", help="with --summarise: one row per objective")
    ap.add_argument("--ratio", metavar="A/B", help="with --summarise: trials to 0.95 / 0.98 of sampler A over B")
    args = ap.parse_args(argv)
    if args.summarise is not None:
        runs = {"runs": longest_runs(args.summarise)}
        if args.ratio:
            ratios(runs, *args.ratio.split("/", 1))
        else:
            (compact if args.compact else summarise)(runs)
        return 0
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    done = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {"runs": []}
    have = {(r["space"], r["objective"], r["sampler"], r["seed"], r["trials"]) for r in done["runs"]}
    for sname in args.spaces.split(","):
        if sname == "tabular-sub":
            continue
        space = SearchSpace.from_dict(SPACES[sname], source=sname)
        tab = table(space, SPACES[sname], workers=args.workers,
                    log=lambda msg, sname=sname: print(f"{sname}: {msg}", file=sys.stderr, flush=True))
        objs = make_objectives(sname)
        for oname in args.objectives.split(","):
            if oname == "tabular":
                continue  # replayed on its own sub-space by run_tabular below
            ap_of = (lambda f: lambda terms, cfg: f(terms))(objs[oname])
            noise = NOISE_SD if oname == "noisy" else 0.0
            run_objective(done, have, args, sname, space, tab, oname, ap_of, noise)
    if "tabular" in args.objectives.split(",") and TABULAR.exists():
        run_tabular(done, have, args)
    summarise(done)
    return 0


def run_objective(done, have, args, sname, space, tab, oname, ap_of, noise) -> None:
    ref = (float(space.budgets.max_gflops or 1.1 * max(v[0] for v in tab.values())), 0.0)
    pts = np.array([[v[0], ap_of(v[2], None)] for v in tab.values() if v[0] <= ref[0]])
    mask = pareto_mask(pts, DIRS)
    true_hv = hypervolume(pts[mask], ref, DIRS)
    n_front = int(mask.sum())
    for sampler in args.samplers.split(","):
        for seed in range(args.seed_from, args.seeds):
            key = (sname, oname, sampler, seed, args.trials)
            if key in have:
                continue
            t0 = time.perf_counter()
            curve = hv_fractions(run_one(space, tab, ap_of, sampler, seed, args.trials, noise), ref, true_hv)
            done["runs"].append({"space": sname, "objective": oname, "sampler": sampler, "seed": seed,
                                 "trials": args.trials, "curve": curve, "front_size": n_front,
                                 "wall_s": time.perf_counter() - t0, "optuna": optuna.__version__})
            have.add(key)
            Path(args.out).write_text(json.dumps(done))
            print(f"  {sname} {oname} {sampler} {seed}: {curve[-1]:.3f} in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)


def run_tabular(done, have, args) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_tabular_proxy import SUBSPACE

    space = SearchSpace.from_dict(SUBSPACE, source="tabular", check_budgets=False)
    rows = [json.loads(line) for line in TABULAR.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("status", "ok") == "ok" and r.get("ap") is not None]
    tab, aps = {}, {}
    for r in rows:
        cfg = space.config_from_params(r["params"])
        tab[cfg.fingerprint()] = (r["gflops"], r["params_m"], _terms(cfg), r["params"])
        aps[cfg.fingerprint()] = r["ap"]
    # the measured rows only: the budget sits just above the costliest measured config, and a config not
    # measured is infeasible (counted above the budget)
    budget = 1.01 * max(v[0] for v in tab.values())
    space = SearchSpace.from_dict({**SUBSPACE, "budgets": {"max_gflops": budget}}, source="tabular",
                                  check_budgets=False)
    full = {}
    for p in enumerate_space(space):
        cfg = space.config_from_params(p)
        fp = cfg.fingerprint()
        full[fp] = tab.get(fp, (1e9, 0.0, _terms(cfg), p))
    ap_of = lambda terms, cfg: aps[cfg.fingerprint()] if cfg is not None else 0.0  # noqa: E731
    table_aps = {fp: aps.get(fp, 0.0) for fp in full}
    ref = (space.budgets.max_gflops, 0.0)
    pts = np.array([[full[fp][0], table_aps[fp]] for fp in aps])
    true_hv = hypervolume(pts[pareto_mask(pts, DIRS)], ref, DIRS)
    n_front = int(pareto_mask(pts, DIRS).sum())
    for sampler in args.samplers.split(","):
        for seed in range(args.seed_from, args.seeds):
            key = ("tabular-sub", f"tabular ({len(rows)} measured)", sampler, seed, args.trials)  # as stored
            if key in have:
                continue
            t0 = time.perf_counter()
            curve = hv_fractions(run_one(space, full, ap_of, sampler, seed, args.trials, 0.0), ref, true_hv)
            done["runs"].append({"space": "tabular-sub", "objective": f"tabular ({len(rows)} measured)",
                                 "sampler": sampler, "seed": seed, "trials": args.trials, "curve": curve,
                                 "front_size": n_front, "wall_s": time.perf_counter() - t0,
                                 "optuna": optuna.__version__})
            have.add(key)
            Path(args.out).write_text(json.dumps(done))
            print(f"  tabular {sampler} {seed}: {curve[-1]:.3f}", file=sys.stderr, flush=True)


def longest_runs(files: list[str]) -> list[dict]:
    """Every run of these result files, one per (space, objective, sampler, seed): the longest. A seed's runs
    are the same search (seeded sampler, deterministic objective), so a shorter one is the longer one's start."""
    runs: dict[tuple, dict] = {}
    for f in files:
        for r in json.loads(Path(f).read_text())["runs"]:
            key = (r["space"], r["objective"], r["sampler"], r["seed"])
            if key not in runs or len(r["curve"]) > len(runs[key]["curve"]):
                runs[key] = r
    return list(runs.values())


def _checkpoints(runs: list[dict], start: int = 0) -> list[int]:
    """The checkpoints from `start` that at least one of these runs reaches."""
    longest = max(len(r["curve"]) for r in runs)
    return [c for c in CHECKPOINTS if start <= c <= longest]


def summarise(done) -> None:
    groups: dict[tuple, list] = {}
    for r in done["runs"]:
        groups.setdefault((r["space"], r["objective"], r["sampler"]), []).append(r)
    cps = _checkpoints(done["runs"])
    print("| space | objective | sampler | seeds | " + " | ".join(f"HV@{c}" for c in cps)
          + " | worst seed, last | to 0.95 | to 0.98 |")
    print("|---|---|---|---|" + "---|" * len(cps) + "---|---|---|")
    for (sp, ob, sa), rs in sorted(groups.items()):
        cells = []
        for c in cps:
            vals = [r["curve"][c - 1] for r in rs if len(r["curve"]) >= c]
            cells.append(f"{statistics.median(vals):.3f}" if vals else "-")
        n = min(len(r["curve"]) for r in rs)
        cells.append(f"{min(r['curve'][n - 1] for r in rs):.3f} @{n}")
        for tgt in (0.95, 0.98):  # median_high: a seed that never got there counts as the slowest
            hits = [first_at(r["curve"], tgt) or math.inf for r in rs]
            med = statistics.median_high(hits)
            ok = sum(h < math.inf for h in hits)
            cells.append(f"{med if med < math.inf else f'>{n}'} ({ok}/{len(rs)})")
        print(f"| {sp} | {ob} | {sa} | {len(rs)} | " + " | ".join(cells) + " |")



ORDER = ("known-cost", "known-cost-forest", "gp-tpe", "random", "optuna-gp", "optuna-tpe", "optuna-nsga2")


def _cell(rs: list, what: str) -> str:
    n = min(len(r["curve"]) for r in rs)
    if what == "hv":
        med = [statistics.median([r["curve"][c - 1] for r in rs if len(r["curve"]) >= c])
               for c in _checkpoints(rs, start=100)]
        return " / ".join(f"{m:.3f}" for m in med) + f" ({min(r['curve'][n - 1] for r in rs):.3f}) x{len(rs)}"
    out = []
    for tgt in (0.95, 0.98):
        med = statistics.median_high([first_at(r["curve"], tgt) or math.inf for r in rs])
        out.append(str(med) if med < math.inf else f">{n}")
    return " / ".join(out)


def compact(done) -> None:
    """Two tables, one row per (space, objective): median HV at 100 / 200 (/ 400 where run) trials (worst seed
    at the last checkpoint) x seeds; median trials to 0.95 / 0.98 (a seed that never got there counts as
    slowest)."""
    groups: dict[tuple, dict[str, list]] = {}
    for r in done["runs"]:
        groups.setdefault((r["space"], r["objective"]), {}).setdefault(r["sampler"], []).append(r)
    samplers = [s for s in ORDER if any(s in g for g in groups.values())]
    hv_title = " / ".join(f"HV@{c}" for c in _checkpoints(done["runs"], start=100)) + " (worst seed) x seeds"
    for what, title in (("hv", hv_title), ("to", "trials to 0.95 / 0.98")):
        print(f"\n{title}\n\n| space | objective | " + " | ".join(samplers) + " |")
        print("|---|---|" + "---|" * len(samplers))
        for (sp, ob), g in sorted(groups.items()):
            print(f"| {sp} | {ob} | " + " | ".join(_cell(g[s], what) if s in g else "-" for s in samplers) + " |")


def _to_target(rs: list, tgt: float) -> tuple[float, float, str]:
    """Bounds on the median trials to `tgt` and 'median [every seed]'. A seed that never got there is only known
    to need more than its run's length (`>N`): counted as N + 1 for the lower bound, never for the upper."""
    hits = [first_at(r["curve"], tgt) for r in rs]
    lower = statistics.median_high([h or len(r["curve"]) + 1 for h, r in zip(hits, rs, strict=True)])
    upper = statistics.median_high([h or math.inf for h in hits])
    med = str(lower) if lower == upper else f">{lower - 1}" if upper == math.inf else f"{lower}-{upper}"
    seeds = sorted((h or len(r["curve"]) + 0.5, str(h) if h else f">{len(r['curve'])}") for h, r in
                   zip(hits, rs, strict=True))
    return lower, upper, f"{med} [{', '.join(t for _, t in seeds)}]"


def _ratio(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Bounds on median(a) / median(b) from the bounds on each median."""
    lo, hi = a[0] / b[1], a[1] / b[0]
    if hi == math.inf:
        return f"> {lo:.2f}" if lo > 0 else "-"
    return f"{hi:.2f}" if lo == hi else f"< {hi:.2f}" if lo == 0 else f"{lo:.2f}-{hi:.2f}"


def ratios(done, a: str, b: str) -> None:
    """Per (space, objective) run by both: median trials to 0.95 / 0.98 of `a` and `b` (every seed) and their
    ratio: with equal proxy iterations per trial, the ratio of proxy iterations."""
    groups: dict[tuple, dict[str, list]] = {}
    for r in done["runs"]:
        groups.setdefault((r["space"], r["objective"]), {}).setdefault(r["sampler"], []).append(r)
    print(f"| space | objective | {a} to 0.95 | {b} to 0.95 | ratio | {a} to 0.98 | {b} to 0.98 | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for (sp, ob), g in sorted(groups.items()):
        if a not in g or b not in g:
            continue
        cells = []
        for tgt in (0.95, 0.98):
            (la, ua, ta), (lb, ub, tb) = _to_target(g[a], tgt), _to_target(g[b], tgt)
            cells += [ta, tb, _ratio((la, ua), (lb, ub))]
        print(f"| {sp} | {ob} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
