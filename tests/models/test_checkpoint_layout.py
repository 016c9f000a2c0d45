"""Official-layout detection checkpoints: a state dict written here by the official names loads one to one,
and saving gives the same dict back."""

from __future__ import annotations

import pytest
import torch

from piip_search.errors import ConfigError
from piip_search.models import build_piip, load_official_checkpoint, save_official_checkpoint
from tests.models.conftest import tiny_config

INJECTOR = ["query_norm.weight", "query_norm.bias", "feat_norm.weight", "feat_norm.bias",
            "attn.sampling_offsets.weight", "attn.sampling_offsets.bias", "attn.attention_weights.weight",
            "attn.attention_weights.bias", "attn.value_proj.weight", "attn.value_proj.bias",
            "attn.output_proj.weight", "attn.output_proj.bias", "ca_gamma", "cffn_gamma", "ffn.fc1.weight",
            "ffn.fc1.bias", "ffn.dwconv.dwconv.weight", "ffn.dwconv.dwconv.bias", "ffn.fc2.weight", "ffn.fc2.bias",
            "ffn_norm.weight", "ffn_norm.bias"]


def official_layout(cfg, model) -> dict[str, tuple[str, object]]:
    """Official key -> (our parameter name, index into it or None), written from the official names."""
    table: dict[str, tuple[str, object]] = {}
    for k, b in enumerate(cfg.branches):
        K = k + 1
        table[f"branch{K}.pos_embed"] = (f"branches.{k}.pos_embed", None)
        for p in ("weight", "bias"):
            table[f"branch{K}.patch_embed.proj.{p}"] = (f"branches.{k}.patch_embed.proj.{p}", None)
        for j in range(b.depth):
            ours, off = f"branches.{k}.blocks.{j}", f"branch{K}.blocks.{j}"
            for m in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
                for p in ("weight", "bias"):
                    table[f"{off}.{m}.{p}"] = (f"{ours}.{m}.{p}", None)
            g1, g2 = ("gamma_1", "gamma_2") if b.family == "deit" else ("ls1.gamma", "ls2.gamma")
            table[f"{off}.{g1}"] = (f"{ours}.ls1.gamma", None)
            table[f"{off}.{g2}"] = (f"{ours}.ls2.gamma", None)
        for m, p in ((0, "weight"), (1, "weight"), (1, "bias"), (3, "weight"), (4, "weight"), (4, "bias")):
            table[f"merge_branch{K}.{m}.{p}"] = (f"branch_merge.branch_merges.{k}.{m}.{p}", None)
        table[f"w{K}"] = ("branch_merge.weights", k)
    n = len(cfg.branches)
    for i in range(cfg.n_interactions):
        for u, a in enumerate(reversed(range(n - 1))):  # official order: high-resolution pair first
            unit = f"interactions.{i}.interaction_units_{a + 1}{a + 2}"
            ours = f"interactions.{i}.units.{u}"
            for off, mine in (("branch1to2", "a_to_b"), ("branch2to1", "b_to_a")):
                for p in ("weight", "bias"):
                    table[f"{unit}.{off}_proj.{p}"] = (f"{ours}.proj_{mine}.{p}", None)
                for name in INJECTOR:
                    table[f"{unit}.{off}_injector.{name}"] = (f"{ours}.injector_{mine}.{name}", None)
    for m, p in ((0, "weight"), (0, "bias"), (1, "weight"), (1, "bias"), (3, "weight"), (3, "bias")):
        table[f"fpn1.{m}.{p}"] = (f"pyramid.fpn1.{m}.{p}", None)
    for p in ("weight", "bias"):
        table[f"fpn2.0.{p}"] = (f"pyramid.fpn2.{p}", None)
    return table


def _official_state(cfg, model) -> dict[str, torch.Tensor]:
    shapes = model.state_dict()
    torch.manual_seed(1)
    sd = {}
    for key, (ours, idx) in official_layout(cfg, model).items():
        shape = () if idx is not None else shapes[ours].shape
        sd["backbone." + key] = torch.randn(shape)
    sd["neck.lateral_convs.0.conv.weight"] = torch.randn(2, 2)  # not the backbone's: ignored
    return sd


@pytest.mark.parametrize("n_branches,family", [(3, "deit"), (2, "internvit"), (4, "deit")])
def test_official_checkpoint_round_trip(tmp_path, n_branches, family):
    cfg = tiny_config(n_branches, family=family)
    model = build_piip(cfg)
    sd = _official_state(cfg, model)
    path = tmp_path / "piip_official.pth"
    torch.save({"meta": {"epoch": 12}, "state_dict": sd}, path)
    load_official_checkpoint(model, path)
    ours = model.state_dict()
    table = official_layout(cfg, model)
    assert len(table) == len(ours) - 1 + n_branches  # every parameter has an official key (w{K} per branch)
    for key, (name, idx) in table.items():
        want = sd["backbone." + key]
        got = ours[name] if idx is None else ours[name][idx]
        assert torch.equal(got, want), key

    out = tmp_path / "saved.pth"
    save_official_checkpoint(model, out)
    saved = torch.load(out, weights_only=True)["state_dict"]
    expected = {k: v for k, v in sd.items() if k.startswith("backbone.")}
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in expected)


def test_a_checkpoint_that_does_not_fit_is_refused_with_the_key(tmp_path):
    cfg = tiny_config(3)
    model = build_piip(cfg)
    sd = _official_state(cfg, model)
    sd["backbone.branch2.pos_embed"] = torch.randn(1, 5, 96)
    del sd["backbone.w3"]
    with pytest.raises(ConfigError, match=r"branch2\.pos_embed: expected \(1, 196, 96\).*|missing w3"):
        from piip_search.models import from_official_state_dict

        from_official_state_dict(model, sd)
    with pytest.raises(ConfigError, match="adjacent"):
        from_official_state_dict(build_piip(tiny_config(3, direction="top-down")), sd)
