"""Closed-form parameter counts and layer multiply-adds shared by the counting conventions.

Every FLOP here is a multiply-add, with the hook rules of mmcv/fvcore: Linear = tokens * in * out
(bias not counted), Conv2d = out pixels * k*k*C_in*C_out/groups (+ C_out per pixel for a bias),
LayerNorm / GroupNorm = 2 * numel(input). RMSNorm, activations, LayerScale multiplies, softmax and
residual adds are not counted.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from piip_search.config import PATCH_SIZE, BlockType


class Cost(NamedTuple):
    params: int = 0
    flops: int = 0

    def __add__(self, other: object) -> Cost:  # type: ignore[override]
        assert isinstance(other, Cost)
        return Cost(self.params + other.params, self.flops + other.flops)

    def times(self, k: int) -> Cost:
        return Cost(self.params * k, self.flops * k)


ZERO = Cost(0, 0)


def linear(n: int, fin: int, fout: int, bias: bool = True) -> Cost:
    return Cost(fin * fout + (fout if bias else 0), n * fin * fout)


def norm(n: int, d: int, kind: str = "ln") -> Cost:
    """LayerNorm/GroupNorm (affine): 2d params, 2 FLOPs per element; RMSNorm: d params, not counted."""
    if kind == "rms":
        return Cost(d, 0)
    return Cost(2 * d, 2 * n * d)


def patch_embed(n: int, d: int, patch: int = PATCH_SIZE) -> Cost:
    """Conv2d(3, d, patch, stride patch) with bias on an n-token output grid."""
    k = 3 * patch * patch
    return Cost(k * d + d, n * k * d + n * d)


def padded_tokens(grid: int, ws: int) -> int:
    side = math.ceil(grid / ws) * ws
    return side * side


def block(d: int, hidden: int, bt: BlockType, n: int, n_qkv: int | None = None) -> Cost:
    """One pre-norm ViT block on `n` tokens, without the attention matmuls.

    `n_qkv` = tokens the qkv Linear (and q/k norms) see; it exceeds `n` when the window partition pads
    the input before the qkv projection (InternViT-type windowed attention).
    """
    n_qkv = n if n_qkv is None else n_qkv
    c = norm(n, d, bt.norm) + norm(n, d, bt.norm)  # norm1, norm2
    c += linear(n_qkv, d, 3 * d, bias=bt.qkv_bias)
    if bt.qk_norm:
        c += norm(n_qkv, d, bt.norm) + norm(n_qkv, d, bt.norm)
    c += linear(n, d, d)  # proj
    if bt.layer_scale is not None:
        c += Cost(2 * d, 0)
    c += linear(n, d, hidden) + linear(n, hidden, d)
    return c


def attention_matmuls(n_q: int, n_k: int, d: int) -> int:
    """QK^T and AV of multi-head attention: n_q keys-per-query * d each."""
    return 2 * n_q * n_k * d


def injector_modules(d: int, d_f: int, n_q: int, n_k: int, *, attention: str, heads: int, points: int,
                     ratio: float, cffn: bool, cffn_ratio: float, norm_on: bool) -> Cost:
    """Parameterised layers of one Injector (query width d on n_q tokens, features of width d_f on n_k).

    Deformable: sampling_offsets d->heads*points*2, attention_weights d->heads*points, value_proj
    d_f->int(d*ratio), output_proj int(d*ratio)->d (one level). Regular: wq d->d, wk/wv d_f->d (no bias),
    proj d->d. Plus ca_gamma, and with `cffn`: LN, fc1 d->h, 3x3 depthwise conv (bias) on the query grid,
    fc2 h->d, cffn_gamma, h = int(d*cffn_ratio).
    """
    c = ZERO
    if norm_on:
        c += norm(n_q, d) + norm(n_k, d_f)
    if attention == "deformable":
        v = int(d * ratio)
        c += linear(n_q, d, heads * points * 2) + linear(n_q, d, heads * points)
        c += linear(n_k, d_f, v) + linear(n_q, v, d)
    else:
        c += linear(n_q, d, d, bias=False) + linear(n_k, d_f, d, bias=False).times(2) + linear(n_q, d, d)
    c += Cost(d, 0)  # ca_gamma
    if cffn:
        h = int(d * cffn_ratio)
        if norm_on:
            c += norm(n_q, d)
        c += linear(n_q, d, h) + linear(n_q, h, d)
        c += Cost(9 * h + h, n_q * (9 * h + h))  # depthwise 3x3 conv with bias
        c += Cost(d, 0)  # cffn_gamma
    return c
