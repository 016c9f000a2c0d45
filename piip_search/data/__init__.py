"""COCO-format detection data: a reader that resizes/pads to a PIIP input side, and a synthetic generator."""

from piip_search.data._coco import (
    CocoDetection,
    CocoLayout,
    coco_layout,
    collate_fn,
    load_coco_json,
    scaled_size,
)
from piip_search.data._masks import decode_rle, encode_mask, segmentation_to_rle
from piip_search.data._synthetic import (
    DEFAULT_IMAGES,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    DEFAULT_VAL_IMAGES,
    SYNTHETIC_CLASSES,
    cache_root,
    cached_synthetic_coco,
    default_dataset_dir,
    make_synthetic_coco,
)

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "DEFAULT_VAL_IMAGES",
    "SYNTHETIC_CLASSES",
    "CocoDetection",
    "CocoLayout",
    "cache_root",
    "cached_synthetic_coco",
    "coco_layout",
    "collate_fn",
    "decode_rle",
    "default_dataset_dir",
    "encode_mask",
    "load_coco_json",
    "make_synthetic_coco",
    "scaled_size",
    "segmentation_to_rle",
]
