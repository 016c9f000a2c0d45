"""optuna-dashboard integration: objective names on the study and the report's plots attached to it."""

from __future__ import annotations

import optuna

__all__ = ["attach_report_plots", "metric_names", "set_study_metric_names"]

_LABELS = {"flops": "GFLOPs", "ap": "AP", "params": "M params"}


def metric_names(study: optuna.Study) -> list[str]:
    objs = study.user_attrs.get("objectives") or [("flops", "minimize"), ("ap", "maximize")]
    return [_LABELS.get(str(n), str(n)) for n, _ in objs][: len(study.directions)]


def set_study_metric_names(study: optuna.Study) -> list[str]:
    """Name the objectives ("GFLOPs", "AP") so the dashboard and Optuna's plots stop calling them 0 and 1.
    Idempotent; call at study creation, and on old studies before serving them."""
    from piip_search.search import set_metric_names

    set_metric_names(study, metric_names(study))
    return metric_names(study)


def attach_report_plots(study: optuna.Study) -> list[str]:
    """The report's front and composition plots as dashboard graph objects (fixed ids: re-attaching replaces)."""
    from optuna_dashboard import save_plotly_graph_object

    from piip_search.report.data import report_data
    from piip_search.report.figures import composition_figure, front_figure

    d = report_data(study, importances=False)
    return [save_plotly_graph_object(study, front_figure(d), graph_object_id="piip-front"),
            save_plotly_graph_object(study, composition_figure(d), graph_object_id="piip-composition")]
