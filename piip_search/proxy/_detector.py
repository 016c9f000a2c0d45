"""Torchvision detectors on the PIIP pyramid (docs/official-code.md §4.1).

The PIIP backbone returns `{"p2", "p3", "p4", "p5"}` (strides 4/8/16/32, branch1's width); a
`torchvision.ops.FeaturePyramidNetwork` maps them to `fpn_channels` and adds the extra levels each head needs:
P6 by max-pool for the R-CNNs (`LastLevelMaxPool`, as the PIIP Mask R-CNN configs do), P6/P7 by strided convs
on P5 for RetinaNet and FCOS (`LastLevelP6P7`, which use P3-P7), or P2-P6 for them too with `min_level=2`
(small proxy inputs). The heads themselves are registered in `proxy/_heads.py`. The image transform never
rescales: the data reader already delivers square images of the input side, and a wrong size is an error
rather than a silent resize.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork

from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError
from piip_search.models import PIIPBackbone
from piip_search.proxy._heads import HEADS, REFERENCE_SIDE, HeadInputs
from piip_search.proxy._settings import ProxySettings, proxy_config

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "REFERENCE_SIDE",
    "PyramidFPN",
    "build_classifier",
    "build_detector",
]

#: The PIIP data pipeline normalises with mean = std = 127.5 on 0..255 pixels (docs/official-code.md §5):
#: on the 0..1 tensors the data reader yields, that is (x - 0.5) / 0.5.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)

_PYRAMID = ("p2", "p3", "p4", "p5")


# ---- parts ---------------------------------------------------------------------------------------------
class PyramidFPN(nn.Module):
    """PIIP pyramid + FPN: the `backbone` torchvision detectors expect (`out_channels`, dict of maps)."""

    def __init__(self, body: nn.Module, in_levels: tuple[str, ...], in_channels: list[int], out_channels: int,
                 extra_blocks: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.in_levels = in_levels
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=extra_blocks)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.fpn(OrderedDict(self.body_levels(x)))

    def body_levels(self, x: Tensor) -> dict[str, Tensor]:
        """The backbone maps this FPN reads. A `PIIPBackbone` computes only those (without p2, as RetinaNet and
        FCOS at min_level 3 need, it skips its stride-4 branch)."""
        feats = self.body(x, levels=self.in_levels) if isinstance(self.body, PIIPBackbone) else self.body(x)
        missing = [k for k in self.in_levels if k not in feats]
        if missing:
            raise KeyError(f"the backbone returned levels {sorted(feats)}; "
                           f"the FPN needs {list(self.in_levels)}")
        return {k: feats[k] for k in self.in_levels}


class _NoResizeTransform(GeneralizedRCNNTransform):
    """Normalise and batch only: images must already be `side` x `side` (the data reader's job)."""

    def __init__(self, side: int, image_mean: list[float], image_std: list[float]) -> None:
        super().__init__(min_size=side, max_size=side, image_mean=image_mean, image_std=image_std,
                         size_divisible=1, fixed_size=(side, side))
        self.side = side

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None
               ) -> tuple[Tensor, dict[str, Tensor] | None]:
        h, w = image.shape[-2:]
        if (h, w) != (self.side, self.side):
            raise ValueError(f"detector input must be {self.side}x{self.side} (the config's input resolution "
                             f"after resolution_scale), got {h}x{w}: read the data at that side")
        return image, target

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(Normalize(mean={self.image_mean}, std={self.image_std}), "
                f"no resize: {self.side}x{self.side})")


# ---- helpers -------------------------------------------------------------------------------------------
def _channels_of(body: nn.Module, levels: tuple[str, ...]) -> list[int]:
    """Per-level channel counts from the backbone's `out_channels` (int, sequence or mapping)."""
    oc = getattr(body, "out_channels", None)
    if oc is None:
        raise TypeError(f"the backbone {type(body).__name__} has no `out_channels` attribute")
    if isinstance(oc, int):
        return [oc] * len(levels)
    if isinstance(oc, dict):
        return [int(oc[k]) for k in levels]
    oc = list(oc)
    if len(oc) != len(_PYRAMID):
        raise TypeError(f"backbone `out_channels` must be an int or one value per level {_PYRAMID}, got {oc}")
    return [int(oc[_PYRAMID.index(k)]) for k in levels]


# ---- builders ------------------------------------------------------------------------------------------
def build_detector(cfg: PIIPConfig, *, num_classes: int, detector: str | None = None,
                   settings: ProxySettings | None = None) -> nn.Module:
    """A torchvision detector on the PIIP backbone of `cfg`.

    Args:
        cfg: A detection config. Its resolutions are scaled by `settings.resolution_scale` first (and
            drop-path rates set to `settings.drop_path` if given): see `proxy_config`.
        num_classes: Object classes, *without* background (the R-CNNs add the background class themselves).
        detector: "faster_rcnn" | "mask_rcnn" | "retinanet" | "fcos"; None = `settings.detector`.
        settings: FPN width, head sizes, levels, resolution scale, evaluation score threshold
            (default: `ProxySettings()`).

    Returns:
        The detector (train mode). `model.input_side` is the square side its images must have;
        `model.piip_cfg` is the (scaled) config the backbone was built from.

    Raises:
        ConfigError: the config is not a detection config, or cannot be built.
    """
    from piip_search.models import build_piip

    s = settings or ProxySettings()
    kind = detector or s.detector
    if kind not in HEADS:
        raise ConfigError(f"detector: must be one of {HEADS.keys()}, got {kind!r}")
    if cfg.task != "detection":
        raise ConfigError(f"task: build_detector needs a detection config, got {cfg.task!r} "
                          "(use build_classifier for classification configs)")
    if num_classes < 1:
        raise ConfigError(f"num_classes: must be >= 1, got {num_classes}")
    scaled = proxy_config(cfg, s)
    side = scaled.input_resolution
    body = build_piip(scaled)
    common: dict[str, Any] = dict(min_size=side, max_size=side, image_mean=list(IMAGE_MEAN),
                                  image_std=list(IMAGE_STD))

    def fpn(levels: tuple[str, ...], extra: nn.Module) -> nn.Module:
        return PyramidFPN(body, levels, _channels_of(body, levels), s.fpn_channels, extra)

    model = HEADS.get(kind)(HeadInputs(body, side, s, num_classes, common, fpn))
    model.transform = _NoResizeTransform(side, list(IMAGE_MEAN), list(IMAGE_STD))
    _annotate(model, input_side=side, piip_cfg=scaled, detector_kind=kind)
    return model


def _annotate(model: nn.Module, **facts: Any) -> None:
    """Plain attributes the proxy reads back (`input_side`, `piip_cfg`, ...); nn.Module's typing only knows
    tensors and submodules, so they are set through `object.__setattr__`'s public spelling."""
    for k, v in facts.items():
        setattr(model, k, v)


def build_classifier(cfg: PIIPConfig, *, settings: ProxySettings | None = None) -> nn.Module:
    """The PIIP classifier of a `task: classification` config (logits over `cfg.num_classes`).

    Resolutions are scaled by `settings.resolution_scale`; `model.input_side` is the image side to feed.
    """
    from piip_search.models import build_piip

    s = settings or ProxySettings()
    if cfg.task != "classification":
        raise ConfigError(f"task: build_classifier needs a classification config, got {cfg.task!r}")
    scaled = proxy_config(cfg, s)
    model = build_piip(scaled)
    _annotate(model, input_side=scaled.input_resolution, piip_cfg=scaled)
    return model

