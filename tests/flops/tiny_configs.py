"""Tiny configs that cover the counting paths (built and traced in well under a second each)."""

from __future__ import annotations

import copy
from typing import Any

from piip_search.config import PIIPConfig, load_config


def _b(dim: int, depth: int, heads: int, res: int, **kw: Any) -> dict[str, Any]:
    return {"embed_dim": dim, "depth": depth, "num_heads": heads, "resolution": res, **kw}


_INTER = {"count": 2, "heads": 4, "points": 4, "deform_ratio": 0.5, "cffn_ratio": 0.25}

_THREE = [_b(128, 4, 4, 64), _b(96, 4, 3, 96), _b(64, 4, 2, 128)]

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "two-branch-padded-windows": {  # InternViT-type pad-before-qkv (grid 4 -> 6) and DeiT-type (grid 8 -> 9)
        "branches": [_b(128, 3, 4, 64, window_size=3, family="internvit"), _b(64, 3, 2, 128, window_size=3)],
        "interactions": {**_INTER, "count": 3},
    },
    "three-branch-regular-attn": {
        "branches": _THREE, "interactions": {**_INTER, "attention": "regular"},
    },
    "three-branch-no-proj-no-norm": {
        "branches": _THREE, "interactions": {**_INTER, "projection": False, "norm": False},
    },
    "three-branch-top-down": {"branches": _THREE, "interactions": {**_INTER, "direction": "top-down"}},
    "three-branch-bottom-up": {"branches": _THREE, "interactions": {**_INTER, "direction": "bottom-up"}},
    "three-branch-all-pairs": {"branches": _THREE, "interactions": {**_INTER, "direction": "all-pairs"}},
    "three-branch-none": {"branches": _THREE, "interactions": {"count": 2, "direction": "none"}},
    "three-branch-no-cffn-ratio1": {
        "branches": _THREE, "interactions": {**_INTER, "cffn": False, "deform_ratio": 1.0, "points": 2},
    },
    "four-branch-windows-global": {
        "branches": [_b(128, 4, 4, 48), _b(96, 4, 3, 64, window_size=3, global_blocks=[1]),
                     _b(64, 4, 2, 96, window_size=4), _b(32, 4, 1, 128, window_size=5, global_blocks=[0, 3])],
        "interactions": {**_INTER, "indexes": [[[0, 0], [1, 3]], [[0, 1], [2, 3]], [[0, 2], [3, 3]],
                                              [[0, 1], [2, 3]]]},
    },
    "internvit-6b-type": {  # RMSNorm, full-width qk-norm on padded tokens, no qkv bias, LayerScale 0.1
        "branches": [_b(96, 2, 3, 64, family="internvit", norm="rms", qk_norm=True, qkv_bias=False,
                        layer_scale=0.1, window_size=3),
                     _b(64, 2, 2, 96, family="internvit", layer_scale="none")],
        "interactions": {**_INTER, "count": 2},
    },
    "single-branch-baseline": {
        "branches": [_b(64, 3, 2, 128, window_size=3, global_blocks=[2])],
        "interactions": {"count": 1, "direction": "none"},
    },
    "classification-three-branch": {
        "task": "classification", "num_classes": 10,
        "branches": [_b(128, 2, 4, 32, family="internvit", layer_scale="none"), _b(96, 2, 3, 48),
                     _b(64, 2, 2, 64)],
        "interactions": {**_INTER},
    },
}


def tiny_config(name: str) -> PIIPConfig:
    if name == "tiny-piip-3branch":
        return load_config(name)
    return PIIPConfig.from_dict({"name": name, **copy.deepcopy(TINY_CONFIGS[name])})


ALL_TINY = ("tiny-piip-3branch", *TINY_CONFIGS)
