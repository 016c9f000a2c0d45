"""GPU training throughput of the search's proxy path: PIIP-TSB 1120/896/448 against ViT-B 1024 (issue 13).

Both are Mask R-CNN detectors from `build_detector` at the proxy's half resolution (`resolution_scale` 0.5),
batch 8, bf16 autocast, AdamW steps. Per model: images/s, peak memory, and, from one torch.profiler step, the
share of device time spent inside deformable attention (`MSDeformAttn`) and the branch merge (`BranchMerge`)
forward ranges (their backward kernels are not attributed to a range, so the shares are lower bounds). The
ratio TSB / ViT-B is the figure that matters (the paper's 243 vs 463 GFLOPs). Finishes in well under 8
minutes on one H200.

    python benchmarks/bench_gpu.py [--device cuda] [--batch 8] [--iters 20]
    python benchmarks/bench_gpu.py --device cpu --quick        # smoke run of the script itself (seconds)

Prints a table and writes benchmarks/results/gpu.json (gpu_quick.json for --quick).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from piip_search.config import load_config
from piip_search.models import BranchMerge, MSDeformAttn
from piip_search.proxy import ProxySettings, build_detector

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("piip-tsb-1120-896-448", "vit-b-1024")
RANGES = {MSDeformAttn: "deform_attn", BranchMerge: "merge"}


def _label_ranges(model: torch.nn.Module) -> None:
    """Wrap the forward of every deformable attention and merge in a named profiler range."""
    for m in model.modules():
        label = next((v for k, v in RANGES.items() if isinstance(m, k)), None)
        if label is not None:
            fwd = m.forward

            def wrapped(*a, _fwd=fwd, _label=label, **kw):
                with record_function(_label):
                    return _fwd(*a, **kw)

            m.forward = wrapped


def _batch(side: int, n: int, device: torch.device) -> tuple[list, list]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, side, side, generator=g).to(device) for _ in range(n)]
    targets = []
    for _ in range(n):
        x0, y0 = torch.randint(0, side // 2, (2,), generator=g).tolist()
        box = torch.tensor([[x0, y0, x0 + side // 4, y0 + side // 4]], dtype=torch.float32)
        masks = torch.zeros(1, side, side, dtype=torch.uint8)
        masks[:, y0:y0 + side // 4, x0:x0 + side // 4] = 1
        targets.append({"boxes": box.to(device), "labels": torch.tensor([1], device=device), "masks": masks.to(device)})
    return images, targets


def _step(model, opt, images, targets, device) -> float:
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    with amp:
        loss = sum(model(images, targets).values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _shares(prof, device: torch.device) -> dict[str, float]:
    events = prof.key_averages()
    cuda = device.type == "cuda"

    def total(e, self_only: bool) -> float:
        if cuda:
            return getattr(e, "self_device_time_total" if self_only else "device_time_total",
                           getattr(e, "self_cuda_time_total" if self_only else "cuda_time_total", 0.0))
        return e.self_cpu_time_total if self_only else e.cpu_time_total

    step = sum(total(e, True) for e in events) or 1.0
    return {label: sum(total(e, False) for e in events if e.key == label) / step for label in RANGES.values()}


def bench(name: str, args, device: torch.device) -> dict:
    s = ProxySettings(resolution_scale=args.scale, detector="mask_rcnn", device=str(device))
    model = build_detector(load_config(name), num_classes=80, settings=s).to(device).train()
    _label_ranges(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images, targets = _batch(model.input_side, args.batch, device)
    for _ in range(args.warmup):
        _step(model, opt, images, targets, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        loss = _step(model, opt, images, targets, device)
    _sync(device)
    dt = time.perf_counter() - t0
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        _step(model, opt, images, targets, device)
        _sync(device)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"model": name, "input_side": model.input_side, "batch": args.batch, "iters": args.iters,
            "images_per_s": args.batch * args.iters / dt, "peak_mem_mb": peak, "loss": loss,
            "time_share": _shares(prof, device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--scale", type=float, default=0.5, help="resolution scale (the proxy's half resolution)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run: scale 0.125, batch 1, 1 iteration")
    args = p.parse_args()
    if args.quick:
        args.scale, args.batch, args.iters, args.warmup = 0.125, 1, 1, 1
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device; use --device cpu --quick for a smoke run")
    rows = [bench(name, args, device) for name in MODELS]
    tsb, vit = rows
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "quick": args.quick, "scale": args.scale, "bf16": device.type == "cuda",
           "rows": rows, "tsb_over_vit_images_per_s": tsb["images_per_s"] / vit["images_per_s"]}
    for r in rows:
        sh = r["time_share"]
        print(f"{r['model']:24s} side {r['input_side']:4d}  {r['images_per_s']:8.2f} img/s  "
              f"peak {r['peak_mem_mb']:8.0f} MiB  deform {sh['deform_attn']:.1%}  merge {sh['merge']:.1%}")
    print(f"TSB / ViT-B images/s: {out['tsb_over_vit_images_per_s']:.2f}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("gpu_quick.json" if args.quick else "gpu.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
