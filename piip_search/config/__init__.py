"""Typed PIIP architecture configs, presets and the shipped model zoo."""

from piip_search.config._architecture import (
    DIRECTIONS,
    PATCH_SIZE,
    BranchConfig,
    InteractionConfig,
    PIIPConfig,
    even_ranges,
    inversion_problems,
    load_config,
)
from piip_search.config._presets import DEFAULT_DROP_PATH, PRESET_ORDER, PRESETS, BlockType, ViTSize, default_block_type
from piip_search.config._zoo import list_models, zoo_path

__all__ = [
    "DEFAULT_DROP_PATH",
    "DIRECTIONS",
    "PATCH_SIZE",
    "PRESETS",
    "PRESET_ORDER",
    "BlockType",
    "BranchConfig",
    "InteractionConfig",
    "PIIPConfig",
    "ViTSize",
    "default_block_type",
    "even_ranges",
    "inversion_problems",
    "list_models",
    "load_config",
    "zoo_path",
]
