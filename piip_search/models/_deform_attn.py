"""Multi-scale deformable attention (Deformable DETR) in pure PyTorch via `F.grid_sample` (§2.5).

PIIP uses one level (the key branch's token grid). The official code calls a compiled CUDA op; its own
pure-PyTorch debug path (`ms_deform_attn_core_pytorch`) is numerically the same operation and is what
`deform_attn_core` implements here. Under autocast the sampling runs in fp32, as the official injector does.
An fvcore trace counts the sampling as `aten::grid_sampler` (4 per output element).

Deviation: spatial shapes are Python ints (not a tensor) and there is no `level_start_index` input; that keeps
`torch.jit.trace` free of data-dependent splits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MSDeformAttn", "deform_attn_core", "reference_points"]


def reference_points(hw: tuple[int, int], *, device: torch.device | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Token centres ((j + 0.5) / W, (i + 0.5) / H), row-major, shape (1, H*W, 1, 2) (§2.6)."""
    H, W = hw
    ys = (torch.arange(H, device=device, dtype=dtype) + 0.5) / H
    xs = (torch.arange(W, device=device, dtype=dtype) + 0.5) / W
    ref_y, ref_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([ref_x.reshape(-1), ref_y.reshape(-1)], dim=-1)[None, :, None]


def deform_attn_core(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                     sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling (zeros outside, align_corners=False), attention-weighted sum over levels/points.

    Args:
        value: (B, N_k, heads, head_dim), levels concatenated in `spatial_shapes` order.
        spatial_shapes: [(H_l, W_l)] per level.
        sampling_locations: (B, N_q, heads, L, P, 2) as (x, y) in [0, 1].
        attention_weights: (B, N_q, heads, L, P), already normalised.

    Returns:
        (B, N_q, heads * head_dim).
    """
    B, _, n_heads, head_dim = value.shape
    _, Nq, _, L, P, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1
    sampled = []
    start = 0
    for lvl, (H, W) in enumerate(spatial_shapes):
        v = value[:, start:start + H * W]  # (B, H*W, heads, hd)
        start += H * W
        v = v.flatten(2).transpose(1, 2).reshape(B * n_heads, head_dim, H, W)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # (B*heads, Nq, P, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    samples = torch.stack(sampled, dim=-2).flatten(-2)  # (B*heads, hd, Nq, L*P)
    weights = attention_weights.transpose(1, 2).reshape(B * n_heads, 1, Nq, L * P)
    out = (samples * weights).sum(-1).reshape(B, n_heads * head_dim, Nq)
    return out.transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Deformable attention of queries (width d) over a feature map (width d_feat), §2.5.

    Layers (all with bias): `sampling_offsets` d -> heads*L*P*2, `attention_weights` d -> heads*L*P,
    `value_proj` d_feat -> int(d*ratio), `output_proj` int(d*ratio) -> d.

    Args:
        d_model: query width d.
        n_levels: number of feature levels L (PIIP: 1).
        n_heads: attention heads; d and int(d*ratio) must be divisible by it.
        n_points: sampling points per head and level P.
        ratio: value width ratio.
        d_feat: width of the sampled features (d if None).
    """

    def __init__(self, d_model: int, n_levels: int = 1, n_heads: int = 16, n_points: int = 4,
                 ratio: float = 0.5, d_feat: int | None = None) -> None:
        super().__init__()
        d_value = int(d_model * ratio)
        if d_model % n_heads or d_value % n_heads:
            raise ValueError(f"MSDeformAttn: d_model ({d_model}) and d_model*ratio ({d_value}) must be "
                             f"divisible by n_heads, got n_heads={n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.d_value = d_value
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_feat or d_model, d_value)
        self.output_proj = nn.Linear(d_value, d_model)
        self.init_weights()

    def init_weights(self) -> None:
        """Offsets start on a ring of directions, one per head, at distances 1..P; uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, feat: torch.Tensor,
                spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """query (B, N_q, d), reference_points (B or 1, N_q, L, 2), feat (B, N_k, d_feat) -> (B, N_q, d)."""
        B, Nq, _ = query.shape
        H, L, P = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(feat).reshape(B, feat.shape[1], H, self.d_value // H)
        offsets = self.sampling_offsets(query).reshape(B, Nq, H, L, P, 2)
        weights = self.attention_weights(query).reshape(B, Nq, H, L * P).softmax(-1).reshape(B, Nq, H, L, P)
        per_level = []
        for lvl, (h, w) in enumerate(spatial_shapes):  # offsets are in key-grid pixels: x / W_l, y / H_l
            ref = reference_points[:, :, None, lvl, None, :]  # (B, Nq, 1, 1, 2)
            off = offsets[:, :, :, lvl]  # (B, Nq, H, P, 2)
            per_level.append(torch.stack([ref[..., 0] + off[..., 0] / w, ref[..., 1] + off[..., 1] / h], -1))
        locations = torch.stack(per_level, dim=3)  # (B, Nq, H, L, P, 2)
        out = deform_attn_core(value, spatial_shapes, locations, weights)
        return self.output_proj(out)
