"""COCO reader: resize/pad to a square side, boxes and masks (polygon, RLE), crowd, layout and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from piip_search.data import CocoDetection, coco_layout, collate_fn, encode_mask, load_coco_json
from piip_search.errors import DatasetError

RED = (255, 0, 0)


def _write(root: Path, coco: dict[str, Any], images: dict[str, np.ndarray]) -> tuple[Path, Path]:
    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    for name, pixels in images.items():
        Image.fromarray(pixels).save(img_dir / name)
    ann = root / "instances.json"
    ann.write_text(json.dumps(coco))
    return img_dir, ann


@pytest.fixture()
def handmade(tmp_path: Path) -> tuple[Path, Path]:
    """Image 10: 200x100 (w x h), red rectangle x 20..59, y 10..49 with a polygon annotation (category 7).
    Image 20: 100x50, an RLE object rows 10..19, cols 20..39 (category 3), an uncompressed-RLE crowd."""
    a = np.zeros((100, 200, 3), np.uint8)
    a[10:50, 20:60] = RED
    b = np.zeros((50, 100, 3), np.uint8)
    rect = np.zeros((50, 100), np.uint8)
    rect[10:20, 20:40] = 1
    crowd = np.zeros((50, 100), np.uint8)
    crowd[30:40, 60:90] = 1
    counts, prev, run = [], 0, 0  # uncompressed RLE, column-major
    for v in crowd.flatten(order="F"):
        if v != prev:
            counts.append(run)
            prev, run = v, 0
        run += 1
    counts.append(run)
    coco = {
        "images": [{"id": 20, "file_name": "b.png", "width": 100, "height": 50},
                   {"id": 10, "file_name": "a.png", "width": 200, "height": 100}],
        "categories": [{"id": 7, "name": "box"}, {"id": 3, "name": "blob"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [20, 10, 40, 40], "area": 1600, "iscrowd": 0,
             "segmentation": [[20, 10, 60, 10, 60, 50, 20, 50]]},
            {"id": 2, "image_id": 20, "category_id": 3, "bbox": [20, 10, 20, 10], "area": 200, "iscrowd": 0,
             "segmentation": encode_mask(rect)},
            {"id": 3, "image_id": 20, "category_id": 3, "bbox": [60, 30, 30, 10], "area": 300, "iscrowd": 1,
             "segmentation": {"size": [50, 100], "counts": counts}},
            {"id": 4, "image_id": 20, "category_id": 7, "bbox": [5, 5, 0, 10], "area": 0, "iscrowd": 0,
             "segmentation": []},  # degenerate: dropped
        ],
    }
    return _write(tmp_path, coco, {"a.png": a, "b.png": b})


def test_downscale_and_pad_polygon(handmade: tuple[Path, Path]) -> None:
    ds = CocoDetection(*handmade, size=100, masks=True)
    assert len(ds) == 2 and ds.image_ids == [10, 20]
    assert ds.label_to_category == {1: 3, 2: 7} and ds.category_names == ["blob", "box"]
    assert ds.num_classes == 2
    img, t = ds[0]
    assert img.shape == (3, 100, 100) and img.dtype == torch.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert t["scale"] == 0.5 and t["orig_size"].tolist() == [100, 200] and t["image_id"] == 10
    assert torch.equal(t["boxes"], torch.tensor([[10.0, 5.0, 30.0, 25.0]]))
    assert t["labels"].tolist() == [2] and t["labels"].dtype == torch.int64
    assert t["iscrowd"].tolist() == [0] and t["area"].tolist() == [400.0]
    assert torch.all(img[:, 50:, :] == 0)  # bottom padding
    assert torch.allclose(img[:, 15, 20], torch.tensor([1.0, 0.0, 0.0]))  # the red object, moved
    m = t["masks"]
    assert m.shape == (1, 100, 100) and m.dtype == torch.uint8
    assert m.sum() == 400 and m[0, 5:25, 10:30].all()


def test_upscale_rle_and_crowd(handmade: tuple[Path, Path]) -> None:
    ds = CocoDetection(*handmade, size=400, masks=True)
    img, t = ds[1]
    assert img.shape == (3, 400, 400) and t["scale"] == 4.0 and t["orig_size"].tolist() == [50, 100]
    assert t["boxes"].tolist() == [[80.0, 40.0, 160.0, 80.0], [240.0, 120.0, 360.0, 160.0]]
    assert t["labels"].tolist() == [1, 1] and t["iscrowd"].tolist() == [0, 1]
    assert t["area"].tolist() == [200 * 16.0, 300 * 16.0]
    m = t["masks"]
    assert m.shape == (2, 400, 400)
    assert m[0].sum() == 40 * 80 and m[0, 40:80, 80:160].all()  # compressed RLE
    assert m[1].sum() == 40 * 120 and m[1, 120:160, 240:360].all()  # uncompressed RLE
    assert torch.all(img[:, 200:, :] == 0)

    _, small = CocoDetection(*handmade, size=50, masks=True)[1]  # shrinking an RLE mask by 2
    assert small["masks"][0].sum() == 5 * 10 and small["masks"][0, 5:10, 10:20].all()

    no_crowd = CocoDetection(*handmade, size=400, include_crowd=False)
    _, t2 = no_crowd[1]
    assert t2["iscrowd"].tolist() == [0] and "masks" not in t2


def test_native_size_and_skip_empty(handmade: tuple[Path, Path], tmp_path: Path) -> None:
    img, t = CocoDetection(*handmade)[0]
    assert img.shape == (3, 100, 200) and t["scale"] == 1.0
    assert t["boxes"].tolist() == [[20.0, 10.0, 60.0, 50.0]]
    coco = load_coco_json(handmade[1])
    coco["images"].append({"id": 30, "file_name": "a.png", "width": 200, "height": 100})
    ann = tmp_path / "more.json"
    ann.write_text(json.dumps(coco))
    assert len(CocoDetection(handmade[0], ann)) == 3
    assert CocoDetection(handmade[0], ann, skip_empty=True).image_ids == [10, 20]
    _, empty = CocoDetection(handmade[0], ann, size=64, masks=True)[2]
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 64, 64)


def test_collate(handmade: tuple[Path, Path]) -> None:
    ds = CocoDetection(*handmade, size=64)
    images, targets = collate_fn([ds[0], ds[1]])
    assert [i.shape for i in images] == [(3, 64, 64)] * 2
    assert [t["image_id"] for t in targets] == [10, 20]


def test_synthetic_round_trip(tiny_synthetic: Path) -> None:
    layout = coco_layout(tiny_synthetic)
    ds = CocoDetection(layout.val_images, layout.val_json, size=96, masks=True)
    for i in range(len(ds)):
        img, t = ds[i]
        assert img.shape == (3, 96, 96) and t["scale"] == 1.5
        assert len(t["boxes"]) == len(t["masks"]) > 0
        for box, mask in zip(t["boxes"], t["masks"], strict=True):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box[0] - 1 <= xs.min() and xs.max() <= box[2]
            assert box[1] - 1 <= ys.min() and ys.max() <= box[3]


# --- errors -----------------------------------------------------------------------------------------
def test_missing_annotation_file(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    missing = tmp_path / "nope.json"
    with pytest.raises(DatasetError, match=f"{missing}: annotation file not found"):
        CocoDetection(tmp_path / "imgs", missing)


def test_corrupt_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [1, 2')
    with pytest.raises(DatasetError, match=f"{bad}: not valid JSON"):
        load_coco_json(bad)
    bad.write_text('{"images": [], "annotations": []}')
    with pytest.raises(DatasetError, match=f"{bad}: `categories` must be a list"):
        load_coco_json(bad)
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
                               "categories": [{"id": 1}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 2,
                                                "bbox": [0, 0, 1, 1]}]}))
    with pytest.raises(DatasetError, match=r"annotations\[0\].category_id 2 is not a category id"):
        load_coco_json(bad)


def test_corrupt_or_missing_image(handmade: tuple[Path, Path]) -> None:
    img_dir, ann = handmade
    (img_dir / "a.png").write_bytes(b"not a png at all")
    ds = CocoDetection(img_dir, ann, size=64)
    with pytest.raises(DatasetError, match=f"{img_dir / 'a.png'}: cannot read the image"):
        ds[0]
    (img_dir / "b.png").unlink()
    with pytest.raises(DatasetError, match=f"{img_dir / 'b.png'}: image file not found"):
        ds[1]


def test_image_size_disagrees_with_json(handmade: tuple[Path, Path]) -> None:
    img_dir, ann = handmade
    Image.new("RGB", (10, 10)).save(img_dir / "a.png")
    with pytest.raises(DatasetError, match="image is 10x10 but"):
        CocoDetection(img_dir, ann)[0]


def test_masks_need_segmentations(handmade: tuple[Path, Path], tmp_path: Path) -> None:
    coco = load_coco_json(handmade[1])
    del coco["annotations"][0]["segmentation"]
    ann = tmp_path / "noseg.json"
    ann.write_text(json.dumps(coco))
    CocoDetection(handmade[0], ann)  # fine without masks
    with pytest.raises(DatasetError, match="annotation 1 has no `segmentation`"):
        CocoDetection(handmade[0], ann, masks=True)


def test_layout(tiny_synthetic: Path, tmp_path: Path) -> None:
    layout = coco_layout(tiny_synthetic)
    assert layout.train_images == tiny_synthetic / "train"
    assert layout.val_json == tiny_synthetic / "annotations" / "instances_val.json"
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nowhere'}: dataset folder not found"):
        coco_layout(tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text("{}")
    (tmp_path / "val").mkdir()
    val_json = tmp_path / "annotations" / "instances_val.json"
    with pytest.raises(DatasetError, match=f"{val_json}: val annotation file not found"):
        coco_layout(tmp_path)
    (tmp_path / "val").rmdir()
    with pytest.raises(DatasetError, match=f"{tmp_path / 'val'}: val image folder not found"):
        coco_layout(tmp_path)
