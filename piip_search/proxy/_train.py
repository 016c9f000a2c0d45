"""Proxy training: a short, seeded detection (or classification) run of a PIIP config, scored by COCO AP.

`train_proxy(cfg, data_dir, settings)` never raises for a bad run: every outcome is a `ProxyResult` whose
`status` says what happened (design.md habit 19, "a divergent proxy run is a trial outcome, not a crash"):

=================  =============================================================================
ok                 trained (possibly stopped early by `time_budget_s` or `on_eval`) and evaluated
diverged           the loss or the gradient norm became NaN/inf
oom                out of memory (`torch.cuda.OutOfMemoryError`, or `MemoryError` on the host)
invalid_config     the config (or the settings) is invalid, or its network cannot be built
data_error         the dataset folder, an annotation file or an image is missing or corrupt
failed             anything else (the message holds the exception)
=================  =============================================================================

Recipe (piip-architecture.md §5, shortened): AdamW (no decay on norms, biases, position embeddings and
LayerScale/interaction gammas), linear warm-up then cosine decay, optional layer-wise decay over the
branches' blocks, gradient clipping, bf16 autocast on CUDA, fixed seeds and a seeded data order.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from piip_search.config import PIIPConfig, load_config
from piip_search.errors import ConfigError, DatasetError
from piip_search.proxy._settings import DETECTORS, ProxySettings, proxy_config

if TYPE_CHECKING:
    import os

__all__ = ["STATUSES", "ProxyResult", "ProxySettings", "param_groups", "train_proxy"]

#: Every value `ProxyResult.status` can take.
STATUSES: tuple[str, ...] = ("ok", "diverged", "oom", "invalid_config", "data_error", "failed")

#: Datasets up to this many images are decoded once into memory (the synthetic set is 256 + 64 images).
_PRELOAD_LIMIT = 4000
_LOSS_WINDOW = 10  # loss_start / loss_end / the shown loss are means over this many iterations

OnEval = Callable[[int, dict[str, Any]], bool]


@dataclass
class ProxyResult:
    """Outcome of one proxy run; `to_dict()` is JSON-serialisable. Metrics are fractions in [0, 1].

    `ap*` are the box AP of the last evaluation (None if none happened), `mask_ap*` the mask AP (Mask R-CNN),
    `top1` the accuracy of a classification run. `iters` counts the optimizer steps done; `images_per_s`
    is the training throughput (evaluation excluded); `peak_mem_mb` is CUDA's max allocated memory, or the
    peak resident size of the process on CPU. `history` holds one entry per evaluation.
    """

    status: str
    message: str = ""
    ap: float | None = None
    ap50: float | None = None
    ap75: float | None = None
    ap_small: float | None = None
    ap_medium: float | None = None
    ap_large: float | None = None
    mask_ap: float | None = None
    mask_ap50: float | None = None
    top1: float | None = None
    iters: int = 0
    wall_s: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    images_per_s: float | None = None
    peak_mem_mb: float | None = None
    loss_start: float | None = None
    loss_end: float | None = None
    stop_reason: str | None = None  # "iters" | "time_budget" | "on_eval" (status ok only)
    task: str | None = None
    detector: str | None = None
    input_side: int | None = None
    device: str | None = None
    params_m: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def metrics(self) -> dict[str, Any]:
        """The evaluation numbers only (what `on_eval` receives, minus `iters`/`loss`)."""
        keys = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "mask_ap", "mask_ap50", "top1")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None  # JSON has no NaN
        return d


class _RunFailure(Exception):
    """Ends a run with a named status (caught in `train_proxy`)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise _RunFailure("invalid_config", f"proxy.device: not a torch device, got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise _RunFailure("invalid_config",
                              f"proxy.device: {name!r} asked for, but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise _RunFailure("invalid_config", f"proxy.device: {name!r} does not exist "
                              f"({torch.cuda.device_count()} CUDA device(s))")
    return dev


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Linux reports ru_maxrss in KiB (macOS in bytes); it is the peak of the whole process so far.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


class _RunLog:
    """Plain-text log of a run (one line per event), appended to `path` when given."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._f = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, line: str) -> None:
        if self._f is not None:
            self._f.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


# ---------------------------------------------------------------------------------------------------------
# optimizer
# ---------------------------------------------------------------------------------------------------------
_BRANCH_PARAM = re.compile(r"(?:^|\.)branches\.(\d+)\.(?:blocks\.(\d+)\.|(patch_embed|pos_embed|cls_token))")
_NO_DECAY_SUFFIXES = ("pos_embed", "cls_token", "gamma")


def _no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full parameter names listed by any submodule's `no_weight_decay()` (timm convention)."""
    names: set[str] = set()
    for prefix, m in model.named_modules():
        fn = getattr(m, "no_weight_decay", None)
        if callable(fn):
            for n in fn():
                names.add(f"{prefix}.{n}" if prefix else n)
    return names


def param_groups(model: nn.Module, cfg: PIIPConfig, *, lr: float, weight_decay: float,
                 layer_decay: float | None) -> list[dict[str, Any]]:
    """AdamW parameter groups: no decay on 1-d parameters (norms, biases, gammas), position embeddings and cls
    tokens; with `layer_decay`, the PIIP recipe's layer-wise rates (§5): branch i's block k sits at layer
    `round((k + 1) * L / depth_i)` with L the deepest branch's depth, patch/position embeddings at layer 0,
    everything else (interactions, merge, neck, heads) at L + 1 with the full rate;
    scale = decay^(L + 1 - layer).
    """
    num_layers = max(b.n_blocks for b in cfg.branches)
    skip = _no_weight_decay_names(model)
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name in skip or name.endswith(_NO_DECAY_SUFFIXES)
        scale = 1.0
        if layer_decay is not None:
            layer = num_layers + 1
            m = _BRANCH_PARAM.search(name)
            if m:
                branch = int(m.group(1))
                if m.group(2) is not None and branch < len(cfg.branches):
                    depth = cfg.branches[branch].n_blocks
                    layer = max(1, round((int(m.group(2)) + 1) * num_layers / depth))
                elif m.group(3) is not None:
                    layer = 0
            scale = layer_decay ** (num_layers + 1 - layer)
        key = (scale, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr * scale, "lr_scale": scale,
                           "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(p)
    return list(groups.values())


def _lr_lambda(s: ProxySettings) -> Callable[[int], float]:
    warm, total = s.warmup_iters, s.iters

    def f(step: int) -> float:
        if warm and step < warm:
            return 0.001 + (1.0 - 0.001) * step / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return s.min_lr_ratio + (1.0 - s.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    return f


class _EMA:
    """Exponential moving average of a model's weights (timm-style warm-up of the decay)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay = decay
        self.updates = 0
        self._ema = [p for p in self.module.parameters()]
        self._src = [p for p in model.parameters()]
        self._ema_buf = [b for b in self.module.buffers()]
        self._src_buf = [b for b in model.buffers()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(list(self._ema), [p.detach() for p in self._src], 1.0 - d)
        for e, b in zip(self._ema_buf, self._src_buf, strict=True):
            e.copy_(b)


# ---------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------
class _Split:
    """One split held in memory (small sets) or read on demand, with a seeded batch order."""

    def __init__(self, dataset: Any, preload: bool) -> None:
        self.dataset = dataset
        self.items = [dataset[i] for i in range(len(dataset))] if preload else None

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, indices: list[int]) -> list[tuple[torch.Tensor, Any]]:
        if self.items is not None:
            return [self.items[i] for i in indices]
        return [self.dataset[i] for i in indices]


class _SeededBatchSampler:
    """Endless index batches: a new seeded permutation of the split every epoch."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.bs = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Any:
        order: list[int] = []
        while True:
            while len(order) < self.bs:
                order += torch.randperm(self.n, generator=self.gen).tolist()
            batch, order = order[:self.bs], order[self.bs:]
            yield batch


class _Batches:
    """Seeded training batches (in memory, or through DataLoader workers) with seeded horizontal flips."""

    def __init__(self, split: _Split, batch_size: int, seed: int, hflip: bool, num_workers: int) -> None:
        self.hflip = hflip
        self.flip_gen = torch.Generator().manual_seed(seed + 1)
        sampler = _SeededBatchSampler(len(split), batch_size, seed)
        if split.items is None and num_workers > 0:
            from torch.utils.data import DataLoader

            loader = DataLoader(split.dataset, batch_sampler=sampler, num_workers=num_workers,
                                collate_fn=list, persistent_workers=False)
            self._it: Iterator[list[tuple[torch.Tensor, Any]]] = iter(loader)
        else:
            self._it = (split.get(idx) for idx in sampler)

    def next(self) -> list[tuple[torch.Tensor, Any]]:
        items = next(self._it)
        if not self.hflip:
            return items
        flips = (torch.rand(len(items), generator=self.flip_gen) < 0.5).tolist()
        return [_flip(*item) if f else item for item, f in zip(items, flips, strict=True)]


def _flip(image: torch.Tensor, target: Any) -> tuple[torch.Tensor, Any]:
    image = image.flip(-1)
    if not isinstance(target, dict):  # classification label
        return image, target
    w = image.shape[-1]
    t = dict(target)
    b = t["boxes"].clone()
    b[:, [0, 2]] = w - t["boxes"][:, [2, 0]]
    t["boxes"] = b
    if "masks" in t:
        t["masks"] = t["masks"].flip(-1)
    return image, t


def _load_detection_data(data_dir: Any, side: int, masks: bool, val_images: int | None
                         ) -> tuple[_Split, _Split, Any, list[int]]:
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
        val_split = _Split(Subset(val, range(val_images)), preload=True)
    else:
        ids = val.image_ids
        val_split = _Split(val, preload=len(val) <= _PRELOAD_LIMIT)
    train_split = _Split(train, preload=len(train) <= _PRELOAD_LIMIT)
    return train_split, val_split, val, ids


def _load_classification_data(data_dir: Any, side: int, val_images: int | None
                              ) -> tuple[_Split, _Split, int]:
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
    return (_Split(train, preload=len(train) <= _PRELOAD_LIMIT),
            _Split(val, preload=len(val) <= _PRELOAD_LIMIT), len(train.classes))


def _to_device(batch: list[tuple[torch.Tensor, Any]], device: torch.device
               ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images = [img.to(device, non_blocking=True) for img, _ in batch]
    targets = [{k: v.to(device, non_blocking=True) for k, v in t.items() if k in ("boxes", "labels", "masks")}
               for _, t in batch]
    return images, targets


# ---------------------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------------------
class _Progress:
    """A rich progress bar on stderr (iterations, loss, images/s), or nothing."""

    def __init__(self, enabled: bool, total: int, title: str) -> None:
        self._p = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[ips]} img/s"),
                               TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                               console=Console(stderr=True), refresh_per_second=4)
            self._p.start()
            self._task = self._p.add_task(title, total=total, loss="-", ips="-", note="")

    def update(self, done: int, **fields: Any) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, **fields)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


# ---------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------
def _autocast(device: torch.device, amp: bool) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=bool(amp and device.type == "cuda"))


@torch.no_grad()
def _evaluate_detector(model: nn.Module, val: _Split, gt_ds: Any, image_ids: list[int], s: ProxySettings,
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
            with _autocast(device, s.amp):
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
def _evaluate_classifier(model: nn.Module, val: _Split, s: ProxySettings, device: torch.device
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
            with _autocast(device, s.amp):
                logits = model(x)
            correct += int((logits.argmax(-1) == y).sum())
            total += len(batch)
    finally:
        model.train(was_training)
    return {"top1": correct / max(1, total)}


# ---------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------
def _resolve_config(cfg: PIIPConfig | str | os.PathLike[str], s: ProxySettings) -> tuple[PIIPConfig, int]:
    try:
        base = cfg if isinstance(cfg, PIIPConfig) else load_config(cfg)
        scaled = proxy_config(base, s)
    except ConfigError as e:
        raise _RunFailure("invalid_config", str(e)) from None
    if base.task == "detection" and s.detector not in DETECTORS:  # settings validate this too
        raise _RunFailure("invalid_config", f"proxy.detector: must be one of {list(DETECTORS)}")
    return base, scaled.input_resolution


def _build(base: PIIPConfig, num_classes: int, s: ProxySettings) -> nn.Module:
    from piip_search.proxy._detector import build_classifier, build_detector

    try:
        if base.task == "classification":
            if base.num_classes != num_classes:
                base = base.model_copy(update={"num_classes": num_classes})
            return build_classifier(base, settings=s)
        return build_detector(base, num_classes=num_classes, settings=s)
    except Exception as e:  # noqa: BLE001 - any build failure is a property of the config
        if _is_oom(e):
            raise
        raise _RunFailure("invalid_config", f"the network cannot be built: {_describe(e)}") from None


def train_proxy(cfg: PIIPConfig | str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None,
                settings: ProxySettings | None = None, *, progress: bool = True,
                log_path: str | os.PathLike[str] | None = None, on_eval: OnEval | None = None) -> ProxyResult:
    """Train the detector (or classifier) of `cfg` for a while and score it; never raises for a bad run.

    Args:
        cfg: A `PIIPConfig`, a YAML path or a shipped model name.
        data_dir: COCO folder (`train/`, `val/`, `annotations/instances_{train,val}.json`); for a
            classification config an image folder (`train/<class>/`, `val/<class>/`). None = the default
            synthetic detection set (generated and cached on first use).
        settings: Training and evaluation settings (default: `ProxySettings()`).
        progress: Show a rich progress bar on stderr.
        log_path: Append a plain-text log of the run here.
        on_eval: Called as `on_eval(iters, metrics)` after each evaluation at `settings.eval_at` (metrics hold
            `ap`, `ap50`, ... or `top1`, plus `loss`); returning False stops the run there (status ok,
            `stop_reason` "on_eval").

    Returns:
        A `ProxyResult`; `status` is one of `STATUSES`.
    """
    s = settings or ProxySettings()
    t0 = time.perf_counter()
    res = ProxyResult(status="failed", settings=s.to_dict())
    log = _RunLog(log_path)
    bar: _Progress | None = None
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        if s.num_threads is not None:
            torch.set_num_threads(s.num_threads)
        device = _resolve_device(s.device)
        res.device = str(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        base, side = _resolve_config(cfg, s)
        res.task, res.input_side = base.task, side
        res.detector = s.detector if base.task == "detection" else None
        log(f"proxy run: {base.name or 'config'} task={base.task} side={side} device={device} settings={s}")

        with_masks = base.task == "detection" and s.detector == "mask_rcnn"
        try:
            if data_dir is None:
                if base.task != "detection":
                    raise DatasetError("a classification config needs `data_dir` (an image folder); "
                                       "the default synthetic set is for detection")
                from piip_search.data import default_dataset_dir

                data_dir = default_dataset_dir()
            if base.task == "detection":
                train, val, gt_ds, val_ids = _load_detection_data(data_dir, side, with_masks, s.val_images)
                num_classes = gt_ds.num_classes
            else:
                train, val, num_classes = _load_classification_data(data_dir, side, s.val_images)
                gt_ds, val_ids = None, []
        except (DatasetError, OSError) as e:
            raise _RunFailure("data_error", str(e) if isinstance(e, DatasetError) else _describe(e)) from None
        log(f"data: {data_dir} train={len(train)} val={len(val)} classes={num_classes}")

        _seed_everything(s.seed)
        model = _build(base, num_classes, s)
        res.params_m = sum(p.numel() for p in model.parameters()) / 1e6
        model.to(device).train()
        groups = param_groups(model, model.piip_cfg, lr=s.lr, weight_decay=s.weight_decay,  # type: ignore[arg-type]
                              layer_decay=s.layer_decay)
        opt = torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.999), fused=device.type in ("cpu", "cuda"))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(s))
        ema = _EMA(model, s.ema_decay) if s.ema_decay is not None else None
        scored = ema.module if ema is not None else model

        evaluate: Callable[[], dict[str, float]]
        if base.task == "detection":
            def evaluate() -> dict[str, float]:
                return _evaluate_detector(scored, val, gt_ds, val_ids, s, device, with_masks)
        else:
            def evaluate() -> dict[str, float]:
                return _evaluate_classifier(scored, val, s, device)

        bar = _Progress(progress, s.iters, f"{base.name or 'proxy'} [{res.detector or 'classifier'}]")
        _train_loop(model, opt, sched, ema, train, s, device, evaluate, on_eval, res, log, bar, t0)
        res.status = "ok"
    except _RunFailure as e:
        res.status, res.message = e.status, e.message
    except DatasetError as e:  # an image read during training (datasets too large to preload)
        res.status, res.message = "data_error", str(e)
    except Exception as e:  # noqa: BLE001 - a bad run is data, not a crash
        if _is_oom(e):
            res.status, res.message = "oom", f"out of memory on {device}: {_describe(e)}"
        else:
            res.status, res.message = "failed", _describe(e)
    finally:
        if bar is not None:
            bar.close()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        res.wall_s = time.perf_counter() - t0
        try:
            res.peak_mem_mb = _peak_mem_mb(device)
        except Exception:  # noqa: BLE001
            res.peak_mem_mb = None
        if device.type == "cuda" and res.status == "oom":
            torch.cuda.empty_cache()
        log(f"result: status={res.status} {res.message} ap={res.ap} ap50={res.ap50} top1={res.top1} "
            f"iters={res.iters} wall_s={res.wall_s:.1f}")
        log.close()
    return res


def _train_loop(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, ema: _EMA | None, train: _Split,
                s: ProxySettings, device: torch.device, evaluate: Callable[[], dict[str, float]],
                on_eval: OnEval | None, res: ProxyResult, log: _RunLog, bar: _Progress, t0: float) -> None:
    detection = res.task == "detection"
    batches = _Batches(train, s.batch_size, s.seed, s.hflip, s.num_workers)
    params = [p for g in opt.param_groups for p in g["params"]]
    losses: list[float] = []
    eval_points = set(s.eval_at)
    train_s = 0.0
    stop_reason = "iters"
    if not detection:
        from piip_search.proxy._detector import IMAGE_MEAN, IMAGE_STD

        mean = torch.tensor(IMAGE_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGE_STD, device=device).view(1, 3, 1, 1)

    def record(it: int, metrics: dict[str, float]) -> dict[str, Any]:
        for k, v in metrics.items():
            setattr(res, k, v)
        recent = losses[-_LOSS_WINDOW:]
        entry = {"iters": it, **metrics, "loss": sum(recent) / len(recent) if recent else None,
                 "elapsed_s": round(time.perf_counter() - t0, 3)}
        res.history.append(entry)
        log(f"eval @ {it}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return entry

    def eval_point(it: int) -> bool:
        """Evaluate at `it`; False if `on_eval` asks to stop."""
        bar.update(it, note="evaluating")
        t_eval = time.perf_counter()
        entry = record(it, evaluate())
        res.eval_s += time.perf_counter() - t_eval
        bar.update(it, note="")
        if on_eval is not None and not on_eval(it, {k: v for k, v in entry.items() if k != "elapsed_s"}):
            log(f"stopped by on_eval at iteration {it}")
            return False
        return True

    it = 0
    if 0 in eval_points and not eval_point(0):
        stop_reason = "on_eval"
    while it < s.iters and stop_reason == "iters":
        tick = time.perf_counter()
        batch = batches.next()
        with _autocast(device, s.amp):
            if detection:
                images, targets = _to_device(batch, device)
                loss_dict = model(images, targets)
                loss = sum(loss_dict.values())
            else:
                x = (torch.stack([img for img, _ in batch]).to(device) - mean) / std
                y = torch.tensor([int(lab) for _, lab in batch], device=device)
                loss = nn.functional.cross_entropy(model(x).float(), y)
        if s.inject_nan_at_iter is not None and it + 1 == s.inject_nan_at_iter:
            loss = loss * float("nan")
        value = float(loss.detach())
        if not math.isfinite(value):
            res.iters = it
            raise _RunFailure("diverged", f"non-finite loss ({value}) at iteration {it + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s.grad_clip is not None:
            norm = float(torch.nn.utils.clip_grad_norm_(params, s.grad_clip))
            if not math.isfinite(norm):
                res.iters = it
                raise _RunFailure("diverged", f"non-finite gradient norm ({norm}) at iteration {it + 1}")
        opt.step()
        sched.step()
        if ema is not None:
            ema.update()
        it += 1
        res.iters = it
        losses.append(value)
        train_s += time.perf_counter() - tick
        if it % s.log_every == 0 or it == s.iters:
            recent = losses[-_LOSS_WINDOW:]
            ips = it * s.batch_size / max(train_s, 1e-9)
            bar.update(it, loss=f"{sum(recent) / len(recent):.3f}", ips=f"{ips:.1f}")
            log(f"iter {it}/{s.iters} loss {sum(recent) / len(recent):.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e} img/s {ips:.1f}")
        else:
            bar.update(it)
        if s.time_budget_s is not None and time.perf_counter() - t0 >= s.time_budget_s and it < s.iters:
            stop_reason = "time_budget"
            log(f"time budget of {s.time_budget_s}s reached at iteration {it}")
            break
        if it in eval_points and it < s.iters and not eval_point(it):
            stop_reason = "on_eval"
            break

    res.train_s = train_s
    res.images_per_s = res.iters * s.batch_size / train_s if train_s > 0 else None
    if losses:
        head, tail = losses[:_LOSS_WINDOW], losses[-_LOSS_WINDOW:]
        res.loss_start, res.loss_end = sum(head) / len(head), sum(tail) / len(tail)
    res.stop_reason = stop_reason
    if stop_reason != "on_eval":  # final evaluation (an on_eval stop point was just evaluated)
        if res.iters in eval_points:
            eval_point(res.iters)
        else:
            bar.update(res.iters, note="evaluating")
            t_eval = time.perf_counter()
            record(res.iters, evaluate())
            res.eval_s += time.perf_counter() - t_eval
            bar.update(res.iters, note="")
