"""COCO mask helpers over pycocotools' RLE utilities: polygons and RLE in, binary masks out, and back."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["decode_rle", "encode_mask", "segmentation_to_rle"]


def segmentation_to_rle(segm: Any, height: int, width: int) -> dict[str, Any]:
    """One compressed RLE for a COCO `segmentation`: a list of polygons, an uncompressed RLE
    (``counts`` a list) or a compressed RLE (``counts`` a string). Polygons with fewer than three
    points are ignored (a list of them gives an empty mask).

    Raises:
        ValueError: The value is none of the three forms.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segm, list):
        if not all(isinstance(p, (list, tuple)) for p in segm):
            raise ValueError("a polygon segmentation must be a list of [x1, y1, x2, y2, ...] lists")
        polys = [[float(v) for v in p] for p in segm if len(p) >= 6]
        if not polys:
            return mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        return mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        if isinstance(segm["counts"], list):
            return mask_utils.frPyObjects(segm, height, width)
        counts = segm["counts"]
        return {"size": list(segm["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}
    raise ValueError("segmentation must be a list of polygons or an RLE dict with `size` and `counts`")


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """(H, W) uint8 mask of a compressed RLE."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():  # pycocotools 2.0.x's Cython decode trips numpy 2's copy= deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE of an (H, W) binary mask, with ``counts`` as a str so that it serialises to JSON."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
