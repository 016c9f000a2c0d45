"""Proxy training: torchvision detectors on the PIIP pyramid, a short seeded training run, COCO AP.

`train_proxy(cfg, data_dir, settings) -> ProxyResult` is what a search calls; failures come back as a
`status` (ok, diverged, oom, invalid_config, data_error, failed), never as an exception.
"""

from piip_search.proxy._detector import (
    IMAGE_MEAN,
    IMAGE_STD,
    REFERENCE_SIDE,
    PyramidFPN,
    build_classifier,
    build_detector,
)
from piip_search.proxy._evaluate import AP_KEYS, EVAL_BACKENDS, evaluate_detections, to_coco_predictions
from piip_search.proxy._settings import DETECTORS, ProxySettings, proxy_config, scale_config
from piip_search.proxy._train import STATUSES, ProxyResult, param_groups, train_proxy

__all__ = [
    "AP_KEYS",
    "DETECTORS",
    "EVAL_BACKENDS",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "REFERENCE_SIDE",
    "STATUSES",
    "ProxyResult",
    "ProxySettings",
    "PyramidFPN",
    "build_classifier",
    "build_detector",
    "evaluate_detections",
    "param_groups",
    "proxy_config",
    "scale_config",
    "to_coco_predictions",
    "train_proxy",
]
