"""A synthetic multi-scale COCO dataset of coloured shapes, so that a search needs no download.

Every image holds 1-8 objects of five classes (circle, square, triangle, ring, cross) whose colour *and*
shape differ, drawn over a textured background (colour gradient, low-frequency blobs, a few distractor
lines, 2x2-pixel grain noise). Object diameters are log-uniform from `min_object` (S/10 by default: 25.6 px
at the default 256 px) to 0.8 S. By COCO's area rule (triangles, crosses and rings cover less than their
circle) about 35% of the objects are "small" (< 32² px), 45% "medium" and 20% "large", close to COCO's own
41/34/24: resolution (the smallest objects are 13 px at the proxy's half-resolution input) and capacity
(large objects need a wide receptive field) both matter. Objects do not overlap, so every mask is exactly
the visible object.

Why S/10: the default proxy run (`ProxySettings()`, 240 iterations) must reach AP50 >= 0.5 on the default
tiny config within a minute of CPU. Measured on one seed (AP50 after the default run): min_object 5.3 px
(S/48, version 1 of this generator) 0.29, 16 px 0.41, 21 px 0.47, 25.6 px 0.58. A smaller `min_object`
(`make-data synthetic --min-object 4`) gives a harder, more resolution-sensitive set for longer proxies.

The files are a real COCO dataset (PNG images, instances JSON with boxes, polygon masks and areas) in the
layout `coco_layout` reads::

    out_dir/train/000000.png ...           out_dir/val/000000.png ...
    out_dir/annotations/instances_train.json, instances_val.json

The output is byte-identical for the same arguments (each image draws from its own seeded generator).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from piip_search.errors import DatasetError

# ---------------------------------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------------------------------
SYNTHETIC_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "ring", "cross")
DEFAULT_IMAGES = 256      # training images
DEFAULT_VAL_IMAGES = 64   # validation images (also the default when val_images is None: images // 4)
DEFAULT_SIZE = 256        # square image side in pixels
DEFAULT_SEED = 0
MIN_SIZE = 32
MAX_SIZE = 4096
MAX_OBJECTS = 8
DEFAULT_MIN_OBJECT_FRACTION = 10  # smallest diameter = size / 10 by default (see the module doc)

# Bump when the drawing changes: it is part of the cache key, so old cached sets are not reused.
_GENERATOR_VERSION = 2
_BASE_COLOURS = {  # RGB per class; each instance jitters around its class colour
    "circle": (215, 45, 45),
    "square": (45, 175, 70),
    "triangle": (55, 95, 225),
    "ring": (230, 195, 35),
    "cross": (195, 65, 215),
}
_COLOUR_JITTER = 30
_NOISE = 4                # amplitude of the 2x2-pixel grain noise (grey levels)
_PLACE_ATTEMPTS = 30
_MARGIN = 2.0             # minimum gap between object boxes, pixels
_SPLITS = ("train", "val")


# ---------------------------------------------------------------------------------------------------
# shapes (polygons centred on the origin, radius r, rotation theta)
# ---------------------------------------------------------------------------------------------------
def _circle_points(r: float, n: int, theta: float, reverse: bool = False) -> np.ndarray:
    a = theta + 2.0 * np.pi * np.arange(n + (1 if reverse else 0)) / n
    if reverse:
        a = a[::-1]
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _n_vertices(r: float) -> int:
    return int(np.clip(round(math.pi * r / 2.0), 12, 64))


def _shape_polygon(name: str, r: float, theta: float) -> np.ndarray:
    """(V, 2) vertices of one class's shape. The ring is one polygon with a zero-width slit to its hole,
    which pycocotools' even-odd rasterisation turns into an annulus."""
    if name == "circle":
        return _circle_points(r, _n_vertices(r), theta)
    if name == "square":
        return _circle_points(r, 4, theta + np.pi / 4)
    if name == "triangle":
        return _circle_points(r, 3, theta - np.pi / 2)
    if name == "ring":
        n = _n_vertices(r)
        outer = np.concatenate([_circle_points(r, n, theta), _circle_points(r, 1, theta)])
        inner = _circle_points(0.55 * r, n, theta, reverse=True)
        return np.concatenate([outer, inner])
    if name == "cross":
        w = 0.3 * r
        pts = np.array([(w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w), (-w, -r), (w, -r),
                        (w, -w), (r, -w), (r, w), (w, w)])
        c, s = math.cos(theta), math.sin(theta)
        return pts @ np.array([[c, s], [-s, c]])
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------------
# one image
# ---------------------------------------------------------------------------------------------------
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float (S, S, 3): a two-colour gradient plus low-frequency colour blobs and a few distractor lines."""
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    phi = rng.uniform(0, 2 * np.pi)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    t = np.float32(np.cos(phi)) * coords[None, :] + np.float32(np.sin(phi)) * coords[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]

    grid = int(rng.integers(3, 9))
    blobs = rng.uniform(-40, 40, (3, grid, grid)).astype(np.float32)
    for k in range(3):
        img[..., k] += np.asarray(Image.fromarray(blobs[k]).resize((size, size), Image.Resampling.BICUBIC))

    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 4))):
        xy = [float(v) for v in rng.uniform(0, size, 4)]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.line(xy, fill=colour, width=int(rng.integers(1, 3)))
    return np.asarray(canvas, dtype=np.float32)


def _grain(rng: np.random.Generator, size: int) -> np.ndarray:
    """Per-pixel noise in 2x2 grains: texture on every surface that still compresses (small PNG files)."""
    half = (size + 1) // 2
    noise = rng.integers(-_NOISE, _NOISE + 1, (half, half, 3)).astype(np.float32)
    return np.repeat(np.repeat(noise, 2, axis=0), 2, axis=1)[:size, :size]


def _place_objects(rng: np.random.Generator, size: int, min_object: float) -> list[tuple[int, np.ndarray]]:
    """Non-overlapping (class index, polygon in pixels) pairs, largest first."""
    d_min, d_max = min_object, 0.8 * size
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    diameters = np.sort(np.exp(rng.uniform(math.log(d_min), math.log(d_max), n)))[::-1]
    placed: list[tuple[int, np.ndarray]] = []
    boxes: list[tuple[float, float, float, float]] = []
    for d in diameters:
        cls = int(rng.integers(len(SYNTHETIC_CLASSES)))
        poly = _shape_polygon(SYNTHETIC_CLASSES[cls], d / 2.0, float(rng.uniform(0, 2 * np.pi)))
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        if np.any(hi - lo > size - 2):  # a rotated cross can exceed its diameter a little
            poly = poly * ((size - 2) / float(np.max(hi - lo)))
            lo, hi = poly.min(axis=0), poly.max(axis=0)
        for _ in range(_PLACE_ATTEMPTS):
            centre = rng.uniform(-lo, size - hi)
            x0, y0 = centre + lo
            x1, y1 = centre + hi
            if all(x0 > bx1 + _MARGIN or x1 < bx0 - _MARGIN or y0 > by1 + _MARGIN or y1 < by0 - _MARGIN
                   for bx0, by0, bx1, by1 in boxes):
                placed.append((cls, np.round(poly + centre, 2)))
                boxes.append((x0, y0, x1, y1))
                break
    return placed


def _draw_image(rng: np.random.Generator, size: int, min_object: float) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The uint8 (S, S, 3) image and its annotations (without ids)."""
    from pycocotools import mask as mask_utils

    from piip_search.data._masks import decode_rle, segmentation_to_rle

    img = _background(rng, size)
    anns = []
    for cls, poly in _place_objects(rng, size, min_object):
        flat = [float(v) for v in poly.reshape(-1)]
        rle = segmentation_to_rle([flat], size, size)
        mask = decode_rle(rle).astype(bool)
        base = np.array(_BASE_COLOURS[SYNTHETIC_CLASSES[cls]], dtype=np.float32)
        img[mask] = np.clip(base + rng.uniform(-_COLOUR_JITTER, _COLOUR_JITTER, 3), 0, 255)
        x0, y0 = poly.min(axis=0)
        x1, y1 = poly.max(axis=0)
        anns.append({
            "category_id": cls + 1,
            "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
            "area": float(mask_utils.area(rle)),
            "iscrowd": 0,
            "segmentation": [flat],
        })
    img += _grain(rng, size)
    return np.clip(img, 0, 255).astype(np.uint8), anns


# ---------------------------------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------------------------------
def _min_object(size: int, min_object: float | None) -> float:
    """The smallest object diameter in pixels: `min_object`, or `size / 10` by default."""
    if min_object is None:
        return size / DEFAULT_MIN_OBJECT_FRACTION
    if isinstance(min_object, bool) or not isinstance(min_object, (int, float)) or not 2 <= min_object <= 0.8 * size:
        raise DatasetError(f"synthetic dataset: `min_object` must be a diameter in [2, {0.8 * size:g}] pixels "
                           f"(0.8 x size), got {min_object!r}")
    return float(min_object)


def _check_args(images: int, val_images: int, size: int, seed: int) -> None:
    for name, value, lo in (("images", images, 1), ("val_images", val_images, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise DatasetError(f"synthetic dataset: `{name}` must be an integer >= {lo}, got {value!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise DatasetError(f"synthetic dataset: `size` must be an integer in [{MIN_SIZE}, {MAX_SIZE}] "
                           f"pixels, got {size!r}")


def _write_split(root: Path, split: str, n: int, size: int, seed: int, min_object: float) -> None:
    img_dir = root / split
    img_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(n):
        rng = np.random.default_rng([seed, _SPLITS.index(split), i])
        pixels, anns = _draw_image(rng, size, min_object)
        name = f"{i:06d}.png"
        Image.fromarray(pixels).save(img_dir / name, format="PNG", compress_level=1)
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, **ann})
    coco = {
        "info": {"description": "piip-search synthetic shapes", "version": str(_GENERATOR_VERSION),
                 "split": split, "size": size, "seed": seed},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name, "supercategory": "shape"}
                       for k, name in enumerate(SYNTHETIC_CLASSES)],
    }
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / f"instances_{split}.json").write_text(json.dumps(coco, separators=(",", ":")) + "\n")


def make_synthetic_coco(
    out_dir: str | os.PathLike[str],
    *,
    images: int = DEFAULT_IMAGES,
    val_images: int | None = None,
    size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    min_object: float | None = None,
) -> Path:
    """Write a synthetic COCO dataset (see the module docstring) and return its root folder.

    The defaults (256 training and 64 validation images of 256 px, about 4.2 objects each, 25 MB) suit a
    fast CPU proxy run and take 3-5 seconds to write on one core.

    Args:
        out_dir: Folder to create; it must not exist or be empty.
        images: Number of training images.
        val_images: Number of validation images; None means ``max(1, images // 4)``.
        size: Side of the square images, in pixels (32 to 4096).
        seed: Seed; the same arguments give byte-identical files.
        min_object: Smallest object diameter in pixels (2 to 0.8 * size); None means ``size / 10``.

    Raises:
        DatasetError: An argument is out of range, or ``out_dir`` is a file or a non-empty folder.
    """
    if val_images is None:
        val_images = max(1, images // 4) if isinstance(images, int) else images
    _check_args(images, val_images, size, seed)
    d_min = _min_object(size, min_object)  # checked before anything is written
    root = Path(out_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"{root}: output folder must not exist or be empty (it would mix datasets); "
                           f"choose a new folder")
    root.mkdir(parents=True, exist_ok=True)
    _write_split(root, "train", images, size, seed, d_min)
    _write_split(root, "val", val_images, size, seed, d_min)
    return root


def cache_root() -> Path:
    """Where generated data is cached: `$PIIP_SEARCH_CACHE`, else `$XDG_CACHE_HOME/piip-search`, else
    `~/.cache/piip-search`."""
    if os.environ.get("PIIP_SEARCH_CACHE"):
        return Path(os.environ["PIIP_SEARCH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "piip-search"


def cached_synthetic_coco(
    *,
    images: int = DEFAULT_IMAGES,
    val_images: int | None = None,
    size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    min_object: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The root of a synthetic dataset with these arguments, generated on first use and cached.

    The folder is `<cache_dir or cache_root()>/synthetic-<hash of the arguments and generator version>`.
    Generation goes to a temporary sibling that is renamed into place, so concurrent workers never see a
    half-written dataset (the loser of a race discards its copy).
    """
    if val_images is None:
        val_images = max(1, images // 4) if isinstance(images, int) else images
    _check_args(images, val_images, size, seed)
    params = {"version": _GENERATOR_VERSION, "images": images, "val_images": val_images,
              "size": size, "seed": seed, "min_object": _min_object(size, min_object)}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    base = Path(cache_dir) if cache_dir is not None else cache_root()
    final = base / f"synthetic-{key}"
    if (final / "annotations" / "instances_val.json").is_file():
        return final
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".synthetic-{key}-", dir=base))
    except OSError as e:
        raise DatasetError(f"{base}: cannot create the synthetic-data cache ({e.strerror}); "
                           f"set PIIP_SEARCH_CACHE to a writable folder") from e
    try:
        make_synthetic_coco(tmp, images=images, val_images=val_images, size=size, seed=seed,
                            min_object=min_object)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "annotations" / "instances_val.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def default_dataset_dir(*, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The default synthetic dataset (`DEFAULT_*` arguments), generated once and cached; see
    `cached_synthetic_coco`."""
    return cached_synthetic_coco(cache_dir=cache_dir)
