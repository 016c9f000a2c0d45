"""Traced cross-check: fvcore `FlopCountAnalysis` of the built backbone, with handles for what fvcore misses.

FLOPs are multiply-adds (fvcore: "one fused multiply-add = one flop"). On top of fvcore's default table:

* fused attention is switched off for the trace (`timm.layers.set_fused_attn(False)`, restored afterwards),
  so QK^T and AV trace to `aten::matmul`; a handle for `aten::scaled_dot_product_attention`
  (2 * N_q * N_k * D per call) covers any module that still takes the fused path;
* `aten::grid_sampler` counts 5 per output element instead of fvcore's 4: 4 for the bilinear taps plus 1 for
  the attention weight applied to each sample (the `mul` + `sum` that follow are elementwise ops fvcore
  skips); the `model` convention counts deformable sampling the same way;
* `aten::rms_norm` (timm `RmsNorm`) counts like fvcore's layer_norm: 5 per element with affine.

Everything else fvcore skips (activations, softmax, adds, LayerScale multiplies, max-pool, bicubic pos-embed
resampling when the grid differs from the designed one) is listed in `TracedReport.unsupported_ops`; the
`model` convention does not count those either.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from piip_search.config import PIIPConfig, load_config

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Ops fvcore does not count and the `model` convention deliberately leaves out (parameter-free, elementwise
#: or data movement). Any other unsupported op in a trace is reported by `TracedReport.unexpected_ops`.
NOT_COUNTED_OPS: frozenset[str] = frozenset({
    "aten::add", "aten::add_", "aten::sub", "aten::rsub", "aten::mul", "aten::mul_", "aten::div",
    "aten::div_",
    "aten::neg", "aten::softmax", "aten::gelu", "aten::relu", "aten::relu_", "aten::sum", "aten::mean",
    "aten::max_pool2d", "aten::linspace", "aten::meshgrid", "aten::pad", "aten::constant_pad_nd",
    "aten::upsample_bicubic2d", "aten::expand_as", "aten::repeat", "aten::clone", "aten::fill_",
    "aten::exp", "aten::sqrt", "aten::rsqrt", "aten::pow", "aten::lift_fresh", "aten::scalar_tensor",
    "aten::_shape_as_tensor", "aten::stack", "aten::cat", "aten::ones_like", "aten::to", "aten::dropout",
    "aten::feature_dropout", "aten::alias", "aten::masked_fill", "aten::where", "aten::float",
    "prim::PythonOp.CheckpointFunction",
})


@dataclass(frozen=True)
class TracedReport:
    """fvcore count of one built backbone (multiply-adds).

    Attributes:
        flops: total multiply-adds of one forward pass (batch 1, square image at the last branch's
            resolution).
        params: `sum(p.numel() for p in model.parameters())`.
        by_module: multiply-adds per module name, names of at most `max_depth` dotted components
            ("branches" = 1, "branches.0" = 2); the root is left out (it is `flops`).
        by_operator: multiply-adds per counted op (`linear`, `matmul`, `conv`, `grid_sampler`, ...).
        unsupported_ops: ops fvcore skipped, with their call counts.
        seconds: wall time of build + trace.
    """

    flops: int
    params: int
    by_module: dict[str, int] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    unsupported_ops: dict[str, int] = field(default_factory=dict)
    input_size: int = 0
    seconds: float = 0.0

    @property
    def unexpected_ops(self) -> dict[str, int]:
        """Skipped ops that are not in `NOT_COUNTED_OPS` (a sign the trace misses real work)."""
        return {k: v for k, v in self.unsupported_ops.items() if k not in NOT_COUNTED_OPS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": "multiply-adds", "flops": self.flops, "params": self.params,
            "input_size": self.input_size,
            "by_module": dict(self.by_module), "by_operator": dict(self.by_operator),
            "unsupported_ops": dict(self.unsupported_ops), "seconds": round(self.seconds, 4),
        }


def _sdpa_flop(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    *batch, n_q, d = q
    n_k = k[-2]
    b = 1
    for s in batch:
        b *= s
    return 2 * b * n_q * n_k * d  # QK^T and AV (d = head dim; batch includes heads)


def _grid_sample_flop(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    out = get_shape(outputs[0])
    n = 1
    for s in out:
        n *= s
    return 5 * n  # 4 bilinear taps + 1 attention-weight multiply per sampled value


def _handles() -> dict[str, Any]:
    from fvcore.nn.jit_handles import norm_flop_counter

    return {
        "aten::scaled_dot_product_attention": _sdpa_flop,
        "aten::grid_sampler": _grid_sample_flop,
        "aten::rms_norm": norm_flop_counter(2),
    }


def _flat_output(model: nn.Module) -> nn.Module:
    """Wrap `model` so that a dict/list output becomes a tuple of tensors (what `torch.jit` traces cleanly).

    The wrapper's only child is `inner`, so module names in the trace are the model's own behind "inner.".
    """
    from torch import nn

    class FlatOutput(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = self.inner(x)
            if isinstance(out, dict):
                return tuple(out.values())
            if isinstance(out, (list, tuple)):
                return tuple(out)
            return (out,)

    return FlatOutput(model)


def count_module(model: nn.Module, input_size: int, *, max_depth: int = 2) -> TracedReport:
    """fvcore count of an already built module on a (1, 3, input_size, input_size) zero image."""
    import timm.layers.config as timm_cfg
    import torch

    with warnings.catch_warnings():  # fvcore's import touches the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    t0 = time.perf_counter()
    wrapped = _flat_output(model).eval()
    x = torch.zeros(1, 3, input_size, input_size)
    saved = timm_cfg._USE_FUSED_ATTN
    timm_cfg.set_fused_attn(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fca = FlopCountAnalysis(wrapped, (x,))
            fca.set_op_handle(**_handles())
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            total = int(fca.total())
            raw_by_module = fca.by_module()
            by_operator = {k: int(v) for k, v in fca.by_operator().items()}
            unsupported = Counter(fca.unsupported_ops())
    finally:
        timm_cfg._USE_FUSED_ATTN = saved
    by_module: dict[str, int] = {}
    for name, v in raw_by_module.items():
        if name == "":
            continue
        inner = name[len("inner"):].lstrip(".")
        if inner.count(".") < max_depth:
            by_module[inner] = int(v)
    return TracedReport(
        flops=total, params=sum(p.numel() for p in model.parameters()), by_module=by_module,
        by_operator=by_operator, unsupported_ops=dict(unsupported), input_size=input_size,
        seconds=time.perf_counter() - t0,
    )


def traced_flops(cfg: PIIPConfig | str | Path, *, max_depth: int = 2, seed: int = 0) -> TracedReport:
    """Build `piip_search.models.build_piip(cfg)` and count it with fvcore (see the module docstring).

    Builds the full model on CPU: meant for small configs (tests, benchmarks); the analytic
    `count(cfg, "model")` is the fast path.
    """
    import torch

    from piip_search.models import build_piip

    if not isinstance(cfg, PIIPConfig):
        cfg = load_config(cfg)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = build_piip(cfg, pretrained=False)
    rep = count_module(model, cfg.input_resolution, max_depth=max_depth)
    return TracedReport(**{**rep.__dict__, "seconds": time.perf_counter() - t0})
