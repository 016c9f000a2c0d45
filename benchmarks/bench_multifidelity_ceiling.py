"""Ceiling of rung-based multi-fidelity on the bench_multifidelity.py benchmark: pause/resume ("promotion") ASHA.

bench_multifidelity.py measures the product's rule (asynchronous successive halving that *stops* a trial when it
is below the quota at its rung). This script asks whether a different rung-based rule could reach the issue's
target (the full-fidelity hypervolume with <= 40% of its iterations) on the same synthetic benchmark: the
*promotion* variant of ASHA (Li et al., 2020), where a trial pauses after the first rung and a free worker first
resumes the best paused trial in the top 1/eta of that rung (by non-dominated rank, then crowding) and samples a
new configuration only when there is none. Resuming costs only the remaining iterations (checkpointed), and
decisions are taken with every result so far, not only those before the trial. It is a simulation (plain Optuna
ask/tell, no driver, no checkpoints): the product does not implement pause/resume.

With `--noise 0.1` the low-fidelity AP ranks configurations almost exactly as the final AP does: an upper bound
for any filter of this kind. Full-fidelity search: same sampler, seeds and synthetic AP as bench_multifidelity.py.
Reported: the iterations after which the seed-averaged multi-fidelity hypervolume reaches the seed-averaged
full-fidelity hypervolume after N trials (/ its iterations; target <= 0.4), and the ratio at 40%.

    python benchmarks/bench_multifidelity_ceiling.py --eta 4 --noise 0.1 --seeds 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_multifidelity import TARGET, mean_curve_summary, observed_ap, run, spaces  # noqa: E402
from bench_search_efficiency import AP_FLOOR, synthetic_ap  # noqa: E402

from piip_search.flops import count  # noqa: E402
from piip_search.search import SearchSpace, crowding_distance, hypervolume, non_dominated_ranks, pareto_mask  # noqa: E402
from piip_search.search._samplers import make_sampler  # noqa: E402

DIRS = ["minimize", "maximize"]
FULL = 4500


class Tracker:
    """Iterations spent and the hypervolume of the full-fidelity results, after every step."""

    def __init__(self, space: SearchSpace) -> None:
        self.ref = [float(space.budgets.get("max_gflops")), AP_FLOOR]
        self.front = np.empty((0, 2))
        self.spent = 0
        self.curve: list[tuple[int, float, float]] = []

    def full_result(self, gflops: float, ap: float) -> None:
        self.front = np.vstack([self.front, [gflops, ap]])
        self.front = self.front[pareto_mask(self.front, DIRS)]

    def step(self) -> None:
        hv = float(hypervolume(self.front, self.ref, DIRS)) if len(self.front) else 0.0
        self.curve.append((self.spent, hv, hv))


def sample(space: SearchSpace, study: optuna.Study, seen: dict[str, float], enqueue: dict | None = None):
    """Ask a trial; returns (trial, cfg, gflops, feasible and new)."""
    if enqueue is not None:
        study.enqueue_trial(enqueue)
    t = study.ask()
    cfg = space.sample(t)
    c = count(cfg, convention="paper")
    ok = not any(v > 0 for v in space.budgets.violations(c.flops, c.params).values())
    key = cfg.model_dump_json()
    fresh = ok and (enqueue is not None or key not in seen)
    if fresh:
        seen.setdefault(key, 0.0)
    return t, cfg, c.flops / 1e9, fresh, key


def promotion_asha(space: SearchSpace, seed: int, budget: float, noise: float, eta: float, first: int,
                   min_results: int) -> list:
    rng = np.random.default_rng(seed + 1000)
    study = optuna.create_study(directions=DIRS, sampler=make_sampler("tpe", seed))
    tr, seen = Tracker(space), {}
    paused: list[dict[str, Any]] = []  # rung-0 results: gflops, ap, params, promoted
    while tr.spent < budget:
        pick = None
        if len(paused) >= min_results:
            pts = np.array([[p["gflops"], p["ap"]] for p in paused])
            ranks = non_dominated_ranks(pts, DIRS)
            crowd = np.empty(len(pts))
            for r in np.unique(ranks):
                crowd[ranks == r] = crowding_distance(pts[ranks == r])
            top = np.lexsort((-crowd, ranks))[: max(1, int(len(pts) // eta))]
            pick = next((int(i) for i in top if not paused[i]["promoted"]), None)
        if pick is not None:  # resume a paused trial to full fidelity (a new trial with the same params)
            p = paused[pick]
            p["promoted"] = True
            t, cfg, g, _, _ = sample(space, study, seen, enqueue=p["params"])
            ap = observed_ap(synthetic_ap(cfg), FULL, FULL, rng, noise, 500)
            tr.spent += FULL - first
            tr.full_result(g, ap)
            t.set_constraint("full_fidelity", 0.0)
            study.tell(t, [g, ap])
        else:  # a new configuration at the first rung, told as infeasible (not full fidelity)
            t, cfg, g, fresh, _ = sample(space, study, seen)
            ap = 0.0
            if fresh:
                ap = observed_ap(synthetic_ap(cfg), first, FULL, rng, noise, 500)
                tr.spent += first
                paused.append({"gflops": g, "ap": ap, "params": dict(t.params), "promoted": False})
            t.set_constraint("full_fidelity", 0.5)
            study.tell(t, [g, ap])
        tr.step()
    return tr.curve


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", default="60,120,200")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--eta", type=float, default=4.0)
    ap.add_argument("--noise", type=float, default=0.1, help="AP noise (std) after 500 iterations")
    ap.add_argument("--first-rung", type=int, default=500)
    ap.add_argument("--min-results", type=int, default=5)
    ap.add_argument("--out", default="multifidelity_ceiling.json")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    Ns = sorted({int(x) for x in args.trials.split(",")})
    space = SearchSpace.from_yaml(ROOT / "search_spaces" / "paper.yaml")
    bench_args = argparse.Namespace(noise=args.noise, noise_iters=500, slowdown=0.0, rungs=None, eta=None,
                                    min_results=None)
    full_space, _ = spaces(bench_args)
    t0 = time.time()
    fulls, mfs = [], []
    for seed in range(args.seeds):
        # the full-fidelity baseline of bench_multifidelity.py: the real driver, same evaluator
        fulls.append(run(full_space, "tpe", seed, n_trials=max(Ns), args=bench_args))
        mfs.append(promotion_asha(space, seed, 1.3 * fulls[-1][-1][0], args.noise, args.eta, args.first_rung,
                                  args.min_results))
        print(f"seed {seed} done", flush=True)
    summary = mean_curve_summary(fulls, mfs, Ns)
    for N in Ns:
        reach, at40 = summary[str(N)]["iters_ratio_to_full_mean_hv"], summary[str(N)]["mean_hv_ratio_at_40pct"]
        print(f"N={N}: reaches the full-fidelity mean hypervolume after "
              f"{'more than 130%' if reach is None else f'{reach:.0%}'} of its iterations; at 40%: {at40:.3f} of it")
    out = {"benchmark": "multifidelity_ceiling", "command": "python benchmarks/bench_multifidelity_ceiling.py "
           + " ".join(sys.argv[1:] if argv is None else argv), "settings": vars(args), "summary": summary,
           "target_iters_ratio": TARGET, "wall_s": time.time() - t0}
    (ROOT / "benchmarks" / "results" / args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
