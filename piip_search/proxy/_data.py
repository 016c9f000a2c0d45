"""The proxy's data: splits held in memory or read on demand, an endless seeded batch order, seeded
horizontal flips (torchvision's v2 functional ops, boxes and masks included), and the dataset loaders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import RandomSampler
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from piip_search.errors import DatasetError

#: Datasets up to this many images are decoded once into memory (the synthetic set is 256 + 64 images).
PRELOAD_LIMIT = 4000

Item = tuple[torch.Tensor, Any]


class Split:
    """One split held in memory (small sets) or read on demand."""

    def __init__(self, dataset: Any, preload: bool) -> None:
        self.dataset = dataset
        self.items = [dataset[i] for i in range(len(dataset))] if preload else None

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, indices: list[int]) -> list[Item]:
        if self.items is not None:
            return [self.items[i] for i in indices]
        return [self.dataset[i] for i in indices]


def seeded_batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless index batches: a new seeded permutation every epoch, a batch may straddle two epochs (so no
    image is dropped or repeated within an epoch whatever the batch size)."""
    sampler = RandomSampler(range(n), generator=torch.Generator().manual_seed(seed))
    order: list[int] = []
    while True:
        while len(order) < batch_size:
            order += list(iter(sampler))
        batch, order = order[:batch_size], order[batch_size:]
        yield batch


class Batches:
    """Seeded training batches (in memory, or through DataLoader workers) with seeded horizontal flips."""

    def __init__(self, split: Split, batch_size: int, seed: int, hflip: bool, num_workers: int) -> None:
        self.hflip = hflip
        self.flip_gen = torch.Generator().manual_seed(seed + 1)
        order = seeded_batches(len(split), batch_size, seed)
        if split.items is None and num_workers > 0:
            from torch.utils.data import DataLoader

            loader = DataLoader(split.dataset, batch_sampler=order, num_workers=num_workers,
                                collate_fn=list, persistent_workers=False)
            self._it: Iterator[list[Item]] = iter(loader)
        else:
            self._it = (split.get(idx) for idx in order)

    def next(self) -> list[Item]:
        items = next(self._it)
        if not self.hflip:
            return items
        flips = (torch.rand(len(items), generator=self.flip_gen) < 0.5).tolist()
        return [flip(*item) if f else item for item, f in zip(items, flips, strict=True)]


def flip(image: torch.Tensor, target: Any) -> Item:
    """Horizontal flip of an image and its boxes/masks (a classification label is left as it is)."""
    out_image = TF.horizontal_flip(image)
    if not isinstance(target, dict):
        return out_image, target
    t = dict(target)
    boxes = tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:]))
    t["boxes"] = TF.horizontal_flip(boxes).as_subclass(torch.Tensor)
    if "masks" in t:
        t["masks"] = TF.horizontal_flip(tv_tensors.Mask(t["masks"])).as_subclass(torch.Tensor)
    return out_image, t


def load_detection_data(data_dir: Any, side: int, masks: bool, val_images: int | None
                         ) -> tuple[Split, Split, Any, list[int]]:
    from piip_search.data import CocoDetection, coco_layout

    layout = coco_layout(data_dir)
    train = CocoDetection(layout.train_images, layout.train_json, size=side, masks=masks, include_crowd=False,
                          skip_empty=False)
    val = CocoDetection(layout.val_images, layout.val_json, size=side, masks=False)
    if len(train) == 0:
        raise DatasetError(f"{layout.train_json}: the training split has no images")
    if len(val) == 0:
        raise DatasetError(f"{layout.val_json}: the validation split has no images")
    if train.num_classes == 0:
        raise DatasetError(f"{layout.train_json}: no categories")
    if train.label_to_category != val.label_to_category:
        raise DatasetError(f"{layout.train_json} and {layout.val_json} list different categories")
    if val_images is not None and val_images < len(val):
        from torch.utils.data import Subset

        ids = val.image_ids[:val_images]
        val_split = Split(Subset(val, range(val_images)), preload=True)
    else:
        ids = val.image_ids
        val_split = Split(val, preload=len(val) <= PRELOAD_LIMIT)
    train_split = Split(train, preload=len(train) <= PRELOAD_LIMIT)
    return train_split, val_split, val, ids


def load_classification_data(data_dir: Any, side: int, val_images: int | None
                              ) -> tuple[Split, Split, int]:
    from torchvision import datasets, transforms

    root = Path(data_dir)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DatasetError(f"{root / split}: image folder not found (classification data is "
                               f"train/<class>/*.png and val/<class>/*.png)")
    tf = transforms.Compose([transforms.Resize((side, side)), transforms.ToTensor()])
    try:
        train = datasets.ImageFolder(str(root / "train"), transform=tf)
        val = datasets.ImageFolder(str(root / "val"), transform=tf)
    except (FileNotFoundError, OSError) as e:
        raise DatasetError(f"{root}: {e}") from None
    if train.classes != val.classes:
        raise DatasetError(f"{root}: train/ and val/ have different class folders")
    if val_images is not None and val_images < len(val):
        from torch.utils.data import Subset

        val = Subset(val, range(val_images))
    return (Split(train, preload=len(train) <= PRELOAD_LIMIT),
            Split(val, preload=len(val) <= PRELOAD_LIMIT), len(train.classes))


def to_device(batch: list[tuple[torch.Tensor, Any]], device: torch.device
               ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images = [img.to(device, non_blocking=True) for img, _ in batch]
    targets = [{k: v.to(device, non_blocking=True) for k, v in t.items() if k in ("boxes", "labels", "masks")}
               for _, t in batch]
    return images, targets


