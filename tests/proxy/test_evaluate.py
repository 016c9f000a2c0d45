"""COCO AP evaluation: exact values on hand-computed cases, backend agreement, mapping outputs back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from piip_search.data import (
    CocoDetection,
    coco_layout,
    decode_rle,
    encode_mask,
    make_synthetic_coco,
    segmentation_to_rle,
)
from piip_search.proxy._evaluate import AP_KEYS, EVAL_BACKENDS, evaluate_detections, to_coco_predictions

BACKENDS = pytest.mark.parametrize("backend", EVAL_BACKENDS)


def _gt(boxes_per_image: list[list[tuple[int, list[float]]]], size: int = 200) -> dict[str, Any]:
    """COCO ground truth from per-image (category, xywh) lists; areas = box areas, rectangular polygons."""
    anns = []
    for i, objs in enumerate(boxes_per_image):
        for cat, (x, y, w, h) in objs:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0,
                         "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    return {"images": [{"id": i + 1, "file_name": f"{i}.png", "width": size, "height": size}
                       for i in range(len(boxes_per_image))],
            "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)],
            "annotations": anns}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "ds"
    return make_synthetic_coco(root, images=1, val_images=6, size=64, seed=5)


@BACKENDS
def test_ground_truth_scores_one(synthetic: Path, backend: str) -> None:
    layout = coco_layout(synthetic)
    gt = CocoDetection(layout.val_images, layout.val_json).gt
    boxes = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
             for a in gt["annotations"]]
    masks = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
              "segmentation": encode_mask(decode_rle(segmentation_to_rle(a["segmentation"], 64, 64)))}
             for a in gt["annotations"]]
    exact = pytest.approx(1.0, abs=1e-12)
    bbox = evaluate_detections(layout.val_json, boxes, backend=backend)
    segm = evaluate_detections(gt, masks, iou_type="segm", backend=backend)
    for r in (bbox, segm):  # 64 px images: no COCO-large objects, whose AP is then 0.0
        assert [r[k] for k in AP_KEYS[:5]] == [exact] * 5 and r["ap_large"] == 0.0


@BACKENDS
def test_shift_between_iou_050_and_055(backend: str) -> None:
    # A 100x100 box shifted by 31 px: IoU = 69*100 / (2*100*100 - 69*100) = 69/131 = 0.527, so it matches at
    # IoU 0.50 only: AP50 = 1, AP75 = 0, AP = mean over 10 thresholds = 0.1. Area 10000 >= 96**2: "large".
    gt = _gt([[(1, [50, 50, 100, 100])]])
    pred = [{"image_id": 1, "category_id": 1, "bbox": [81, 50, 100, 100], "score": 0.9}]
    r = evaluate_detections(gt, pred, backend=backend)
    assert r["ap50"] == pytest.approx(1.0, abs=1e-12) and r["ap75"] == 0.0
    assert r["ap"] == pytest.approx(0.1, abs=1e-12) and r["ap_large"] == pytest.approx(0.1, abs=1e-12)
    assert r["ap_small"] == r["ap_medium"] == 0.0  # no ground truth there (COCO's -1)


@BACKENDS
def test_half_recall_with_a_false_positive(backend: str) -> None:
    # Two objects, one found exactly (score 0.9), one missed, one false positive below it (score 0.5):
    # precision is 1 up to recall 0.5, so 51 of the 101 recall points count at every IoU threshold.
    gt = _gt([[(2, [10, 10, 40, 40]), (2, [100, 100, 40, 40])]])
    pred = [{"image_id": 1, "category_id": 2, "bbox": [10, 10, 40, 40], "score": 0.9},
            {"image_id": 1, "category_id": 2, "bbox": [150, 10, 40, 40], "score": 0.5}]
    r = evaluate_detections(gt, pred, backend=backend)
    for key in ("ap", "ap50", "ap75", "ap_medium"):
        assert r[key] == pytest.approx(51 / 101, abs=1e-12)


def _random_case(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    per_image = []
    for _ in range(8):
        objs = []
        for _ in range(int(rng.integers(0, 7))):
            w, h = np.exp(rng.uniform(np.log(6), np.log(150), 2))
            x, y = rng.uniform(0, 200 - w), rng.uniform(0, 200 - h)
            objs.append((int(rng.integers(1, 4)), [round(float(v), 2) for v in (x, y, w, h)]))
        per_image.append(objs)
    gt = _gt(per_image)
    preds = []
    for a in gt["annotations"]:
        for _ in range(int(rng.integers(0, 3))):  # 0-2 noisy copies, sometimes with a wrong class
            x, y, w, h = a["bbox"]
            noise = rng.normal(0, 0.15, 4) * [w, h, w, h]
            cat = a["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 4))
            bbox = [x + noise[0], y + noise[1], max(1.0, w + noise[2]), max(1.0, h + noise[3])]
            preds.append({"image_id": a["image_id"], "category_id": cat, "bbox": bbox,
                          "score": float(rng.random())})
    for _ in range(10):  # pure false positives
        preds.append({"image_id": int(rng.integers(1, 9)), "category_id": int(rng.integers(1, 4)),
                      "bbox": [float(v) for v in rng.uniform(0, 100, 4) + [0, 0, 2, 2]],
                      "score": float(rng.random())})
    return gt, preds


def _as_mask_predictions(preds: list[dict[str, Any]], size: int = 200) -> list[dict[str, Any]]:
    out = []
    for p in preds:
        m = np.zeros((size, size), np.uint8)
        x, y, w, h = (int(round(v)) for v in p["bbox"])
        m[max(y, 0):y + h, max(x, 0):x + w] = 1
        keep = {k: p[k] for k in ("image_id", "category_id", "score")}
        out.append({**keep, "segmentation": encode_mask(m)})
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_backends_agree_on_a_random_case(seed: int) -> None:
    gt, preds = _random_case(seed)
    a = evaluate_detections(gt, preds, backend="pycocotools")
    b = evaluate_detections(gt, preds, backend="faster_coco_eval")
    assert 0.05 < a["ap"] < 0.95  # a case with something to agree on
    for k in AP_KEYS:
        assert a[k] == pytest.approx(b[k], abs=1e-6), k
    masks = _as_mask_predictions(preds)
    sa = evaluate_detections(gt, masks, iou_type="segm", backend="pycocotools")
    sb = evaluate_detections(gt, masks, iou_type="segm", backend="faster_coco_eval")
    assert 0.05 < sa["ap"] < 0.95
    for k in AP_KEYS:
        assert sa[k] == pytest.approx(sb[k], abs=1e-6), k


@BACKENDS
def test_empty_and_quiet(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    gt, preds = _random_case(0)
    assert evaluate_detections(gt, [], backend=backend) == dict.fromkeys(AP_KEYS, 0.0)
    assert evaluate_detections(gt, [], iou_type="segm", backend=backend) == dict.fromkeys(AP_KEYS, 0.0)
    evaluate_detections(gt, preds, backend=backend)
    evaluate_detections(gt, _as_mask_predictions(preds), iou_type="segm", backend=backend)
    assert capsys.readouterr().out == ""


def test_inputs_are_not_modified_and_subsets() -> None:
    gt, preds = _random_case(1)
    masks = _as_mask_predictions(preds)
    gt0, preds0, masks0 = copy.deepcopy(gt), copy.deepcopy(preds), copy.deepcopy(masks)
    evaluate_detections(gt, masks, iou_type="segm", backend="pycocotools")
    evaluate_detections(gt, preds, backend="pycocotools")
    assert gt == gt0 and preds == preds0 and masks == masks0
    # restricting to one image = evaluating a ground truth of that image alone
    one = {**gt, "images": [gt["images"][0]],
           "annotations": [a for a in gt["annotations"] if a["image_id"] == 1]}
    assert evaluate_detections(gt, preds, image_ids=[1]) == evaluate_detections(
        one, [p for p in preds if p["image_id"] == 1])


def test_bad_inputs() -> None:
    gt, preds = _random_case(0)
    with pytest.raises(ValueError, match="iou_type"):
        evaluate_detections(gt, preds, iou_type="keypoints")
    with pytest.raises(ValueError, match="backend"):
        evaluate_detections(gt, preds, backend="torchmetrics")
    with pytest.raises(ValueError, match=r"predictions\[0\] lacks \['segmentation'\]"):
        evaluate_detections(gt, preds, iou_type="segm")
    with pytest.raises(ValueError, match="image_id 99 is not an image"):
        evaluate_detections(gt, [{**preds[0], "image_id": 99}])


@pytest.mark.parametrize("size", [48, 128])
def test_outputs_map_back_to_original_coordinates(synthetic: Path, size: int) -> None:
    """Ground truth pushed through the reader (resize + pad), posed as model outputs and mapped back, scores
    AP 1 for boxes and nearly 1 for masks (resampling a mask twice moves a few pixels of tiny objects)."""
    layout = coco_layout(synthetic)
    ds = CocoDetection(layout.val_images, layout.val_json, size=size, masks=True)
    outputs, targets = [], []
    for i in range(len(ds)):
        _, t = ds[i]
        n = len(t["labels"])
        outputs.append({"boxes": t["boxes"], "labels": t["labels"], "scores": torch.linspace(1.0, 0.5, n),
                        "masks": t["masks"][:, None].float()})
        targets.append(t)
    preds = to_coco_predictions(outputs, targets, label_to_category=ds.label_to_category)
    assert len(preds) == sum(len(t["labels"]) for t in targets)
    gt_boxes = {a["id"]: a["bbox"] for a in ds.gt["annotations"]}
    assert np.allclose(sorted(p["bbox"] for p in preds), sorted(gt_boxes.values()), atol=1e-3)
    assert evaluate_detections(ds.gt, preds)["ap"] == pytest.approx(1.0, abs=1e-9)
    segm = evaluate_detections(ds.gt, preds, iou_type="segm")
    assert segm["ap50"] > 0.95 and segm["ap"] > 0.6

    boxes_only = to_coco_predictions(outputs, targets, label_to_category=ds.label_to_category,
                                     with_masks=False, score_threshold=0.75)
    assert "segmentation" not in boxes_only[0] and 0 < len(boxes_only) < len(preds)


def test_mapping_clips_and_checks_labels() -> None:
    target = {"image_id": 4, "scale": 0.5, "orig_size": torch.tensor([60, 100])}
    out = {"boxes": torch.tensor([[-4.0, 10.0, 70.0, 20.0]]), "labels": torch.tensor([2]),
           "scores": torch.tensor([0.7])}
    (p,) = to_coco_predictions([out], [target], label_to_category={1: 11, 2: 12})
    assert p == {"image_id": 4, "category_id": 12, "bbox": [0.0, 20.0, 100.0, 20.0],
                 "score": pytest.approx(0.7)}
    with pytest.raises(ValueError, match="label 2 has no COCO category"):
        to_coco_predictions([out], [target], label_to_category={1: 11})


def test_masks_are_cropped_and_resized_to_the_original() -> None:
    # original 60x100 (h x w) read at side 50: scale 0.5, content 30x50 in the top-left of the 50x50 frame
    target = {"image_id": 1, "scale": 0.5, "orig_size": torch.tensor([60, 100])}
    prob = torch.zeros(1, 1, 50, 50)
    prob[0, 0, 5:15, 10:30] = 0.9
    prob[0, 0, 40:, :] = 1.0  # in the padding: must be cut away
    out = {"boxes": torch.tensor([[10.0, 5.0, 30.0, 15.0]]), "labels": torch.tensor([1]),
           "scores": torch.tensor([0.8]), "masks": prob}
    (p,) = to_coco_predictions([out], [target], label_to_category=[0, 5])
    assert p["bbox"] == [20.0, 10.0, 40.0, 20.0] and p["category_id"] == 5
    m = decode_rle({"size": p["segmentation"]["size"], "counts": p["segmentation"]["counts"].encode()})
    expected = np.zeros((60, 100), np.uint8)
    expected[10:30, 20:60] = 1
    assert m.shape == (60, 100) and np.array_equal(m, expected)
