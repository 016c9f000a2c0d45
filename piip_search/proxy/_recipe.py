"""The proxy's optimisation recipe (docs/official-code.md §5, shortened): AdamW parameter groups with layer-wise
decay, linear warm-up then cosine decay (torch's LambdaLR), gradient clipping (in the loop) and an optional EMA
of the weights (timm's ModelEmaV3)."""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from timm.utils.model_ema import ModelEmaV3
from torch import nn

from piip_search.config import PIIPConfig
from piip_search.proxy._settings import ProxySettings

__all__ = ["make_ema", "make_optimizer", "param_groups"]

_BRANCH_PARAM = re.compile(r"(?:^|\.)branches\.(\d+)\.(?:blocks\.(\d+)\.|(patch_embed|pos_embed|cls_token))")
_NO_DECAY_SUFFIXES = ("pos_embed", "cls_token", "gamma")


def _no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full parameter names listed by any submodule's `no_weight_decay()` (timm convention)."""
    names: set[str] = set()
    for prefix, m in model.named_modules():
        fn = getattr(m, "no_weight_decay", None)
        if callable(fn):
            for n in fn():
                names.add(f"{prefix}.{n}" if prefix else n)
    return names


def param_groups(model: nn.Module, cfg: PIIPConfig, *, lr: float, weight_decay: float,
                 layer_decay: float | None) -> list[dict[str, Any]]:
    """AdamW parameter groups: no decay on 1-d parameters (norms, biases, gammas), position embeddings and cls
    tokens; with `layer_decay`, the PIIP recipe's layer-wise rates (§5): branch i's block k sits at layer
    `round((k + 1) * L / depth_i)` with L the deepest branch's depth, patch/position embeddings at layer 0,
    everything else (interactions, merge, neck, heads) at L + 1 with the full rate;
    scale = decay^(L + 1 - layer).
    """
    num_layers = max(b.depth for b in cfg.branches)
    skip = _no_weight_decay_names(model)
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name in skip or name.endswith(_NO_DECAY_SUFFIXES)
        scale = 1.0
        if layer_decay is not None:
            layer = num_layers + 1
            m = _BRANCH_PARAM.search(name)
            if m:
                branch = int(m.group(1))
                if m.group(2) is not None and branch < len(cfg.branches):
                    depth = cfg.branches[branch].depth
                    layer = max(1, round((int(m.group(2)) + 1) * num_layers / depth))
                elif m.group(3) is not None:
                    layer = 0
            scale = layer_decay ** (num_layers + 1 - layer)
        key = (scale, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr * scale, "lr_scale": scale,
                           "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(p)
    return list(groups.values())


def lr_factor(s: ProxySettings, step: int) -> float:
    """Learning-rate multiplier at `step`: linear warm-up from 0.001 over `warmup_iters`, then cosine decay to
    `min_lr_ratio` (relative to each group's own rate, so layer-wise decay keeps its ratios)."""
    warm, total = s.warmup_iters, s.iters
    if warm and step < warm:
        return 0.001 + (1.0 - 0.001) * step / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return s.min_lr_ratio + (1.0 - s.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_optimizer(model: nn.Module, cfg: PIIPConfig, s: ProxySettings, device: torch.device
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    groups = param_groups(model, cfg, lr=s.lr, weight_decay=s.weight_decay, layer_decay=s.layer_decay)
    opt = torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.999), fused=device.type in ("cpu", "cuda"))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(s, step))


def make_ema(model: nn.Module, s: ProxySettings) -> ModelEmaV3 | None:
    """timm's EMA with its decay warm-up (the decay grows towards `ema_decay` over the first updates)."""
    if s.ema_decay is None:
        return None
    return ModelEmaV3(model, decay=s.ema_decay, use_warmup=True)


def ema_module(ema: Any, model: nn.Module) -> nn.Module:
    """The network to score: the EMA copy when there is one."""
    return ema.module if ema is not None else model
