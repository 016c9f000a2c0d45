"""Scoring a proxy network on the validation split: COCO box (and mask) AP for detectors, top-1 for classifiers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from piip_search.proxy._data import Split
from piip_search.proxy._settings import ProxySettings


def autocast(device: torch.device, amp: bool) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=bool(amp and device.type == "cuda"))


@torch.no_grad()
def evaluate_detector(model: nn.Module, val: Split, gt_ds: Any, image_ids: list[int], s: ProxySettings,
                       device: torch.device, with_masks: bool) -> dict[str, float]:
    from piip_search.proxy._evaluate import evaluate_detections, to_coco_predictions

    was_training = model.training
    model.eval()
    preds: list[dict[str, Any]] = []
    bs = max(8, s.batch_size)
    try:
        for start in range(0, len(val), bs):
            batch = val.get(list(range(start, min(start + bs, len(val)))))
            images = [img.to(device) for img, _ in batch]
            with autocast(device, s.amp):
                outputs = model(images)
            # One-stage heads have a never-trained logit for label 0 (background): drop what it predicts.
            outputs = [{k: (v.float() if v.is_floating_point() else v)[o["labels"] > 0] for k, v in o.items()}
                       for o in outputs]
            preds += to_coco_predictions(outputs, [t for _, t in batch],
                                         label_to_category=gt_ds.label_to_category,
                                         score_threshold=s.score_thresh, with_masks=with_masks)
    finally:
        model.train(was_training)
    metrics = evaluate_detections(gt_ds.gt, preds, iou_type="bbox", image_ids=image_ids)
    if with_masks:
        segm = evaluate_detections(gt_ds.gt, preds, iou_type="segm", image_ids=image_ids)
        metrics["mask_ap"], metrics["mask_ap50"] = segm["ap"], segm["ap50"]
    return metrics


@torch.no_grad()
def evaluate_classifier(model: nn.Module, val: Split, s: ProxySettings, device: torch.device
                         ) -> dict[str, float]:
    from piip_search.proxy._detector import IMAGE_MEAN, IMAGE_STD

    was_training = model.training
    model.eval()
    correct = total = 0
    mean = torch.tensor(IMAGE_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=device).view(1, 3, 1, 1)
    try:
        for start in range(0, len(val), max(8, s.batch_size)):
            batch = val.get(list(range(start, min(start + max(8, s.batch_size), len(val)))))
            x = (torch.stack([img for img, _ in batch]).to(device) - mean) / std
            y = torch.tensor([int(lab) for _, lab in batch], device=device)
            with autocast(device, s.amp):
                logits = model(x)
            correct += int((logits.argmax(-1) == y).sum())
            total += len(batch)
    finally:
        model.train(was_training)
    return {"top1": correct / max(1, total)}
