"""Micro PIIP configs and a small synthetic COCO set shared by the proxy tests (real backbone, real data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from piip_search.config import PIIPConfig


def micro_config(**interactions: Any) -> PIIPConfig:
    """A 2-branch PIIP small enough for sub-second forward/backward passes on CPU (input side 64)."""
    return PIIPConfig.from_dict({
        "name": "micro-piip-2branch",
        "task": "detection",
        "branches": [
            {"embed_dim": 64, "depth": 2, "num_heads": 2, "resolution": 48},
            {"embed_dim": 32, "depth": 2, "num_heads": 1, "resolution": 64},
        ],
        "interactions": {"count": 1, "heads": 2, "points": 2, "drop_path_rate": 0.0, **interactions},
    })


def small_dataset(root: Path, *, images: int = 48, val_images: int = 16, size: int = 96) -> Path:
    """A small synthetic COCO set (written once per call site; a few seconds)."""
    from piip_search.data import make_synthetic_coco

    return make_synthetic_coco(root, images=images, val_images=val_images, size=size, seed=3)
