"""The default proxy run on the default tiny config: wall time and AP50 over seeds (CPU by default).

Each seed runs `piip-search train`'s library call, `train_proxy(load_config("tiny-piip-3branch"),
default_dataset_dir(), ProxySettings(seed=k))`, in a fresh process, so the wall time includes Python start-up,
imports, reading the data, building, training and evaluation (what a user waits for), next to the
time `train_proxy` itself reports.

    OMP_NUM_THREADS=2 python benchmarks/bench_proxy.py [--seeds 0 1 2] [--config tiny-piip-3branch]
                                                       [--set key=value ...]

Prints a table and writes benchmarks/results/proxy.json (targets: wall <= 60 s on 2 CPU cores, AP50 >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "proxy.json"

_CHILD = """
import json, sys
from piip_search.config import load_config
from piip_search.data import default_dataset_dir
from piip_search.proxy import ProxySettings, train_proxy
cfg, overrides = sys.argv[1], json.loads(sys.argv[2])
res = train_proxy(load_config(cfg), default_dataset_dir(), ProxySettings(**overrides), progress=False)
print(json.dumps(res.to_dict()))
"""


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run_one(config: str, overrides: dict) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, config, json.dumps(overrides)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", default="tiny-piip-3branch")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="ProxySettings overrides")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}

    from piip_search.data import default_dataset_dir
    from piip_search.proxy import ProxySettings

    default_dataset_dir()  # generate the cached set once, outside the timings
    runs = []
    print(f"{'seed':>4} {'status':>8} {'AP50':>6} {'AP':>6} {'iters':>5} {'process s':>9} "
          f"{'train_proxy s':>13} {'train s':>7} {'img/s':>6} {'peak MB':>7}")
    for seed in args.seeds:
        res, wall = run_one(args.config, {**overrides, "seed": seed})
        runs.append({"seed": seed, "process_wall_s": round(wall, 2), **{k: res[k] for k in (
            "status", "message", "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "iters", "wall_s",
            "train_s", "eval_s", "images_per_s", "peak_mem_mb", "loss_start", "loss_end", "input_side")}})
        r = runs[-1]
        print(f"{seed:>4} {r['status']:>8} {r['ap50'] or 0:6.3f} {r['ap'] or 0:6.3f} {r['iters']:>5} "
              f"{wall:9.1f} {r['wall_s']:13.1f} {r['train_s']:7.1f} {r['images_per_s'] or 0:6.1f} "
              f"{r['peak_mem_mb'] or 0:7.0f}", flush=True)
    ok = [r for r in runs if r["status"] == "ok"]
    summary = {
        "process_wall_s_mean": round(statistics.mean(r["process_wall_s"] for r in runs), 2),
        "process_wall_s_max": round(max(r["process_wall_s"] for r in runs), 2),
        "ap50_mean": round(statistics.mean(r["ap50"] for r in ok), 4) if ok else None,
        "ap50_min": round(min(r["ap50"] for r in ok), 4) if ok else None,
        "ap50_std": round(statistics.pstdev(r["ap50"] for r in ok), 4) if ok else None,
        "ap_mean": round(statistics.mean(r["ap"] for r in ok), 4) if ok else None,
        "targets": {"process_wall_s_max": 60.0, "ap50_mean": 0.5},
    }
    print("summary:", json.dumps(summary))
    record = {
        "benchmark": "bench_proxy",
        "config": args.config,
        "settings": {**ProxySettings(**overrides).to_dict(), "seed": "per run"},
        "dataset": str(default_dataset_dir()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "load_average_at_end": os.getloadavg()},
        "runs": runs,
        "summary": summary,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
