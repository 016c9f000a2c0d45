"""Progress of a search: a rich bar in the terminal (trials done, status counts, front size, hypervolume) and
one line per finished trial, storage outage or recovered trial in `trials/<study>/search.log`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("piip_search.search")


@contextmanager
def search_log(study_path: Path) -> Iterator[Path]:
    """Within the block, piip_search's messages go to `<study_path>/search.log` (INFO and up) and warnings also
    to the terminal."""
    from piip_search.search._lifecycle import worker_id

    study_path.mkdir(parents=True, exist_ok=True)
    path = study_path / "search.log"
    root = logging.getLogger("piip_search")
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setLevel(logging.INFO)
    to_file.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{worker_id()}] %(message)s"))
    to_terminal = logging.StreamHandler(sys.stderr)
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    previous = root.level
    root.setLevel(logging.INFO)
    root.addHandler(to_file)
    root.addHandler(to_terminal)
    try:
        yield path
    finally:
        root.removeHandler(to_file)
        root.removeHandler(to_terminal)
        root.setLevel(previous)
        to_file.close()

#: the bar's front and hypervolume are recomputed at most this often (~17 ms each at 1,000 trials)
FRONT_REFRESH_S = 2.0


class SearchProgress:
    def __init__(self, driver: Any, total: int, *, enabled: bool = True) -> None:
        self.driver = driver
        self.total = total
        self.enabled = enabled
        self.counts: dict[str, int] = {}
        self._progress: Any = None
        self._task: Any = None
        self._front = ""
        self._front_at = -float("inf")

    def __enter__(self) -> SearchProgress:
        if self.enabled:
            from piip_search._terminal import progress_bar

            self._progress, self._task = progress_bar("{task.fields[state]}", total=self.total,
                                                      description="[bold]search[/]", state="starting")
        return self

    def update(self, outcome: Any) -> None:
        m = outcome.metrics or {}
        ap = m.get("ap")
        log.info("trial %d: %s  %s GFLOPs  AP %s%s", outcome.number, outcome.status,
                 "-" if m.get("flops") is None else f"{m['flops'] / 1e9:.4f}",
                 "-" if ap is None else f"{float(ap):.4f}",
                 f"  ({str(m['message'])[:200]})" if m.get("message") and outcome.status != "ok" else "")
        key = outcome.status.split(":")[0]
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._progress is None:
            return
        self._progress.update(self._task, advance=1, state=self._description())

    def _description(self, *, force: bool = False) -> str:
        # the front reads every trial of the study (any worker's): recomputed at most every FRONT_REFRESH_S
        now = time.monotonic()
        if force or now - self._front_at >= FRONT_REFRESH_S:
            from piip_search.search._results import pareto_front

            front = pareto_front(self.driver.study)
            self._front, self._front_at = f"front {len(front.points)} | HV {front.hypervolume:.4g}", now
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"{self._front} | {counts}"

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            if exc[0] is None:
                self._progress.update(self._task, state=self._description(force=True))
            self._progress.stop()
