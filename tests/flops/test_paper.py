"""Convention `paper` against every published PIIP #Param/#FLOPs row and the worked check of §6.4."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from piip_search.config import PIIPConfig, list_models, load_config
from piip_search.flops import count
from tests.flops.published import PUBLISHED, WORKED_TSB_1120


def readme_round(x: float, decimals: int) -> float:
    """How a README entry comes out of the official script: mmcv prints one decimal
    (`flops_to_string(..., precision=1)`, `params_to_string(..., precision=1)`), and the README rounds that
    printed number half-up to `decimals` (e.g. 1740.49 G -> "1740.5" -> 1741)."""
    printed = Decimal(f"{x:.1f}")
    return float(printed.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("row", PUBLISHED, ids=lambda r: f"{r.config}[{r.source}]")
def test_published_row(row):
    rep = count(load_config(row.config), "paper")
    params_m, flops_g = rep.params / 1e6, rep.flops / 1e9
    assert abs(params_m - row.params_m) / row.params_m < 0.005
    assert abs(flops_g - row.flops_g) / row.flops_g < 0.005
    # and exactly to the README's rounding
    assert readme_round(params_m, 0) == row.params_m
    assert readme_round(flops_g, row.flops_decimals) == row.flops_g


def test_every_published_row_has_a_shipped_config():
    assert {r.config for r in PUBLISHED} <= set(list_models())


def _digit(printed: str) -> float:
    """One unit in the last printed digit."""
    return 10.0 ** -len(printed.split(".")[1])


def test_worked_check_tsb_1120_896_448():
    """Every number of §6.4's worked check, to within one unit of its last printed digit."""
    rep = count("piip-tsb-1120-896-448", "paper")
    for name, want in WORKED_TSB_1120["params"].items():
        got = rep.params if name == "total" else rep.part(name).params
        assert got / 1e6 == pytest.approx(float(want), abs=_digit(want)), name
    for name, want in WORKED_TSB_1120["flops"].items():
        got = rep.flops if name == "total" else rep.part(name).flops
        assert got / 1e9 == pytest.approx(float(want), abs=_digit(want)), name


def test_interaction_param_formulas_of_section_2_8():
    """Unit / stack parameter numbers listed in piip-architecture.md §2.8."""
    assert count("piip-tsb-1120-896-448", "paper").part("interactions").params == 29_722_176
    assert count("piip-sbl-1120-672-448", "paper").part("interactions").params == 76_010_112
    assert count("piip-tsbl-1344-896-672-448", "paper").part("interactions").params == 82_527_552
    assert count("piip-h6b-1024-512", "paper").part("interactions").params == 323_207_808
    # speedup units (no projection, no norm): 12 x (1024,768) + 12 x (768,384)
    assert count("piip-sbl-augreg-speedup-1568-1120-672", "paper").part("interactions").params == \
        12 * (2_782_272 + 1_262_112)
    assert count("piip-h6b-speedup-1024-512", "paper").part("interactions").params == 12 * 16_867_424


def test_parts_sum_to_totals_for_every_shipped_config():
    for name in list_models():
        for conv in ("paper", "model"):
            rep = count(name, conv)
            assert sum(p.params for p in rep.parts) == rep.params
            assert sum(p.flops for p in rep.parts) == rep.flops
            assert rep.convention == conv


def test_paper_pos_embed_follows_resolution_only():
    """Params depend on resolution only through the pos-embed (G^2 * D per branch)."""
    base = load_config("piip-tsb-1120-896-448").to_dict()
    bigger = load_config("piip-tsb-1120-896-448").to_dict()
    bigger["branches"][2]["resolution"] = 1568
    a, b = count(PIIPConfig.from_dict(base), "paper"), count(PIIPConfig.from_dict(bigger), "paper")
    assert b.params - a.params == (98 ** 2 - 70 ** 2) * 192


def test_directions_and_regular_attention_are_counted():
    d = load_config("tiny-piip-3branch").to_dict()
    full = count(PIIPConfig.from_dict(d), "paper")
    reps = {}
    for direction in ("top-down", "bottom-up", "all-pairs", "none"):
        d["interactions"]["direction"] = direction
        reps[direction] = count(PIIPConfig.from_dict(d), "paper")
    inter = {k: (r.part("interactions").params if k != "none" else 0) for k, r in reps.items()}
    assert inter["top-down"] + inter["bottom-up"] == full.part("interactions").params
    assert inter["all-pairs"] > full.part("interactions").params
    d["interactions"]["direction"] = "bidirectional"
    d["interactions"]["attention"] = "regular"
    reg = count(PIIPConfig.from_dict(d), "paper")
    assert reg.part("interactions.attention").flops > 0


def test_count_accepts_names_and_caches_per_fingerprint():
    a = count("piip-tsb-1120-896-448")
    b = count(load_config("piip-tsb-1120-896-448"))
    assert a == b and a.convention == "paper" and a.name == "piip-tsb-1120-896-448"
    renamed = load_config("piip-tsb-1120-896-448").model_copy(update={"name": "other"})
    c = count(renamed)
    assert c.name == "other" and c.flops == a.flops


def test_unknown_convention_lists_known_ones():
    with pytest.raises(KeyError, match="model.*paper|paper.*model"):
        count("tiny-piip-3branch", "mmcv")
