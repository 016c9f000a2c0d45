"""COCO AP of detections: pycocotools' `COCOeval` or faster-coco-eval's C++ `COCOeval_faster` (same numbers).

`to_coco_predictions` maps torchvision-style outputs, made on the resized/padded S x S images of
`piip_search.data.CocoDetection`, back to COCO results in original image coordinates; `evaluate_detections`
scores them against the original annotation file.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["AP_KEYS", "EVAL_BACKENDS", "evaluate_detections", "to_coco_predictions"]

#: Keys of `evaluate_detections`' result, in COCOeval's `stats[0:6]` order.
AP_KEYS: tuple[str, ...] = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
EVAL_BACKENDS: tuple[str, ...] = ("faster_coco_eval", "pycocotools")
_IOU_TYPES = ("bbox", "segm")


def _quiet(*args: Any, **kwargs: Any) -> None:
    pass


def _workers() -> int:
    """Threads for faster-coco-eval's mask IoU: the CPUs this process may use, at most 4."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))


# ---------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------
def _check_predictions(preds: Sequence[Mapping[str, Any]], iou_type: str, gt_ids: set[int]) -> None:
    need = ("image_id", "category_id", "score", "bbox" if iou_type == "bbox" else "segmentation")
    for i, p in enumerate(preds):
        missing = [k for k in need if k not in p]
        if missing:
            raise ValueError(f"predictions[{i}] lacks {missing} (iou_type={iou_type!r} needs {list(need)})")
        if p["image_id"] not in gt_ids:
            raise ValueError(f"predictions[{i}].image_id {p['image_id']!r} is not an image of the "
                             f"ground truth")


def _plain(p: Mapping[str, Any], iou_type: str) -> dict[str, Any]:
    """A JSON-plain copy of one prediction. For segm the box is dropped so that COCOeval takes the area
    from the mask, not the box (as detectron2 does); otherwise small/medium/large would mean other things."""
    out: dict[str, Any] = {"image_id": int(p["image_id"]), "category_id": int(p["category_id"]),
                           "score": float(p["score"])}
    if iou_type == "bbox":
        out["bbox"] = [float(v) for v in p["bbox"]]
    else:
        segm = p["segmentation"]
        if isinstance(segm, Mapping):
            segm = dict(segm)
            if isinstance(segm.get("counts"), bytes):
                segm["counts"] = segm["counts"].decode("ascii")
        out["segmentation"] = copy.deepcopy(segm)
    return out


def _pycocotools(gt: dict[str, Any]) -> tuple[Any, Any]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO()
    coco_gt.dataset = gt
    coco_gt.createIndex()
    return coco_gt, COCOeval


def _faster(gt: dict[str, Any]) -> tuple[Any, Any]:
    from faster_coco_eval import COCO, COCOeval_faster

    return COCO(gt, print_function=_quiet), functools.partial(COCOeval_faster, print_function=_quiet,
                                                              rle_iou_max_workers=_workers())


def _run(backend: Any, gt: dict[str, Any], preds: list[dict[str, Any]], iou_type: str,
         image_ids: list[int] | None) -> np.ndarray:
    """The 12 COCO stats' first six (AP, AP50, AP75, small, medium, large) from one of the two libraries,
    which share pycocotools' API."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, make_eval = backend(gt)
        ev = make_eval(coco_gt, coco_gt.loadRes(preds), iouType=iou_type)
        if image_ids is not None:
            ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:6], dtype=np.float64)


_RUNNERS = {"faster_coco_eval": functools.partial(_run, _faster),
            "pycocotools": functools.partial(_run, _pycocotools)}


def evaluate_detections(
    gt: str | os.PathLike[str] | Mapping[str, Any],
    predictions: Iterable[Mapping[str, Any]],
    *,
    iou_type: str = "bbox",
    backend: str = "faster_coco_eval",
    image_ids: Iterable[int] | None = None,
) -> dict[str, float]:
    """COCO AP of detections (quiet: nothing on stdout).

    Args:
        gt: Ground truth: a COCO instances JSON path, or its loaded dict (not modified).
        predictions: COCO results: ``{image_id, category_id, bbox [x, y, w, h], score}``, plus
            ``segmentation`` (compressed RLE) for ``iou_type="segm"``; in original image coordinates.
        iou_type: "bbox" or "segm".
        backend: "faster_coco_eval" (C++, default) or "pycocotools" (the reference); they agree.
        image_ids: Evaluate on these images only (e.g. a fixed validation subset); default: all images.

    Returns:
        ``{"ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"}`` as fractions in [0, 1]. No
        predictions give all 0.0; so does an area range without ground-truth objects (COCO's -1).

    Raises:
        ValueError: Unknown `iou_type` or `backend`, a prediction without a required key or with an
            image id that is not in the ground truth.
        DatasetError: `gt` is missing or is not COCO ground truth (the message names the file).
    """
    from piip_search.data import load_coco_json
    from piip_search.data._coco import _check_coco

    if iou_type not in _IOU_TYPES:
        raise ValueError(f"`iou_type` must be one of {list(_IOU_TYPES)}, got {iou_type!r}")
    if backend not in _RUNNERS:
        raise ValueError(f"`backend` must be one of {list(EVAL_BACKENDS)}, got {backend!r}")
    if isinstance(gt, Mapping):  # a copy: COCOeval writes RLEs into the ground truth for segm
        gt_dict = _check_coco(copy.deepcopy(dict(gt)), "ground-truth dict")
    else:
        gt_dict = load_coco_json(gt)
    for ann in gt_dict["annotations"]:  # COCOeval reads both; COCO files always have them
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
    gt_ids = {img["id"] for img in gt_dict.get("images", [])}
    preds = list(predictions)
    _check_predictions(preds, iou_type, gt_ids)
    ids = None if image_ids is None else sorted({int(i) for i in image_ids})
    if ids is not None:
        unknown = sorted(set(ids) - gt_ids)
        if unknown:
            raise ValueError(f"`image_ids` holds ids that are not images of the ground truth: {unknown[:10]}")
        keep = set(ids)
        preds = [p for p in preds if p["image_id"] in keep]
    plain = [_plain(p, iou_type) for p in preds]
    if iou_type == "segm":
        bad = [a.get("id") for a in gt_dict["annotations"] if "segmentation" not in a]
        if bad:
            raise ValueError(f"iou_type='segm' needs a segmentation on every ground-truth annotation; "
                             f"annotation ids without one: {bad[:10]}")
    if not plain or not gt_dict["annotations"]:
        return dict.fromkeys(AP_KEYS, 0.0)
    stats = _RUNNERS[backend](gt_dict, plain, iou_type, ids)
    return {k: float(v) if v >= 0 else 0.0 for k, v in zip(AP_KEYS, stats, strict=True)}


# ---------------------------------------------------------------------------------------------------
# torchvision outputs -> COCO results
# ---------------------------------------------------------------------------------------------------
def _category_of(label_to_category: Mapping[int, int] | Sequence[int], label: int) -> int:
    try:
        return int(label_to_category[label])
    except (KeyError, IndexError):
        raise ValueError(f"predicted label {label} has no COCO category in `label_to_category`") from None


def _original_masks(masks: torch.Tensor, scale: float, h: int, w: int, threshold: float) -> np.ndarray:
    """(N, h, w) bool masks in original coordinates from (N, [1,] S, S) probabilities in the padded frame."""
    from piip_search.data import scaled_size

    if masks.dim() == 4:
        masks = masks[:, 0]
    nh, nw = scaled_size(h, w, scale)
    masks = masks[:, :nh, :nw].float()
    out = np.zeros((masks.shape[0], h, w), dtype=bool)
    for start in range(0, masks.shape[0], 16):  # bounded memory for large originals
        chunk = masks[start:start + 16]
        if (nh, nw) != (h, w):
            chunk = F.interpolate(chunk[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        out[start:start + 16] = (chunk >= threshold).cpu().numpy()
    return out


def to_coco_predictions(
    outputs: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]],
    *,
    label_to_category: Mapping[int, int] | Sequence[int],
    score_threshold: float = 0.0,
    with_masks: bool | None = None,
    mask_threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """COCO results in original image coordinates from torchvision detection outputs.

    Args:
        outputs: Per image ``{"boxes" (N, 4) xyxy, "labels" (N,), "scores" (N,)[, "masks" (N, 1, S, S)
            probabilities]}`` in the resized/padded frame the model saw.
        targets: The matching targets of `CocoDetection` (only ``image_id``, ``scale`` and ``orig_size``
            are read).
        label_to_category: Contiguous label -> COCO category id (`CocoDetection.label_to_category`).
        score_threshold: Drop detections scoring below this.
        with_masks: Add a compressed-RLE ``segmentation``; None = when the outputs hold masks.
        mask_threshold: Probability at which a mask pixel is foreground.

    Returns:
        ``[{image_id, category_id, bbox [x, y, w, h], score[, segmentation]}]``, boxes clipped to the image.
    """
    from piip_search.data import encode_mask

    if len(outputs) != len(targets):
        raise ValueError(f"got {len(outputs)} outputs for {len(targets)} targets")
    results: list[dict[str, Any]] = []
    for out, tgt in zip(outputs, targets, strict=True):
        scale = float(tgt["scale"])
        h, w = (int(v) for v in tgt["orig_size"])
        image_id = int(tgt["image_id"])
        scores = out["scores"].detach().float().cpu()
        keep = scores >= score_threshold
        boxes = out["boxes"].detach().float().cpu()[keep] / scale
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        labels = out["labels"].detach().cpu()[keep].tolist()
        use_masks = ("masks" in out) if with_masks is None else with_masks
        if use_masks and "masks" not in out:
            raise ValueError("with_masks=True but the outputs hold no `masks`")
        masks = (_original_masks(out["masks"].detach()[keep.to(out["masks"].device)], scale, h, w,
                                 mask_threshold) if use_masks else None)
        rows = zip(boxes.tolist(), labels, scores[keep].tolist(), strict=True)
        for j, (box, label, score) in enumerate(rows):
            x0, y0, x1, y1 = box
            pred: dict[str, Any] = {"image_id": image_id,
                                    "category_id": _category_of(label_to_category, int(label)),
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)}
            if masks is not None:
                pred["segmentation"] = encode_mask(masks[j])
            results.append(pred)
    return results
