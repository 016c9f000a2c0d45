"""Benchmark of search efficiency: which Optuna sampler finds the FLOPs/AP front of `paper.yaml` fastest.

No training: AP is a fast synthetic, smooth, saturating function of the architecture (below), FLOPs and params
are the exact analytic counts (`piip_search.flops.count`, the space's convention). Each trial goes through the
same steps as the driver: `space.sample(trial)`, budgets as constraints (`trial.set_constraint`, value <= 0 =
feasible; an over-budget trial is told (GFLOPs, AP 0) and is never on the front), then (GFLOPs, AP).

For every sampler and seed: the hypervolume of the feasible front after 50, 100 and 200 trials, with a fixed
reference point (the FLOPs budget, a floor AP), and the number of trials needed to reach 95% of the best-known
hypervolume (that of the front of the union of every run). Prints a table and writes
benchmarks/results/search_efficiency.json.

    python benchmarks/bench_search_efficiency.py                          # 4 samplers x 5 seeds x 200 trials
    python benchmarks/bench_search_efficiency.py --quick                  # 2 seeds x 60 trials
    python benchmarks/bench_search_efficiency.py --samplers tpe,random --seeds 3 --trials 100
    python benchmarks/bench_search_efficiency.py --noise 0.5 --seeds 3 --trials 100   # noisy proxy AP

With `--noise SIGMA` the samplers see AP + N(0, SIGMA^2) (fixed per architecture and run, as the driver reuses
a repeated architecture's result), while hypervolumes are measured on the noise-free AP of what was evaluated.

Synthetic AP (box AP-like, 0-50): with P_k the parameters of branch k (branch 1 = largest model, lowest
resolution), r_1 / r_n the lowest / highest branch resolution:
    semantics = (1 - exp(-P_1 / 60M)) * (0.6 + 0.4 * (1 - exp(-r_1 / 500)))   large model, enough pixels
    detail    = 1 - exp(-r_n / 800)                                             small objects need pixels
    pyramid   = mean over k > 1 of (1 - exp(-P_k / 30M))                        capacity of the other branches
    fusion    = (1 - exp(-count / 4)) * direction factor * attention factor     interactions, diminishing
    windows   = mean over branches of 0.04 * (1 - min(1, window / grid))        windows cost a little
    AP = 50 * (1 - exp(-(1.2 semantics + 0.9 detail + 0.35 pyramid + 0.45 fusion - windows)))
with direction factors bidirectional 1.0, all-pairs 1.02, top-down 0.85, bottom-up 0.8, none 0, and attention
deformable 1.0 / regular 0.95. PIIP-TSB 1120/896/448 scores about 43 at 243 GFLOPs (published: 43.6).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
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

from piip_search.config import PIIPConfig  # noqa: E402
from piip_search.search import SearchSpace, hypervolume, pareto_mask  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "search_efficiency.json"
NOISY = ROOT / "benchmarks" / "results" / "search_efficiency_noisy.json"
SPACE = ROOT / "search_spaces" / "paper.yaml"
SAMPLERS = ("nsga2", "tpe", "gp", "random")
CHECKPOINTS = (50, 100, 200)
TARGET = 0.95
AP_FLOOR = 30.0  # reference AP: trade-offs below it are not interesting for this space
DIRECTIONS = ("minimize", "maximize")

DIRECTION_FACTOR = {"bidirectional": 1.0, "all-pairs": 1.02, "top-down": 0.85, "bottom-up": 0.8, "none": 0.0}
ATTENTION_FACTOR = {"deformable": 1.0, "regular": 0.95}


# ---- objective ---------------------------------------------------------------------------------------------
def synthetic_ap(cfg: PIIPConfig) -> float:
    """Smooth, saturating, deterministic AP of an architecture (see the module docstring)."""
    bs = cfg.branches
    params = [12 * b.embed_dim ** 2 * b.depth / 1e6 for b in bs]  # block parameters, M
    semantics = (1 - math.exp(-params[0] / 60)) * (0.6 + 0.4 * (1 - math.exp(-bs[0].resolution / 500)))
    detail = 1 - math.exp(-bs[-1].resolution / 800)
    pyramid = statistics.fmean(1 - math.exp(-p / 30) for p in params[1:]) if len(bs) > 1 else 0.0
    inter = cfg.interactions
    fusion = 0.0
    if len(bs) > 1:
        fusion = ((1 - math.exp(-cfg.n_interactions / 4)) * DIRECTION_FACTOR[inter.direction]
                  * ATTENTION_FACTOR[inter.attention])
    windows = statistics.fmean(0.04 * (1 - min(1.0, b.window_size / b.grid)) if b.window_size else 0.0
                               for b in bs)
    raw = 1.2 * semantics + 0.9 * detail + 0.35 * pyramid + 0.45 * fusion - windows
    return 50 * (1 - math.exp(-raw))


def make_counter(convention: str):
    """`piip_search.flops.count` under the space's convention (the product's analytic counter)."""
    from piip_search.flops import count

    def counter(cfg: PIIPConfig) -> tuple[float, float]:
        r = count(cfg, convention=convention)
        return r.flops / 1e9, r.params / 1e6

    return counter


SAMPLER_FACTORY = "piip_search.search._samplers.make_sampler"


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The samplers `piip-search run --sampler` uses (the driver's factory when it is importable)."""
    global SAMPLER_FACTORY
    try:
        from piip_search.search._samplers import make_sampler as driver_make_sampler

        return driver_make_sampler(name, seed)
    except ImportError:
        SAMPLER_FACTORY = "local copy of the driver's settings"
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True,
                                          warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SystemExit(f"--samplers: unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


# ---- one run -----------------------------------------------------------------------------------------------
def observation_noise(cfg: PIIPConfig, seed: int, sigma: float) -> float:
    """A fixed N(0, sigma^2) draw per (architecture, run)."""
    if sigma <= 0:
        return 0.0
    h = hashlib.sha1(f"{cfg.fingerprint()}/{seed}".encode()).digest()
    return float(np.random.default_rng(int.from_bytes(h[:8], "little")).normal(0.0, sigma))


def run_one(space: SearchSpace, sampler: str, seed: int, n_trials: int, counter,
            noise: float = 0.0) -> dict[str, Any]:
    """Trials of one seeded study; returns every trial's (GFLOPs, true AP, feasible) and the wall time."""
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=make_sampler(sampler, seed))
    budgets = space.budgets
    points: list[tuple[float, float, bool]] = []
    t0 = time.perf_counter()
    for _ in range(n_trials):
        trial = study.ask()
        cfg = space.sample(trial)
        gflops, mparams = counter(cfg)
        violations = []
        if budgets.max_gflops is not None:
            violations.append(gflops - budgets.max_gflops)
            trial.set_constraint("max_gflops", gflops - budgets.max_gflops)
        if budgets.max_params_m is not None:
            violations.append(mparams - budgets.max_params_m)
            trial.set_constraint("max_params_m", mparams - budgets.max_params_m)
        feasible = all(v <= 0 for v in violations)
        ap = synthetic_ap(cfg) if feasible else 0.0
        seen = ap + observation_noise(cfg, seed, noise) if feasible else 0.0
        study.tell(trial, [gflops, seen])
        points.append((gflops, ap, feasible))
    return {"sampler": sampler, "seed": seed, "points": points, "wall_s": time.perf_counter() - t0}


def hv_curve(points: list[tuple[float, float, bool]], ref: tuple[float, float]) -> list[float]:
    """Hypervolume of the feasible front after each trial."""
    out, front = [], np.empty((0, 2))
    for f, a, ok in points:
        if ok:
            front = np.vstack([front, [f, a]])
            front = front[pareto_mask(front, DIRECTIONS)]
        out.append(hypervolume(front, ref, DIRECTIONS) if len(front) else 0.0)
    return out


# ---- main --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated: nsga2,tpe,gp,random (or auto)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=max(CHECKPOINTS))
    ap.add_argument("--quick", action="store_true", help="2 seeds x 60 trials (a smoke check)")
    ap.add_argument("--space", default=str(SPACE))
    ap.add_argument("--noise", type=float, default=0.0, help="std of the AP the samplers see (AP points)")
    ap.add_argument("--out", default=None, help=f"default {RESULTS.relative_to(ROOT)} (with --noise: "
                    f"{NOISY.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.trials = 2, 60
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    args.out = args.out or str(NOISY if args.noise > 0 else RESULTS)
    checkpoints = sorted({c for c in CHECKPOINTS if c <= args.trials} | {args.trials})

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # GP/NSGA-II warn on every conditional parameter
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    space = SearchSpace.from_yaml(args.space, check_proxy=False)
    counter = make_counter(space.flops_convention)
    ref = (float(space.budgets.max_gflops or 1e4), AP_FLOOR)

    runs = []
    for name in samplers:
        for seed in range(args.seeds):
            r = run_one(space, name, seed, args.trials, counter, args.noise)
            r["hv"] = hv_curve(r["points"], ref)
            runs.append(r)
            print(f"  {name:>6} seed {seed}: {r['wall_s']:7.1f} s, hypervolume {r['hv'][-1]:9.1f}",
                  file=sys.stderr)

    allp = np.array([(f, a) for r in runs for f, a, ok in r["points"] if ok])
    best_front = allp[pareto_mask(allp, DIRECTIONS)] if len(allp) else np.empty((0, 2))
    best_hv = hypervolume(best_front, ref, DIRECTIONS) if len(best_front) else 0.0

    summary: dict[str, Any] = {}
    for name in samplers:
        rs = [r for r in runs if r["sampler"] == name]
        to_target = []
        for r in rs:
            hit = next((i + 1 for i, h in enumerate(r["hv"]) if h >= TARGET * best_hv), None)
            to_target.append(hit)
        reached = [t for t in to_target if t is not None]
        summary[name] = {
            "hv_at": {str(c): {"mean": statistics.fmean(r["hv"][c - 1] for r in rs) / best_hv,
                               "min": min(r["hv"][c - 1] for r in rs) / best_hv,
                               "max": max(r["hv"][c - 1] for r in rs) / best_hv} for c in checkpoints},
            "trials_to_95pct": to_target,
            "trials_to_95pct_median": statistics.median(reached) if len(reached) == len(rs) else None,
            "runs_reaching_95pct": f"{len(reached)}/{len(rs)}",
            "feasible_fraction": statistics.fmean(sum(ok for *_, ok in r["points"]) / len(r["points"])
                                                  for r in rs),
            "wall_s_per_run": statistics.fmean(r["wall_s"] for r in rs),
        }
    final = str(checkpoints[-1])
    ranking = sorted(samplers, key=lambda s: (-summary[s]["hv_at"][final]["mean"],
                                              summary[s]["wall_s_per_run"]))

    # ---- table
    head = f"{'sampler':>8} " + " ".join(f"{'HV@' + str(c):>7}" for c in checkpoints) + \
        f"  {'trials to 95% (per seed)':<28} {'feasible':>8} {'s/run':>7}"
    noise = f", samplers see AP + N(0, {args.noise:g}^2)" if args.noise > 0 else ""
    print(f"\nsearch efficiency on {Path(args.space).name}: {args.seeds} seeds x {args.trials} trials"
          f"{noise}; "
          f"HV = mean fraction of the best-known front's hypervolume (reference {ref[0]:g} GFLOPs, "
          f"{ref[1]:g} AP; best-known HV {best_hv:.1f}, {len(best_front)} points)")
    print(head)
    for name in ranking:
        s = summary[name]
        hv = " ".join(f"{s['hv_at'][str(c)]['mean']:>7.3f}" for c in checkpoints)
        hits = ",".join(str(t) if t is not None else f">{args.trials}" for t in sorted(
            s["trials_to_95pct"], key=lambda t: t if t is not None else math.inf))
        print(f"{name:>8} {hv}  {hits:<28} {s['feasible_fraction']:>8.2f} {s['wall_s_per_run']:>7.1f}")
    print(f"best mean HV after {final} trials: {ranking[0]}")

    out = {
        "benchmark": "search_efficiency",
        "space": Path(args.space).name,
        "objective": "synthetic AP (module docstring of benchmarks/bench_search_efficiency.py), exact FLOPs",
        "flops_counter": f"piip_search.flops.count(convention={space.flops_convention!r})",
        "sampler_factory": SAMPLER_FACTORY,
        "directions": list(DIRECTIONS),
        "ap_noise_std": args.noise,
        "reference_point": list(ref),
        "budgets": space.budgets.to_dict(),
        "target_fraction": TARGET,
        "seeds": args.seeds,
        "trials": args.trials,
        "checkpoints": checkpoints,
        "best_known_hypervolume": best_hv,
        "best_known_front": best_front[np.argsort(best_front[:, 0])].tolist() if len(best_front) else [],
        "samplers": summary,
        "ranking_by_final_hv": ranking,
        "hv_curves": {f"{r['sampler']}/{r['seed']}": [round(h, 3) for h in r["hv"]] for r in runs},
        "machine": {"python": platform.python_version(), "optuna": optuna.__version__,
                    "platform": platform.platform(), "processor": platform.processor()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
