"""PIIPConfig: presets, YAML round trip, derived ranges/directions, and every validation message."""

from __future__ import annotations

import copy

import pytest
import yaml

from piip_search.config import PIIPConfig, even_ranges, list_models, load_config
from piip_search.errors import ConfigError

TINY = {
    "task": "detection",
    "branches": [
        {"embed_dim": 128, "depth": 4, "num_heads": 4, "resolution": 128},
        {"embed_dim": 96, "depth": 4, "num_heads": 3, "resolution": 192},
        {"embed_dim": 64, "depth": 4, "num_heads": 2, "resolution": 256, "window_size": 8},
    ],
    "interactions": {"count": 2, "heads": 4},
}


def _with(path: str, value, base=TINY):
    d = copy.deepcopy(base)
    cur = d
    keys = path.split(".")
    for k in keys[:-1]:
        cur = cur[int(k)] if k.isdigit() else cur[k]
    last = keys[-1]
    if last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value
    return d


@pytest.mark.parametrize("name", list_models())
def test_every_shipped_config_round_trips(name):
    cfg = load_config(name)
    again = PIIPConfig.from_yaml(cfg.to_yaml())
    assert again == cfg
    assert again.to_yaml() == cfg.to_yaml()
    assert again.fingerprint() == cfg.fingerprint()


def test_presets_match_the_spec():
    cfg = load_config("piip-tsb-1120-896-448")
    assert [(b.embed_dim, b.depth, b.num_heads) for b in cfg.branches] == [(768, 12, 12), (384, 12, 6), (192, 12, 3)]
    assert [b.grid for b in cfg.branches] == [28, 56, 70]
    assert cfg.input_resolution == 1120 and cfg.out_dim == 768
    six = load_config("piip-h6b-1024-512").branches[0]
    assert (six.embed_dim, six.depth, six.num_heads) == (3200, 48, 25)
    bt = six.block_type
    assert (bt.norm, bt.qkv_bias, bt.layer_scale, bt.qk_norm) == ("rms", False, 0.1, True)
    h = load_config("piip-h6b-1024-512").branches[1].block_type
    assert (h.norm, h.qkv_bias, h.layer_scale, h.qk_norm) == ("ln", True, 1.0, False)


def test_interaction_ranges_follow_the_official_configs():
    assert load_config("piip-sbl-1568-1120-672").block_ranges[0][:2] == ((0, 1), (2, 3))
    assert load_config("piip-tsb-1120-896-448").block_ranges[2][-1] == (11, 11)
    # MAE-H, 32 blocks / 12 interactions: 4 ranges of 2, then 8 of 3 (official H6B config)
    h = load_config("piip-h6b-1024-512").block_ranges[1]
    assert [e - s + 1 for s, e in h] == [2] * 4 + [3] * 8
    assert load_config("piip-lh6b-1536-1024-512").block_ranges[0] == ((0, 11), (12, 23), (24, 35), (36, 47))
    assert even_ranges(4, 2) == ((0, 1), (2, 3))


def test_windowed_blocks_with_global_indices():
    b = load_config("vit-b-1024").branches[0]
    assert [b.window_of(i) for i in range(6)] == [14, 14, None, 14, 14, None]


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("bidirectional", [(1, 2, True, True), (0, 1, True, True)]),
        ("top-down", [(1, 2, True, False), (0, 1, True, False)]),
        ("bottom-up", [(1, 2, False, True), (0, 1, False, True)]),
        ("all-pairs", [(1, 2, True, True), (0, 2, True, True), (0, 1, True, True)]),
        ("none", []),
    ],
)
def test_direction_topologies(direction, expected):
    cfg = PIIPConfig.from_dict(_with("interactions.direction", direction))
    assert cfg.unit_pairs() == expected


def test_explicit_indexes():
    d = _with("interactions.indexes", [[[0, 1], [2, 3]], [[0, 0], [1, 3]], [[0, 2], [3, 3]]])
    d["interactions"].pop("count")
    cfg = PIIPConfig.from_dict(d)
    assert cfg.block_ranges[1] == ((0, 0), (1, 3)) and cfg.n_interactions == 2


def test_canonical_ignores_names_and_weights_but_not_shape():
    a = PIIPConfig.from_dict(TINY)
    b = PIIPConfig.from_dict({**TINY, "name": "x", "provenance": {"study": "s"}})
    assert a.fingerprint() == b.fingerprint()
    c = PIIPConfig.from_dict(_with("branches.2.resolution", 272))
    assert c.fingerprint() != a.fingerprint()


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (_with("branches.1.resolution", 200), ["branches[1].resolution", "multiple of 16", "200"]),
        (_with("branches.0.num_heads", 5), ["branches[0].embed_dim", "divisible by num_heads=5", "128"]),
        (_with("branches.1.embed_dim", 80, _with("branches.1.num_heads", 4)),
         ["branches[1].embed_dim", "divisible by 32", "80"]),
        (_with("interactions.heads", 3), ["embed_dim", "interactions.heads=3"]),
        (_with("branches.0.resolution", 512), ["branches[1].resolution", "lowest resolution", "192"]),
        (_with("interactions.count", 9), ["interactions.count", "depth", "9"]),
        (_with("branches.0.colour", "red"), ["branches[0].colour", "unknown key"]),
        (_with("interactions.speed", 1), ["interactions.speed", "unknown key"]),
        (_with("branches.0.resolution", "big"), ["branches[0].resolution", "big"]),
        (_with("interactions.direction", "sideways"), ["interactions.direction", "sideways"]),
        (_with("branches.2.global_blocks", [7]), ["branches[2].global_blocks", "[0, 3]", "7"]),
        ({"task": "detection", "branches": [{"resolution": 224}]}, ["branches[0]", "embed_dim"]),
        ({**TINY, "branches": []}, ["branches", "at least 1"]),
    ],
)
def test_validation_messages_name_path_rule_and_value(data, fragments):
    with pytest.raises(ConfigError) as e:
        PIIPConfig.from_dict(data)
    msg = str(e.value)
    for f in fragments:
        assert f in msg, (f, msg)


def test_unequal_and_empty_interaction_ranges_are_rejected():
    base = copy.deepcopy(TINY)
    base["interactions"].pop("count")
    unequal = _with("interactions.indexes", [[[0, 1], [2, 3]], [[0, 3]], [[0, 1], [2, 3]]], base)
    with pytest.raises(ConfigError, match=r"interactions.indexes: every branch needs the same number"):
        PIIPConfig.from_dict(unequal)
    empty = _with("interactions.indexes", [[[0, 1], [2, 3]], [[0, 1], [2, 1]], [[0, 1], [2, 3]]], base)
    with pytest.raises(ConfigError, match=r"interactions.indexes\[1\]\[1\]: a range \[start, end\] must be non-empty"):
        PIIPConfig.from_dict(empty)
    short = _with("interactions.indexes", [[[0, 1], [2, 2]], [[0, 1], [2, 3]], [[0, 1], [2, 3]]], base)
    with pytest.raises(ConfigError, match=r"must cover all 4 blocks"):
        PIIPConfig.from_dict(short)


def test_malformed_yaml_and_missing_file():
    with pytest.raises(ConfigError, match="not valid YAML"):
        PIIPConfig.from_yaml("branches: [\n", source="x.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        PIIPConfig.from_yaml("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="not a shipped model name"):
        load_config("no-such-model-or-file.yaml")


def test_load_from_path(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(TINY))
    assert load_config(p) == PIIPConfig.from_dict(TINY)


def test_without_units_interaction_ranges_do_not_change_the_architecture():
    a = PIIPConfig.from_dict(_with("interactions.direction", "none"))
    b = PIIPConfig.from_dict(_with("interactions.count", 1, _with("interactions.direction", "none")))
    assert a.fingerprint() == b.fingerprint()
    c = PIIPConfig.from_dict(_with("interactions.count", 1))
    assert c.fingerprint() != PIIPConfig.from_dict(TINY).fingerprint()


def test_a_branch_has_one_name_per_dimension_and_files_keep_their_preset_form():
    from piip_search.config._architecture import BranchConfig

    b = BranchConfig(model="B", resolution=224)
    assert (b.embed_dim, b.depth, b.num_heads) == (768, 12, 12) and not hasattr(b, "dim")
    wide = BranchConfig(model="B", embed_dim=1024, num_heads=16, resolution=224)
    assert (wide.embed_dim, wide.depth, wide.num_heads) == (1024, 12, 16)
    cfg = PIIPConfig.from_dict({"task": "detection", "interactions": {"count": 2},
                                "branches": [{"model": "B", "resolution": 448},
                                             {"model": "S", "embed_dim": 416, "num_heads": 13, "resolution": 896}]})
    d = cfg.to_dict()
    assert not {"embed_dim", "depth", "num_heads"} & set(d["branches"][0])  # the preset says it
    assert d["branches"][1]["embed_dim"] == 416 and "depth" not in d["branches"][1]
    assert PIIPConfig.from_dict(d) == cfg
    with pytest.raises(ConfigError, match=r"missing \['depth', 'num_heads'\]"):
        PIIPConfig.from_dict({"task": "detection", "branches": [{"embed_dim": 64, "resolution": 64}]})


def test_configs_and_spaces_word_their_errors_the_same_way():
    """One formatter for every pydantic model: project wording, key paths, the allowed keys of a typo."""
    from piip_search.errors import SearchSpaceError
    from piip_search.search.space import SearchSpace

    with pytest.raises(ConfigError) as e:
        PIIPConfig.from_dict({"task": "detection", "branches": [{"model": "T", "resolution": -64}]}, source="c.yaml")
    assert str(e.value) == "c.yaml: branches[0].resolution: must be > 0, got -64"
    with pytest.raises(ConfigError, match=r"c.yaml: branches\[0\].colour: unknown key \(allowed: model, embed_dim"):
        PIIPConfig.from_dict({"task": "detection", "branches": [{"model": "T", "resolution": 64, "colour": 1}]},
                             source="c.yaml")
    with pytest.raises(SearchSpaceError) as s:
        SearchSpace.from_dict({"name": "s", "branches": {"count": 2, "models": ["T"], "resolutions": [-64]}},
                              source="s.yaml")
    assert str(s.value) == "s.yaml: branches.resolutions[0]: must be >= 16, got -64"
