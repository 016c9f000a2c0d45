"""One PIIP ViT branch at one resolution, built from timm parts (piip-architecture.md §1).

The branch is a plain pre-norm ViT without final norm/head: timm `PatchEmbed` (patch 16), an absolute
position embedding, and timm `Block`s whose attention is a subclass of timm `Attention` that adds
(a) non-overlapping window attention with zero padding (§1.4) and (b) q/k normalisation over the full width
(InternViT-6B, §1.1) instead of timm's per-head q/k norm.

As the official detection code:
* the position embedding of a detection branch is stored at the pretrain grid `pretrain_img_size // 16`
  (196 tokens for 224-px weights, 576 for 384 px, 1024 for DINOv2's 518 px; + an unused cls slot for
  InternViT-type) and resampled once, bicubically (align_corners=False, no antialias, in fp32), to the token
  grid of the actual input (timm `resample_abs_pos_embed`). Classification branches store it at their own
  grid, as the official classification code;
* windowed attention zero-pads the **input** tokens, partitions them and applies qkv to the padded tokens,
  so padded keys carry the qkv bias (deit `WindowedFlashAttention`, which the published `use_flash_attn=True`
  configs run, and InternViT `WindowedAttention`). `pad_before_qkv=False` keeps the non-flash deit flavour
  (qkv on the real tokens, zero-padded q/k/v) for callers that ask for it;
* LayerScale gammas exist exactly when `block_type.layer_scale` is not None (DeiT-type default 1.0, so DeiT
  branches carry per-channel gammas as `vit_models` does, named `ls1.gamma`/`ls2.gamma` as in timm);
* drop path: constant per block for DeiT-type and for classification; linear `linspace(0, rate, depth)`
  for InternViT-type detection branches (as det `internvit_6b.py`);
* `mlp_type: fused_mlp` (flash-attn `FusedMLP`) computes the tanh approximation of GELU; we do the same with
  timm's `Mlp` (same parameters, no fused kernel).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from timm.layers import (
    Attention,
    LayerScale,
    PatchEmbed,
    RmsNorm,
    resample_abs_pos_embed,
    trunc_normal_,
    use_fused_attn,
)
from timm.models.vision_transformer import Block
from torch import nn

from piip_search.config import PATCH_SIZE

if TYPE_CHECKING:
    from piip_search.config import BlockType, BranchConfig

__all__ = ["PIIPAttention", "PIIPBlock", "PIIPBranch", "attention_core", "create_branch"]

NORM_EPS = 1e-6


def attention_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, fused: bool,
                   attn_drop: nn.Dropout | None = None) -> torch.Tensor:
    """Softmax attention on (B, heads, N, head_dim) tensors.

    `fused=False` runs the explicit `q @ k^T` / `attn @ v` path (an fvcore trace counts `aten::matmul`).
    """
    p = attn_drop.p if attn_drop is not None and attn_drop.training else 0.0
    if fused:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=scale)
    attn = (q * scale) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    if attn_drop is not None:
        attn = attn_drop(attn)
    return attn @ v


class PIIPAttention(Attention):
    """timm `Attention` with full-width q/k norm and optional window attention (§1.4).

    Honours `timm.layers.set_fused_attn`: SDPA is used only if it was on at construction and is on now.

    Args (beyond timm's):
        window_size: side of the non-overlapping windows, None for global attention.
        pad_before_qkv: official flash flavour (zero-pad the input, qkv on the padded tokens, so padded keys
            carry the qkv bias); False: non-flash deit flavour (qkv on the real tokens, zero-padded q/k/v).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, qk_norm: bool = False,
                 norm_layer: type[nn.Module] | None = None, window_size: int | None = None,
                 pad_before_qkv: bool = True, **kwargs) -> None:
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_norm=False, norm_layer=norm_layer,
                         **kwargs)
        if qk_norm:  # InternViT-6B normalises q and k over the full width, not per head
            self.q_norm = norm_layer(self.attn_dim)  # type: ignore[misc]
            self.k_norm = norm_layer(self.attn_dim)  # type: ignore[misc]
        self.window_size = window_size
        self.pad_before_qkv = pad_before_qkv

    def _use_fused(self) -> bool:
        return bool(self.fused_attn) and use_fused_attn()

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # same channel layout as timm's reshape(..., 3, heads, hd)
        return self.q_norm(q), self.k_norm(k), v

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, N, D) q/k/v -> (B, N, D) multi-head attention output (before proj)."""
        B, N, _ = q.shape
        q, k, v = (t.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        x = attention_core(q, k, v, scale=self.scale, fused=self._use_fused(), attn_drop=self.attn_drop)
        return x.transpose(1, 2).reshape(B, N, self.attn_dim)

    def _window_attend(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw
        ws = self.window_size
        assert ws is not None  # only called for windowed blocks
        pad_h, pad_w = (ws - H % ws) % ws, (ws - W % ws) % ws
        Hp, Wp = H + pad_h, W + pad_w
        if self.pad_before_qkv:
            x = F.pad(x.reshape(B, H, W, C), (0, 0, 0, pad_w, 0, pad_h))
            q, k, v = self._qkv(x)
        else:
            q, k, v = (F.pad(t.reshape(B, H, W, -1), (0, 0, 0, pad_w, 0, pad_h)) for t in self._qkv(x))
        q, k, v = (window_partition(t, ws) for t in (q, k, v))  # (B * nW, ws*ws, D)
        out = self._attend(q, k, v)
        out = window_reverse(out, ws, Hp, Wp)[:, :H, :W]
        return out.reshape(B, N, self.attn_dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:  # type: ignore[override]
        if self.window_size is None:
            x = self._attend(*self._qkv(x))
        else:
            if hw is None:
                raise ValueError("windowed attention needs the token grid `hw`")
            x = self._window_attend(x, hw)
        x = self.norm(x)
        x = self.proj(x)
        return self.proj_drop(x)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, Hp, Wp, C) with Hp, Wp multiples of ws -> (B * nW, ws*ws, C), windows in row-major order."""
    B, Hp, Wp, C = x.shape
    x = x.reshape(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C)


def window_reverse(windows: torch.Tensor, ws: int, Hp: int, Wp: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, ws*ws, C) -> (B, Hp, Wp, C)."""
    C = windows.shape[-1]
    x = windows.reshape(-1, Hp // ws, Wp // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, Hp, Wp, C)


class PIIPBlock(Block):
    """timm pre-norm `Block` whose attention is `PIIPAttention`; `forward(x, hw)` passes the token grid.

    Parameter names are timm's (`norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma`),
    so timm / DeiT state dicts map one to one.
    """

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float, block_type: BlockType,
                 window_size: int | None, pad_before_qkv: bool, drop_path: float,
                 tanh_gelu: bool = False) -> None:
        norm_layer = partial(RmsNorm, eps=NORM_EPS) if block_type.norm == "rms" else partial(nn.LayerNorm,
                                                                                             eps=NORM_EPS)
        act_layer = partial(nn.GELU, approximate="tanh") if tanh_gelu else nn.GELU
        super().__init__(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=block_type.qkv_bias,
                         qk_norm=block_type.qk_norm, init_values=None, drop_path=drop_path,
                         norm_layer=norm_layer, act_layer=act_layer, attn_layer=PIIPAttention)  # type: ignore[arg-type]
        self.attn.window_size = window_size  # type: ignore[assignment]
        self.attn.pad_before_qkv = pad_before_qkv  # type: ignore[assignment]
        if block_type.layer_scale is not None:  # timm skips LayerScale for falsy init values; we never do
            self.ls1 = LayerScale(dim, init_values=block_type.layer_scale)
            self.ls2 = LayerScale(dim, init_values=block_type.layer_scale)

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:  # type: ignore[override]
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), hw)))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x


class PIIPBranch(nn.Module):
    """A ViT branch at one resolution: patch embed, pos-embed, blocks; no final norm/head.

    Parameters: `patch_embed.proj` Conv2d(3, D, 16, 16, bias); `pos_embed` (1, P² [+1 cls slot, unused, for
    InternViT-type], D) at the stored grid P; `cls_token` (1, 1, D) only for classification; `blocks.{k}`.

    Args:
        dim, depth, num_heads, mlp_ratio: ViT shape.
        resolution: square input side this branch is designed for (grid G = resolution // 16).
        pos_grid: side P of the stored position grid (pretrain grid for detection, G for classification).
        block_type: norm / qkv bias / LayerScale / qk-norm of the blocks.
        windows: per block, window size or None (global).
        drop_path: per block stochastic-depth rate.
        pos_cls_slot: store a leading (unused) cls slot in `pos_embed` (InternViT-type checkpoints).
        cls_token: prepend a learnable cls token (classification); it gets no position embedding.
        pad_before_qkv: official flash flavour of windowed attention (see `PIIPAttention`).
        tanh_gelu: MLP activation is the tanh approximation of GELU (`mlp_type: fused_mlp`).
    """

    def __init__(self, *, dim: int, depth: int, num_heads: int, mlp_ratio: float, resolution: int,
                 block_type: BlockType, windows: list[int | None], drop_path: list[float],
                 pos_cls_slot: bool, cls_token: bool, pad_before_qkv: bool, pos_grid: int | None = None,
                 tanh_gelu: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.grid = resolution // PATCH_SIZE
        self.pos_grid = self.grid if pos_grid is None else pos_grid
        self.num_pos_prefix = 1 if pos_cls_slot else 0
        self.patch_embed = PatchEmbed(img_size=resolution, patch_size=PATCH_SIZE, in_chans=3, embed_dim=dim,
                                      bias=True, strict_img_size=False, output_fmt="NHWC")
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid ** 2 + self.num_pos_prefix, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.blocks = nn.ModuleList(
            PIIPBlock(dim, num_heads, mlp_ratio=mlp_ratio, block_type=block_type, window_size=windows[k],
                      pad_before_qkv=pad_before_qkv, drop_path=drop_path[k], tanh_gelu=tanh_gelu)
            for k in range(depth)
        )
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, RmsNorm, LayerScale)):
                m.reset_parameters()

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"} if self.cls_token is not None else {"pos_embed"}

    def pos_embed_for(self, hw: tuple[int, int]) -> torch.Tensor:
        """Patch-token position embedding (1, H*W, D) for the token grid `hw` (cls slot dropped)."""
        pos = self.pos_embed[:, self.num_pos_prefix:]
        if hw != (self.pos_grid, self.pos_grid):
            pos = resample_abs_pos_embed(pos, new_size=list(hw), old_size=[self.pos_grid, self.pos_grid],
                                         num_prefix_tokens=0, interpolation="bicubic", antialias=False)
        return pos

    def embed(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]:
        """Image (B, 3, H, W) -> patch tokens (B, N, D) with pos-embed, cls token (B, 1, D) or None, grid."""
        H, W = img.shape[-2:]
        if H % PATCH_SIZE or W % PATCH_SIZE:  # the stride-16 conv floors; timm's PatchEmbed asserts instead
            img = img[..., :H - H % PATCH_SIZE, :W - W % PATCH_SIZE]
        x = self.patch_embed(img)  # (B, H/16, W/16, D)
        B, H, W, D = x.shape
        hw = (H, W)
        x = x.reshape(B, H * W, D) + self.pos_embed_for(hw)
        cls = self.cls_token.expand(B, -1, -1) if self.cls_token is not None else None
        return x, cls, hw

    def forward_blocks(self, x: torch.Tensor, cls: torch.Tensor | None, hw: tuple[int, int], start: int,
                       end: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run blocks[start:end+1] (inclusive range); the cls token takes part in self-attention only."""
        if cls is not None:
            x = torch.cat([cls, x], dim=1)
        for blk in self.blocks[start:end + 1]:
            x = blk(x, hw)
        if cls is not None:
            cls, x = x[:, :1], x[:, 1:]
        return x, cls

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Standalone branch: all blocks, returns (B, [1 +] N, D) tokens (cls first when present)."""
        x, cls, hw = self.embed(img)
        x, cls = self.forward_blocks(x, cls, hw, 0, len(self.blocks) - 1)
        return x if cls is None else torch.cat([cls, x], dim=1)


def create_branch(cfg: BranchConfig, *, task: str) -> PIIPBranch:
    """Branch for one `BranchConfig`; family and task decide pos-embed grid and cls slot, drop-path schedule."""
    internvit = cfg.family == "internvit"
    depth = cfg.depth
    if internvit and task == "detection" and depth > 1:
        rates = [cfg.drop_path_rate * k / (depth - 1) for k in range(depth)]
    else:
        rates = [cfg.drop_path_rate] * depth
    return PIIPBranch(
        dim=cfg.embed_dim, depth=depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, resolution=cfg.resolution,
        block_type=cfg.block_type, windows=[cfg.window_of(k) for k in range(depth)], drop_path=rates,
        pos_cls_slot=internvit, cls_token=task == "classification", pad_before_qkv=True,
        pos_grid=cfg.pos_grid if task == "detection" else cfg.grid, tanh_gelu=cfg.mlp_type == "fused_mlp",
    )
