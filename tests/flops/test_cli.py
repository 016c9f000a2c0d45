"""`piip-search flops` and `describe`: JSON contract, human output, bad input exits 2."""

from __future__ import annotations

import json

import pytest

from piip_search.cli import main
from piip_search.flops import count


def test_flops_json_keys_and_values(capsys):
    assert main(["flops", "piip-tsb-1120-896-448", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"params", "flops", "convention", "parts", "unit"} <= set(out)
    assert out["convention"] == "paper" and out["unit"] == "multiply-adds"
    rep = count("piip-tsb-1120-896-448", "paper")
    assert out["params"] == rep.params and out["flops"] == rep.flops
    assert round(out["params"] / 1e6, 2) == 146.44 and round(out["flops"] / 1e9, 2) == 243.13
    assert sum(p["flops"] for p in out["parts"]) == out["flops"]
    assert {p["name"] for p in out["parts"]} >= {"branch1", "interactions", "merge", "head"}


def test_flops_json_model_convention(capsys):
    assert main(["flops", "tiny-piip-3branch", "--convention", "model", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rep = count("tiny-piip-3branch", "model")
    assert out["convention"] == "model" and out["params"] == rep.params and out["flops"] == rep.flops
    assert "pyramid" in {p["name"] for p in out["parts"]}


def test_flops_human_output_names_the_unit(capsys):
    assert main(["flops", "vit-b-1024"]) == 0
    out = capsys.readouterr().out
    assert "multiply-adds" in out and "params (M)" in out and "FLOPs (G" in out
    assert "463.4" in out  # ViT-B @1024: README 463G


def test_describe_runs(capsys):
    assert main(["describe", "piip-sbl-1792-1120-672"]) == 0
    out = capsys.readouterr().out
    for text in ("branches", "1120", "70x70", "window 24", "interactions: 12", "bidirectional", "deformable",
                 "multiply-adds", "pyramid"):
        assert text in out, text
    assert main(["describe", "tiny-piip-3branch", "--convention", "paper"]) == 0
    assert "head" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["flops", "describe"])
def test_bad_config_exits_2_with_the_validation_message(tmp_path, capsys, command):
    bad = tmp_path / "bad.yaml"
    bad.write_text("branches:\n- {model: B, resolution: 450}\n")
    assert main([command, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "branches[0].resolution" in err and "multiple of 16" in err and "Traceback" not in err
    assert main([command, "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
