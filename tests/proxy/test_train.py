"""Proxy training on the real PIIP backbone and the real data modules: it learns, and failures are data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from piip_search.config import PIIPConfig
from piip_search.proxy import STATUSES, ProxyResult, ProxySettings, train_proxy
from tests.proxy.tiny import micro_config, small_dataset

# The micro config's input side is 64: read the 64 px synthetic images as they are.
FAST = dict(resolution_scale=1.0, head_convs=0, batch_size=4, warmup_iters=10)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_dataset(tmp_path_factory.mktemp("proxy") / "ds", images=48, val_images=16, size=64)


def _run(data: Path, cfg: PIIPConfig | str | None = None, **settings: Any) -> ProxyResult:
    return train_proxy(cfg or micro_config(), data, ProxySettings(**{**FAST, **settings}), progress=False)


def test_a_tiny_piip_learns(data: Path) -> None:
    res = _run(data, iters=150, eval_at=[0])
    assert res.status == "ok", res.message
    untrained, trained = res.history[0], res.history[-1]
    assert untrained["iters"] == 0 and trained["iters"] == 150 == res.iters
    assert res.loss_end < 0.7 * res.loss_start
    assert trained["ap50"] >= untrained["ap50"] + 0.1, res.history
    assert res.ap50 == trained["ap50"] and 0.0 <= res.ap <= res.ap50 <= 1.0
    assert res.stop_reason == "iters" and res.images_per_s > 0 and res.peak_mem_mb > 0
    json.dumps(res.to_dict())  # JSON-serialisable


def test_nan_loss_is_diverged(data: Path) -> None:
    res = _run(data, iters=20, inject_nan_at_iter=5)
    assert res.status == "diverged"
    assert "non-finite loss" in res.message and "iteration 5" in res.message
    assert res.iters == 4 and res.ap is None


def test_unbuildable_config_is_invalid_config(data: Path, tmp_path: Path) -> None:
    # Valid as a config, but its network cannot be built: the pretrained checkpoint does not exist.
    d = micro_config().to_dict()
    d["branches"][0]["pretrained"] = str(tmp_path / "missing.pth")
    res = _run(data, PIIPConfig.from_dict(d), iters=2)
    assert res.status == "invalid_config"
    assert "cannot be built" in res.message and "missing.pth" in res.message

    bad = tmp_path / "bad.yaml"  # a config file that breaks a rule
    bad.write_text(micro_config().to_yaml().replace("resolution: 64", "resolution: 70"))
    res = _run(data, str(bad), iters=2)
    assert res.status == "invalid_config" and "branches[1].resolution" in res.message

    res = _run(data, "no-such-model", iters=2)
    assert res.status == "invalid_config" and "no-such-model" in res.message


def test_missing_annotations_are_data_error(data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ds"
    shutil.copytree(data, broken)
    (broken / "annotations" / "instances_val.json").unlink()
    res = _run(broken, iters=2)
    assert res.status == "data_error" and "instances_val.json" in res.message

    res = _run(tmp_path / "nowhere", iters=2)
    assert res.status == "data_error" and "nowhere" in res.message


def test_corrupt_image_is_data_error(data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ds"
    shutil.copytree(data, broken)
    (broken / "train" / "000003.png").write_bytes(b"not a png")
    res = _run(broken, iters=2)
    assert res.status == "data_error" and "000003.png" in res.message


def test_out_of_memory_is_oom(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real CUDA OOM needs a GPU; the classification of the exception is what is tested here.
    from piip_search.proxy import _train

    real_build = _train._build

    def build_then_oom(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = real_build(*args, **kwargs)

        def forward(*a: Any, **k: Any) -> None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        model.forward = forward
        return model

    monkeypatch.setattr(_train, "_build", build_then_oom)
    res = _run(data, iters=2)
    assert res.status == "oom" and "out of memory" in res.message


def test_unexpected_exception_is_failed(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from piip_search.proxy import _train

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something odd")

    monkeypatch.setattr(_train._Loop, "run", boom)
    res = _run(data, iters=2)
    assert res.status == "failed" and res.message == "RuntimeError: something odd"
    assert set(STATUSES) == {"ok", "diverged", "oom", "invalid_config", "data_error", "failed"}


def test_on_eval_can_stop_a_run(data: Path) -> None:
    seen: list[tuple[int, dict[str, Any]]] = []

    def on_eval(iters: int, metrics: dict[str, Any]) -> bool:
        seen.append((iters, metrics))
        return iters < 10

    res = train_proxy(micro_config(), data, ProxySettings(**FAST, iters=30, eval_at=[5, 10, 20]),
                      progress=False, on_eval=on_eval)
    assert res.status == "ok" and res.stop_reason == "on_eval" and res.iters == 10
    assert [i for i, _ in seen] == [5, 10] and [h["iters"] for h in res.history] == [5, 10]
    assert {"ap", "ap50", "ap75", "loss"} <= set(seen[0][1])


def test_time_budget_stops_training(data: Path) -> None:
    res = _run(data, iters=10_000, time_budget_s=3.0)
    assert res.status == "ok" and res.stop_reason == "time_budget"
    assert 0 < res.iters < 10_000 and res.ap50 is not None


def test_runs_are_deterministic(data: Path, tmp_path: Path) -> None:
    a = _run(data, iters=8, layer_decay=0.8)
    b = train_proxy(micro_config(), data, ProxySettings(**FAST, iters=8, layer_decay=0.8), progress=False,
                    log_path=tmp_path / "log.txt")
    assert a.status == b.status == "ok"
    assert a.loss_end == b.loss_end and a.ap == b.ap
    log = (tmp_path / "log.txt").read_text()
    assert "iter 8/8" in log and "result: status=ok" in log


def test_classification_proxy(tmp_path: Path) -> None:
    # Three classes told apart by colour, in the image-folder layout.
    rng = np.random.default_rng(0)
    colours = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230)}
    for split, n in (("train", 12), ("val", 4)):
        for name, rgb in colours.items():
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(rgb, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(tmp_path / split / name / f"{i}.png")
    cfg = PIIPConfig.from_dict({"task": "classification", "num_classes": 10, "branches": [
        {"embed_dim": 64, "depth": 2, "num_heads": 2, "resolution": 32},
        {"embed_dim": 32, "depth": 2, "num_heads": 1, "resolution": 48}],
        "interactions": {"count": 1, "heads": 2, "points": 2}})
    res = train_proxy(cfg, tmp_path, ProxySettings(iters=30, resolution_scale=1.0, lr=2e-3, warmup_iters=5),
                      progress=False)
    assert res.status == "ok", res.message
    assert res.task == "classification" and res.ap is None and res.top1 is not None
    assert res.top1 >= 0.5 and res.loss_end < res.loss_start


def test_worker_loading_gives_the_same_run(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from piip_search.proxy import _data

    in_memory = _run(data, iters=4)
    monkeypatch.setattr(_data, "PRELOAD_LIMIT", 0)  # read images on demand, through a worker process
    streamed = _run(data, iters=4, num_workers=1)
    assert in_memory.status == streamed.status == "ok"
    assert in_memory.loss_end == streamed.loss_end


def test_default_data_is_the_cached_synthetic_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIIP_SEARCH_CACHE", str(tmp_path))
    res = train_proxy(micro_config(), None, ProxySettings(**FAST, iters=1, val_images=2), progress=False)
    assert res.status == "ok", res.message
    assert list(tmp_path.glob("synthetic-*/annotations/instances_val.json"))


def test_mask_rcnn_reports_mask_ap(data: Path) -> None:
    res = _run(data, iters=2, detector="mask_rcnn", fpn_channels=32, box_head_dim=64)
    assert res.status == "ok", res.message
    assert res.detector == "mask_rcnn" and res.mask_ap is not None and res.mask_ap50 is not None
    assert {"mask_ap", "mask_ap50"} <= set(res.history[-1])


def test_a_busy_machine_gives_the_same_result(data: Path) -> None:
    """Fidelity is iterations: the same run with every core busy with other work records the same numbers."""
    import subprocess
    import sys

    quiet = _run(data, iters=12, seed=5)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        busy = _run(data, iters=12, seed=5)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert quiet.status == busy.status == "ok"
    assert (quiet.iters, quiet.stop_reason) == (busy.iters, busy.stop_reason) == (12, "iters")
    assert quiet.ap == busy.ap and quiet.loss_end == busy.loss_end
