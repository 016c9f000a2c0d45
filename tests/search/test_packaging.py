"""The shipped search spaces travel inside the package, so a non-editable install finds them by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from piip_search.search import SearchSpace
from piip_search.search.space import list_spaces, space_path

ROOT = Path(__file__).resolve().parents[2]


def test_spaces_are_package_data() -> None:
    packaged = resources.files("piip_search") / "search_spaces"
    names = sorted(p.name for p in packaged.iterdir() if p.name.endswith(".yaml"))
    assert names == sorted(p.name for p in (ROOT / "search_spaces").glob("*.yaml"))
    assert {"default", "paper"} <= set(list_spaces())
    assert '"search_spaces/*.yaml"' in (ROOT / "pyproject.toml").read_text()  # copied into wheels
    for name in ("default", "paper"):
        assert SearchSpace.from_yaml(space_path(name)).to_dict()
