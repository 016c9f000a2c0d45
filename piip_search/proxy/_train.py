"""Proxy training: a short, seeded detection (or classification) run of a PIIP config, scored by COCO AP.

`train_proxy(cfg, data_dir, settings)` never raises for a bad run: every outcome is a `ProxyResult` whose
`status` says what happened:

=================  =============================================================================
ok                 trained (possibly stopped early by `time_budget_s` or `on_eval`) and evaluated
diverged           the loss or the gradient norm became NaN/inf
oom                out of memory (`torch.cuda.OutOfMemoryError`, or `MemoryError` on the host)
invalid_config     the config (or the settings) is invalid, or its network cannot be built
data_error         the dataset folder, an annotation file or an image is missing or corrupt
failed             anything else (the message holds the exception)
=================  =============================================================================

The run: fixed seeds, the recipe of `_recipe.py`, the data of `_data.py`, bf16 autocast on CUDA, evaluations
at `eval_at` and at the end (`_scoring.py`), and every failure turned into a status (`_result.py`).
"""

from __future__ import annotations

import math
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from piip_search.config import PIIPConfig, load_config
from piip_search.errors import ConfigError, DatasetError
from piip_search.proxy._data import Batches, Split, load_classification_data, load_detection_data, to_device
from piip_search.proxy._recipe import ema_module, make_ema, make_optimizer, param_groups
from piip_search.proxy._result import STATUSES, OnEval, ProxyResult, RunFailure, describe, is_oom
from piip_search.proxy._scoring import autocast, evaluate_classifier, evaluate_detector
from piip_search.proxy._settings import ProxySettings, proxy_config

if TYPE_CHECKING:
    import os

__all__ = ["STATUSES", "ProxyResult", "ProxySettings", "param_groups", "train_proxy"]

_LOSS_WINDOW = 10  # loss_start / loss_end / the shown loss are means over this many iterations


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
        raise RunFailure("invalid_config", f"proxy.device: not a torch device, got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RunFailure("invalid_config", f"proxy.device: {name!r} asked for, but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RunFailure("invalid_config", f"proxy.device: {name!r} does not exist "
                             f"({torch.cuda.device_count()} CUDA device(s))")
    return dev


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Linux reports ru_maxrss in KiB (macOS in bytes); it is the peak of the whole process so far.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class _RunLog:
    """Plain-text log of a run (one line per event), appended to `path` when given."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._f = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, line: str) -> None:
        if self._f is not None:
            self._f.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class _Bar:
    """The proxy's progress bar on stderr (iterations, loss, images/s), or nothing."""

    def __init__(self, enabled: bool, total: int, title: str) -> None:
        self._p: Any = None
        if enabled:
            from piip_search._terminal import progress_bar

            self._p, self._task = progress_bar("loss {task.fields[loss]}", "{task.fields[ips]} img/s",
                                               "{task.fields[note]}", total=total, description=title,
                                               loss="-", ips="-", note="")

    def update(self, done: int, **fields: Any) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, **fields)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


def _resolve_config(cfg: PIIPConfig | str | os.PathLike[str], s: ProxySettings) -> tuple[PIIPConfig, int]:
    try:
        base = cfg if isinstance(cfg, PIIPConfig) else load_config(cfg)
        scaled = proxy_config(base, s)
    except ConfigError as e:
        raise RunFailure("invalid_config", str(e)) from None
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
        if is_oom(e):
            raise
        raise RunFailure("invalid_config", f"the network cannot be built: {describe(e)}") from None


def _load_data(base: PIIPConfig, data_dir: Any, side: int, s: ProxySettings, with_masks: bool
               ) -> tuple[Split, Split, int, Any, list[int], Any]:
    try:
        if data_dir is None:
            if base.task != "detection":
                raise DatasetError("a classification config needs `data_dir` (an image folder); "
                                   "the default synthetic set is for detection")
            from piip_search.data import default_dataset_dir

            data_dir = default_dataset_dir()
        if base.task == "detection":
            train, val, gt_ds, val_ids = load_detection_data(data_dir, side, with_masks, s.val_images)
            return train, val, gt_ds.num_classes, gt_ds, val_ids, data_dir
        train, val, num_classes = load_classification_data(data_dir, side, s.val_images)
        return train, val, num_classes, None, [], data_dir
    except (DatasetError, OSError) as e:
        raise RunFailure("data_error", str(e) if isinstance(e, DatasetError) else describe(e)) from None


def _run(cfg: Any, data_dir: Any, s: ProxySettings, res: ProxyResult, log: _RunLog, device: torch.device,
         progress: bool, on_eval: OnEval | None, t0: float) -> None:
    """Everything between settings and a trained, scored network; fills `res`."""
    base, side = _resolve_config(cfg, s)
    res.task, res.input_side = base.task, side
    res.detector = s.detector if base.task == "detection" else None
    log(f"proxy run: {base.name or 'config'} task={base.task} side={side} device={device} settings={s}")
    with_masks = base.task == "detection" and s.detector == "mask_rcnn"
    train, val, num_classes, gt_ds, val_ids, data_dir = _load_data(base, data_dir, side, s, with_masks)
    log(f"data: {data_dir} train={len(train)} val={len(val)} classes={num_classes}")

    _seed_everything(s.seed)
    model = _build(base, num_classes, s)
    res.params_m = sum(p.numel() for p in model.parameters()) / 1e6
    model.to(device).train()
    opt, sched = make_optimizer(model, model.piip_cfg, s, device)  # type: ignore[arg-type]
    ema = make_ema(model, s)
    scored = ema_module(ema, model)

    def evaluate() -> dict[str, float]:
        if base.task == "detection":
            return evaluate_detector(scored, val, gt_ds, val_ids, s, device, with_masks)
        return evaluate_classifier(scored, val, s, device)

    bar = _Bar(progress, s.iters, f"{base.name or 'proxy'} [{res.detector or 'classifier'}]")
    try:
        _Loop(model, opt, sched, ema, s, device, evaluate, on_eval, res, log, bar, t0).run(train)
    finally:
        bar.close()
    res.status = "ok"


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
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        if s.num_threads is not None:
            torch.set_num_threads(s.num_threads)
        device = _resolve_device(s.device)
        res.device = str(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _run(cfg, data_dir, s, res, log, device, progress, on_eval, t0)
    except RunFailure as e:
        res.status, res.message = e.status, e.message
    except DatasetError as e:  # an image read during training (datasets too large to preload)
        res.status, res.message = "data_error", str(e)
    except Exception as e:  # noqa: BLE001 - a bad run is data, not a crash
        if is_oom(e):
            res.status, res.message = "oom", f"out of memory on {device}: {describe(e)}"
        else:
            res.status, res.message = "failed", describe(e)
    finally:
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




class _Loop:
    """The training loop of one run: steps, logging, evaluation points, the stop reason."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, ema: Any, s: ProxySettings,
                 device: torch.device, evaluate: Callable[[], dict[str, float]], on_eval: OnEval | None,
                 res: ProxyResult, log: _RunLog, bar: _Bar, t0: float) -> None:
        self.model, self.opt, self.sched, self.ema, self.s, self.device = model, opt, sched, ema, s, device
        self.evaluate, self.on_eval, self.res, self.log, self.bar, self.t0 = evaluate, on_eval, res, log, bar, t0
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.losses: list[float] = []
        self.eval_points = set(s.eval_at)
        self.train_s = 0.0
        self.detection = res.task == "detection"
        if not self.detection:
            from piip_search.proxy._detector import IMAGE_MEAN, IMAGE_STD

            self.mean = torch.tensor(IMAGE_MEAN, device=device).view(1, 3, 1, 1)
            self.std = torch.tensor(IMAGE_STD, device=device).view(1, 3, 1, 1)

    def _record(self, it: int, metrics: dict[str, float]) -> dict[str, Any]:
        for k, v in metrics.items():
            setattr(self.res, k, v)
        recent = self.losses[-_LOSS_WINDOW:]
        entry = {"iters": it, **metrics, "loss": sum(recent) / len(recent) if recent else None,
                 "elapsed_s": round(time.perf_counter() - self.t0, 3)}
        self.res.history.append(entry)
        self.log(f"eval @ {it}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return entry

    def _eval_point(self, it: int, *, ask: bool = True) -> bool:
        """Evaluate at `it`; False if `on_eval` asks to stop."""
        self.bar.update(it, note="evaluating")
        t_eval = time.perf_counter()
        entry = self._record(it, self.evaluate())
        self.res.eval_s += time.perf_counter() - t_eval
        self.bar.update(it, note="")
        if ask and self.on_eval is not None and not self.on_eval(
                it, {k: v for k, v in entry.items() if k != "elapsed_s"}):
            self.log(f"stopped by on_eval at iteration {it}")
            return False
        return True

    def _loss(self, batch: list[tuple[torch.Tensor, Any]]) -> torch.Tensor:
        with autocast(self.device, self.s.amp):
            if self.detection:
                images, targets = to_device(batch, self.device)
                return sum(self.model(images, targets).values())
            x = (torch.stack([img for img, _ in batch]).to(self.device) - self.mean) / self.std
            y = torch.tensor([int(lab) for _, lab in batch], device=self.device)
            return nn.functional.cross_entropy(self.model(x).float(), y)

    def _step(self, it: int, batch: list[tuple[torch.Tensor, Any]]) -> float:
        """One optimiser step; a non-finite loss or gradient norm ends the run as `diverged`."""
        loss = self._loss(batch)
        if self.s.inject_nan_at_iter is not None and it + 1 == self.s.inject_nan_at_iter:
            loss = loss * float("nan")
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RunFailure("diverged", f"non-finite loss ({value}) at iteration {it + 1}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.s.grad_clip is not None:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.s.grad_clip))
            if not math.isfinite(norm):
                raise RunFailure("diverged", f"non-finite gradient norm ({norm}) at iteration {it + 1}")
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model, step=it + 1)
        return value

    def _show(self, it: int) -> None:
        s = self.s
        if it % s.log_every == 0 or it == s.iters:
            recent = self.losses[-_LOSS_WINDOW:]
            ips = it * s.batch_size / max(self.train_s, 1e-9)
            self.bar.update(it, loss=f"{sum(recent) / len(recent):.3f}", ips=f"{ips:.1f}")
            self.log(f"iter {it}/{s.iters} loss {sum(recent) / len(recent):.4f} "
                     f"lr {self.opt.param_groups[0]['lr']:.2e} img/s {ips:.1f}")
        else:
            self.bar.update(it)

    def run(self, train: Split) -> None:
        s, res = self.s, self.res
        batches = Batches(train, s.batch_size, s.seed, s.hflip, s.num_workers)
        stop_reason = "iters"
        if 0 in self.eval_points and not self._eval_point(0):
            stop_reason = "on_eval"
        it = 0
        while it < s.iters and stop_reason == "iters":
            tick = time.perf_counter()
            res.iters = it
            value = self._step(it, batches.next())
            it += 1
            res.iters = it
            self.losses.append(value)
            self.train_s += time.perf_counter() - tick
            self._show(it)
            # a safety net only: the driver records a run it cuts as `truncated`, never as a valid point
            if s.time_budget_s is not None and time.perf_counter() - self.t0 >= s.time_budget_s and it < s.iters:
                stop_reason = "time_budget"
                self.log(f"time budget of {s.time_budget_s}s reached at iteration {it}")
            elif it in self.eval_points and it < s.iters and not self._eval_point(it):
                stop_reason = "on_eval"
        self._finish(stop_reason)

    def _finish(self, stop_reason: str) -> None:
        res = self.res
        res.train_s = self.train_s
        res.images_per_s = res.iters * self.s.batch_size / self.train_s if self.train_s > 0 else None
        if self.losses:
            head, tail = self.losses[:_LOSS_WINDOW], self.losses[-_LOSS_WINDOW:]
            res.loss_start, res.loss_end = sum(head) / len(head), sum(tail) / len(tail)
        res.stop_reason = stop_reason
        if stop_reason != "on_eval":  # final evaluation (an on_eval stop point was just evaluated)
            self._eval_point(res.iters, ask=res.iters in self.eval_points)
