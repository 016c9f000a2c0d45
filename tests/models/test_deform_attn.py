"""Deformable attention: grid_sample implementation against an explicit bilinear-sampling loop."""

from __future__ import annotations

import math

import pytest
import torch

from piip_search.models import MSDeformAttn, deform_attn_core, reference_points


def _naive_core(value, shapes, locations, weights):
    """Loop over batch/query/head/level/point; bilinear with zeros outside, align_corners=False."""
    B, _, H, D = value.shape
    _, Nq, _, L, P, _ = locations.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(B, Nq, H, D, dtype=torch.float64)
    for b in range(B):
        for q in range(Nq):
            for h in range(H):
                for lvl, (Hl, Wl) in enumerate(shapes):
                    v = value[b, starts[lvl]:starts[lvl + 1], h].double().reshape(Hl, Wl, D)
                    for p in range(P):
                        x = locations[b, q, h, lvl, p, 0].item() * Wl - 0.5
                        y = locations[b, q, h, lvl, p, 1].item() * Hl - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(D, dtype=torch.float64)
                        for yy, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
                            for xx, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
                                if 0 <= yy < Hl and 0 <= xx < Wl:
                                    sample += wx * wy * v[yy, xx]
                        out[b, q, h] += weights[b, q, h, lvl, p].item() * sample
    return out.reshape(B, Nq, H * D)


@pytest.mark.parametrize("shapes", [[(3, 5)], [(4, 4), (2, 3)]])
def test_core_matches_naive_bilinear_loop(shapes):
    B, Nq, H, D, P = 2, 5, 2, 4, 3
    L = len(shapes)
    value = torch.randn(B, sum(h * w for h, w in shapes), H, D)
    locations = torch.rand(B, Nq, H, L, P, 2) * 1.4 - 0.2  # some points fall outside the map
    weights = torch.rand(B, Nq, H, L, P)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    got = deform_attn_core(value, shapes, locations, weights)
    want = _naive_core(value, shapes, locations, weights)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=0)


def test_module_matches_naive_with_random_offsets():
    attn = MSDeformAttn(32, n_levels=1, n_heads=4, n_points=3, ratio=0.5, d_feat=24)
    with torch.no_grad():  # non-zero, input-dependent offsets and attention weights
        attn.sampling_offsets.weight.normal_(0, 0.5)
        attn.attention_weights.weight.normal_(0, 0.5)
    hq, hk = (3, 4), (5, 2)
    q, feat = torch.randn(2, 12, 32), torch.randn(2, 10, 24)
    ref = reference_points(hq)
    got = attn(q, ref, feat, [hk])

    value = attn.value_proj(feat).reshape(2, 10, 4, 4)
    offsets = attn.sampling_offsets(q).reshape(2, 12, 4, 1, 3, 2)
    assert offsets.abs().min() > 0
    weights = attn.attention_weights(q).reshape(2, 12, 4, 3).softmax(-1).reshape(2, 12, 4, 1, 3)
    norm = torch.tensor([hk[1], hk[0]], dtype=torch.float32)
    loc = ref[:, :, None, :, None, :] + offsets / norm
    want = attn.output_proj(_naive_core(value, [hk], loc, weights).float())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_init_offsets_ring_and_uniform_weights():
    attn = MSDeformAttn(64, n_heads=8, n_points=4)
    bias = attn.sampling_offsets.bias.view(8, 1, 4, 2)
    torch.testing.assert_close(bias[0, 0, :, :], torch.tensor([[1.0, 0], [2, 0], [3, 0], [4, 0]]))
    torch.testing.assert_close(bias[2, 0, 1], torch.tensor([0.0, 2.0]), atol=1e-6, rtol=0)  # 90 degrees
    assert bias.abs().amax(-1).eq(torch.arange(1.0, 5).view(1, 1, 4)).all()  # max-abs component = p + 1
    assert attn.sampling_offsets.weight.abs().sum() == 0
    assert attn.attention_weights.weight.abs().sum() == 0 and attn.attention_weights.bias.abs().sum() == 0


def test_reference_points_are_token_centres():
    ref = reference_points((2, 3))
    assert ref.shape == (1, 6, 1, 2)
    torch.testing.assert_close(ref[0, :, 0], torch.tensor(
        [[1 / 6, 0.25], [0.5, 0.25], [5 / 6, 0.25], [1 / 6, 0.75], [0.5, 0.75], [5 / 6, 0.75]]))


def test_width_not_divisible_by_heads_is_rejected():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        MSDeformAttn(48, n_heads=16, ratio=0.5)  # value width 24
