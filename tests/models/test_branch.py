"""Branch: window attention (padding flavours, traceability), block types, parameter structure."""

from __future__ import annotations

import warnings

import pytest
import timm.layers
import torch
from torch import nn

from piip_search.config import BlockType, PIIPConfig
from piip_search.models import PIIPAttention, PIIPBlock, create_branch

DEIT = BlockType(norm="ln", qkv_bias=True, layer_scale=1.0, qk_norm=False)
INTERN_6B = BlockType(norm="rms", qkv_bias=False, layer_scale=0.1, qk_norm=True)


@pytest.fixture
def unfused():
    prev = timm.layers.use_fused_attn()
    timm.layers.set_fused_attn(False)
    yield
    timm.layers.set_fused_attn(prev)


def _attn(window, *, pad_before_qkv=False, qk_norm=False, dim=32, heads=4):
    attn = PIIPAttention(dim, num_heads=heads, qkv_bias=True, qk_norm=qk_norm, norm_layer=nn.LayerNorm,
                         window_size=window, pad_before_qkv=pad_before_qkv)
    with torch.no_grad():
        attn.qkv.bias.normal_()  # padded tokens then see a non-zero qkv bias in the InternViT flavour
    return attn.eval()


def _naive_windows(attn, x, hw, ws, pad_before_qkv):
    """Explicit loop over ws x ws windows of the zero-padded grid, per head softmax(q k^T / sqrt(d)) v."""
    B, N, C = x.shape
    H, W = hw
    Hp, Wp = -(-H // ws) * ws, -(-W // ws) * ws
    heads, hd = attn.num_heads, attn.head_dim
    if pad_before_qkv:
        xp = torch.zeros(B, Hp, Wp, C)
        xp[:, :H, :W] = x.reshape(B, H, W, C)
        qkv = attn.qkv(xp)
    else:
        qkv = torch.zeros(B, Hp, Wp, 3 * C)
        qkv[:, :H, :W] = attn.qkv(x).reshape(B, H, W, 3 * C)
    q, k, v = qkv.chunk(3, -1)
    out = torch.zeros(B, Hp, Wp, C)
    for i in range(0, Hp, ws):
        for j in range(0, Wp, ws):
            qw, kw, vw = (t[:, i:i + ws, j:j + ws].reshape(B, ws * ws, heads, hd) for t in (q, k, v))
            for h in range(heads):
                a = (qw[:, :, h] @ kw[:, :, h].transpose(1, 2) * hd ** -0.5).softmax(-1)
                out[:, i:i + ws, j:j + ws, h * hd:(h + 1) * hd] = (a @ vw[:, :, h]).reshape(B, ws, ws, hd)
    return attn.proj(out[:, :H, :W].reshape(B, N, C))


def test_window_covering_grid_equals_global(unfused):
    x = torch.randn(2, 36, 32)
    windowed = _attn(6)
    glob = _attn(None)
    glob.load_state_dict(windowed.state_dict())
    torch.testing.assert_close(windowed(x, (6, 6)), glob(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pad_before_qkv", [False, True], ids=["deit", "internvit"])
@pytest.mark.parametrize("hw,ws", [((7, 5), 3), ((6, 6), 4), ((4, 9), 4)])
def test_padded_windows_match_naive_loop(unfused, pad_before_qkv, hw, ws):
    attn = _attn(ws, pad_before_qkv=pad_before_qkv)
    x = torch.randn(2, hw[0] * hw[1], 32)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, hw), _naive_windows(attn, x, hw, ws, pad_before_qkv),
                                   atol=1e-5, rtol=1e-5)


def test_fused_and_explicit_paths_agree_and_flag_is_honoured_at_call_time():
    prev = timm.layers.use_fused_attn()
    try:
        timm.layers.set_fused_attn(True)
        attn = _attn(3)
        x = torch.randn(2, 35, 32)
        fused = attn(x, (7, 5))
        timm.layers.set_fused_attn(False)
        assert not attn._use_fused()
        torch.testing.assert_close(attn(x, (7, 5)), fused, atol=1e-5, rtol=1e-5)
    finally:
        timm.layers.set_fused_attn(prev)


def test_windowed_attention_traces_with_explicit_matmuls(unfused):
    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = _attn(3, pad_before_qkv=True)

        def forward(self, x):
            return self.attn(x, (7, 5))

    m, x = Wrap(), torch.randn(1, 35, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, x)
    torch.testing.assert_close(traced(x), m(x))
    assert "aten::matmul" in str(traced.graph) or "aten::matmul" in str(traced.inlined_graph)


def test_qk_norm_is_full_width():
    blk = PIIPBlock(64, 4, mlp_ratio=4.0, block_type=INTERN_6B, window_size=None, pad_before_qkv=True,
                    drop_path=0.0)
    assert blk.attn.q_norm.weight.shape == (64,) and blk.attn.k_norm.weight.shape == (64,)
    assert blk.attn.qkv.bias is None and blk.attn.proj.bias is not None
    assert blk.ls1.gamma.detach().eq(0.1).all()
    assert blk(torch.randn(2, 9, 64), (3, 3)).shape == (2, 9, 64)


@pytest.mark.parametrize("block_type,extra", [
    (DEIT, 15),                                   # 2 LN, qkv bias, proj bias, LS x2, MLP biases
    (DEIT._replace(layer_scale=None), 13),                       # AugReg without LayerScale
    (INTERN_6B, 12),                                             # RMSNorm x2, q/k norm, no qkv bias, LS x2
])
def test_block_parameter_formulas(block_type, extra):
    D = 64
    blk = PIIPBlock(D, 4, mlp_ratio=4.0, block_type=block_type, window_size=None, pad_before_qkv=False,
                    drop_path=0.0)
    assert sum(p.numel() for p in blk.parameters()) == 12 * D * D + extra * D


def _branch_cfg(**kw):
    b = {"embed_dim": 64, "depth": 4, "num_heads": 2, "resolution": 96, "drop_path_rate": 0.2, **kw}
    data = {"branches": [b], "interactions": {"count": 2, "direction": "none"}}
    return PIIPConfig.from_dict(data).branches[0]


def test_branch_structure_deit_and_internvit():
    deit = create_branch(_branch_cfg(window_size=4, global_blocks=[3]), task="detection")
    assert deit.pos_embed.shape == (1, 196, 64) and deit.cls_token is None  # pretrain grid 224 // 16
    assert [b.attn.window_size for b in deit.blocks] == [4, 4, 4, None]
    assert [b.drop_path1.drop_prob for b in deit.blocks] == [0.2] * 4  # constant
    assert deit.blocks[0].attn.pad_before_qkv  # the official flash path

    intern = create_branch(_branch_cfg(family="internvit", pretrain_img_size=518, pretrain_patch_size=14),
                           task="detection")
    assert intern.pos_embed.shape == (1, 32 * 32 + 1, 64)  # DINOv2 grid + unused cls slot
    assert isinstance(intern.blocks[0].drop_path1, nn.Identity)  # linear schedule starts at 0
    assert intern.blocks[3].drop_path1.drop_prob == pytest.approx(0.2)

    cls = create_branch(_branch_cfg(family="internvit"), task="classification")
    assert cls.cls_token.shape == (1, 1, 64)
    assert cls.pos_embed.shape == (1, 37, 64)  # classification: the branch grid
    assert [b.drop_path1.drop_prob for b in cls.blocks] == [0.2] * 4  # classification: constant
    n_params = sum(p.numel() for p in deit.parameters())
    assert n_params == 4 * (12 * 64 * 64 + 15 * 64) + (3 * 256 + 1) * 64 + 196 * 64


def test_branch_pos_embed_resampled_for_other_grids():
    branch = create_branch(_branch_cfg(pretrain_img_size=96), task="detection").eval()
    out = branch(torch.randn(1, 3, 128, 80))
    assert out.shape == (1, 8 * 5, 64)
    assert branch.pos_embed_for((6, 6)).data_ptr() == branch.pos_embed.data_ptr()  # stored grid: no resampling
    assert branch.pos_embed_for((8, 5)).shape == (1, 40, 64)
