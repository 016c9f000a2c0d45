"""`--format piip-mmdet` of every shipped detection model equals the official config's backbone and neck.

The table is written from piip-architecture.md §1.3-§1.6 and §5 (per-config rows), not from our YAML files.
The two DINO-detector models (sbl-1792, h6b-1024-768) are exported as Mask R-CNN configs: their backbone
equals the official one (less `is_dino`), the neck is the Mask R-CNN FPN (see the README).
"""

from __future__ import annotations

import pytest

from piip_search.config import list_models, load_config
from piip_search.errors import ConfigError
from piip_search.export._mmdet import mmdet_model_dict, to_mmdet_config

D224 = {"T": "deit_tiny_patch16_224-a1311bcf.pth", "S": "deit_3_small_224_21k.pth", "B": "deit_3_base_224_21k.pth",
        "L": "deit_3_large_224_21k.pth"}
D384 = {"S": "deit_3_small_384_21k.pth", "B": "deit_3_base_384_21k.pth", "L": "deit_3_large_384_21k.pth"}
AUGREG = {"L": "L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_384.pth",
          "B": "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_384.pth",
          "S": "S_16-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_384.pth"}
SIZES = {"T": (192, 12, 3), "S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "H": (1280, 32, 16),
         "6B": (3200, 48, 25)}


def ranges(*sizes: int) -> list[list[int]]:
    out, start = [], 0
    for s in sizes:
        out.append([start, start + s - 1])
        start += s
    return out


def deit(model, size, dp, ckpt, idx, *, pre=(224, 16), ws=None, glob=(), fused=False):
    dim, depth, heads = SIZES[model]
    d = {"real_size": size, "pretrain_img_size": pre[0], "patch_size": 16, "pretrain_patch_size": pre[1],
         "depth": depth, "embed_dim": dim, "num_heads": heads, "mlp_ratio": 4.0, "qkv_bias": True,
         "drop_path_rate": dp, "init_scale": 1.0}
    if fused:
        d["Mlp_block"] = "fused_mlp"
    d.update(with_fpn=False, interaction_indexes=idx, pretrained=f"./pretrained/{ckpt}")
    if ws:
        d["window_attn"] = [k not in glob for k in range(depth)]
        d["window_size"] = [ws] * depth
    d["use_flash_attn"] = True
    return d


def intern(model, size, dp, ckpt, idx, *, pre=(224, 16), ws=None, fused=False):
    dim, depth, heads = SIZES[model]
    six = model == "6B"
    d = {"real_size": size, "pretrain_img_size": pre[0], "patch_size": 16, "pretrain_patch_size": pre[1],
         "depth": depth, "embed_dim": dim, "num_heads": heads, "mlp_ratio": 4.0, "qkv_bias": not six,
         "drop_path_rate": dp, "init_values": 0.1 if six else 1.0, "qk_normalization": six,
         "norm_layer_type": "RMSNorm" if six else "LayerNorm", "with_cp": True}
    if fused:
        d["mlp_type"] = "fused_mlp"
    d.update(with_fpn=False, interaction_indexes=idx, pretrained=f"./pretrained/{ckpt}")
    if ws:
        d["window_attn"] = [True] * depth
        d["window_size"] = [ws] * depth
    d["use_flash_attn"] = True
    return d


def backbone(*branches, std=True):
    b = {"_delete_": True, "type": {2: "PIIPTwoBranch", 3: "PIIPThreeBranch", 4: "PIIPFourBranch"}[len(branches)],
         "n_points": 4, "deform_num_heads": 16, "cffn_ratio": 0.25, "deform_ratio": 0.5, "with_cffn": True,
         "interact_attn_type": "deform", "interaction_drop_path_rate": 0.4}
    if not std:
        b.update(interaction_proj=False, norm_layer="none")
    b.update({f"branch{i + 1}": br for i, br in enumerate(branches)})
    return b


I1, I2 = ranges(*[1] * 12), ranges(*[2] * 12)


def tsb(b, s, t):
    return backbone(deit("B", b, 0.15, D224["B"], I1, ws=14), deit("S", s, 0.05, D224["S"], I1, ws=14),
                    deit("T", t, 0.05, D224["T"], I1, ws=14))


def sbl(l_, b, s):
    return backbone(deit("L", l_, 0.4, D224["L"], I2, ws=28), deit("B", b, 0.15, D224["B"], I1, ws=28),
                    deit("S", s, 0.05, D224["S"], I1, ws=28))


def tsbl(l_, b, s, t):
    return backbone(deit("L", l_, 0.4, D224["L"], I2, ws=28), deit("B", b, 0.15, D224["B"], I1, ws=28),
                    deit("S", s, 0.05, D224["S"], I1, ws=28), deit("T", t, 0.05, D224["T"], I1, ws=28))


def augreg(fused):
    return backbone(intern("L", 672, 0.4, AUGREG["L"], I2, pre=(384, 16), ws=28, fused=fused),
                    intern("B", 1120, 0.3, AUGREG["B"], I1, pre=(384, 16), ws=28, fused=fused),
                    intern("S", 1568, 0.2, AUGREG["S"], I1, pre=(384, 16), ws=28, fused=fused), std=not fused)


def h6b(low, fused=False):
    return backbone(intern("6B", low, 0.4, "intern_vit_6b_224px.pth", ranges(*[4] * 12), pre=(224, 14), fused=fused),
                    intern("H", 1024, 0.4, "mae_pretrain_vit_huge.pth", ranges(2, 2, 2, 2, *[3] * 8), pre=(224, 14),
                           fused=fused), std=not fused)


G3 = {12: (2, 5, 8, 11), 24: tuple(range(2, 24, 3))}
OFFICIAL = {
    "piip-tsb-1120-896-448": tsb(448, 896, 1120),
    "piip-tsb-1568-896-448": tsb(448, 896, 1568),
    "piip-tsb-1568-1120-672": tsb(672, 1120, 1568),
    "piip-sbl-1120-672-448": sbl(448, 672, 1120),
    "piip-sbl-1344-896-448": sbl(448, 896, 1344),
    "piip-sbl-1568-896-672": sbl(672, 896, 1568),
    "piip-sbl-1568-1120-672": sbl(672, 1120, 1568),
    "piip-sbl-augreg-1568-1120-672": augreg(False),
    "piip-sbl-augreg-speedup-1568-1120-672": augreg(True),
    "piip-sbl-mae-1568-1120-672": backbone(
        intern("L", 672, 0.4, "mae_pretrain_vit_large.pth", I2, ws=28),
        intern("B", 1120, 0.15, "mae_pretrain_vit_base.pth", I1, ws=28),
        deit("S", 1568, 0.05, D224["S"], I1, ws=28)),
    "piip-sbl-dinov2-1568-1120-672": backbone(
        intern("L", 672, 0.4, "dinov2_vitl14_pretrain.pth", I2, pre=(518, 14), ws=28),
        intern("B", 1120, 0.3, "dinov2_vitb14_pretrain.pth", I1, pre=(518, 14), ws=28),
        intern("S", 1568, 0.2, "dinov2_vits14_pretrain.pth", I1, pre=(518, 14), ws=28)),
    "piip-sbl-1792-1120-672": backbone(
        deit("L", 672, 0.4, D384["L"], I2, pre=(384, 16), ws=24, glob=G3[24]),
        deit("B", 1120, 0.15, D384["B"], I1, pre=(384, 16), ws=24, glob=G3[12]),
        deit("S", 1792, 0.05, D384["S"], I1, pre=(384, 16), ws=24, glob=G3[12])),
    "piip-lh6b-1536-1024-512": backbone(
        intern("6B", 512, 0.4, "intern_vit_6b_224px.pth", ranges(*[12] * 4), pre=(224, 14), fused=True),
        intern("H", 1024, 0.4, "mae_pretrain_vit_huge.pth", ranges(*[8] * 4), pre=(224, 14), fused=True),
        deit("L", 1536, 0.4, D384["L"], ranges(*[6] * 4), pre=(384, 16), fused=True), std=False),
    "piip-h6b-1024-512": h6b(512),
    "piip-h6b-speedup-1024-512": h6b(512, fused=True),
    "piip-h6b-1024-768": h6b(768),
    "piip-tsbl-1344-896-672-448": tsbl(448, 672, 896, 1344),
    "piip-tsbl-1568-1120-672-448": tsbl(448, 672, 1120, 1568),
    "piip-tsbl-1792-1568-1120-448": tsbl(448, 1120, 1568, 1792),
}
NECK = {1024: [1024] * 4, 768: [768] * 4, 3200: [3200] * 4}
SINGLE = ["vit-b-1024", "vit-l-1024", "internvit-6b-1024"]


def test_table_covers_every_shipped_multi_branch_detection_model():
    detection = [n for n in list_models() if load_config(n).task == "detection" and not n.startswith("tiny")]
    assert set(detection) == set(OFFICIAL) | set(SINGLE)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_export_equals_the_official_backbone_and_neck(name):
    got = mmdet_model_dict(load_config(name))
    want = OFFICIAL[name]
    assert got["backbone"].keys() == want.keys()
    for key in want:
        assert got["backbone"][key] == want[key], (name, key)
    d1 = want["branch1"]["embed_dim"]
    assert got["neck"] == {"type": "FPN", "in_channels": NECK[d1], "out_channels": 256, "num_outs": 5}


def test_generated_source_carries_the_same_dict():
    name = "piip-sbl-dinov2-1568-1120-672"
    ns: dict = {}
    exec(to_mmdet_config(load_config(name)), ns)  # the config is plain Python (mmcv reads it the same way)
    assert ns["model"]["backbone"] == OFFICIAL[name]


@pytest.mark.parametrize("name", SINGLE)
def test_single_branch_baselines_are_refused(name):
    with pytest.raises(ConfigError, match="2-, 3- and 4-branch"):
        mmdet_model_dict(load_config(name))
