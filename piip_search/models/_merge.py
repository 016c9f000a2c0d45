"""Branch merging and outputs (piip-architecture.md §4): detection merge, simple pyramid, classification head.

Deviations from the official code:
* a single-branch detection model has no merge (no convs, no weight; the official ViT baselines have none);
* the classification head reads the **cls token** of each branch; the official `separate_head=True` code
  normalises the patch tokens and reads index 0, i.e. the top-left patch token (a bug, §8.2). The final
  norm is applied to the cls token only (same values as norm-then-index, fewer FLOPs);
* the merge weights are one (n,) parameter `weights` instead of n scalar parameters (same count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from piip_search.models._branch import NORM_EPS

__all__ = ["BranchMerge", "ClassificationHead", "ShapeSpec", "SimpleFeaturePyramid"]

GN_GROUPS = 32


class ShapeSpec(NamedTuple):
    channels: int
    stride: int


def _merge_convs(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(d_in, d_out, 3, padding=1, bias=False), nn.GroupNorm(GN_GROUPS, d_out), nn.ReLU(True),
        nn.Conv2d(d_out, d_out, 3, padding=1, bias=False), nn.GroupNorm(GN_GROUPS, d_out), nn.ReLU(True),
    )


class BranchMerge(nn.Module):
    """Detection merge (§4.1): per branch conv3x3-GN-ReLU x2 to D_1, upsample to the last grid, weighted sum.

    Parameters: `branch_merges.{i}` = [Conv2d(D_i, D_1, 3, no bias), GroupNorm(32, D_1), ReLU,
    Conv2d(D_1, D_1, 3, no bias), GroupNorm(32, D_1), ReLU]; `weights` (n,) initialised to 1.
    A single branch has neither (the merge is the identity, no parameters).
    """

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.out_channels = dims[0]
        multi = len(dims) > 1
        self.branch_merges = nn.ModuleList(_merge_convs(d, dims[0]) for d in dims) if multi else None
        self.weights = nn.Parameter(torch.ones(len(dims))) if multi else None
        self.init_weights()

    def init_weights(self) -> None:
        if self.weights is not None:
            nn.init.ones_(self.weights)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (9 * m.out_channels)))
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """feats: (B, D_i, H_i, W_i) per branch -> (B, D_1, H_last, W_last)."""
        if self.branch_merges is None:
            return feats[0]
        size = feats[-1].shape[-2:]
        out = None
        for i, f in enumerate(feats):
            m = self.branch_merges[i](f)
            if m.shape[-2:] != size:
                m = F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False).to(m.dtype)
            m = self.weights[i] * m  # type: ignore[index]
            out = m if out is None else out + m
        return out  # type: ignore[return-value]


class SimpleFeaturePyramid(nn.Module):
    """ViTDet-style pyramid from the stride-16 merged map: keys p2/p3/p4/p5 at strides 4/8/16/32.

    `fpn1` = ConvT(D, D, 2, 2) - GroupNorm(32, D) - GELU - ConvT(D, D, 2, 2); `fpn2` = ConvT(D, D, 2, 2);
    `fpn3` = Identity; `fpn4` = MaxPool2d(2, 2). ConvTranspose layers have bias.
    """

    strides: dict[str, int] = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_channels = dim
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, 2, 2), nn.GroupNorm(GN_GROUPS, dim), nn.GELU(),
            nn.ConvTranspose2d(dim, dim, 2, 2),
        )
        self.fpn2 = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(2, 2)
        self.init_weights()

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (4 * m.out_channels)))
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, levels: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The maps of `levels` (default all four); a level not asked for is not computed (p2 alone is about a
        quarter of a tiny backbone's time)."""
        names = tuple(self.strides) if levels is None else tuple(levels)
        unknown = [k for k in names if k not in self.strides]
        if unknown:
            raise KeyError(f"unknown pyramid levels {unknown}; this pyramid has {list(self.strides)}")
        layers = {"p2": self.fpn1, "p3": self.fpn2, "p4": self.fpn3, "p5": self.fpn4}
        return {k: layers[k](x) for k in names}


class ClassificationHead(nn.Module):
    """Separate heads (§4.2): logits = mean_i `heads[i](norms[i](cls_i))`.

    Parameters: `norms.{i}` LayerNorm(D_i, eps 1e-6), `heads.{i}` Linear(D_i, num_classes) with bias.
    """

    def __init__(self, dims: list[int], num_classes: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d, eps=NORM_EPS) for d in dims)
        self.heads = nn.ModuleList(nn.Linear(d, num_classes) for d in dims)
        self.init_weights()

    def init_weights(self) -> None:
        for norm, head in zip(self.norms, self.heads, strict=True):
            norm.reset_parameters()  # type: ignore[operator]
            trunc_normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)  # type: ignore[arg-type]

    def forward(self, cls_tokens: list[torch.Tensor]) -> torch.Tensor:
        """cls_tokens: (B, D_i) per branch -> logits (B, num_classes)."""
        # The official code reads norm(x)[:, 0] of the patch tokens (top-left patch); we read the cls token.
        logits = [head(norm(c)) for c, norm, head in zip(cls_tokens, self.norms, self.heads, strict=True)]
        return torch.stack(logits, 0).mean(0)
