"""COCO-format detection data for proxy training: an image folder plus an instances JSON.

`CocoDetection` resizes every image to the square input side S of a PIIP config (its highest-resolution
branch, `PIIPConfig.input_resolution`): the longer side is scaled to S keeping the aspect ratio, then the
bottom and right are zero-padded to S x S. Boxes and masks follow; the scale factor and the original size
stay in the target so that predictions can be mapped back to original coordinates for COCO evaluation
(`piip_search.proxy._evaluate.to_coco_predictions`).

Target of one image (the torchvision detection convention, plus the mapping back)::

    boxes     float32 (N, 4)  xyxy, in the resized/padded S x S frame
    labels    int64 (N,)      contiguous 1..K (0 is the background); `label_to_category` maps back
    masks     uint8 (N, S, S) only with masks=True
    image_id  int             the COCO image id
    iscrowd   int64 (N,)
    area      float32 (N,)    COCO area (mask area) times scale**2
    scale     float           resized = original * scale
    orig_size int64 (2,)      original (height, width)
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from piip_search.data._masks import decode_rle, segmentation_to_rle
from piip_search.errors import DatasetError

__all__ = ["CocoDetection", "CocoLayout", "coco_layout", "collate_fn", "load_coco_json", "scaled_size"]

# (image folder, annotation file) names per split, first match wins: this project's layout, then COCO 2017's.
_SPLIT_NAMES = {
    "train": (("train", "instances_train.json"), ("train2017", "instances_train2017.json")),
    "val": (("val", "instances_val.json"), ("val2017", "instances_val2017.json")),
}


# ---------------------------------------------------------------------------------------------------
# layout and JSON
# ---------------------------------------------------------------------------------------------------
class CocoLayout(NamedTuple):
    """The four paths of a COCO dataset folder."""

    train_images: Path
    train_json: Path
    val_images: Path
    val_json: Path


def coco_layout(root: str | os.PathLike[str]) -> CocoLayout:
    """Paths of the usual layout `root/train/`, `root/val/`, `root/annotations/instances_{train,val}.json`
    (COCO 2017's `train2017/`, `instances_train2017.json` names are accepted too).

    Only existence is checked here; JSON and images are checked when read.

    Raises:
        DatasetError: The root, an image folder or an annotation file is missing (the message names it).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found (expected train/, val/ and annotations/ in it)")
    paths: list[Path] = []
    for split, candidates in _SPLIT_NAMES.items():
        for folder, ann in candidates:
            if (root / folder).exists() or (root / "annotations" / ann).exists():
                break
        else:
            folder, ann = candidates[0]
        img_dir, ann_file = root / folder, root / "annotations" / ann
        if not img_dir.is_dir():
            raise DatasetError(f"{img_dir}: {split} image folder not found")
        if not ann_file.is_file():
            raise DatasetError(f"{ann_file}: {split} annotation file not found")
        paths += [img_dir, ann_file]
    return CocoLayout(*paths)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check_coco(data: Any, path: str) -> dict[str, Any]:
    """Structural checks of an instances JSON; every message names the file and the offending entry."""
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a COCO annotation file must hold a JSON object, "
                           f"got {type(data).__name__}")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: `{key}` must be a list (is this a COCO instances file?)")
    data.setdefault("annotations", [])
    if not isinstance(data["annotations"], list):
        raise DatasetError(f"{path}: `annotations` must be a list")
    image_ids: set[int] = set()
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict):
            raise DatasetError(f"{path}: images[{i}] must be an object, got {img!r}")
        for key, kind in (("id", int), ("file_name", str), ("width", int), ("height", int)):
            v = img.get(key)
            if not isinstance(v, kind) or isinstance(v, bool):
                raise DatasetError(f"{path}: images[{i}].{key} must be {kind.__name__}, got {v!r}")
        if img["width"] <= 0 or img["height"] <= 0:
            raise DatasetError(f"{path}: images[{i}] must have a positive width and height, "
                               f"got {img['width']}x{img['height']}")
        if img["id"] in image_ids:
            raise DatasetError(f"{path}: images[{i}].id {img['id']} is used twice")
        image_ids.add(img["id"])
    cat_ids: set[int] = set()
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or isinstance(cat.get("id"), bool):
            raise DatasetError(f"{path}: categories[{i}] must be an object with an integer `id`, got {cat!r}")
        if cat["id"] in cat_ids:
            raise DatasetError(f"{path}: categories[{i}].id {cat['id']} is used twice")
        cat_ids.add(cat["id"])
    ann_ids: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: annotations[{i}] must be an object, got {ann!r}")
        if not isinstance(ann.get("id"), int) or isinstance(ann.get("id"), bool):
            raise DatasetError(f"{path}: annotations[{i}].id must be int, got {ann.get('id')!r}")
        if ann["id"] in ann_ids:
            raise DatasetError(f"{path}: annotations[{i}].id {ann['id']} is used twice")
        ann_ids.add(ann["id"])
        if ann.get("image_id") not in image_ids:
            raise DatasetError(f"{path}: annotations[{i}].image_id {ann.get('image_id')!r} "
                               f"is not an image id")
        if ann.get("category_id") not in cat_ids:
            raise DatasetError(f"{path}: annotations[{i}].category_id {ann.get('category_id')!r} "
                               f"is not a category id")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise DatasetError(f"{path}: annotations[{i}].bbox must be 4 finite numbers [x, y, w, h], "
                               f"got {bbox!r}")
    return data


def load_coco_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a COCO instances file (`images`, `categories`, `annotations`).

    Raises:
        DatasetError: The file is missing, is not JSON, or does not have the COCO structure; the message
            names the file and the problem.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: annotation file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected a COCO annotation JSON file") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a text JSON file ({e.reason})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
    return _check_coco(data, str(path))


# ---------------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------------
def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) of an image resized by `scale`, as the dataset rounds it (at least 1 pixel)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def _load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read the image ({e})") from None


# ---------------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------------
class CocoDetection(Dataset):
    """COCO detection / instance segmentation samples, resized and padded to a square input side.

    Args:
        image_dir: Folder holding the images named by `file_name`.
        annotation_file: COCO instances JSON.
        size: Square input side S (use `PIIPConfig.input_resolution`); None keeps the original size
            (scale 1, no padding).
        masks: Also return instance masks (every annotation then needs a `segmentation`).
        include_crowd: Keep `iscrowd=1` annotations (flagged in `iscrowd`); False drops them.
        skip_empty: Drop images that have no annotation left after filtering.

    Annotations whose box has no area inside the image are dropped. Categories are sorted by id and
    numbered 1..K (`label_to_category[label]` is the COCO id, `category_names[label - 1]` the name).
    """

    def __init__(
        self,
        image_dir: str | os.PathLike[str],
        annotation_file: str | os.PathLike[str],
        *,
        size: int | None = None,
        masks: bool = False,
        include_crowd: bool = True,
        skip_empty: bool = False,
    ) -> None:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise ValueError(f"`size` must be a positive int (the square input side) or None, got {size!r}")
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise DatasetError(f"{self.image_dir}: image folder not found")
        self.annotation_file = Path(annotation_file)
        self.gt = load_coco_json(self.annotation_file)
        self.size = size
        self.masks = masks

        cats = sorted(self.gt["categories"], key=lambda c: c["id"])
        self.category_names: list[str] = [str(c.get("name", c["id"])) for c in cats]
        self.label_to_category: dict[int, int] = {i + 1: c["id"] for i, c in enumerate(cats)}
        self.category_to_label: dict[int, int] = {c: lab for lab, c in self.label_to_category.items()}

        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ann in self.gt["annotations"]:
            if ann.get("iscrowd", 0) and not include_crowd:
                continue
            if masks and "segmentation" not in ann:
                raise DatasetError(f"{self.annotation_file}: annotation {ann.get('id')!r} has no "
                                   f"`segmentation`; masks=True needs one on every annotation")
            by_image[ann["image_id"]].append(ann)
        images = sorted(self.gt["images"], key=lambda im: im["id"])
        if skip_empty:
            images = [im for im in images if by_image.get(im["id"])]
        self._images = images
        self._anns = by_image

    @property
    def num_classes(self) -> int:
        """K, the number of object categories (labels are 1..K; detectors want K + 1 with background)."""
        return len(self.label_to_category)

    @property
    def image_ids(self) -> list[int]:
        """COCO image ids in dataset order."""
        return [im["id"] for im in self._images]

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        info = self._images[index]
        path = self.image_dir / info["file_name"]
        image = _load_image(path)
        w, h = image.size
        if (w, h) != (info["width"], info["height"]):
            raise DatasetError(f"{path}: image is {w}x{h} but {self.annotation_file} says "
                               f"{info['width']}x{info['height']}")
        scale = 1.0 if self.size is None else self.size / max(h, w)
        nh, nw = (h, w) if self.size is None else scaled_size(h, w, scale)
        side_h, side_w = (h, w) if self.size is None else (self.size, self.size)
        if (nh, nw) != (h, w):
            image = image.resize((nw, nh), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        tensor = torch.zeros(3, side_h, side_w)
        tensor[:, :nh, :nw] = pixels.float().div_(255.0)

        boxes, labels, crowd, areas, anns = [], [], [], [], []
        for ann in self._anns.get(info["id"], ()):
            x, y, bw, bh = (float(v) for v in ann["bbox"])
            x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))
            if x1 <= x0 or y1 <= y0:
                continue
            boxes.append([x0 * scale, y0 * scale, x1 * scale, y1 * scale])
            labels.append(self.category_to_label[ann["category_id"]])
            crowd.append(int(bool(ann.get("iscrowd", 0))))
            areas.append(float(ann.get("area", bw * bh)) * scale * scale)
            anns.append(ann)
        target: dict[str, Any] = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "image_id": info["id"],
            "iscrowd": torch.tensor(crowd, dtype=torch.int64),
            "area": torch.tensor(areas, dtype=torch.float32),
            "scale": scale,
            "orig_size": torch.tensor([h, w], dtype=torch.int64),
        }
        if self.masks:
            target["masks"] = self._masks(anns, h, w, scale, (nh, nw), (side_h, side_w))
        return tensor, target

    def _masks(self, anns: Sequence[dict[str, Any]], h: int, w: int, scale: float,
               resized: tuple[int, int], side: tuple[int, int]) -> torch.Tensor:
        """(N, side_h, side_w) uint8 masks. Polygons are scaled and rasterised directly in the resized
        frame (exact); RLE masks are decoded at the original size and resized (nearest when enlarging,
        antialiased bilinear and threshold 0.5 when shrinking)."""
        out = torch.zeros(len(anns), *side, dtype=torch.uint8)
        nh, nw = resized
        for i, ann in enumerate(anns):
            segm = ann["segmentation"]
            try:
                if isinstance(segm, list):
                    polys = [[float(v) * scale for v in p] for p in segm]
                    m = torch.from_numpy(decode_rle(segmentation_to_rle(polys, *side)))
                    out[i] = m
                    continue
                rle = segmentation_to_rle(segm, h, w)
            except (ValueError, TypeError) as e:
                raise DatasetError(f"{self.annotation_file}: annotation {ann.get('id')!r} has an unreadable "
                                   f"segmentation ({e})") from None
            if list(rle["size"]) != [h, w]:
                raise DatasetError(f"{self.annotation_file}: annotation {ann.get('id')!r} has an RLE mask of "
                                   f"size {list(rle['size'])} on a {h}x{w} image")
            m = torch.from_numpy(decode_rle(rle))
            if (nh, nw) != (h, w):  # nearest when enlarging (exact for integer factors), else area-like
                up = nh >= h
                m = F.interpolate(m[None, None].float(), size=(nh, nw),
                                  mode="nearest-exact" if up else "bilinear", antialias=not up)
                m = m[0, 0].ge(0.5).to(torch.uint8)
            out[i, :nh, :nw] = m
        return out


def collate_fn(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor],
                                                                                list[dict[str, Any]]]:
    """Batch for torchvision detection models: (list of images, list of targets)."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)
