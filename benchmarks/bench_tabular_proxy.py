"""Tabular benchmark data: the real proxy AP of every config of a small sub-space of the tiny CPU space.

Enumerates the sub-space below (2 branches, widths 32/64/96, depth 2, 64-192 px, windows global or 8 on every
branch, 1-2 interactions, two directions, deformable), dedupes by fingerprint, and trains each config with
the tool's own evaluator (`builtin:proxy`, the driver's `_evaluators.resolve_evaluator`) at `--iters`
iterations. Results are appended one line per config to benchmarks/data/tabular_proxy.jsonl, so a killed run
resumes where it stopped; `bench_sampler_suite.py --tabular` replays them as a finite objective.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_tabular_proxy.py [--iters 60] [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from piip_search.flops import count  # noqa: E402
from piip_search.search._evaluators import EvalContext, resolve_evaluator  # noqa: E402
from piip_search.search.space import SearchSpace  # noqa: E402

OUT = ROOT / "benchmarks" / "data" / "tabular_proxy.jsonl"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    space = SearchSpace.from_dict(SUBSPACE, source="tabular", check_budgets=False)
    todo = enumerate_space(space)
    done = set()
    if OUT.exists():
        done = {json.dumps(json.loads(line)["params"], sort_keys=True) for line in OUT.read_text().splitlines()}
    print(f"{len(todo)} configs, {len(done)} done", flush=True)
    fn = resolve_evaluator("builtin:proxy")
    for i, params in enumerate(todo[: args.limit]):
        key = json.dumps(params, sort_keys=True)
        if key in done:
            continue
        cfg = space.config_from_params(params)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            ctx = EvalContext(trial_dir=Path(tmp), fidelity=args.iters, proxy={"num_threads": 1, "seed": 0})
            metrics = fn(cfg, ctx)
        rep = count(cfg, convention="model")
        row = {"params": params, "gflops": rep.flops / 1e9, "params_m": rep.params / 1e6,
               "ap": float(metrics.get("ap", 0.0)), "ap50": float(metrics.get("ap50", 0.0)),
               "iters": args.iters, "wall_s": time.perf_counter() - t0, "status": metrics.get("status", "ok")}
        OUT.parent.mkdir(parents=True, exist_ok=True)
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(i, row["gflops"], row["ap"], round(row["wall_s"], 1), flush=True)


if __name__ == "__main__":
    main()
