"""Reading one space document: typed values with messages `<file>: <key path>: <rule>, got <value>`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from piip_search.errors import SearchSpaceError
from piip_search.errors import shown as short
from piip_search.search.space._values import (
    _RANGE_KEYS,
    MAX_CHOICES,
    Dim,
)

if TYPE_CHECKING:
    pass


# ---- parsing helpers ---------------------------------------------------------------------------------------
class _Reader:
    """Reads one space document, raising `SearchSpaceError("<source>: <path>: <rule>, got <value>")`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, rule: str, value: Any = ..., *, shown: str | None = None) -> NoReturn:
        got = "" if value is ... else f", got {shown if shown is not None else short(value)}"
        raise SearchSpaceError(f"{self.source}: {path}: {rule}{got}")

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping with keys {', '.join(allowed)}", value)
        for k in value:
            if k not in allowed:
                self.fail(f"{path}.{k}" if path else str(k), f"unknown key (allowed: {', '.join(allowed)})",
                          k)
        for k in required:
            if k not in value or value[k] is None:
                self.fail(f"{path}.{k}" if path else k, "required key is missing")
        return value

    def integer(self, value: Any, path: str, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "must be an integer", value)
        if minimum is not None and value < minimum:
            self.fail(path, f"must be >= {minimum}", value)
        return value

    def number(self, value: Any, path: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(path, "must be a finite number", value)
        if positive and value <= 0:
            self.fail(path, "must be > 0", value)
        return value

    def string(self, value: Any, path: str, allowed: Sequence[str] | None = None) -> str:
        if not isinstance(value, str):
            self.fail(path, "must be a string" if allowed is None else f"must be one of {list(allowed)}",
                      value)
        if allowed is not None and value not in allowed:
            self.fail(path, f"must be one of {list(allowed)}", value)
        return value

    def choices(self, value: Any, path: str, check: Callable[[Any, str], Any], *, allow_range: bool = False,
                range_step_multiple: int = 1) -> Dim:
        """A list of choices, a single value, or (if allowed) an integer range {low, high, step}."""
        if isinstance(value, dict) and allow_range:
            self.mapping(value, path, _RANGE_KEYS, required=("low", "high"))
            low = self.integer(value["low"], f"{path}.low", minimum=1)
            high = self.integer(value["high"], f"{path}.high", minimum=1)
            step = self.integer(value.get("step", range_step_multiple), f"{path}.step", minimum=1)
            if step % range_step_multiple:
                self.fail(f"{path}.step", f"must be a multiple of {range_step_multiple}", step)
            if high < low:
                self.fail(f"{path}.high", f"must be >= low={low}", high)
            if (high - low) % step:
                self.fail(f"{path}.high", f"high - low must be a multiple of step={step} (low={low})", high)
            if (high - low) // step >= MAX_CHOICES:
                self.fail(path, f"a range may hold at most {MAX_CHOICES} values", value)
            values = tuple(range(low, high + 1, step))
            for i, v in enumerate(values):
                check(v, f"{path}.low" if i == 0 else f"{path}")
            return Dim(path, values, {"low": low, "high": high, "step": step})
        if isinstance(value, dict):
            self.fail(path, "must be a list of choices or a single value", value)
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(items) > MAX_CHOICES:
            self.fail(path, f"at most {MAX_CHOICES} choices", f"{len(items)} choices")
        if not items:
            self.fail(path, "needs at least one choice", value)
        out = []
        for i, v in enumerate(items):
            v = check(v, f"{path}[{i}]" if isinstance(value, (list, tuple)) else path)
            if v in out:
                self.fail(f"{path}[{i}]", "duplicate choice", v)
            out.append(v)
        return Dim(path, tuple(out), list(out))


def _format_pydantic(e: ValidationError, prefix: str, source: str) -> str:
    err = e.errors()[0]
    path = prefix
    for part in err["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        return f"{source}: {path}: unknown key"
    return f"{source}: {path}: {msg}, got {short(err.get('input'))}"
