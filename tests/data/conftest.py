"""Shared fixtures of the data tests: one tiny synthetic dataset per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from piip_search.data import make_synthetic_coco


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 training and 3 validation images of 64 px."""
    root = tmp_path_factory.mktemp("tiny") / "ds"
    return make_synthetic_coco(root, images=6, val_images=3, size=64, seed=3)
