"""Export a `PIIPConfig` as a Mask R-CNN config for the official PIIP mmdetection code.

Field names follow that code's configs (piip-architecture.md §5, §1.2, §2): `PIIP{Two,Three,Four}Branch`
with `branch1..n` dicts (`real_size`, `interaction_indexes`, `window_attn`, `window_size`, ...). The official
code supports only adjacent bidirectional interactions, 2-4 ViT branches and detection; anything else cannot be
expressed there and is refused with a message (exit 2), never written half-right.
"""

from __future__ import annotations

import pprint
from typing import Any

from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError

__all__ = ["mmdet_model_dict", "mmdet_unsupported", "to_mmdet_config"]

_CLASS = {2: "PIIPTwoBranch", 3: "PIIPThreeBranch", 4: "PIIPFourBranch"}

# Checkpoint names of the official configs (README step 9) for branches without `checkpoint`, by family and
# preset; the path decides the class (a 'deit' substring builds `vit_models`).
_DEIT_CKPT = {"T": "deit_tiny_patch16_224-a1311bcf.pth", "S": "deit_3_small_224_21k.pth",
              "B": "deit_3_base_224_21k.pth", "L": "deit_3_large_224_21k.pth"}
_INTERNVIT_CKPT = {"H": "mae_pretrain_vit_huge.pth", "6B": "intern_vit_6b_224px.pth",
                   "B": "mae_pretrain_vit_base.pth", "L": "mae_pretrain_vit_large.pth"}


def mmdet_unsupported(cfg: PIIPConfig) -> str | None:
    """Why `cfg` cannot be written in the official format, or None."""
    n = len(cfg.branches)
    if cfg.task != "detection":
        return "only detection configs have an official mmdet format (task is classification)"
    if n not in _CLASS:
        return f"the official code has 2-, 3- and 4-branch backbones only, this config has {n} branch(es)"
    if cfg.interactions.direction != "bidirectional":
        return (f"the official code implements only bidirectional interactions between adjacent branches, "
                f"not {cfg.interactions.direction!r}")
    if n == 4 and any(b.family != "deit" for b in cfg.branches):
        return "the official 4-branch backbone supports DeiT-type branches only"
    for i, b in enumerate(cfg.branches):  # the official code picks the branch class from the weights' path
        if b.checkpoint and ("deit" in b.checkpoint) != (b.family == "deit"):
            return (f"branches[{i}].checkpoint {b.checkpoint!r}: the official code builds a DeiT-type branch "
                    f"exactly when the file name contains 'deit', but the family is {b.family!r}")
    return None


def _branch_dict(cfg: PIIPConfig, i: int) -> dict[str, Any]:
    b = cfg.branches[i]
    bt = b.block_type
    windows = [b.window_of(k) for k in range(b.depth)]
    d: dict[str, Any] = {
        "real_size": b.resolution,
        "pretrain_img_size": b.pretrain_img_size,
        "patch_size": 16,
        "pretrain_patch_size": b.pretrain_patch_size,
        "depth": b.depth,
        "embed_dim": b.embed_dim,
        "num_heads": b.num_heads,
        "mlp_ratio": b.mlp_ratio,
        "qkv_bias": bt.qkv_bias,
        "drop_path_rate": b.drop_path_rate,
    }
    if b.family == "deit":
        d["init_scale"] = bt.layer_scale if bt.layer_scale is not None else 1.0
        ckpt = _DEIT_CKPT.get(b.model or "", "custom_deit.pth")
        if b.mlp_type != "regular":
            d["Mlp_block"] = b.mlp_type
    else:
        d["init_values"] = bt.layer_scale
        d["qk_normalization"] = bt.qk_norm
        d["norm_layer_type"] = "RMSNorm" if bt.norm == "rms" else "LayerNorm"
        d["with_cp"] = True
        ckpt = _INTERNVIT_CKPT.get(b.model or "", "custom_vit.pth")
        if b.mlp_type != "regular":
            d["mlp_type"] = b.mlp_type
    ckpt = b.checkpoint or ckpt
    d["with_fpn"] = False
    d["interaction_indexes"] = [list(r) for r in cfg.block_ranges[i]]
    d["pretrained"] = b.pretrained or f"./pretrained/{ckpt}"
    if any(w is not None for w in windows):
        d["window_attn"] = [w is not None for w in windows]
        d["window_size"] = [w if w is not None else b.window_size for w in windows]
    d["use_flash_attn"] = True
    return d


def mmdet_model_dict(cfg: PIIPConfig) -> dict[str, Any]:
    """The `model` dict (backbone and neck) of the official Mask R-CNN config for `cfg`."""
    why = mmdet_unsupported(cfg)
    if why is not None:
        raise ConfigError(f"--format piip-mmdet: {why}")
    it = cfg.interactions
    backbone: dict[str, Any] = {
        "_delete_": True,
        "type": _CLASS[len(cfg.branches)],
        "n_points": it.points,
        "deform_num_heads": it.heads,
        "cffn_ratio": it.cffn_ratio,
        "deform_ratio": it.deform_ratio,
        "with_cffn": it.cffn,
        "interact_attn_type": "deform" if it.attention == "deformable" else "normal",
        "interaction_drop_path_rate": it.drop_path_rate,
    }
    if not it.projection:
        backbone["interaction_proj"] = False
    if not it.norm:
        backbone["norm_layer"] = "none"
    for i in range(len(cfg.branches)):
        backbone[f"branch{i + 1}"] = _branch_dict(cfg, i)
    d1 = cfg.out_dim
    return {"backbone": backbone,
            "neck": {"type": "FPN", "in_channels": [d1] * 4, "out_channels": 256, "num_outs": 5}}


def to_mmdet_config(cfg: PIIPConfig, *, header: str = "") -> str:
    """Python source of an mmdet Mask R-CNN config for the official PIIP code."""
    model = mmdet_model_dict(cfg)
    size = cfg.input_resolution
    depth1 = cfg.branches[0].depth
    skip = [round(depth1 / b.depth, 4) for b in cfg.branches[1:]]
    lines = [
        "# Generated by piip-search for the official PIIP mmdetection code (OpenGVLab/PIIP, mmdetection/).",
        *(f"# {h}" for h in header.splitlines() if h),
        "_base_ = [",
        "    '../../_base_/models/mask_rcnn_r50_fpn.py',",
        "    '../../_base_/datasets/coco_instance.py',",
        "    '../../_base_/schedules/schedule_1x.py',",
        "    '../../_base_/default_runtime.py',",
        "]",
        "deepspeed = True",
        "deepspeed_config = 'zero_configs/adam_zero1_bf16.json'",
        "",
        "model = " + pprint.pformat(model, sort_dicts=False, width=110),
        "img_norm_cfg = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)",
        "train_pipeline = [",
        "    dict(type='LoadImageFromFile'),",
        "    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),",
        f"    dict(type='Resize', img_scale=({size}, {size * 800 // 1333}), keep_ratio=True),",
        "    dict(type='RandomFlip', flip_ratio=0.5),",
        "    dict(type='Normalize', **img_norm_cfg),",
        "    dict(type='Pad', size_divisor=224),",
        "    dict(type='DefaultFormatBundle'),",
        "    dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_masks']),",
        "]",
        "test_pipeline = [",
        "    dict(type='LoadImageFromFile'),",
        f"    dict(type='MultiScaleFlipAug', img_scale=({size}, {size * 800 // 1333}), flip=False, transforms=[",
        "        dict(type='Resize', keep_ratio=True),",
        "        dict(type='RandomFlip'),",
        "        dict(type='Normalize', **img_norm_cfg),",
        "        dict(type='Pad', size_divisor=224),",
        "        dict(type='ImageToTensor', keys=['img']),",
        "        dict(type='Collect', keys=['img']),",
        "    ]),",
        "]",
        "data = dict(samples_per_gpu=2, workers_per_gpu=2, train=dict(pipeline=train_pipeline),",
        "            val=dict(pipeline=test_pipeline), test=dict(pipeline=test_pipeline))",
        "optimizer = dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05,",
        "                 constructor='CustomLayerDecayOptimizerConstructorMMDet',",
        f"                 paramwise_cfg=dict(num_layers={depth1}, layer_decay_rate=0.85, skip_stride={skip}))",
        "optimizer_config = dict(grad_clip=None)",
        "checkpoint_config = dict(deepspeed=deepspeed, interval=1, max_keep_ckpts=1)",
        "evaluation = dict(interval=1, save_best=None)",
        "custom_imports = dict(imports=['mmcv_custom'], allow_failed_imports=False)",
        "custom_hooks = [dict(type='ToBFloat16HookMMDet', priority=49)]",
        "",
    ]
    return "\n".join(lines)
