"""YAML for user files (configs, spaces): safe tags only, bounded size, and alias bombs refused quickly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 2_000_000  # a config or space is a few KB; anything this large is not one
MAX_NODES = 200_000  # after alias expansion: "billion laughs" documents blow past this at once


class YAMLInputError(ValueError):
    """The text is not acceptable YAML for a config or space (the caller names the file)."""


def _count_nodes(data: Any) -> None:
    seen = 0
    stack = [data]
    while stack:
        x = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise YAMLInputError(f"expands to more than {MAX_NODES} values (a YAML alias bomb?)")
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)


def loads(text: str) -> Any:
    if len(text) > MAX_BYTES:
        raise YAMLInputError(f"is {len(text)} characters long; a config or space is at most {MAX_BYTES}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise YAMLInputError(f"not valid YAML: {str(e)[:500]}") from None
    except RecursionError:
        raise YAMLInputError("nested too deeply") from None
    _count_nodes(data)
    return data


def read_text(path: Path) -> str:
    """The file as UTF-8 text; a binary or oversized file raises YAMLInputError, an unreadable one OSError."""
    if path.is_dir():
        raise YAMLInputError("is a folder, not a YAML file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise YAMLInputError(f"is {size} bytes; a config or space is at most {MAX_BYTES}")
    raw = path.read_bytes()
    if b"\0" in raw:
        raise YAMLInputError("is a binary file, not YAML text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YAMLInputError(f"is not UTF-8 text (byte {e.start})") from None
