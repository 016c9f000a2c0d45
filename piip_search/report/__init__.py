"""Trade-off analysis of a study: the HTML report, PNGs, study comparison and optuna-dashboard hooks.

data.py computes (tested), figures.py/render.py/png.py draw, dashboard.py names objectives and attaches plots.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna

from piip_search.report.dashboard import attach_report_plots, serve_dashboard, set_study_metric_names
from piip_search.report.data import ReportData, report_data, status_kind
from piip_search.report.png import write_pngs
from piip_search.report.render import render_compare, render_report

__all__ = ["ReportData", "ReportHook", "attach_report_plots", "render_compare", "render_report", "report_data",
           "serve_dashboard", "set_study_metric_names", "status_kind", "write_pngs", "write_report"]


def write_report(study: optuna.Study, path: str | Path) -> Path:
    """Compute and write the HTML report of one study."""
    return render_report(report_data(study), path)


class ReportHook:
    """Rewrites the report after a finished trial, at most every `min_interval_s` (the driver calls it per trial);
    a failure to write is a warning, never a failed search."""

    def __init__(self, study: optuna.Study, path: str | Path, *, min_interval_s: float = 10.0) -> None:
        self.study, self.path, self.min_interval_s = study, Path(path), min_interval_s
        self._last = -float("inf")

    def __call__(self, *_: object, force: bool = False) -> Path | None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return None
        self._last = now
        try:
            return write_report(self.study, self.path)
        except Exception as e:  # the report is a view: a search must not stop because it could not be drawn
            import warnings

            warnings.warn(f"report not written to {self.path}: {type(e).__name__}: {e}", stacklevel=2)
            return None
