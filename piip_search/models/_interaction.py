"""Cross-branch interactions (piip-architecture.md §2-§3): injector, ConvFFN, units, one interaction block.

A unit joins two branches a < b (a = larger model at lower resolution). Each enabled direction has an
optional Linear projection of the source tokens to the query width and an `Injector` on the query branch.
Both directions of a unit read the pre-unit features of both sides. An `InteractionBlock` holds the units
of one interaction in `PIIPConfig.unit_pairs()` order (the official order: from the high-resolution end
towards branch 1); units run one after another, so a later unit sees the branches updated by an earlier one.
This is generic in the number of branches and in the direction topology (bidirectional, top-down,
bottom-up, all-pairs, none).

Deviations from the official code: one-directional units build only the projection and injector of the
enabled direction (the official code has bidirectional units only); the regular cross-attention honours
`timm.layers.set_fused_attn` like the branch attention.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from timm.layers import DropPath, trunc_normal_, use_fused_attn
from torch import nn

from piip_search._registry import Registry
from piip_search.models._branch import NORM_EPS, attention_core
from piip_search.models._deform_attn import MSDeformAttn

if TYPE_CHECKING:
    from piip_search.config import InteractionConfig

__all__ = [
    "INTERACTION_ATTN",
    "ConvFFN",
    "CrossAttention",
    "Injector",
    "InteractionBlock",
    "InteractionUnit",
]

Grid = tuple[int, int]

#: name (`interactions.attention`) -> factory(d_query, d_feat, InteractionConfig) -> module with the
#: signature forward(query, reference_points, feat, spatial_shapes) -> (B, N_q, d_query).
INTERACTION_ATTN: Registry = Registry("interaction attention")


class CrossAttention(nn.Module):
    """Regular (global) multi-head cross-attention of query tokens over all feature tokens (§2.7).

    `wq` d -> d, `wk`/`wv` d_feat -> d (no bias), `proj` d -> d (bias).
    """

    def __init__(self, dim: int, num_heads: int = 16, d_feat: int | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CrossAttention: dim ({dim}) must be divisible by num_heads, got {num_heads}")
        d_feat = d_feat or dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = use_fused_attn()
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(d_feat, dim, bias=False)
        self.wv = nn.Linear(d_feat, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor | None, feat: torch.Tensor,
                spatial_shapes: list[Grid] | None = None) -> torch.Tensor:
        B, Nq, C = query.shape
        Nk = feat.shape[1]
        q = self.wq(query).reshape(B, Nq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.wk(feat).reshape(B, Nk, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.wv(feat).reshape(B, Nk, self.num_heads, self.head_dim).transpose(1, 2)
        x = attention_core(q, k, v, scale=self.scale, fused=bool(self.fused_attn) and use_fused_attn())
        return self.proj(x.transpose(1, 2).reshape(B, Nq, C))


@INTERACTION_ATTN.register("deformable")
def _create_deformable(dim: int, d_feat: int, cfg: InteractionConfig) -> nn.Module:
    return MSDeformAttn(dim, n_levels=1, n_heads=cfg.heads, n_points=cfg.points, ratio=cfg.deform_ratio,
                        d_feat=d_feat)


@INTERACTION_ATTN.register("regular")
def _create_regular(dim: int, d_feat: int, cfg: InteractionConfig) -> nn.Module:
    return CrossAttention(dim, num_heads=cfg.heads, d_feat=d_feat)


class DWConv(nn.Module):
    """Depthwise 3x3 conv (bias) on tokens laid out on their own grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, hw: Grid) -> torch.Tensor:
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, hw[0], hw[1])
        return self.dwconv(x).flatten(2).transpose(1, 2)


class ConvFFN(nn.Module):
    """CFFN: `fc1` d -> h, depthwise 3x3 conv on the query grid, GELU, `fc2` h -> d (all with bias)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, hw: Grid) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), hw)))


class Injector(nn.Module):
    """Injects features of another branch into the query branch (§2.4).

    `query + ca_gamma * Attn(LN(query), ref, LN(feat))`, then `+ cffn_gamma * DropPath(CFFN(LN(query)))`.
    Both gammas start at zero, so a fresh injector is the identity.

    Args:
        dim: query width d.
        d_feat: width of the injected features (d with projection, the source width without).
        cfg: interaction settings (attention type, heads, points, ratio, cffn, norm, drop path).
    """

    def __init__(self, dim: int, d_feat: int, cfg: InteractionConfig) -> None:
        super().__init__()
        norm = (lambda d: nn.LayerNorm(d, eps=NORM_EPS)) if cfg.norm else (lambda d: nn.Identity())
        self.query_norm = norm(dim)
        self.feat_norm = norm(d_feat)
        self.attn = INTERACTION_ATTN.get(cfg.attention)(dim, d_feat, cfg)
        self.ca_gamma = nn.Parameter(torch.zeros(dim))
        if cfg.cffn:
            self.ffn = ConvFFN(dim, int(dim * cfg.cffn_ratio))
            self.ffn_norm = norm(dim)
            self.cffn_gamma = nn.Parameter(torch.zeros(dim))
            self.drop_path = DropPath(cfg.drop_path_rate) if cfg.drop_path_rate > 0 else nn.Identity()
        else:
            self.ffn = None  # type: ignore[assignment]

    def _cross(self, q: torch.Tensor, ref: torch.Tensor, feat: torch.Tensor, feat_hw: Grid) -> torch.Tensor:
        dev = q.device.type
        if torch.is_autocast_enabled(dev):  # the official injector runs the deformable attention in fp32
            with torch.autocast(device_type=dev, enabled=False):
                return self.attn(q.float(), ref.float(), feat.float(), [feat_hw])
        return self.attn(q, ref, feat, [feat_hw])

    def forward(self, query: torch.Tensor, query_hw: Grid, feat: torch.Tensor, feat_hw: Grid,
                ref: torch.Tensor) -> torch.Tensor:
        attn = self._cross(self.query_norm(query), ref, self.feat_norm(feat), feat_hw)
        query = query + (self.ca_gamma * attn).to(query.dtype)
        if self.ffn is not None:
            query = query + self.cffn_gamma * self.drop_path(self.ffn(self.ffn_norm(query), query_hw))
        return query


class InteractionUnit(nn.Module):
    """Interaction between branches a < b (d_a = width of a). Each direction is built only when enabled.

    a -> b: `proj_a_to_b` Linear(d_a, d_b) (if projection) and `injector_a_to_b` (query = branch b);
    b -> a: `proj_b_to_a` Linear(d_b, d_a) and `injector_b_to_a` (query = branch a). Absent parts are None.
    """

    def __init__(self, d_a: int, d_b: int, *, a_to_b: bool, b_to_a: bool, cfg: InteractionConfig) -> None:
        super().__init__()
        self.proj_a_to_b = nn.Linear(d_a, d_b) if a_to_b and cfg.projection else None
        self.injector_a_to_b = Injector(d_b, d_b if cfg.projection else d_a, cfg) if a_to_b else None
        self.proj_b_to_a = nn.Linear(d_b, d_a) if b_to_a and cfg.projection else None
        self.injector_b_to_a = Injector(d_a, d_a if cfg.projection else d_b, cfg) if b_to_a else None

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor, hw_a: Grid, hw_b: Grid, ref_a: torch.Tensor,
                ref_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new_a, new_b = x_a, x_b
        if self.injector_b_to_a is not None:
            feat = self.proj_b_to_a(x_b) if self.proj_b_to_a is not None else x_b
            new_a = self.injector_b_to_a(x_a, hw_a, feat, hw_b, ref_a)
        if self.injector_a_to_b is not None:  # reads the pre-unit x_a
            feat = self.proj_a_to_b(x_a) if self.proj_a_to_b is not None else x_a
            new_b = self.injector_a_to_b(x_b, hw_b, feat, hw_a, ref_b)
        return new_a, new_b


class InteractionBlock(nn.Module):
    """The units of one interaction, run in the order of `pairs` (= `PIIPConfig.unit_pairs()`).

    Args:
        dims: width of every branch.
        pairs: (a, b, a_to_b, b_to_a) per unit.
        cfg: interaction settings.
    """

    def __init__(self, dims: list[int], pairs: list[tuple[int, int, bool, bool]],
                 cfg: InteractionConfig) -> None:
        super().__init__()
        self.pairs = [(a, b) for a, b, _, _ in pairs]
        self.units = nn.ModuleList(
            InteractionUnit(dims[a], dims[b], a_to_b=ab, b_to_a=ba, cfg=cfg) for a, b, ab, ba in pairs
        )
        self.init_weights()

    def init_weights(self) -> None:
        """§2.4: Linear trunc_normal(.02)/0, LN (1, 0), conv normal(0, sqrt(2/fan_out)), deform attn own."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.init_weights()
            elif isinstance(m, Injector):
                nn.init.zeros_(m.ca_gamma)
                if m.ffn is not None:
                    nn.init.zeros_(m.cffn_gamma)

    def forward(self, xs: list[torch.Tensor], hws: list[Grid],
                refs: list[torch.Tensor]) -> list[torch.Tensor]:
        """xs: patch tokens (B, N_i, D_i) per branch; refs: `reference_points(hws[i])` per branch."""
        xs = list(xs)
        for (a, b), unit in zip(self.pairs, self.units, strict=True):
            xs[a], xs[b] = unit(xs[a], xs[b], hws[a], hws[b], refs[a], refs[b])
        return xs
