"""Rank fidelity of the proxy: does the default short run order configs as a run 8x longer does?

For each of several tiny detection configs (resolutions, branch count, widths, depth, interaction count,
direction and attention varied around `tiny-piip-3branch`), train with the default `ProxySettings()` and with
`iters` multiplied by `--factor` (8 by default; same seed, same everything else), then report Kendall's tau
between the two AP rankings (and between the AP50 rankings). Results are written after every run, and a
rerun skips the runs already in the results file unless `--fresh` is given (it takes a while: about
(1 + factor) default runs per config).

    OMP_NUM_THREADS=2 nohup python benchmarks/bench_rank_fidelity.py > rank_fidelity.log 2>&1 &

Writes benchmarks/results/rank_fidelity.json (target: tau >= 0.6).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "rank_fidelity.json"

_B1 = {"embed_dim": 128, "depth": 4, "num_heads": 4, "resolution": 128}
_B2 = {"embed_dim": 96, "depth": 4, "num_heads": 3, "resolution": 192}
_B3 = {"embed_dim": 64, "depth": 4, "num_heads": 2, "resolution": 256, "window_size": 8}
_INTER = {"count": 2, "direction": "bidirectional", "attention": "deformable", "heads": 4, "points": 4,
          "deform_ratio": 0.5, "cffn_ratio": 0.25, "drop_path_rate": 0.1}


def _cfg(branches: list[dict[str, Any]], **inter: Any) -> dict[str, Any]:
    return {"task": "detection", "branches": copy.deepcopy(branches), "interactions": {**_INTER, **inter}}


def _res(*res: int) -> list[dict[str, Any]]:
    return [{**b, "resolution": r} for b, r in zip((_B1, _B2, _B3), res, strict=True)]


#: name -> config dict; every one costs about as much as tiny-piip-3branch, or less.
CONFIGS: dict[str, dict[str, Any]] = {
    "tiny-3branch": _cfg([_B1, _B2, _B3]),
    "low-res-96-128-192": _cfg(_res(96, 128, 192)),
    "high-res-160-224-320": _cfg(_res(160, 224, 320)),
    "no-interaction": _cfg([_B1, _B2, _B3], direction="none"),
    "top-down": _cfg([_B1, _B2, _B3], direction="top-down"),
    "one-interaction": _cfg([_B1, _B2, _B3], count=1),
    "two-branch-128-256": _cfg([_B1, _B3]),
    "narrow-64-64-32": _cfg([{**_B1, "embed_dim": 64, "num_heads": 2},
                             {**_B2, "embed_dim": 64, "num_heads": 2},
                             {**_B3, "embed_dim": 32, "num_heads": 1}]),
    "single-vit-128-at-256": _cfg([{**_B1, "resolution": 256, "window_size": 8}], direction="none", count=1),
    "regular-attention": _cfg([_B1, _B2, _B3], attention="regular"),
}


def kendall_tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factor", type=int, default=8, help="long run = factor x the default iterations")
    ap.add_argument("--configs", nargs="*", default=None, help=f"subset of {list(CONFIGS)}")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--fresh", action="store_true", help="ignore runs already in the results file")
    args = ap.parse_args()

    from piip_search.config import PIIPConfig
    from piip_search.data import default_dataset_dir
    from piip_search.proxy import ProxySettings, train_proxy

    names = args.configs or list(CONFIGS)
    data = default_dataset_dir()
    short = ProxySettings()
    long = short.replace(iters=short.iters * args.factor, warmup_iters=short.warmup_iters * args.factor)
    record: dict[str, Any] = {"runs": {}}
    if args.out.exists() and not args.fresh:
        record = json.loads(args.out.read_text())
        if record.get("short_settings") != short.to_dict() or record.get("factor") != args.factor:
            record = {"runs": {}}  # the defaults changed: start over
    record.update({"benchmark": "bench_rank_fidelity", "factor": args.factor,
                   "short_settings": short.to_dict(), "long_settings": long.to_dict(), "dataset": str(data),
                   "configs": {n: CONFIGS[n] for n in names}})

    def save() -> None:
        done = [n for n in names if all(k in record["runs"].get(n, {}) for k in ("short", "long"))]
        ok = [n for n in done
              if record["runs"][n]["short"]["status"] == record["runs"][n]["long"]["status"] == "ok"]
        summary: dict[str, Any] = {"configs_done": len(done), "configs_ok": len(ok)}
        if len(ok) >= 3:
            for metric in ("ap", "ap50"):
                s = [record["runs"][n]["short"][metric] for n in ok]
                lo = [record["runs"][n]["long"][metric] for n in ok]
                summary[f"kendall_tau_{metric}"] = round(kendall_tau(s, lo), 4)
        summary["target"] = {"kendall_tau_ap": 0.6}
        record["summary"] = summary
        record["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                             "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                             "load_average": os.getloadavg()}
        record["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")

    keep = ("status", "message", "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "iters", "wall_s",
            "images_per_s", "loss_start", "loss_end")
    for name in names:
        cfg = PIIPConfig.from_dict({**CONFIGS[name], "name": name})
        runs = record["runs"].setdefault(name, {})
        for kind, settings in (("short", short), ("long", long)):
            if kind in runs:
                continue
            res = train_proxy(cfg, data, settings, progress=False)
            runs[kind] = {k: getattr(res, k) for k in keep}
            print(f"{name:24s} {kind:5s} {res.status:8s} AP {res.ap or 0:.4f} AP50 {res.ap50 or 0:.4f} "
                  f"iters {res.iters} {res.wall_s:.0f}s", flush=True)
            save()
    save()
    print("summary:", json.dumps(record["summary"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
