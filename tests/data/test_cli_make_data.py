"""`piip-search make-data synthetic`: writes the COCO layout; bad arguments exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from piip_search.cli import main
from piip_search.data import coco_layout, load_coco_json


def test_writes_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    argv = ["make-data", "synthetic", "--out", str(out), "--images", "4", "--size", "48", "--seed", "2"]
    assert main(argv) == 0
    layout = coco_layout(out)
    train, val = load_coco_json(layout.train_json), load_coco_json(layout.val_json)
    assert len(train["images"]) == 4 and len(val["images"]) == 1  # val defaults to images // 4
    assert len(list(layout.train_images.glob("*.png"))) == 4
    assert {(i["width"], i["height"]) for i in train["images"]} == {(48, 48)}
    text = capsys.readouterr().out
    assert str(out) in text and f"{len(train['annotations'])} objects" in text and "4 images" in text


@pytest.mark.parametrize("args, message", [
    (["--images", "0"], "`images` must be an integer >= 1, got 0"),
    (["--size", "16"], "`size` must be an integer in [32, 4096] pixels, got 16"),
    (["--seed", "-3"], "`seed` must be an integer >= 0"),
])
def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                              message: str) -> None:
    assert main(["make-data", "synthetic", "--out", str(tmp_path / "ds"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


def test_non_empty_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.txt").write_text("keep")
    assert main(["make-data", "synthetic", "--out", str(tmp_path), "--images", "1", "--size", "32"]) == 2
    assert "must not exist or be empty" in capsys.readouterr().err
