"""One base class for every error a user can cause, so the CLI can turn them into exit code 2."""

from __future__ import annotations

__all__ = ["ConfigError", "DatasetError", "PiipSearchError", "SearchSpaceError", "StudyError", "shown"]


class PiipSearchError(Exception):
    """Base class of all user-facing errors (bad input). The CLI prints the message and exits 2."""


class ConfigError(PiipSearchError, ValueError):
    """An architecture config that cannot be built; the message names key path, rule and value."""


class SearchSpaceError(PiipSearchError, ValueError):
    """A search-space file that cannot be used; the message names file, key path, rule and value."""


class DatasetError(PiipSearchError):
    """A dataset folder or annotation file that is missing or corrupt."""


class StudyError(PiipSearchError):
    """A study that does not exist, or a storage that cannot be opened."""


def shown(value: object, limit: int = 200) -> str:
    """`repr(value)` cut to `limit` characters, so a huge value (a YAML alias bomb) never floods a message."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<{type(value).__name__}, nested too deep>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
