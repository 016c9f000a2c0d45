"""Benchmark of FLOPs/params accounting (FLOPs = multiply-adds).

Measures
* the analytic count per config, both conventions, over every shipped config and ~50 random tiny configs
  (cache off, so every call computes; no model is built);
* the traced count (build + fvcore trace) and the largest relative difference between the analytic `model`
  convention and the trace over a set of tiny configs (fixed ones covering every counting path + random ones);
* the largest deviation of the `paper` convention from the published PIIP rows;
* with `--published`: the `model` convention against the trace of three published configs (CPU, ~1 min).

Prints a table and writes benchmarks/results/flops.json.

    python benchmarks/bench_flops.py [--random 50] [--seed 0] [--published]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from piip_search.config import PIIPConfig, list_models, load_config  # noqa: E402
from piip_search.flops import count, traced_flops  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "flops.json"
PUBLISHED_TRACED = ("cls-piip-tsb-368-192-128", "cls-piip-sbl-augreg-320-160-96", "piip-tsb-1120-896-448")


def random_tiny_config(rng: random.Random, i: int) -> PIIPConfig:
    """A random valid tiny PIIP config (1-4 branches, widths multiples of 32, grids 2-10)."""
    task = "classification" if rng.random() < 0.2 else "detection"
    n = rng.randint(1, 4)
    dims = sorted((rng.choice([32, 64, 96, 128]) for _ in range(n)), reverse=True)
    res = sorted(rng.choice([32, 48, 64, 80, 96, 128, 160]) for _ in range(n))
    depth = rng.randint(1, 4)
    branches = []
    for d, r in zip(dims, res, strict=True):
        heads = rng.choice([h for h in (1, 2, 4) if d % (32 * h) == 0] + [d // 32])
        b: dict[str, Any] = {"embed_dim": d, "depth": depth, "num_heads": heads, "resolution": r,
                             "family": rng.choice(["deit", "internvit"])}
        if task == "detection" and rng.random() < 0.6:
            b["window_size"] = rng.randint(2, 6)
            if rng.random() < 0.3:
                b["global_blocks"] = [depth - 1]
        if b["family"] == "internvit" and rng.random() < 0.3:
            b.update(norm="rms", qk_norm=True, qkv_bias=False, layer_scale=0.1)
        elif rng.random() < 0.2:
            b["layer_scale"] = "none"
        branches.append(b)
    inter = {"count": rng.randint(1, depth), "heads": 4, "points": rng.randint(1, 4),
             "deform_ratio": rng.choice([0.5, 1.0]), "cffn": rng.random() < 0.8,
             "projection": rng.random() < 0.7, "norm": rng.random() < 0.7,
             "attention": "regular" if rng.random() < 0.2 else "deformable",
             "direction": rng.choice(["bidirectional", "bidirectional", "top-down", "bottom-up", "all-pairs",
                                      "none"])}
    return PIIPConfig.from_dict({"name": f"random-{i}", "task": task, "num_classes": 10, "branches": branches,
                                 "interactions": inter})


def fixed_tiny_configs() -> list[PIIPConfig]:
    from tests.flops.tiny_configs import ALL_TINY, tiny_config

    return [tiny_config(n) for n in ALL_TINY]


def time_analytic(cfgs: list[PIIPConfig], convention: str, repeats: int = 20) -> list[float]:
    """Seconds per count (best of `repeats`), per config, cache off."""
    out = []
    for cfg in cfgs:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            count(cfg, convention, cache=False)
            best = min(best, time.perf_counter() - t0)
        out.append(best)
    return out


def _summary_ms(xs: list[float]) -> dict[str, float]:
    return {"mean_ms": 1e3 * statistics.fmean(xs), "median_ms": 1e3 * statistics.median(xs),
            "max_ms": 1e3 * max(xs), "n": len(xs)}


def compare_traced(cfgs: list[PIIPConfig]) -> list[dict[str, Any]]:
    rows = []
    for cfg in cfgs:
        rep = count(cfg, "model", cache=False)
        tr = traced_flops(cfg, max_depth=1)
        rows.append({
            "config": cfg.name, "analytic_flops": rep.flops, "traced_flops": tr.flops,
            "rel_diff": (rep.flops - tr.flops) / tr.flops if tr.flops else 0.0,
            "params_equal": rep.params == tr.params, "params": rep.params, "trace_s": tr.seconds,
            "unexpected_ops": tr.unexpected_ops,
        })
    return rows


def published_deviation() -> dict[str, Any]:
    from tests.flops.published import PUBLISHED

    worst: dict[str, Any] = {"params": (0.0, ""), "flops": (0.0, "")}
    for row in PUBLISHED:
        rep = count(row.config, "paper")
        pairs = (("params", rep.params / 1e6, row.params_m), ("flops", rep.flops / 1e9, row.flops_g))
        for key, got, want in pairs:
            dev = abs(got - want) / want
            if dev > worst[key][0]:
                worst[key] = (dev, row.config)
    return {"rows": len(PUBLISHED),
            "max_rel_dev_params": worst["params"][0], "worst_params": worst["params"][1],
            "max_rel_dev_flops": worst["flops"][0], "worst_flops": worst["flops"][1]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=50, help="number of random tiny configs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--published", action="store_true", help="also trace three published configs (~1 min)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    shipped = [load_config(n) for n in list_models()]
    randoms = [random_tiny_config(rng, i) for i in range(args.random)]
    fixed = fixed_tiny_configs()

    analytic = {}
    for conv in ("paper", "model"):
        analytic[conv] = {"shipped": _summary_ms(time_analytic(shipped, conv)),
                          "random_tiny": _summary_ms(time_analytic(randoms, conv))}
    t0 = time.perf_counter()
    for cfg in shipped:
        count(cfg, "model")
    t1 = time.perf_counter()
    for cfg in shipped:
        count(cfg, "model")
    cached_ms = 1e3 * (time.perf_counter() - t1) / len(shipped)
    first_ms = 1e3 * (t1 - t0) / len(shipped)

    traced_rows = compare_traced(fixed + randoms)
    if args.published:
        traced_rows += compare_traced([load_config(n) for n in PUBLISHED_TRACED])
    worst = max(traced_rows, key=lambda r: (abs(r["rel_diff"]), r["analytic_flops"]))
    trace_s = [r["trace_s"] for r in traced_rows if r["config"] not in PUBLISHED_TRACED]

    results = {
        "unit": "FLOPs are multiply-adds",
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine(), "threads": 1},
        "analytic_time": analytic,
        "analytic_cached_ms": cached_ms, "analytic_first_call_ms": first_ms,
        "traced": {"configs": len(traced_rows), "max_abs_rel_diff": abs(worst["rel_diff"]),
                   "worst_config": worst["config"],
                   "all_params_equal": all(r["params_equal"] for r in traced_rows),
                   "trace_time": _summary_ms(trace_s), "rows": traced_rows},
        "paper_vs_published": published_deviation(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    _print(results)
    return results


def _print(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=120)
    t = Table(title="Analytic count, time per config (cache off; FLOPs = multiply-adds)",
              title_justify="left")
    for c in ("convention", "configs", "n", "mean ms", "median ms", "max ms"):
        t.add_column(c, justify="left" if c in ("convention", "configs") else "right")
    for conv, groups in res["analytic_time"].items():
        for group, s in groups.items():
            t.add_row(conv, group, str(s["n"]), f"{s['mean_ms']:.3f}", f"{s['median_ms']:.3f}",
                      f"{s['max_ms']:.3f}")
    con.print(t)
    con.print(f"cached count (same fingerprint): {res['analytic_cached_ms']:.3f} ms per config")
    tr = res["traced"]
    t = Table(title="model convention vs fvcore trace", title_justify="left")
    for c in ("config", "analytic GMACs", "traced GMACs", "rel diff", "params equal", "trace s"):
        t.add_column(c, justify="left" if c == "config" else "right")
    for r in tr["rows"]:
        t.add_row(r["config"], f"{r['analytic_flops'] / 1e9:.4f}", f"{r['traced_flops'] / 1e9:.4f}",
                  f"{r['rel_diff']:+.2e}", "yes" if r["params_equal"] else "NO", f"{r['trace_s']:.2f}")
    con.print(t)
    s = tr["trace_time"]
    con.print(f"traced configs: {tr['configs']}, max |rel diff| {tr['max_abs_rel_diff']:.2e} "
              f"({tr['worst_config']}), params equal: {tr['all_params_equal']}; "
              f"trace (build + fvcore) mean {s['mean_ms'] / 1e3:.2f} s, max {s['max_ms'] / 1e3:.2f} s")
    p = res["paper_vs_published"]
    con.print(f"paper convention vs {p['rows']} published rows: max |rel dev| params "
              f"{100 * p['max_rel_dev_params']:.3f}% ({p['worst_params']}), "
              f"FLOPs {100 * p['max_rel_dev_flops']:.3f}% ({p['worst_flops']})")


if __name__ == "__main__":
    main()
