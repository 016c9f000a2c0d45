"""The shipped search spaces: where they are and how a name finds one."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from piip_search.errors import SearchSpaceError
from piip_search.search.space._values import (
    _SPACES_DIR,
)

if TYPE_CHECKING:
    pass


# ---- the shipped spaces ------------------------------------------------------------------------------------
def _spaces_dirs() -> list[Path]:
    dirs = [Path(__file__).resolve().parents[3] / _SPACES_DIR]  # repository checkout / editable install
    try:
        dirs.append(Path(str(resources.files("piip_search") / _SPACES_DIR)))  # inside a wheel
    except (ModuleNotFoundError, TypeError):
        pass
    return [d for d in dirs if d.is_dir()]


def list_spaces() -> list[str]:
    """Names of the shipped search spaces (`default`, `paper`, ...)."""
    return sorted({p.stem for d in _spaces_dirs() for p in d.glob("*.yaml")})


def space_path(ref: str | Path) -> Path:
    """Path of a space file: an existing path, or the name of a shipped space (`paper`, `paper.yaml`)."""
    p = Path(ref)
    if p.is_file():
        return p
    stem = p.name[:-5] if p.name.endswith(".yaml") else p.name
    if p.parent == Path("."):
        for d in _spaces_dirs():
            if (d / f"{stem}.yaml").is_file():
                return d / f"{stem}.yaml"
    raise SearchSpaceError(f"{ref}: no such file, and not a shipped search space (shipped: "
                           f"{', '.join(list_spaces()) or 'none found'})")


def default_space_path() -> Path:
    """`search_spaces/default.yaml`: the tiny, CPU-sized space `piip-search run` uses without `--space`."""
    return space_path("default")
