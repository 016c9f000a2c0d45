"""The space's own rule failures (feasibility, config mapping): `<source>: <key path>: <rule>, got <value>`,
the same form as the schema's messages."""

from __future__ import annotations

from typing import Any, NoReturn

from piip_search.errors import SearchSpaceError
from piip_search.errors import shown as short


class SpaceRules:
    """Raises `SearchSpaceError("<source>: <path>: <rule>, got <value>")` for rules checked after the schema."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, rule: str, value: Any = ..., *, shown: str | None = None) -> NoReturn:
        got = "" if value is ... else f", got {shown if shown is not None else short(value)}"
        raise SearchSpaceError(f"{self.source}: {path}: {rule}{got}")
