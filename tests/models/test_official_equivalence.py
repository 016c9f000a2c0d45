"""Forward equality with a slow, obvious re-statement of the official detection computation (issue 13).

The reference below writes out the official formulas (piip-architecture.md §0, §1.4, §1.5) with plain tensor
ops and loops: `scale_factor` bilinear resizing (sampling positions from the factor itself, align_corners
False), patch conv with floor, pos-embed stored at the pretrain grid and bicubically resized once to the
actual grid, and the flash-path windowed attention (pad the input tokens first, then qkv, so padded keys
carry the qkv bias). Interactions, merge and pyramid are taken from the model (unchanged by this issue and
tested in their own files).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import set_fused_attn

from piip_search.config import PIIPConfig
from piip_search.models import build_piip


def bilinear_scale(x: torch.Tensor, r: float) -> torch.Tensor:
    """F.interpolate(x, scale_factor=r, mode='bilinear', align_corners=False), one output pixel at a time."""
    H, W = x.shape[-2:]
    oh, ow = math.floor(H * r), math.floor(W * r)

    def taps(n_in: int, n_out: int) -> list[tuple[int, int, float]]:
        out = []
        for d in range(n_out):
            src = max((d + 0.5) / r - 0.5, 0.0)
            i0 = int(src)
            i1 = i0 + 1 if i0 < n_in - 1 else i0
            out.append((i0, i1, src - i0))
        return out

    rows, cols = taps(H, oh), taps(W, ow)
    y = torch.empty(*x.shape[:-2], oh, ow, dtype=x.dtype)
    for i, (r0, r1, ly) in enumerate(rows):
        top = x[..., r0, :] * (1 - ly) + x[..., r1, :] * ly
        for j, (c0, c1, lx) in enumerate(cols):
            y[..., i, j] = top[..., c0] * (1 - lx) + top[..., c1] * lx
    return y


def attention(blk, x: torch.Tensor) -> torch.Tensor:
    """Global multi-head softmax attention of one window / sequence (N, D), before proj."""
    a = blk.attn
    q, k, v = F.linear(x, a.qkv.weight, a.qkv.bias).chunk(3, dim=-1)
    out = []
    for h in range(a.num_heads):
        s = slice(h * a.head_dim, (h + 1) * a.head_dim)
        w = (q[:, s] @ k[:, s].T * a.head_dim ** -0.5).softmax(-1)
        out.append(w @ v[:, s])
    return torch.cat(out, dim=-1)


def official_attention(blk, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Official flash-path attention of one image (N, D): pad the input, then qkv per window, crop."""
    H, W = hw
    ws = blk.attn.window_size
    if ws is None:
        out = attention(blk, x)
    else:
        Hp, Wp = math.ceil(H / ws) * ws, math.ceil(W / ws) * ws
        grid = torch.zeros(Hp, Wp, x.shape[-1])
        grid[:H, :W] = x.reshape(H, W, -1)
        res = torch.zeros(Hp, Wp, x.shape[-1])
        for i in range(0, Hp, ws):
            for j in range(0, Wp, ws):
                win = grid[i:i + ws, j:j + ws].reshape(ws * ws, -1)
                res[i:i + ws, j:j + ws] = attention(blk, win).reshape(ws, ws, -1)
        out = res[:H, :W].reshape(H * W, -1)
    return F.linear(out, blk.attn.proj.weight, blk.attn.proj.bias)


def official_block(blk, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """vit_models block: x + gamma_1 * Attn(LN(x)); x + gamma_2 * MLP(LN(x)), one image at a time."""
    out = []
    for xi in x:
        xi = xi + blk.ls1.gamma * official_attention(blk, blk.norm1(xi), hw)
        h = F.gelu(F.linear(blk.norm2(xi), blk.mlp.fc1.weight, blk.mlp.fc1.bias))
        out.append(xi + blk.ls2.gamma * F.linear(h, blk.mlp.fc2.weight, blk.mlp.fc2.bias))
    return torch.stack(out)


def official_embed(branch, img: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    w, b = branch.patch_embed.proj.weight, branch.patch_embed.proj.bias
    x = F.conv2d(img, w, b, stride=16)  # the stride-16 conv floors
    H, W = x.shape[-2:]
    P = branch.pos_grid
    pos = branch.pos_embed[:, branch.num_pos_prefix:].reshape(1, P, P, -1).permute(0, 3, 1, 2)
    pos = F.interpolate(pos.float(), size=(H, W), mode="bicubic", align_corners=False)
    return x.flatten(2).transpose(1, 2) + pos.flatten(2).transpose(1, 2), (H, W)


def official_branch_features(model, x: torch.Tensor) -> list[torch.Tensor]:
    res = model.resolutions
    imgs = [x if r == res[-1] else bilinear_scale(x, r / res[-1]) for r in res]
    xs, hws = zip(*(official_embed(b, im) for b, im in zip(model.branches, imgs, strict=True)), strict=True)
    xs, hws = list(xs), list(hws)
    from piip_search.models._deform_attn import reference_points

    refs = [reference_points(hw, device=x.device, dtype=x.dtype) for hw in hws]
    for j in range(model.cfg.n_interactions):
        for i, branch in enumerate(model.branches):
            start, end = model.block_ranges[i][j]
            for blk in branch.blocks[start:end + 1]:
                xs[i] = official_block(blk, xs[i], hws[i])
        xs = model.interactions[j](xs, hws, refs)
    return [t.transpose(1, 2).reshape(t.shape[0], -1, *hw) for t, hw in zip(xs, hws, strict=True)]


def _config(family: str) -> PIIPConfig:
    branches = [
        {"embed_dim": 64, "depth": 2, "num_heads": 2, "resolution": 64, "window_size": 2, "family": family,
         "pretrain_img_size": 96},
        {"embed_dim": 32, "depth": 2, "num_heads": 2, "resolution": 160, "window_size": 3, "family": family},
    ]
    inter = {"count": 2, "heads": 4, "points": 2, "drop_path_rate": 0.0}
    return PIIPConfig.from_dict({"branches": branches, "interactions": inter})


@pytest.fixture
def unfused():
    set_fused_attn(False)
    yield
    set_fused_attn(True)


def test_scale_factor_resize_reference_matches_torch():
    x = torch.randn(1, 3, 37, 53)
    torch.testing.assert_close(bilinear_scale(x, 0.4),
                               F.interpolate(x, scale_factor=0.4, mode="bilinear", align_corners=False))


@pytest.mark.parametrize("family", ["deit", "internvit"])
def test_non_square_input_with_fractional_sides_and_padded_windows(unfused, family):
    torch.manual_seed(0)
    model = build_piip(_config(family)).eval()
    with torch.no_grad():  # non-trivial LayerScale and injector gammas so every term shows
        for name, p in model.named_parameters():
            if name.endswith(("gamma", "ca_gamma", "cffn_gamma")):
                p.normal_(0.0, 0.5)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.5)  # padded keys carry the qkv bias: only non-zero biases tell the paths apart
    x = torch.randn(2, 3, 136, 216)  # x 0.4: 54.4 x 86.4 px; grids 3x5 (window 2) and 8x13 (window 3)
    with torch.no_grad():
        got = model.forward_branches(x)
        want = official_branch_features(model, x)
        assert [g.shape[-2:] for g in got] == [(3, 5), (8, 13)]
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
        pyr = model(x)
        torch.testing.assert_close(pyr["p4"], model.merge(want), rtol=1e-4, atol=1e-4)


def test_pos_embed_is_stored_at_the_pretrain_grid_and_resampled_once():
    model = build_piip(_config("deit"))
    b0, b1 = model.branches
    assert b0.pos_embed.shape == (1, 36, 64) and b1.pos_embed.shape == (1, 196, 32)  # 96 // 16, 224 // 16
    assert sum(p.numel() for p in model.parameters()) == model_param_formula(model.cfg)


def model_param_formula(cfg: PIIPConfig) -> int:
    """Branch params with pos-embed at the pretrain grid (§6.5); everything else read off the model."""
    model = build_piip(cfg)
    rest = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("branches."))
    branches = 0
    for b in cfg.branches:
        d = b.embed_dim
        branches += b.depth * (12 * d * d + 15 * d) + (3 * 256 + 1) * d + (b.pretrain_img_size // 16) ** 2 * d
    return branches + rest
