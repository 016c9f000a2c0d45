"""`piip-search train`: JSON keys, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from piip_search.cli import main
from tests.proxy.tiny import micro_config, small_dataset

JSON_KEYS = {"status", "ap", "ap50", "ap75", "iters", "wall_s", "images_per_s", "peak_mem_mb", "message"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_dataset(tmp_path_factory.mktemp("cli") / "ds", images=8, val_images=4, size=64)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "micro.yaml"
    path.write_text(micro_config().to_yaml())
    return path


def test_train_json(data: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(config), "--data", str(data), "--iters", "2", "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert JSON_KEYS <= set(out)
    assert out["status"] == "ok" and out["iters"] == 2 and out["device"] == "cpu"
    floats = ("ap", "ap50", "ap75", "wall_s", "images_per_s", "peak_mem_mb")
    assert all(isinstance(out[k], float) for k in floats)


def test_train_human_output(data: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(config), "--data", str(data), "--iters", "1", "--detector", "faster_rcnn"])
    out = capsys.readouterr().out
    assert code == 0 and "ap50" in out and "faster_rcnn" in out


def test_train_exit_codes(data: Path, config: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(config), "--data", str(tmp_path / "none"), "--iters", "1", "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "data_error" and "data_error" in captured.err

    assert main(["train", "no-such-config", "--data", str(data), "--iters", "1"]) == 2
    assert "invalid_config" in capsys.readouterr().err

    assert main(["train", str(config), "--data", str(data), "--detector", "yolo"]) == 2
    assert "proxy.detector" in capsys.readouterr().err
