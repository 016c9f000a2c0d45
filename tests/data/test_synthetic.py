"""Synthetic COCO generator: real COCO files, deterministic, multi-scale, cached once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import piip_search.data._synthetic as synthetic
from piip_search.data import (
    SYNTHETIC_CLASSES,
    cached_synthetic_coco,
    coco_layout,
    decode_rle,
    default_dataset_dir,
    make_synthetic_coco,
    segmentation_to_rle,
)
from piip_search.errors import DatasetError


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_pycocotools_loads_both_splits(tiny_synthetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pycocotools.coco import COCO

    layout = coco_layout(tiny_synthetic)
    splits = ((layout.train_images, layout.train_json, 6), (layout.val_images, layout.val_json, 3))
    for img_dir, ann, n in splits:
        coco = COCO(str(ann))
        assert len(coco.getImgIds()) == n
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SYNTHETIC_CLASSES)
        assert len(coco.getAnnIds()) >= n  # at least one object per image
        for img in coco.loadImgs(coco.getImgIds()):
            with Image.open(img_dir / img["file_name"]) as im:
                assert im.format == "PNG" and im.size == (img["width"], img["height"]) == (64, 64)
        for ann_ in coco.loadAnns(coco.getAnnIds()):
            m = decode_rle(coco.annToRLE(ann_))
            assert m.sum() == ann_["area"] > 0
            ys, xs = np.nonzero(m)
            x, y, w, h = ann_["bbox"]  # the polygon's extent holds every mask pixel
            assert x - 1 <= xs.min() and xs.max() <= x + w and y - 1 <= ys.min() and ys.max() <= y + h


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = make_synthetic_coco(tmp_path / "a", images=3, val_images=2, size=48, seed=7)
    b = make_synthetic_coco(tmp_path / "b", images=3, val_images=2, size=48, seed=7)
    c = make_synthetic_coco(tmp_path / "c", images=3, val_images=2, size=48, seed=8)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert len(ha) == 3 + 2 + 2
    assert ha == hb
    assert ha.keys() == hc.keys()
    assert all(ha[k] != hc[k] for k in ha)


def test_object_sizes_span_small_to_large(tmp_path: Path) -> None:
    root = make_synthetic_coco(tmp_path / "ds", images=40, val_images=1, size=256, seed=0)
    anns = json.loads((root / "annotations" / "instances_train.json").read_text())["annotations"]
    areas = np.array([a["area"] for a in anns])
    sides = np.array([max(a["bbox"][2:]) for a in anns])
    assert 0.8 * 256 / 10 <= sides.min() < 32 and sides.max() > 0.5 * 256  # default min_object = size / 10
    assert (areas < 32**2).mean() > 0.2 and (areas >= 96**2).mean() > 0.1  # COCO small and large present
    assert {a["category_id"] for a in anns} == set(range(1, len(SYNTHETIC_CLASSES) + 1))


def test_min_object_sets_the_smallest_objects(tmp_path: Path) -> None:
    root = make_synthetic_coco(tmp_path / "ds", images=40, val_images=1, size=256, seed=0, min_object=4)
    anns = json.loads((root / "annotations" / "instances_train.json").read_text())["annotations"]
    sides = np.array([max(a["bbox"][2:]) for a in anns])
    assert sides.min() < 10 and (sides < 25).mean() > 0.3


@pytest.mark.parametrize("value", [1, 0.9 * 64, "8", True])
def test_bad_min_object(tmp_path: Path, value: object) -> None:
    with pytest.raises(DatasetError, match="`min_object`"):
        make_synthetic_coco(tmp_path / "x", images=1, size=64, min_object=value)
    assert not (tmp_path / "x").exists()


def test_ring_mask_has_a_hole() -> None:
    poly = synthetic._shape_polygon("ring", 20.0, 0.3) + 32.0
    m = decode_rle(segmentation_to_rle([poly.reshape(-1).tolist()], 64, 64))
    assert m[32, 32] == 0 and m[32, 32 + 16] == 1
    assert abs(m.sum() - np.pi * (20**2 - 11**2)) < 0.05 * m.sum()


@pytest.mark.parametrize("kwargs, word", [({"images": 0}, "images"), ({"val_images": 0}, "val_images"),
                                          ({"size": 16}, "size"), ({"seed": -1}, "seed"),
                                          ({"images": 2.5}, "images")])
def test_bad_arguments(tmp_path: Path, kwargs: dict, word: str) -> None:
    with pytest.raises(DatasetError, match=f"`{word}`"):
        make_synthetic_coco(tmp_path / "x", **{"images": 2, "size": 32, **kwargs})
    assert not (tmp_path / "x").exists()


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match=str(tmp_path)):
        make_synthetic_coco(tmp_path, images=1, size=32)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cache_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIIP_SEARCH_CACHE", str(tmp_path / "cache"))
    calls = []
    real = synthetic.make_synthetic_coco

    def counting(out_dir, **kw):
        calls.append(kw)
        return real(out_dir, **kw)

    monkeypatch.setattr(synthetic, "make_synthetic_coco", counting)
    first = cached_synthetic_coco(images=2, val_images=1, size=32, seed=1)
    again = cached_synthetic_coco(images=2, val_images=1, size=32, seed=1)
    other = cached_synthetic_coco(images=2, val_images=1, size=32, seed=2)
    assert first == again != other
    assert first.parent == tmp_path / "cache" and first.name.startswith("synthetic-")
    assert len(calls) == 2
    coco_layout(first)  # a complete layout
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([first.name, other.name])


def test_default_dataset_dir_uses_the_cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIIP_SEARCH_CACHE", str(tmp_path))
    seen = {}
    real = synthetic.make_synthetic_coco

    def small(out_dir, **kw):  # the default arguments, but written small to keep the test fast
        seen.update(kw)
        return real(out_dir, images=1, val_images=1, size=32, seed=0)

    monkeypatch.setattr(synthetic, "make_synthetic_coco", small)
    root = default_dataset_dir()
    assert root.parent == tmp_path
    assert seen == {"images": synthetic.DEFAULT_IMAGES, "val_images": synthetic.DEFAULT_VAL_IMAGES,
                    "size": synthetic.DEFAULT_SIZE, "seed": synthetic.DEFAULT_SEED, "min_object": None}
    assert default_dataset_dir() == root
