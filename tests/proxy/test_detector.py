"""Detector assembly on the real PIIP backbone: every head trains and predicts; no silent rescaling."""

from __future__ import annotations

import pytest
import torch

from piip_search.config import load_config
from piip_search.errors import ConfigError
from piip_search.proxy import (
    DETECTORS,
    REFERENCE_SIDE,
    ProxySettings,
    build_detector,
    param_groups,
    proxy_config,
    scale_config,
)
from tests.proxy.tiny import micro_config


def _targets(side: int, n_images: int, masks: bool) -> list[dict[str, torch.Tensor]]:
    out = []
    for i in range(n_images):
        boxes = torch.tensor([[4.0, 6.0, 30.0, 28.0], [20.0 + i, 30.0, 60.0, 62.0]])
        t = {"boxes": boxes, "labels": torch.tensor([1, 3])}
        if masks:
            m = torch.zeros(2, side, side, dtype=torch.uint8)
            for j, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
                m[j, y0:y1, x0:x1] = 1
            t["masks"] = m
        out.append(t)
    return out


HEADS = [(d, 2) for d in DETECTORS] + [("retinanet", 3), ("fcos", 3)]  # min_level is for one-stage heads


@pytest.mark.parametrize(("detector", "min_level"), HEADS)
def test_every_head_trains_and_predicts(detector: str, min_level: int) -> None:
    torch.manual_seed(0)
    cfg = micro_config()
    settings = ProxySettings(detector=detector, resolution_scale=1.0, fpn_channels=32, box_head_dim=64,
                             min_level=min_level)
    model = build_detector(cfg, num_classes=3, settings=settings)
    side = model.input_side
    assert side == cfg.input_resolution == 64
    images = [torch.rand(3, side, side) for _ in range(2)]

    losses = model(images, _targets(side, 2, masks=detector == "mask_rcnn"))
    assert losses and all(torch.isfinite(v) for v in losses.values())
    if detector == "mask_rcnn":
        assert "loss_mask" in losses
    sum(losses.values()).backward()
    qkv = model.backbone.body.branches[0].blocks[0].attn.qkv.weight
    assert qkv.grad is not None and qkv.grad.abs().sum() > 0  # the loss reaches the PIIP branches
    assert all(p.grad is not None for p in model.backbone.fpn.parameters())

    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o in out:
        assert {"boxes", "scores", "labels"} <= set(o)
        assert o["boxes"].shape[-1] == 4 and o["boxes"].shape[0] == o["scores"].shape[0]
        if o["boxes"].numel():
            assert float(o["boxes"].max()) <= side  # predictions stay in the input frame
        if detector == "mask_rcnn":
            assert o["masks"].shape[-2:] == (side, side)


def test_feature_levels_match_each_head() -> None:
    cfg = micro_config()
    x = torch.rand(1, 3, 64, 64)

    def levels(detector: str, **kw: int) -> dict[str, torch.Tensor]:
        m = build_detector(cfg, num_classes=2, detector=detector,
                           settings=ProxySettings(resolution_scale=1.0, fpn_channels=32, **kw))
        with torch.no_grad():
            return m.backbone(x), m

    r, rcnn = levels("faster_rcnn")
    assert list(r) == ["p2", "p3", "p4", "p5", "pool"]
    assert [v.shape[-1] for v in r.values()] == [16, 8, 4, 2, 1]
    assert rcnn.roi_heads.box_roi_pool.featmap_names == ["p2", "p3", "p4", "p5"]
    f2, fcos2 = levels("fcos", min_level=2)
    assert list(f2) == ["p2", "p3", "p4", "p5", "pool"]
    assert [a[0] for a in fcos2.anchor_generator.sizes] == [4, 8, 16, 32, 64]  # = strides (center sampling)
    f3, fcos3 = levels("fcos", min_level=3)
    assert list(f3) == ["p3", "p4", "p5", "p6", "p7"]
    assert [a[0] for a in fcos3.anchor_generator.sizes] == [8, 16, 32, 64, 128]
    assert [v.shape[-1] for v in f3.values()] == [8, 4, 2, 1, 1]
    assert all(v.shape[1] == 32 for v in (*r.values(), *f2.values(), *f3.values()))


def test_no_silent_rescaling() -> None:
    model = build_detector(micro_config(), num_classes=2, settings=ProxySettings(resolution_scale=1.0))
    model.eval()
    with pytest.raises(ValueError, match="64x64"):
        model([torch.rand(3, 80, 80)])
    images, _ = model.transform([torch.rand(3, 64, 64)])
    assert tuple(images.tensors.shape[-2:]) == (64, 64) and images.image_sizes == [(64, 64)]


def test_anchors_scale_with_the_input_side() -> None:
    cfg = load_config("tiny-piip-3branch")
    sizes = {}
    for scale in (0.5, 1.0):
        s = ProxySettings(detector="faster_rcnn", resolution_scale=scale)
        m = build_detector(cfg, num_classes=2, settings=s)
        sizes[m.input_side] = [a[0] for a in m.rpn.anchor_generator.sizes]
    assert sizes[256] == pytest.approx([32 * 256 / REFERENCE_SIDE * 2**k for k in range(5)], abs=0.01)
    assert sizes[128] == pytest.approx([v / 2 for v in sizes[256]], abs=0.01)
    retina = build_detector(cfg, num_classes=2, settings=ProxySettings(detector="retinanet", min_level=3))
    assert retina.anchor_generator.sizes[0][0] == pytest.approx(32 * 128 / REFERENCE_SIDE, abs=0.01)


def test_resolution_scale_keeps_multiples_of_16() -> None:
    cfg = load_config("tiny-piip-3branch")
    assert [b.resolution for b in scale_config(cfg, 0.5).branches] == [64, 96, 128]
    assert [b.resolution for b in scale_config(cfg, 0.7).branches] == [96, 128, 176]
    assert [b.resolution for b in scale_config(cfg, 0.01).branches] == [32, 32, 32]
    assert scale_config(cfg, 1.0) is cfg
    assert proxy_config(cfg, ProxySettings(resolution_scale=0.5)).input_resolution == 128


def test_build_rejects_wrong_task_and_detector() -> None:
    cls_cfg = load_config("cls-piip-tsb-368-192-128")
    with pytest.raises(ConfigError, match="task"):
        build_detector(cls_cfg, num_classes=2)
    with pytest.raises(ConfigError, match="detector"):
        build_detector(micro_config(), num_classes=2, detector="yolo")


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="unknown setting.*'itres'"):
        ProxySettings.from_dict({"itres": 3})
    with pytest.raises(ConfigError, match="proxy.detector"):
        ProxySettings(detector="detr")
    with pytest.raises(ConfigError, match="proxy.fpn_channels.*multiple of 32"):
        ProxySettings(detector="fcos", fpn_channels=48)
    with pytest.raises(ConfigError, match="proxy.iters"):
        ProxySettings(iters=0)
    s = ProxySettings.from_dict({"eval_at": [20, 10, 10], "iters": 30})
    assert s.eval_at == (10, 20) and s.to_dict()["eval_at"] == [10, 20]


def test_layer_decay_groups() -> None:
    cfg = micro_config()
    model = build_detector(cfg, num_classes=2, settings=ProxySettings(resolution_scale=1.0))
    groups = param_groups(model, cfg, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    body = "backbone.body."
    # depth 2 in both branches: embeddings at layer 0, block k at layer k + 1, the rest at layer 3.
    assert scale_of[id(named[body + "branches.0.patch_embed.proj.weight"])] == 0.5**3
    assert scale_of[id(named[body + "branches.1.blocks.0.attn.qkv.weight"])] == 0.5**2
    assert scale_of[id(named[body + "branches.0.blocks.1.mlp.fc1.weight"])] == 0.5
    assert scale_of[id(named["backbone.fpn.inner_blocks.0.0.weight"])] == 1.0
    assert decay_of[id(named[body + "branches.0.pos_embed"])] == 0.0
    assert decay_of[id(named[body + "branches.0.blocks.0.norm1.weight"])] == 0.0
    assert decay_of[id(named[body + "branches.0.blocks.0.attn.qkv.weight"])] == 0.05
    flat = param_groups(model, cfg, lr=1.0, weight_decay=0.05, layer_decay=None)
    assert {g["lr_scale"] for g in flat} == {1.0}
    assert sum(len(g["params"]) for g in flat) == len(named)


def test_one_stage_pyramid_skips_only_the_stride_4_level() -> None:
    torch.manual_seed(0)
    model = build_detector(micro_config(), num_classes=2, detector="fcos",
                           settings=ProxySettings(resolution_scale=1.0, fpn_channels=32, min_level=3))
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        fast = model.backbone.body_levels(x)
        full = model.backbone.body(x)
    assert list(fast) == ["p3", "p4", "p5"]
    for k, v in fast.items():
        torch.testing.assert_close(v, full[k])


def test_fcos_box_regression_cannot_die() -> None:
    # torchvision's FCOS regression ends in a ReLU; a softplus in front keeps a gradient everywhere.
    model = build_detector(micro_config(), num_classes=2, detector="fcos",
                           settings=ProxySettings(resolution_scale=1.0, fpn_channels=32))
    reg = model.head.regression_head
    assert isinstance(reg.bbox_reg[-1], torch.nn.Softplus)
    with torch.no_grad():
        reg.bbox_reg[0].bias.fill_(-20.0)  # a ReLU head would now output 0 with zero gradient everywhere
    feats = [torch.randn(1, 32, 4, 4, requires_grad=True)]
    out, _ = reg(feats)
    assert (out > 0).all()
    out.sum().backward()
    assert reg.bbox_reg[0].weight.grad.abs().sum() > 0


def test_a_registered_head_is_accepted_and_built() -> None:
    """Adding a detector is registering one builder: settings accept the name and `build_detector` uses it."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    from piip_search.proxy._heads import HEADS, RCNN_LEVELS

    def tiny_fcos(h):
        anchors = AnchorGenerator(tuple((a,) for a in (4, 8, 16, 32, 64)), ((1.0,),) * 5)
        head = FCOSHead(h.settings.fpn_channels, 1, h.num_classes + 1, num_convs=0)
        return FCOS(h.fpn(RCNN_LEVELS, LastLevelMaxPool()), num_classes=h.num_classes + 1,
                    anchor_generator=anchors, head=head, **h.common)

    with pytest.raises(ConfigError, match="detector"):
        ProxySettings(detector="test_head")
    HEADS.register("test_head")(tiny_fcos)
    try:
        s = ProxySettings(detector="test_head")
        model = build_detector(micro_config(), num_classes=2, settings=s)
        assert isinstance(model, FCOS) and model.detector_kind == "test_head"
        model.eval()
        side = model.input_side
        with torch.no_grad():
            out = model([torch.rand(3, side, side)])
        assert set(out[0]) == {"boxes", "scores", "labels"}
    finally:
        del HEADS._items["test_head"]
