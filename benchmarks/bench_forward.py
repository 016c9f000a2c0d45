"""Forward+backward throughput on CPU: tiny 3-branch PIIP against a single-branch ViT of about the same FLOPs.

Both networks are full detection backbones from `build_piip` (branches, interactions, merge, p2-p5 pyramid),
fed the same 256 px input. FLOPs are multiply-adds counted by an fvcore trace with fused attention off (so
QK^T and AV are counted) plus `grid_sampler`; timing uses the default (fused SDPA) attention.

    python benchmarks/bench_forward.py [--batch 8] [--iters 5] [--threads 1]

Prints a table and writes benchmarks/results/forward.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import timm.layers
import torch

from piip_search.config import PIIPConfig, load_config
from piip_search.models import build_piip

RESULTS = Path(__file__).resolve().parent / "results" / "forward.json"

#: Single-branch ViT at the PIIP input size, depth chosen so its traced FLOPs match tiny-piip-3branch.
VIT_BASELINE = {
    "name": "vit-128x5-256",
    "task": "detection",
    "branches": [{"embed_dim": 128, "depth": 5, "num_heads": 4, "resolution": 256}],
    "interactions": {"count": 1, "direction": "none"},
}


def traced_gmacs(model: torch.nn.Module, size: int) -> float:
    prev = timm.layers.use_fused_attn()
    timm.layers.set_fused_attn(False)
    try:
        with warnings.catch_warnings():  # fvcore traces with the deprecated torch.jit
            warnings.simplefilter("ignore")
            from fvcore.nn import FlopCountAnalysis

            flops = FlopCountAnalysis(model.eval(), torch.randn(1, 3, size, size))
            flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            return flops.total() / 1e9
    finally:
        timm.layers.set_fused_attn(prev)


def _step(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    sum(v.float().mean() for v in model(x).values()).backward()
    return time.perf_counter() - t0


def throughput(models: dict[str, torch.nn.Module], *, batch: int, size: int, iters: int,
               warmup: int = 2) -> dict[str, float]:
    """Images per second of forward + backward (loss = sum of the means of the pyramid levels).

    The models take turns every iteration, so load from other processes hits all of them alike.
    """
    x = torch.randn(batch, 3, size, size)
    times: dict[str, list[float]] = {name: [] for name in models}
    for m in models.values():
        m.train()
    for i in range(warmup + iters):
        for name, m in models.items():
            t = _step(m, x)
            if i >= warmup:
                times[name].append(t)
    return {name: batch / statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    configs = {"tiny-piip-3branch": load_config("tiny-piip-3branch"),
               VIT_BASELINE["name"]: PIIPConfig.from_dict(VIT_BASELINE)}
    size = configs["tiny-piip-3branch"].input_resolution
    models = {name: build_piip(cfg, pretrained=False) for name, cfg in configs.items()}
    speed = throughput(models, batch=args.batch, size=size, iters=args.iters)
    rows = {name: {"params_m": sum(p.numel() for p in m.parameters()) / 1e6,
                   "gmacs_fvcore": traced_gmacs(m, size), "img_per_s": speed[name]}
            for name, m in models.items()}
    piip, vit = rows["tiny-piip-3branch"], rows[VIT_BASELINE["name"]]
    result = {
        "what": "forward+backward images/s, CPU, fp32, detection backbones (p2-p5 outputs)",
        "input": size, "batch": args.batch, "iters": args.iters, "threads": args.threads,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "models": rows,
        "flops_ratio_piip_over_vit": piip["gmacs_fvcore"] / vit["gmacs_fvcore"],
        "throughput_ratio_piip_over_vit": piip["img_per_s"] / vit["img_per_s"],
    }
    print(f"{'model':<20} {'params (M)':>10} {'GMACs':>8} {'img/s fwd+bwd':>14}")
    for name, r in rows.items():
        print(f"{name:<20} {r['params_m']:>10.2f} {r['gmacs_fvcore']:>8.3f} {r['img_per_s']:>14.2f}")
    print(f"FLOPs ratio PIIP/ViT {result['flops_ratio_piip_over_vit']:.3f}; "
          f"throughput ratio PIIP/ViT {result['throughput_ratio_piip_over_vit']:.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
