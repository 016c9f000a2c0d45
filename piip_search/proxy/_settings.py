"""Settings of one proxy training run (`ProxySettings`) and the config a proxy run builds (`proxy_config`).

The defaults are the embedded CPU proxy, chosen by measurement on the project's 2-core CPU with the default tiny
config (`tiny-piip-3branch`) and the default synthetic set (numbers: AP50 on its 64 validation images;
`benchmarks/bench_proxy.py` measures the defaults themselves):

* `detector="fcos"`: 3-4x the images/s of Faster R-CNN on the tiny backbone (its RoI stage dominates at this
  size) and a higher AP at equal time (300 iterations of 4 images: FCOS 0.17, Faster R-CNN 0.08, RetinaNet 0.02).
* `min_level=2` (FCOS on P2-P6): at a 128 px input most synthetic objects are under 16 px and a stride-8 grid
  gives many of them no positive location; 0.31 against 0.23 with P3-P7.
* `head_convs=0`, `fpn_channels=64`: a thin head learns fastest in a one-minute run (FPN 128 + 4 tower convs:
  0.006 after 300 iterations); 32 channels is faster but a little worse.
* `resolution_scale=0.5` (128/192/256 -> 64/96/128 px): at equal time 0.75 gave 0.27 and 1.0 about 0.25,
  against 0.28-0.31 here (1.0 wins only with 4x longer runs: 0.51 after 4000 images).
* `batch_size=8`, `iters=240` (1920 images, 35-50 s of training at 40-58 images/s on 2 cores), `lr=1e-3`
  with 30 warm-up iterations (2e-3 and 5e-4 score the same within noise, 3e-3 is worse).
* Off by default, no gain measured in 240 iterations: `ema_decay`, `drop_path`, `layer_decay` (meant for
  pretrained branches).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from piip_search.config import PATCH_SIZE, PIIPConfig
from piip_search.errors import ConfigError
from piip_search.proxy._heads import HEADS

__all__ = ["DETECTORS", "ProxySettings", "proxy_config", "scale_config"]

#: Detection heads `build_detector` can put on the PIIP pyramid (the registered builders of `_heads.py`).
DETECTORS: tuple[str, ...] = tuple(HEADS.keys())


@dataclass(frozen=True)
class ProxySettings:
    """How one proxy run trains and evaluates. `None` means "choose automatically" where stated.

    Attributes:
        iters: Training iterations (optimizer steps).
        time_budget_s: Stop training once this many seconds have passed since the run started, then evaluate
            (a safety net: the learning-rate schedule still follows `iters`); None = no limit.
        batch_size: Images per iteration.
        lr: Peak learning rate of AdamW (reached after the warm-up).
        weight_decay: AdamW weight decay (not applied to norms, biases, position embeddings, layer scales).
        warmup_iters: Linear warm-up length; the rate then follows a cosine down to `min_lr_ratio * lr`.
        min_lr_ratio: Final learning rate as a fraction of `lr`.
        layer_decay: Layer-wise learning-rate decay over the branches' blocks (0.85 in the PIIP recipe);
            None = the same rate everywhere (right for a backbone trained from scratch).
        grad_clip: Max global gradient norm; None = no clipping.
        ema_decay: Evaluate an exponential moving average of the weights with this decay (warmed up as
            min(decay, (1 + t) / (10 + t))); None = evaluate the trained weights themselves.
        drop_path: Override every drop-path rate of the config (branches and interactions) for the proxy run;
            None = keep the config's rates (regularisation meant for long schedules slows a short run).
        eval_at: Iterations at which to evaluate (and call `on_eval`); 0 = the untrained network. The end of
            training is always evaluated.
        detector: One of `DETECTORS`.
        fpn_channels: Width of the FPN and of the heads (FCOS needs a multiple of 32: GroupNorm(32)).
        head_convs: 3x3 convs in the FCOS/RetinaNet towers (FCOS only; RetinaNet's are fixed at 4).
        box_head_dim: Hidden width of the R-CNN box head (torchvision's default is 1024).
        min_level: Finest pyramid level of the one-stage heads: 3 = the standard P3-P7, 2 = P2-P6 (stride 4
            to 64; small inputs keep positive locations for objects of a few pixels). R-CNNs always use P2-P6.
        resolution_scale: Multiplies every branch resolution (rounded to a multiple of 16, at least 32) to
            make runs cheaper; the images are read at the scaled input side.
        hflip: Random horizontal flips during training (seeded).
        seed: Seeds python, numpy and torch, the data order and the flips.
        device: "cpu", "cuda", "cuda:N"; None = cuda if available, else cpu.
        amp: bf16 autocast on CUDA (ignored on CPU).
        num_threads: torch intra-op threads for this run (restored afterwards); None = leave torch's setting.
            On a shared CPU, fewer threads than cores avoids OpenMP threads waiting for each other.
        num_workers: DataLoader worker processes (0 = load in the training process).
        val_images: Evaluate on at most this many validation images (the first ones); None = all.
        score_thresh: Minimum score of a kept detection at evaluation (low, so AP sees the whole ranking).
        log_every: Write a log line (and refresh the loss shown) every this many iterations.
        inject_nan_at_iter: Debug hook: make the loss NaN at this iteration (tests the `diverged` path).
    """

    iters: int = 240
    time_budget_s: float | None = None
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_iters: int = 30
    min_lr_ratio: float = 0.05
    layer_decay: float | None = None
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    drop_path: float | None = None
    eval_at: tuple[int, ...] = ()
    detector: str = "fcos"
    fpn_channels: int = 64
    head_convs: int = 0
    box_head_dim: int = 256
    min_level: int = 2
    resolution_scale: float = 0.5
    hflip: bool = True
    seed: int = 0
    device: str | None = None
    amp: bool = True
    num_threads: int | None = None
    num_workers: int = 0
    val_images: int | None = None
    score_thresh: float = 0.05
    log_every: int = 10
    inject_nan_at_iter: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # YAML and JSON give lists: keep the dataclass hashable and frozen.
        object.__setattr__(self, "eval_at", tuple(sorted({int(i) for i in self.eval_at})))
        _positive_int(self, "iters", "batch_size", "fpn_channels", "box_head_dim", "log_every")
        _non_negative_int(self, "warmup_iters", "head_convs", "num_workers", "seed")
        _positive_float(self, "lr", "resolution_scale")
        if self.detector not in HEADS:
            _bad("detector", f"must be one of {HEADS.keys()}", self.detector)
        if self.detector in ("fcos", "retinanet") and self.fpn_channels % 32:
            _bad("fpn_channels", f"must be a multiple of 32 for {self.detector} (GroupNorm(32) in its head)",
                 self.fpn_channels)
        if self.min_level not in (2, 3):
            _bad("min_level", "must be 2 (P2-P6) or 3 (P3-P7)", self.min_level)
        if self.weight_decay < 0:
            _bad("weight_decay", "must be >= 0", self.weight_decay)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            _bad("min_lr_ratio", "must lie in [0, 1]", self.min_lr_ratio)
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            _bad("layer_decay", "must lie in (0, 1] or be null", self.layer_decay)
        if self.grad_clip is not None and self.grad_clip <= 0:
            _bad("grad_clip", "must be > 0 or null", self.grad_clip)
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            _bad("ema_decay", "must lie in (0, 1) or be null", self.ema_decay)
        if self.drop_path is not None and not 0.0 <= self.drop_path < 1.0:
            _bad("drop_path", "must lie in [0, 1) or be null", self.drop_path)
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            _bad("time_budget_s", "must be > 0 or null", self.time_budget_s)
        if any(i < 0 for i in self.eval_at):
            _bad("eval_at", "iterations must be >= 0", list(self.eval_at))
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            _bad("num_threads", "must be >= 1 or null", self.num_threads)
        if self.val_images is not None and self.val_images <= 0:
            _bad("val_images", "must be >= 1 or null", self.val_images)
        if not 0.0 <= self.score_thresh < 1.0:
            _bad("score_thresh", "must lie in [0, 1)", self.score_thresh)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProxySettings:
        """Build from a mapping (a search space's `proxy:` block); unknown keys are named in the error."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"proxy: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["eval_at"] = list(self.eval_at)
        return d


def proxy_config(cfg: PIIPConfig, settings: ProxySettings) -> PIIPConfig:
    """The config a proxy run builds: resolutions scaled by `resolution_scale`, drop path overridden."""
    out = scale_config(cfg, settings.resolution_scale)
    if settings.drop_path is not None:
        data = out.to_dict()
        for b in data["branches"]:
            b["drop_path_rate"] = settings.drop_path
        data.setdefault("interactions", {})["drop_path_rate"] = settings.drop_path
        out = PIIPConfig.from_dict(data, source=f"{cfg.name or 'config'} with drop_path {settings.drop_path}")
    return out


def scale_config(cfg: PIIPConfig, scale: float) -> PIIPConfig:
    """`cfg` with every branch resolution multiplied by `scale`, rounded to a multiple of 16 (at least 32).

    Window sizes are kept (a window larger than a grid is legal padded global attention). Raises
    `ConfigError` if the scaled config breaks a rule.
    """
    if scale == 1.0:
        return cfg
    data = cfg.to_dict()
    for b in data["branches"]:
        b["resolution"] = max(2 * PATCH_SIZE, int(round(b["resolution"] * scale / PATCH_SIZE)) * PATCH_SIZE)
    return PIIPConfig.from_dict(data, source=f"{cfg.name or 'config'} scaled by {scale}")


# ---- validation helpers ------------------------------------------------------------------------------
def _bad(name: str, rule: str, value: Any) -> None:
    raise ConfigError(f"proxy.{name}: {rule}, got {value!r}")


def _positive_int(s: ProxySettings, *names: str) -> None:
    for n in names:
        v = getattr(s, n)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            _bad(n, "must be a positive integer", v)


def _non_negative_int(s: ProxySettings, *names: str) -> None:
    for n in names:
        v = getattr(s, n)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            _bad(n, "must be an integer >= 0", v)


def _positive_float(s: ProxySettings, *names: str) -> None:
    for n in names:
        v = getattr(s, n)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            _bad(n, "must be a number > 0", v)
