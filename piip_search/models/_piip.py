"""PIIP backbone and classifier: N ViT branches at inverted resolutions, interactions, merge (§0).

Forward: the input is the image at the last (highest-resolution) branch's size; branch i gets
`F.interpolate(x, scale_factor=res_i / res_last, mode="bilinear", align_corners=False)` as the official code
(output side floor(side * r), sampling positions from r itself, for any input shape), or the input itself
when r >= 1.
For each interaction j every branch runs its block range j, then the interaction block j runs its units.

Module tree (names a parameter counter can rely on):
* `branches.{i}`: `PIIPBranch` (patch_embed.proj, pos_embed, [cls_token], blocks.{k}); see `_branch.py`;
* `interactions.{j}.units.{u}`: `InteractionUnit` in `cfg.unit_pairs()` order (empty for direction none);
* detection: `branch_merge` (`BranchMerge`) and `pyramid` (`SimpleFeaturePyramid`);
* classification: `head` (`ClassificationHead`).

Deviations from the official code: see the module docstrings of `_branch.py`, `_interaction.py`, `_merge.py`
and `_pretrained.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from piip_search.config import PIIPConfig, load_config
from piip_search.errors import ConfigError
from piip_search.models._branch import create_branch
from piip_search.models._deform_attn import reference_points
from piip_search.models._interaction import InteractionBlock
from piip_search.models._merge import (
    GN_GROUPS,
    BranchMerge,
    ClassificationHead,
    ShapeSpec,
    SimpleFeaturePyramid,
)
from piip_search.models._pretrained import load_branch_pretrained

__all__ = ["PIIPBackbone", "PIIPClassifier", "build_piip"]

Grid = tuple[int, int]


class _PIIPTrunk(nn.Module):
    """Branches + interactions shared by the backbone and the classifier."""

    def __init__(self, cfg: PIIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.resolutions = [b.resolution for b in cfg.branches]
        self.block_ranges = cfg.block_ranges
        self.dims = [b.embed_dim for b in cfg.branches]
        self.branches = nn.ModuleList(create_branch(b, task=cfg.task) for b in cfg.branches)
        pairs = cfg.unit_pairs()
        self.interactions = nn.ModuleList(
            InteractionBlock(self.dims, pairs, cfg.interactions) for _ in range(cfg.n_interactions)
        ) if pairs else nn.ModuleList()

    def _init_trunk(self) -> None:
        for m in (*self.branches, *self.interactions):
            m.init_weights()

    def no_weight_decay(self) -> set[str]:
        return {f"branches.{i}.{n}" for i, b in enumerate(self.branches) for n in b.no_weight_decay()}  # type: ignore[operator]

    def _branch_images(self, x: torch.Tensor) -> list[torch.Tensor]:
        last = self.resolutions[-1]
        images = []
        for res in self.resolutions:
            r = res / last
            images.append(x if r >= 1 else
                          F.interpolate(x, scale_factor=r, mode="bilinear", align_corners=False))
        return images

    def _run(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor | None], list[Grid]]:
        """Patch tokens (B, N_i, D_i), cls tokens (B, 1, D_i) or None, grids, after the last interaction."""
        xs, clss, hws = [], [], []
        for branch, img in zip(self.branches, self._branch_images(x), strict=True):
            t, c, hw = branch.embed(img)  # type: ignore[operator]
            xs.append(t)
            clss.append(c)
            hws.append(hw)
        refs = [reference_points(hw, device=x.device, dtype=t.dtype) for t, hw in zip(xs, hws, strict=True)
                ] if len(self.interactions) else []
        for j in range(len(self.block_ranges[0])):
            for i, branch in enumerate(self.branches):
                start, end = self.block_ranges[i][j]
                xs[i], clss[i] = branch.forward_blocks(xs[i], clss[i], hws[i], start, end)  # type: ignore[operator]
            if len(self.interactions):
                xs = self.interactions[j](xs, hws, refs)
        return xs, clss, hws


class PIIPBackbone(_PIIPTrunk):
    """PIIP detection backbone: `forward(x) -> {"p2", "p3", "p4", "p5"}` at strides 4/8/16/32 w.r.t. `x`.

    Every level has `out_channels` = D_1 (branch 1's width). `x` is the image at the last branch's resolution
    (any size works; grids are floor(size / 16) per branch).
    """

    def __init__(self, cfg: PIIPConfig) -> None:
        super().__init__(cfg)
        self.branch_merge = BranchMerge(self.dims)
        self.pyramid = SimpleFeaturePyramid(self.dims[0])
        self.out_channels = self.dims[0]

    def init_weights(self) -> None:
        self._init_trunk()
        self.branch_merge.init_weights()
        self.pyramid.init_weights()

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay()

    def forward_branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-branch feature maps (B, D_i, H_i, W_i) after the last interaction (before the merge)."""
        xs, _, hws = self._run(x)
        return [t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *hw) for t, hw in zip(xs, hws, strict=True)]

    def merge(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Merged map (B, D_1, H_last, W_last) at stride 16."""
        return self.branch_merge(feats)

    def forward(self, x: torch.Tensor, levels: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Pyramid maps p2..p5 (strides 4..32), or only those in `levels` (the others are not computed)."""
        return self.pyramid(self.merge(self.forward_branches(x)), levels)

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {k: ShapeSpec(self.out_channels, s) for k, s in SimpleFeaturePyramid.strides.items()}


class PIIPClassifier(_PIIPTrunk):
    """PIIP image classifier: `forward(x) -> logits (B, num_classes)`, mean of per-branch cls-token heads."""

    def __init__(self, cfg: PIIPConfig) -> None:
        super().__init__(cfg)
        self.head = ClassificationHead(self.dims, cfg.num_classes)
        self.num_classes = cfg.num_classes

    def init_weights(self) -> None:
        self._init_trunk()
        self.head.init_weights()

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay()

    def forward_branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-branch tokens (B, 1 + N_i, D_i) after the last interaction, cls token first."""
        xs, clss, _ = self._run(x)
        return [torch.cat([c, t], dim=1) for c, t in zip(clss, xs, strict=True)]  # type: ignore[list-item]

    def merge(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.head([f[:, 0] for f in feats])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.forward_branches(x))


def build_piip(cfg: PIIPConfig | str | Path, *, pretrained: bool = True) -> PIIPBackbone | PIIPClassifier:
    """Build the PIIP network of a config (a `PIIPConfig`, a YAML path or a shipped model name).

    Args:
        cfg: the architecture.
        pretrained: load `branches[i].pretrained` (timm name or checkpoint file) where set.

    Raises:
        ConfigError: the config cannot be built, or a pretrained checkpoint is missing or does not fit.
    """
    if not isinstance(cfg, PIIPConfig):
        if not isinstance(cfg, (str, Path)):
            raise TypeError(f"build_piip: `cfg` must be a PIIPConfig, a path or a model name, "
                            f"got {type(cfg).__name__}")
        cfg = load_config(cfg)
    if cfg.task == "detection" and cfg.out_dim % GN_GROUPS:
        raise ConfigError(f"branches[0].embed_dim: must be divisible by {GN_GROUPS} (GroupNorm in the "
                          f"feature pyramid), got {cfg.out_dim}")
    model = PIIPBackbone(cfg) if cfg.task == "detection" else PIIPClassifier(cfg)
    if pretrained:
        for i, b in enumerate(cfg.branches):
            if b.pretrained:
                load_branch_pretrained(model.branches[i], b.pretrained, where=f"branches[{i}].pretrained")  # type: ignore[arg-type]
    return model
