"""Learning curve of the proxy within one run: AP after a fraction of the iterations, as a share of the final AP.

This calibrates the synthetic learning curves of bench_multifidelity.py: a multi-fidelity rung is a checkpoint
*inside* a long run (same schedule, learning rate still high), not a complete short run, so its AP is what this
measures. For each config (from bench_rank_fidelity.py) and seed, train the rank-fidelity long run (the default
`ProxySettings()` with `--factor` x the iterations and warm-up) and evaluate at `--fractions` of it and at the end.
Reports, per fraction, the mean AP(r) / AP(R) over configs, the seed-to-seed standard deviation of AP(r) (configs
run with several seeds), and Kendall's tau between AP(r) and AP(R) over the configs.

    OMP_NUM_THREADS=1 python benchmarks/bench_learning_curve.py --configs tiny-3branch --seeds 0 1 --out a.json
    python benchmarks/bench_learning_curve.py --merge a.json b.json   # -> results/learning_curve.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = Path(__file__).resolve().parent / "results"


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    from bench_rank_fidelity import kendall_tau

    fracs = sorted({float(f) for r in runs for f in r["curve"]})
    out: dict[str, Any] = {}
    for f in fracs:
        key = f"{f:g}"
        ratios = [r["curve"][key] / r["final_ap"] for r in runs if key in r["curve"] and r["final_ap"] > 0]
        by_cfg: dict[str, list[float]] = {}
        for r in runs:
            if key in r["curve"]:
                by_cfg.setdefault(r["config"], []).append(r["curve"][key])
        sds = [statistics.stdev(v) for v in by_cfg.values() if len(v) > 1]
        firsts = {r["config"]: r for r in reversed(runs)}  # one run per config for the rank correlation
        pairs = [(r["curve"][key], r["final_ap"]) for r in firsts.values() if key in r["curve"]]
        out[key] = {"mean_ap_ratio": statistics.fmean(ratios) if ratios else None,
                    "min_ap_ratio": min(ratios, default=None), "max_ap_ratio": max(ratios, default=None),
                    "seed_sd_ap": statistics.fmean(sds) if sds else None,
                    "kendall_tau_to_final": kendall_tau(*zip(*pairs, strict=True)) if len(pairs) >= 3 else None}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="*", default=None)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--factor", type=int, default=8)
    ap.add_argument("--fractions", default="0.0625,0.125,0.25,0.5")
    ap.add_argument("--out", default="learning_curve.json")
    ap.add_argument("--merge", nargs="*", default=None, help="merge these result files instead of training")
    args = ap.parse_args()
    out = RESULTS / args.out
    if args.merge:
        runs = [r for p in args.merge for r in json.loads((RESULTS / p).read_text())["runs"]]
        record = {"benchmark": "bench_learning_curve", "merged": args.merge, "runs": runs,
                  "summary": summarise(runs)}
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record["summary"], indent=2))
        return 0

    from bench_rank_fidelity import CONFIGS

    from piip_search.config import PIIPConfig
    from piip_search.data import default_dataset_dir
    from piip_search.proxy import ProxySettings, train_proxy

    base = ProxySettings()
    iters = base.iters * args.factor
    fracs = [float(x) for x in args.fractions.split(",")]
    points = {int(round(f * iters)): f for f in fracs}
    data = default_dataset_dir()
    record: dict[str, Any] = {"benchmark": "bench_learning_curve", "runs": []}
    for name in args.configs or list(CONFIGS):
        for seed in args.seeds:
            settings = base.replace(iters=iters, warmup_iters=base.warmup_iters * args.factor, seed=seed,
                                    eval_at=tuple(points))
            curve: dict[str, float] = {}

            def on_eval(it: int, metrics: dict[str, Any], curve: dict[str, float] = curve) -> bool:
                if it in points:
                    curve[f"{points[it]:g}"] = float(metrics["ap"])
                return True

            cfg = PIIPConfig.from_dict({**CONFIGS[name], "name": name})
            res = train_proxy(cfg, data, settings, progress=False, on_eval=on_eval)
            record["runs"].append({"config": name, "seed": seed, "status": res.status, "final_ap": res.ap or 0.0,
                                   "iters": res.iters, "wall_s": res.wall_s, "curve": curve})
            print(f"{name:24s} seed {seed} {res.status} final AP {res.ap or 0:.4f} curve "
                  + " ".join(f"{k}:{v:.4f}" for k, v in curve.items()) + f" {res.wall_s:.0f}s", flush=True)
            record["summary"] = summarise(record["runs"])
            record["settings"] = settings.to_dict()
            record["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
            record["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
