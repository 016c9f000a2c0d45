"""Shipped configs (published PIIP models and tiny CPU examples), addressable by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _zoo_dir() -> Path:
    return Path(str(resources.files("piip_search") / "zoo"))


def list_models() -> list[str]:
    """Names of all shipped configs, e.g. `piip-tsb-1120-896-448`."""
    return sorted(p.stem for p in _zoo_dir().glob("*.yaml"))


def zoo_path(name: str) -> Path | None:
    """Path of a shipped config, or None if `name` is not one (a `.yaml` suffix is tolerated)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    if "/" in stem or "\\" in stem:
        return None
    path = _zoo_dir() / f"{stem}.yaml"
    return path if path.is_file() else None
