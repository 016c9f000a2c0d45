"""Convention `model` against the built backbone: exact parameters, FLOPs within 1% of the fvcore trace."""

from __future__ import annotations

import pytest

from piip_search.flops import count, traced_flops
from tests.flops.tiny_configs import ALL_TINY, tiny_config


def _module_of(part: str) -> str | None:
    """Module of the built model (`piip_search.models._piip` module tree) that an analytic part lives in."""
    if part.startswith("branch"):
        return f"branches.{int(part.split('.')[0][len('branch'):]) - 1}"
    return {"interactions": "interactions", "interactions.deform": "interactions",
            "interactions.attention": "interactions", "merge": "branch_merge", "pyramid": "pyramid",
            "heads": "head"}.get(part)


@pytest.fixture(scope="module", params=ALL_TINY)
def case(request):
    cfg = tiny_config(request.param)
    return cfg, count(cfg, "model"), traced_flops(cfg, max_depth=2)


def test_params_equal_built_model_exactly(case):
    cfg, rep, traced = case
    assert rep.params == traced.params  # = sum(p.numel() for p in build_piip(cfg).parameters())


def test_flops_within_one_percent_of_trace(case):
    cfg, rep, traced = case
    assert traced.flops > 0
    assert abs(rep.flops - traced.flops) / traced.flops < 0.01
    assert not traced.unexpected_ops, traced.unexpected_ops  # nothing that matters went uncounted


def test_flops_per_part_match_trace(case):
    cfg, rep, traced = case
    groups: dict[str, int] = {}
    for p in rep.parts:
        mod = _module_of(p.name)
        if mod is not None:
            groups[mod] = groups.get(mod, 0) + p.flops
    for mod, flops in groups.items():
        got = traced.by_module.get(mod, 0)
        assert abs(flops - got) <= 0.01 * max(got, 1), (mod, flops, got)


def test_model_convention_of_published_configs_is_fast_and_consistent():
    rep = count("piip-tsb-1120-896-448", "model")
    paper = count("piip-tsb-1120-896-448", "paper")
    # same branches and interactions; the model has 3x3-conv merges, a pyramid and no 1000-way head
    assert rep.part("pyramid").params > 0 and "head" not in {p.name for p in rep.parts}
    assert rep.part("interactions").params == paper.part("interactions").params
    # the module stores pos-embed at the 14x14 pretrain grid, the paper convention at the 28x28 branch grid
    assert rep.part("branch1").params == paper.part("branch1").params - (28 * 28 - 14 * 14) * 768
    assert rep.params == 175_043_715  # the official mmdet module (piip-architecture.md §6.5)
