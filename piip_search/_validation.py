"""One way to say what is wrong with a config or a space file: pydantic validation errors as
`<key path>: <rule>, got <value>`, for `PIIPConfig` and the search-space schema alike.

Rules read as the project writes them ("must be >= 1", "must be one of [...]", "unknown key (allowed: ...)"),
not in pydantic's wording, and a validator can name another key than the one it validates (`rule`), so a
cross-field rule points at the key to change.
"""

from __future__ import annotations

import ast
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from piip_search.errors import shown

__all__ = ["format_error", "rule", "verbatim"]

#: Pydantic error types and the project's wording of their rule (`ctx` fills the braces).
_RULES = {
    "missing": "required key is missing",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a finite number",
    "float_parsing": "must be a finite number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "may hold at most {max_length} items",
    "string_pattern_mismatch": "must match {pattern}",
}


def rule(message: str, *, path: str | None = None, got: Any = ..., got_text: str | None = None
         ) -> PydanticCustomError:
    """An error a validator raises: `message` is the rule; `path` (from the document root) names the key to
    change when it is not the one being validated; `got` is the value to show (default: the input), or
    `got_text` a description of it."""
    ctx: dict[str, Any] = {"rule": message}
    if path is not None:
        ctx["path"] = path
    if got is not ...:
        ctx["got"] = shown(got)
    if got_text is not None:
        ctx["got"] = got_text
    return PydanticCustomError("rule", "{rule}", ctx)


def verbatim(text: str) -> PydanticCustomError:
    """An error whose whole message is already written (`<path>: <rule>, got <value>` of a nested model)."""
    return PydanticCustomError("verbatim", "{text}", {"text": text})


def _expected_list(expected: str) -> str:
    """pydantic's "'a', 'b' or 'c'" as "['a', 'b', 'c']"."""
    try:
        return repr(list(ast.literal_eval("[" + expected.replace(" or ", ", ") + "]")))
    except (ValueError, SyntaxError):
        return expected


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The schema models an annotation can hold (through Annotated, unions, lists and tuples)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model that holds the key at `loc` (for the allowed-keys list of an unknown key)."""
    keys = [p for p in loc[:-1] if isinstance(p, str) and not p.startswith("<")]
    for key in keys:
        if model is None or key not in model.model_fields:
            return None
        found = _models_in(model.model_fields[key].annotation)
        model = found[0] if len(found) == 1 else None
    return model


def _path(loc: tuple[Any, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, str) and part.startswith("<"):  # a tagged union's tag, not a key
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one(err: Any, prefix: str, schema: type[BaseModel] | None) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "verbatim":
        return str(ctx["text"])
    path = ctx.get("path") or _path(err["loc"], prefix)
    got = ctx.get("got")
    if kind == "rule":
        message = ctx["rule"]
    elif kind == "extra_forbidden":
        holder = _model_at(schema, tuple(err["loc"]))
        allowed = f" (allowed: {', '.join(holder.model_fields)})" if holder is not None else ""
        message, got = f"unknown key{allowed}", shown(err["loc"][-1])
    elif kind == "literal_error":
        message = f"must be one of {_expected_list(ctx.get('expected', ''))}"
    elif kind in _RULES:  # bounds as written: 1, not 1.0
        message = _RULES[kind].format(**{k: int(v) if isinstance(v, float) and v.is_integer() else v
                                         for k, v in ctx.items()})
    else:
        message = err["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return f"{path}: {message}"
    if got is None:
        value = err.get("input")
        got = None if isinstance(value, dict) and kind not in ("rule", "dict_type", "model_type") else shown(value)
    return f"{path}: {message}" + (f", got {got}" if got is not None else "")


def _consequence(err: Any) -> bool:
    """A length error only because items failed ("at least 1 item after validation, not 0"): the items'
    own errors say what is wrong."""
    ctx, value = err.get("ctx") or {}, err.get("input")
    return (err["type"] == "too_short" and isinstance(value, (list, tuple))
            and ctx.get("actual_length", len(value)) < len(value))


def format_error(e: ValidationError, source: str | None = None, *, prefix: str = "",
                 schema: type[BaseModel] | None = None, first_only: bool = False) -> str:
    """`<source>: <path>: <rule>, got <value>` per error (the first only, or all on indented lines)."""
    lines = [_one(err, prefix, schema) for err in e.errors(include_url=False) if not _consequence(err)]
    head = f"{source}: " if source else ""
    if first_only or len(lines) == 1:
        return head + lines[0]
    if len(lines) > 20:
        lines = [*lines[:20], f"... and {len(lines) - 20} more"]
    return head + "invalid config:\n  " + "\n  ".join(lines)
