"""What a proxy run returns: `ProxyResult` and its statuses, and the failure that ends a run with one."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["STATUSES", "ProxyResult"]

#: Every value `ProxyResult.status` can take.
STATUSES: tuple[str, ...] = ("ok", "diverged", "oom", "invalid_config", "data_error", "failed")

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


class RunFailure(Exception):
    """Ends a run with a named status (caught in `train_proxy`)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message




def is_oom(e: BaseException) -> bool:
    if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")
