"""ViT size presets and block-type defaults (docs/official-code.md §1.1)."""

from __future__ import annotations

from typing import NamedTuple


class ViTSize(NamedTuple):
    embed_dim: int
    depth: int
    num_heads: int


#: T/S/B/L are DeiT sizes, H is MAE ViT-H/14, 6B is InternViT-6B (all run with patch 16).
PRESETS: dict[str, ViTSize] = {
    "T": ViTSize(192, 12, 3),
    "S": ViTSize(384, 12, 6),
    "B": ViTSize(768, 12, 12),
    "L": ViTSize(1024, 24, 16),
    "H": ViTSize(1280, 32, 16),
    "6B": ViTSize(3200, 48, 25),
}

#: Drop-path rate of each DeiT-type preset in the published detection configs (piip-architecture.md §1.3;
#: B keeps 0.15 also as branch 1 of TSB); search spaces use it when `fixed.branches` sets none.
DEFAULT_DROP_PATH: dict[str, float] = {"T": 0.05, "S": 0.05, "B": 0.15, "L": 0.4, "H": 0.4, "6B": 0.4}

#: Order used by the parameter-inverted rule and by search spaces (small -> large).
PRESET_ORDER: tuple[str, ...] = ("T", "S", "B", "L", "H", "6B")


class BlockType(NamedTuple):
    """What differs between block implementations and matters for params/FLOPs."""

    norm: str  # "ln" (LayerNorm) | "rms" (RMSNorm)
    qkv_bias: bool
    layer_scale: float | None  # init value of per-channel LayerScale, None = no LayerScale
    qk_norm: bool


def default_block_type(family: str, model: str | None) -> BlockType:
    """Block type of the official branch classes for a family and preset.

    DeiT-type (`vit_models`) always carries per-channel gammas (init 1.0 in every config);
    InternViT-type follows the checkpoint: InternViT-6B is RMSNorm, no qkv bias, qk-norm, LayerScale 0.1;
    MAE/AugReg/DINOv2 checkpoints are LayerNorm, qkv bias, LayerScale 1.0.
    """
    if family == "internvit" and model == "6B":
        return BlockType(norm="rms", qkv_bias=False, layer_scale=0.1, qk_norm=True)
    return BlockType(norm="ln", qkv_bias=True, layer_scale=1.0, qk_norm=False)
