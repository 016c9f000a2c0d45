"""The rich progress bar both long-running commands show on stderr (a search, a proxy run)."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(*fields: str, total: int | None, description: str, **initial: Any) -> tuple[Any, Any]:
    """A started rich `Progress` with bar, count, elapsed time and one text column per `fields` entry (a
    format string over the task's fields), and its task id."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               *(TextColumn(f) for f in fields)]
    bar = Progress(*columns, console=Console(file=sys.stderr), transient=False, refresh_per_second=4)
    bar.start()
    return bar, bar.add_task(description, total=total, **initial)
