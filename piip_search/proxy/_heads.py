"""The detection heads `build_detector` can put on the PIIP pyramid: one registered builder per head.

Adding a head is adding a function here (or in a module imported by `piip_search.proxy`) decorated with
`@HEADS.register("<name>")`; `ProxySettings.detector` accepts every registered name. A builder gets the
pyramid body, the image side and the settings, and returns the torchvision detector.

R-CNN and RetinaNet anchor sizes are torchvision's (tuned for an 800-pixel side) scaled by `input_side / 800`,
so anchors cover the same fraction of the image at any proxy resolution; FCOS's one point per location keeps
size = stride, which its center sampling and level ranges assume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from piip_search._registry import Registry

if TYPE_CHECKING:
    from piip_search.proxy._settings import ProxySettings

__all__ = ["HEADS", "HeadInputs", "REFERENCE_SIDE", "RCNN_LEVELS"]

#: Image side torchvision's default anchors are sized for (COCO images resized to 800).
REFERENCE_SIDE = 800
RCNN_LEVELS = ("p2", "p3", "p4", "p5")  # + "pool" (stride 64) from LastLevelMaxPool


@dataclass(frozen=True)
class HeadInputs:
    """What every head builder needs: the PIIP body, the square image side, the settings, the classes
    (without background), the detector kwargs shared by all heads, and how to wrap the body in an FPN."""

    body: nn.Module
    side: int
    settings: ProxySettings
    num_classes: int
    common: dict[str, Any]
    fpn: Callable[[tuple[str, ...], nn.Module], nn.Module]  # (levels, extra block) -> PyramidFPN


HEADS: Registry[Callable[[HeadInputs], nn.Module]] = Registry("detector")


def _scaled_sizes(base: tuple[float, ...], side: int) -> tuple[float, ...]:
    f = side / REFERENCE_SIDE
    return tuple(round(b * f, 2) for b in base)


def _rcnn_kwargs(h: HeadInputs) -> tuple[nn.Module, dict[str, Any]]:
    """The FPN body and the RPN/box settings the two R-CNNs share (P2-P6, P6 by max-pool, as the PIIP
    Mask R-CNN configs do)."""
    s, c = h.settings, h.settings.fpn_channels
    backbone = h.fpn(RCNN_LEVELS, LastLevelMaxPool())
    sizes = _scaled_sizes((32, 64, 128, 256, 512), h.side)  # P2..P6 (stride 4..64)
    anchors = AnchorGenerator(tuple((a,) for a in sizes), ((0.5, 1.0, 2.0),) * len(sizes))
    kwargs: dict[str, Any] = dict(
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(c, anchors.num_anchors_per_location()[0]),
        rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500, rpn_post_nms_top_n_test=300,
        rpn_batch_size_per_image=128,
        box_roi_pool=MultiScaleRoIAlign(featmap_names=list(RCNN_LEVELS), output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(c * 7 * 7, s.box_head_dim),
        box_predictor=FastRCNNPredictor(s.box_head_dim, h.num_classes + 1),
        box_batch_size_per_image=128,
        box_score_thresh=s.score_thresh,
        **h.common,
    )
    return backbone, kwargs


def _one_stage_levels(h: HeadInputs) -> tuple[nn.Module, tuple[int, ...]]:
    """The FPN body and level strides of RetinaNet and FCOS: the standard P3-P7 (P6/P7 by strided convs on
    P5), or P2-P6 (P6 by max-pool) with `min_level: 2`, so objects of a few pixels get positive locations on
    the stride-4 grid."""
    c = h.settings.fpn_channels
    if h.settings.min_level == 3:
        return h.fpn(("p3", "p4", "p5"), LastLevelP6P7(c, c)), (8, 16, 32, 64, 128)
    return h.fpn(RCNN_LEVELS, LastLevelMaxPool()), (4, 8, 16, 32, 64)


@HEADS.register("faster_rcnn")
def _faster_rcnn(h: HeadInputs) -> nn.Module:
    backbone, kwargs = _rcnn_kwargs(h)
    return FasterRCNN(backbone, num_classes=None, **kwargs)


@HEADS.register("mask_rcnn")
def _mask_rcnn(h: HeadInputs) -> nn.Module:
    backbone, kwargs = _rcnn_kwargs(h)
    c = h.settings.fpn_channels
    mask_layers = (c, c)
    return MaskRCNN(
        backbone, num_classes=None,
        mask_roi_pool=MultiScaleRoIAlign(featmap_names=list(RCNN_LEVELS), output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(c, mask_layers, 1),
        mask_predictor=MaskRCNNPredictor(mask_layers[-1], c, h.num_classes + 1),
        **kwargs)


@HEADS.register("retinanet")
def _retinanet(h: HeadInputs) -> nn.Module:
    backbone, strides = _one_stage_levels(h)
    # torchvision's RetinaNet anchors (32..512 on P3-P7 at 800 px): 4x the stride, scaled to the side.
    sizes = _scaled_sizes(tuple(4 * st * 800 / REFERENCE_SIDE for st in strides), h.side)
    anchors = AnchorGenerator(tuple((a, a * 2 ** (1 / 3), a * 2 ** (2 / 3)) for a in sizes),
                              ((0.5, 1.0, 2.0),) * len(sizes))
    head = RetinaNetHead(h.settings.fpn_channels, anchors.num_anchors_per_location()[0], h.num_classes + 1)
    return RetinaNet(backbone, num_classes=h.num_classes + 1, anchor_generator=anchors, head=head,
                     score_thresh=h.settings.score_thresh, detections_per_img=100, **h.common)


@HEADS.register("fcos")
def _fcos(h: HeadInputs) -> nn.Module:
    backbone, strides = _one_stage_levels(h)
    # One "anchor" per location whose size must equal the level's stride: torchvision uses it as the stride
    # in center sampling (radius 1.5 a) and the level's regression range [4a, 8a]. Not scaled: anchors
    # smaller than the stride leave most objects without a positive location.
    anchors = AnchorGenerator(tuple((a,) for a in strides), ((1.0,),) * len(strides))
    head = FCOSHead(h.settings.fpn_channels, 1, h.num_classes + 1, num_convs=h.settings.head_convs)
    # torchvision ends the box regression in a ReLU, which can die in a short from-scratch run (every location
    # then predicts an empty box and AP is 0: seen on 1 run in 3 with a thin head). A softplus before it keeps
    # the distances positive with a gradient everywhere (the FCOS paper uses exp).
    head.regression_head.bbox_reg = nn.Sequential(head.regression_head.bbox_reg, nn.Softplus())
    return FCOS(backbone, num_classes=h.num_classes + 1, anchor_generator=anchors, head=head,
                score_thresh=h.settings.score_thresh, detections_per_img=100, **h.common)
