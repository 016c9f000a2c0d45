"""Interaction units: zero-initialised injectors, per-direction parts, parameter formulas, gradients."""

from __future__ import annotations

import pytest
import torch

from piip_search.config import InteractionConfig
from piip_search.models import Injector, InteractionUnit, build_piip, reference_points

from .conftest import tiny_config


def _n(m):
    return sum(p.numel() for p in m.parameters()) if m is not None else 0


def test_injector_parameter_formula_standard_setting():
    cfg = InteractionConfig()  # 16 heads, 4 points, ratio 0.5, CFFN 0.25, LN
    for d in (192, 384):
        assert _n(Injector(d, d, cfg)) == 1.5 * d * d + 205.25 * d + 192  # §2.8


def test_unit_parameter_formula_and_directions():
    cfg = InteractionConfig()
    assert _n(InteractionUnit(384, 192, a_to_b=True, b_to_a=True, cfg=cfg)) == 543_120  # §2.8
    top_down = InteractionUnit(384, 192, a_to_b=True, b_to_a=False, cfg=cfg)
    assert top_down.injector_b_to_a is None and top_down.proj_b_to_a is None
    assert _n(top_down) == 384 * 192 + 192 + _n(Injector(192, 192, cfg))
    speedup = InteractionConfig(projection=False, norm=False)
    assert _n(InteractionUnit(768, 384, a_to_b=True, b_to_a=True, cfg=speedup)) == 1_262_112  # §2.8


@pytest.mark.parametrize("attention", ["deformable", "regular"])
@pytest.mark.parametrize("projection", [True, False])
def test_fresh_injector_is_identity(attention, projection):
    cfg = InteractionConfig(heads=4, points=2, attention=attention, projection=projection)
    d_feat = 64 if projection else 96
    inj = Injector(64, d_feat, cfg).eval()
    torch.nn.init.zeros_(inj.ca_gamma)
    torch.nn.init.zeros_(inj.cffn_gamma)
    q, feat = torch.randn(2, 16, 64), torch.randn(2, 9, d_feat)
    assert torch.equal(inj(q, (4, 4), feat, (3, 3), reference_points((4, 4))), q)


def test_gradients_reach_every_interaction_parameter():
    model = build_piip(tiny_config(3, attention="deformable")).train()
    inter = [(n, p) for n, p in model.named_parameters() if n.startswith("interactions.")]
    x = torch.randn(2, 3, 128, 128)

    def step():
        model.zero_grad()
        sum(v.square().mean() for v in model(x).values()).backward()

    step()  # gammas start at zero: they get gradients, the layers behind them do not yet
    gammas = [p for n, p in inter if n.endswith("_gamma")]
    assert gammas and all(p.grad is not None and p.grad.abs().sum() > 0 for p in gammas)
    behind = [p for n, p in inter if ".attn." in n or ".ffn." in n]
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in behind)
    # Offsets and attention logits start with zero weights, so the query norm only receives gradient once
    # they have moved: two SGD steps wake up every interaction parameter.
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.step()
        step()
    dead = [n for n, p in inter if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"interaction parameters without gradient: {dead}"
