"""Closed-form parameter counts and layer multiply-adds shared by the counting conventions.

FLOPs are multiply-adds. Linear layers cost tokens * in * out (bias not counted) under both rule sets; what
differs is spelled out by `Rules`: mmcv's hooks (convention `paper`) and fvcore's op handles (convention
`model`). Activations, LayerScale multiplies, softmax and residual adds are not counted by either.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from piip_search.config import PATCH_SIZE

if TYPE_CHECKING:
    from piip_search.config import BlockType, InteractionConfig


class Rules(NamedTuple):
    """How norm layers and conv biases are charged."""

    norm: int  # per element of a LayerNorm / GroupNorm (affine)
    rms_norm: int  # per element of an RMSNorm
    conv_bias: bool  # one per output element for a conv bias


#: mmcv `get_model_complexity_info` hooks: LN/GN 2 per element, RMSNorm (custom module) not hooked,
#: conv bias counted.
MMCV = Rules(norm=2, rms_norm=0, conv_bias=True)
#: fvcore: `norm_flop_counter` = 5 per element with affine (rms_norm gets the same handle), conv bias ignored.
FVCORE = Rules(norm=5, rms_norm=5, conv_bias=False)


class Cost(NamedTuple):
    params: int = 0
    flops: int = 0

    def __add__(self, other: object) -> Cost:
        assert isinstance(other, Cost)
        return Cost(self.params + other.params, self.flops + other.flops)

    def times(self, k: int) -> Cost:
        return Cost(self.params * k, self.flops * k)


ZERO = Cost(0, 0)


def linear(n: int, fin: int, fout: int, bias: bool = True) -> Cost:
    return Cost(fin * fout + (fout if bias else 0), n * fin * fout)


def norm(n: int, d: int, rules: Rules, kind: str = "ln") -> Cost:
    """Affine norm over d channels on n positions: LayerNorm/GroupNorm 2d params, RMSNorm d."""
    if kind == "rms":
        return Cost(d, rules.rms_norm * n * d)
    return Cost(2 * d, rules.norm * n * d)


def conv(pixels: int, c_in: int, c_out: int, k: int, rules: Rules, *, groups: int = 1,
         bias: bool = True) -> Cost:
    """Conv2d on `pixels` output positions."""
    macs = pixels * k * k * (c_in // groups) * c_out
    if bias and rules.conv_bias:
        macs += pixels * c_out
    return Cost(k * k * (c_in // groups) * c_out + (c_out if bias else 0), macs)


def patch_embed(n: int, d: int, rules: Rules) -> Cost:
    """Conv2d(3, d, 16, stride 16) with bias on an n-token output grid."""
    return conv(n, 3, d, PATCH_SIZE, rules)


def padded_tokens(grid: int, ws: int) -> int:
    """Tokens of a grid x grid map zero-padded to multiples of the window size."""
    side = math.ceil(grid / ws) * ws
    return side * side


def attention_matmuls(n_q: int, n_k: int, d: int) -> int:
    """QK^T and AV of multi-head attention: 2 * n_q * n_k * d (summed over heads)."""
    return 2 * n_q * n_k * d


def block(d: int, hidden: int, bt: BlockType, n: int, rules: Rules, n_qkv: int | None = None) -> Cost:
    """One pre-norm ViT block on `n` tokens, without the attention matmuls.

    `n_qkv` = tokens the qkv Linear (and full-width q/k norms) see; it exceeds `n` when the window partition
    pads the input before the qkv projection (InternViT-type windowed attention).
    """
    n_qkv = n if n_qkv is None else n_qkv
    c = norm(n, d, rules, bt.norm) + norm(n, d, rules, bt.norm)  # norm1, norm2
    c += linear(n_qkv, d, 3 * d, bias=bt.qkv_bias)
    if bt.qk_norm:
        c += norm(n_qkv, d, rules, bt.norm) + norm(n_qkv, d, rules, bt.norm)
    c += linear(n, d, d)  # proj
    if bt.layer_scale is not None:
        c += Cost(2 * d, 0)
    c += linear(n, d, hidden) + linear(n, hidden, d)
    return c


def injector(d: int, d_f: int, n_q: int, n_k: int, ic: InteractionConfig, rules: Rules) -> Cost:
    """Parameterised layers of one Injector: queries of width d on n_q tokens, features of width d_f on n_k.

    Deformable: sampling_offsets d -> heads*points*2, attention_weights d -> heads*points (one level),
    value_proj d_f -> int(d*ratio), output_proj int(d*ratio) -> d. Regular: wq d -> d, wk/wv d_f -> d
    (no bias), proj d -> d. Plus query/feat LayerNorms (if `ic.norm`), ca_gamma, and with CFFN: LayerNorm,
    fc1 d -> h, 3x3 depthwise conv (bias) on the query grid, fc2 h -> d, cffn_gamma (h = int(d * cffn_ratio)).
    The parameter-free part (sampling / attention matmuls) is left to the convention.
    """
    c = ZERO
    if ic.norm:
        c += norm(n_q, d, rules) + norm(n_k, d_f, rules)
    if ic.attention == "deformable":
        v = int(d * ic.deform_ratio)
        hp = ic.heads * ic.points
        c += linear(n_q, d, 2 * hp) + linear(n_q, d, hp) + linear(n_k, d_f, v) + linear(n_q, v, d)
    else:
        c += linear(n_q, d, d, bias=False) + linear(n_k, d_f, d, bias=False).times(2) + linear(n_q, d, d)
    c += Cost(d, 0)  # ca_gamma
    if ic.cffn:
        h = int(d * ic.cffn_ratio)
        if ic.norm:
            c += norm(n_q, d, rules)
        c += linear(n_q, d, h) + conv(n_q, h, h, 3, rules, groups=h) + linear(n_q, h, d)
        c += Cost(d, 0)  # cffn_gamma
    return c


def directions(cfg_pairs: list[tuple[int, int, bool, bool]]) -> list[tuple[int, int]]:
    """(query branch, feature branch) of every injector of one interaction, in unit order."""
    out = []
    for a, b, a_to_b, b_to_a in cfg_pairs:
        if b_to_a:
            out.append((a, b))
        if a_to_b:
            out.append((b, a))
    return out
