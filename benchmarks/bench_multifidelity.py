"""Multi-fidelity benchmark: does rung promotion by non-dominated rank reach the full-fidelity hypervolume with
fewer training iterations?

Runs the real driver (`SearchDriver`, in-memory study) on `search_spaces/paper.yaml` with a synthetic evaluator:
final AP = `synthetic_ap(cfg)` of bench_search_efficiency.py; the AP seen after `r` of R iterations follows a
learning curve whose speed depends on the model (larger models learn more slowly, so low-fidelity ranks are
*not* the final ranks) plus evaluation noise that shrinks with r:

    ap(r) = AP_final * (1 - exp(-3 r / (R * s(cfg)))) / (1 - exp(-3 / s(cfg))) + N(0, (noise * sqrt(R0 / r))^2)
    s(cfg) = 1 + slowdown * P_total / 500M   (--slowdown > 0: larger models learn more slowly, so low-fidelity
                                             ranks are biased against them, not only noisy)

Full fidelity: every trial trains R iterations. Multi-fidelity: the space's schedule (rungs 500/1500/4500,
eta 3). Both with the same sampler and seeds and the same number of trials N; reported per seed: final
hypervolume (reference: the budget, AP 30), iterations spent, and the iterations multi-fidelity needed to reach
the full-fidelity run's final hypervolume (running the MF search longer, up to 3N trials, if it needs to).
Writes benchmarks/results/multifidelity.json.

    python benchmarks/bench_multifidelity.py [--trials 120] [--seeds 5] [--sampler tpe]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_search_efficiency import AP_FLOOR, synthetic_ap  # noqa: E402

from piip_search.flops import count  # noqa: E402
from piip_search.search import SearchSpace, hypervolume, pareto_mask  # noqa: E402
from piip_search.search._driver import SearchDriver, make_sampler  # noqa: E402

NOISE, SLOWDOWN = 1.0, 0.0
RUNGS = (500, 1500, 4500)


def make_evaluator(seed: int, spent: list[int]):
    rng = np.random.default_rng(seed + 1000)

    def evaluate(cfg, ctx) -> dict[str, Any]:
        R = ctx.fidelity or 4500
        r0 = ctx.rungs[0] if ctx.rungs else R
        final = synthetic_ap(cfg)
        params = count(cfg, convention="paper").params
        s = 1.0 + SLOWDOWN * params / 500e6

        def ap_at(r: int) -> float:
            curve = (1 - math.exp(-3 * r / (R * s))) / (1 - math.exp(-3 / s))
            return final * curve + rng.normal(0, NOISE * math.sqrt(r0 / r))

        done = 0
        for r in (ctx.rungs or [R]):
            spent.append(r - done)
            done = r
            ap = ap_at(r)
            if not ctx.report(r, {"ap": ap}):
                return {"status": "ok", "ap": ap, "iters": r}
        return {"status": "ok", "ap": ap_at(R), "iters": R}

    return evaluate


def run(space: SearchSpace, sampler: str, seed: int, n_trials: int, hv_target: float | None = None,
        max_trials: int | None = None) -> dict[str, Any]:
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=make_sampler(sampler, seed))
    spent: list[int] = []
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        drv = SearchDriver(study, space, study_path=Path(d), evaluator=make_evaluator(seed, spent))
        ref = [float(space.budgets.get("max_gflops")), AP_FLOOR]
        reached_at = None
        n = 0
        limit = max_trials or n_trials
        hv = 0.0
        while n < limit:
            drv.run_one()
            n += 1
            pts = [t.values for t in study.trials
                   if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("status") == "ok"]
            if pts:
                arr = np.array(pts, dtype=float)
                hv = float(hypervolume(arr[pareto_mask(arr, ["minimize", "maximize"])], ref,
                                       ["minimize", "maximize"]))
            if n == n_trials:
                hv_at_n, iters_at_n = hv, sum(spent)
            if hv_target is not None and reached_at is None and hv >= hv_target:
                reached_at = sum(spent)
            if n >= n_trials and (hv_target is None or reached_at is not None):
                break
    return {"hv": hv_at_n, "iters": iters_at_n, "iters_to_target": reached_at, "trials_run": n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sampler", default="tpe")
    ap.add_argument("--noise", type=float, default=1.0, help="AP noise (std) at the first rung")
    ap.add_argument("--slowdown", type=float, default=0.0, help="learning slowdown of large models")
    ap.add_argument("--out", default="multifidelity.json")
    args = ap.parse_args()
    global NOISE, SLOWDOWN
    NOISE, SLOWDOWN = args.noise, args.slowdown
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    paper = SearchSpace.from_yaml(ROOT / "search_spaces" / "paper.yaml").to_dict()
    paper["fidelity"] = {"rungs": list(RUNGS), "eta": 3, "min_results": 5}  # commented out in paper.yaml
    base = SearchSpace.from_dict(paper, source="paper.yaml + fidelity")
    d = copy.deepcopy(base.to_dict())
    d.pop("fidelity", None)
    full_space = SearchSpace.from_dict(d, source="paper.yaml without fidelity")
    full_iters = base.fidelity_schedule().full_iters
    d["proxy"] = dict(d.get("proxy") or {}, iters=full_iters)
    full_space = SearchSpace.from_dict(d, source="paper.yaml without fidelity")
    rows = []
    for seed in range(args.seeds):
        full = run(full_space, args.sampler, seed, args.trials)
        mf = run(base, args.sampler, seed, args.trials, hv_target=full["hv"], max_trials=3 * args.trials)
        row = {"seed": seed, "full_hv": full["hv"], "full_iters": full["iters"], "mf_hv_same_trials": mf["hv"],
               "mf_iters_same_trials": mf["iters"], "mf_iters_to_full_hv": mf["iters_to_target"],
               "mf_trials_run": mf["trials_run"]}
        row["iters_ratio_same_trials"] = mf["iters"] / full["iters"]
        row["iters_ratio_to_full_hv"] = (None if mf["iters_to_target"] is None
                                         else mf["iters_to_target"] / full["iters"])
        rows.append(row)
        print(f"seed {seed}: full HV {full['hv']:.1f} with {full['iters']} iters | MF, same {args.trials} trials: "
              f"HV {mf['hv']:.1f} with {mf['iters']} iters ({row['iters_ratio_same_trials']:.0%}) | "
              f"MF reaches full HV after "
              + ("never" if row["iters_ratio_to_full_hv"] is None else f"{row['iters_ratio_to_full_hv']:.0%}")
              + " of the full-fidelity iterations")
    ratios = [r["iters_ratio_to_full_hv"] for r in rows if r["iters_ratio_to_full_hv"] is not None]
    summary = {
        "sampler": args.sampler, "trials": args.trials, "seeds": args.seeds, "noise": args.noise,
        "slowdown": args.slowdown,
        "schedule": base.fidelity_schedule().to_dict(),
        "mean_hv_ratio_same_trials": float(np.mean([r["mf_hv_same_trials"] / r["full_hv"] for r in rows])),
        "mean_iters_ratio_same_trials": float(np.mean([r["iters_ratio_same_trials"] for r in rows])),
        "median_iters_ratio_to_full_hv": None if not ratios else float(np.median(ratios)),
        "seeds_reaching_full_hv": len(ratios),
    }
    print(json.dumps(summary, indent=2))
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
