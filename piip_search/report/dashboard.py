"""optuna-dashboard integration: objective names on the study and the report's plots attached to it."""

from __future__ import annotations

import optuna

from piip_search.errors import PiipSearchError
from piip_search.search import set_metric_names
from piip_search.search._optuna_internals import storage_of

__all__ = ["attach_report_plots", "serve_dashboard", "set_study_metric_names"]


def set_study_metric_names(study: optuna.Study) -> list[str]:
    """Name the objectives ("GFLOPs", "AP") so the dashboard and Optuna's plots stop calling them 0 and 1."""
    return set_metric_names(study)


def attach_report_plots(study: optuna.Study) -> list[str]:
    """The report's front and composition plots as dashboard graph objects (fixed ids: re-attaching replaces)."""
    from optuna_dashboard import save_plotly_graph_object

    from piip_search.report.data import report_data
    from piip_search.report.figures import composition_figure, front_figure

    d = report_data(study, importances=False)
    return [save_plotly_graph_object(study, front_figure(d), graph_object_id="piip-front"),
            save_plotly_graph_object(study, composition_figure(d), graph_object_id="piip-composition")]


def serve_dashboard(study: optuna.Study, *, host: str, port: int) -> None:
    """optuna-dashboard on the study's storage, with objective names and the report's plots (a snapshot:
    `report` or a restart refreshes them); blocks until interrupted."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise PiipSearchError("dashboard needs optuna-dashboard: pip install 'piip-search[dashboard]'") from None
    set_study_metric_names(study)
    attach_report_plots(study)
    run_server(storage_of(study), host=host, port=port)
