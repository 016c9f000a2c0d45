"""`model` params == sum(p.numel()) == the official module's count, for every shipped config.

`official_params` re-states the official modules' parameter formulas (piip-architecture.md §1.1, §2.8, §4,
§6.5) without using the package's counters; `OFFICIAL` is the table it gives, anchored by the reference's
worked number for PIIP-TSB 1120/896/448 (175,043,715, §6.5). The 4-branch rows are the official module as its
config says (branch4 = T); the official code builds branch4 from branch3's settings (an S, §8.1).
"""

from __future__ import annotations

import pytest
import torch

from piip_search.config import PIIPConfig, list_models, load_config
from piip_search.flops import count
from piip_search.models import build_piip

OFFICIAL = {
    "cls-piip-sbl-augreg-320-160-96": 488_795_832,
    "cls-piip-sbl-augreg-384-192-128": 488_925_880,
    "cls-piip-tsb-368-192-128": 144_031_416,
    "internvit-6b-1024": 6_026_070_400,
    "piip-h6b-1024-512": 7_293_644_290,
    "piip-h6b-1024-768": 7_293_644_290,
    "piip-h6b-speedup-1024-512": 7_172_845_570,
    "piip-lh6b-1536-1024-512": 7_481_134_595,
    "piip-sbl-1120-672-448": 547_810_051,
    "piip-sbl-1344-896-448": 547_810_051,
    "piip-sbl-1568-1120-672": 547_810_051,
    "piip-sbl-1568-896-672": 547_810_051,
    "piip-sbl-1792-1120-672": 548_636_931,
    "piip-sbl-augreg-1568-1120-672": 548_639_107,
    "piip-sbl-augreg-speedup-1568-1120-672": 521_161_603,
    "piip-sbl-dinov2-1568-1120-672": 549_613_955,
    "piip-sbl-mae-1568-1120-672": 547_811_843,
    "piip-tsb-1120-896-448": 175_043_715,
    "piip-tsb-1568-1120-672": 175_043_715,
    "piip-tsb-1568-896-448": 175_043_715,
    "piip-tsbl-1344-896-672-448": 571_066_500,
    "piip-tsbl-1568-1120-672-448": 571_066_500,
    "piip-tsbl-1792-1568-1120-448": 571_066_500,
    "tiny-piip-3branch": 2_932_195,
    "vit-b-1024": 92_895_744,
    "vit-l-1024": 315_934_720,
}


def _block(b) -> int:
    d = b.embed_dim
    if b.model == "6B":
        return 12 * d * d + 12 * d  # RMSNorm x2, q/k norm, no qkv bias, LayerScale
    ls = 0 if b.layer_scale == "none" else 2 * d
    return 12 * d * d + 13 * d + ls


def _branch(b, task: str) -> int:
    grid = b.resolution // 16 if task == "classification" else b.pretrain_img_size // 16
    cls_slot = 1 if b.family == "internvit" else 0
    extra = b.embed_dim if task == "classification" else 0  # cls token
    return b.depth * _block(b) + (3 * 16 * 16 + 1) * b.embed_dim + (grid * grid + cls_slot) * b.embed_dim + extra


def _injector(dq: int, dk: int, it) -> int:
    """Injector(query width dq, feature width dk): MSDeformAttn (1 level), ca_gamma, CFFN, LayerNorms."""
    hp = it.heads * it.points
    v = int(dq * it.deform_ratio)
    attn = hp * 2 * (dq + 1) + hp * (dq + 1) + (dk * v + v) + (v * dq + dq)  # offsets, weights, value, out
    h = int(dq * it.cffn_ratio)
    cffn = (dq * h + h) + (9 * h + h) + (h * dq + dq) + dq if it.cffn else 0  # fc1, dwconv, fc2, gamma
    norms = (2 * dq + 2 * dk + (2 * dq if it.cffn else 0)) if it.norm else 0
    return attn + dq + cffn + norms


def _interactions(cfg: PIIPConfig) -> int:
    it, dims = cfg.interactions, [b.embed_dim for b in cfg.branches]
    per = 0
    for a in range(len(dims) - 1):
        da, db = dims[a], dims[a + 1]
        if it.projection:
            per += 2 * da * db + da + db + _injector(da, da, it) + _injector(db, db, it)
        else:
            per += _injector(da, db, it) + _injector(db, da, it)
    return per * cfg.n_interactions


def official_params(cfg: PIIPConfig) -> int:
    total = sum(_branch(b, cfg.task) for b in cfg.branches) + _interactions(cfg)
    d1, n = cfg.branches[0].embed_dim, len(cfg.branches)
    if cfg.task == "classification":
        return total + sum(2 * b.embed_dim + b.embed_dim * cfg.num_classes + cfg.num_classes for b in cfg.branches)
    if n > 1:  # merge_branch{K}: conv3x3 (D_K -> D_1) GN conv3x3 GN; scalars w{K}
        total += sum(9 * b.embed_dim * d1 + 2 * d1 + 9 * d1 * d1 + 2 * d1 for b in cfg.branches) + n
    return total + 3 * (4 * d1 * d1 + d1) + 2 * d1  # fpn1 (ConvT, GN, ConvT), fpn2 (ConvT)


def test_the_table_is_the_formula_and_the_reference_anchor():
    assert sorted(OFFICIAL) == list_models()
    assert OFFICIAL["piip-tsb-1120-896-448"] == 175_043_715  # piip-architecture.md §6.5
    for name, n in OFFICIAL.items():
        assert official_params(load_config(name)) == n, name


@pytest.mark.parametrize("name", list_models())
def test_model_count_equals_official(name):
    assert count(load_config(name), "model").params == OFFICIAL[name]


FAST_BUILDS = {"piip-tsb-1120-896-448", "piip-sbl-dinov2-1568-1120-672", "cls-piip-tsb-368-192-128",
               "tiny-piip-3branch"}


def _distinct_structures() -> list:
    """One shipped model per distinct parameter layout (resolution does not change the detection layout);
    all but a few (DeiT and InternViT-type detection, classification, tiny) under -m slow: building the
    large ones takes seconds each even on the meta device."""
    seen, out = set(), []
    for name in list_models():
        cfg = load_config(name)
        key = repr([(b.embed_dim, b.depth, b.family, b.block_type, b.pos_grid if cfg.task == "detection"
                     else b.grid, b.window_size) for b in cfg.branches]) + repr(cfg.interactions) + cfg.task
        if key not in seen:
            seen.add(key)
            slow = name not in FAST_BUILDS
            out.append(pytest.param(name, marks=pytest.mark.slow) if slow else name)
    return out


@pytest.mark.parametrize("name", _distinct_structures())
def test_built_module_has_the_official_count(name):
    with torch.device("meta"):
        model = build_piip(load_config(name), pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL[name]
