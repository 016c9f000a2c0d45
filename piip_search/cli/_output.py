"""What every command shares: exit codes, JSON on stdout, the rich console, the inversion warning."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_OK", "console", "print_json", "warn_not_inverted"]

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


def print_json(obj: Any) -> None:
    """Stable JSON on stdout (sorted keys, one object)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def console():
    from rich.console import Console

    return Console()


def warn_not_inverted(cfg: Any) -> None:
    from piip_search.config import inversion_problems

    for problem in inversion_problems(cfg):
        print(f"warning: not parameter-inverted: {problem}", file=sys.stderr)
