"""Tiny PIIP configs shared by the model tests (64-128 px, depth 2, widths 64-128)."""

from __future__ import annotations

import pytest
import torch

from piip_search.config import PIIPConfig

#: (embed_dim, num_heads, resolution) per branch count; branch 1 = widest at the lowest resolution.
TINY_BRANCHES = {
    1: [(64, 2, 128)],
    2: [(96, 3, 64), (64, 2, 128)],
    3: [(128, 4, 64), (96, 3, 96), (64, 2, 128)],
    4: [(128, 4, 64), (96, 3, 80), (64, 2, 96), (64, 2, 128)],
}


def tiny_config(n_branches: int = 3, *, task: str = "detection", direction: str = "bidirectional",
                attention: str = "deformable", depth: int = 2, count: int = 2, window_last: int | None = 3,
                family: str = "deit", **interactions) -> PIIPConfig:
    branches = []
    for i, (dim, heads, res) in enumerate(TINY_BRANCHES[n_branches]):
        b = {"embed_dim": dim, "depth": depth, "num_heads": heads, "resolution": res, "family": family}
        if task == "detection" and window_last and i == n_branches - 1:
            b["window_size"] = window_last  # 8x8 grid, window 3: exercises padding
        branches.append(b)
    inter = {"count": count, "direction": direction, "attention": attention, "heads": 4, "points": 2,
             "drop_path_rate": 0.0, **interactions}
    data = {"task": task, "branches": branches, "interactions": inter, "num_classes": 10}
    return PIIPConfig.from_dict(data)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
