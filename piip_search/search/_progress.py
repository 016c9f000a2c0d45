"""Rich progress for a search: trials done, status counts, front size and hypervolume."""

from __future__ import annotations

import sys
from typing import Any


class SearchProgress:
    def __init__(self, driver: Any, total: int, *, enabled: bool = True) -> None:
        self.driver = driver
        self.total = total
        self.enabled = enabled
        self.counts: dict[str, int] = {}
        self._progress = None
        self._task = None

    def __enter__(self) -> SearchProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]search[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=Console(file=sys.stderr), transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=self.total)
        return self

    def update(self, outcome: Any) -> None:
        key = outcome.status.split(":")[0]
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._progress is None:
            return
        from piip_search.search._results import pareto_front

        front = pareto_front(self.driver.study)
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        desc = f"front {len(front.points)} | HV {front.hypervolume:.4g} | {counts}"
        self._progress.update(self._task, advance=1, description=desc)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
