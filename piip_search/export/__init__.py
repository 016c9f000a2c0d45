"""Exports of chosen configs (YAML, official PIIP mmdet format) and the HTML report."""

from piip_search.export._export import EXPORTERS, export_study
from piip_search.export._mmdet import mmdet_unsupported, to_mmdet_config
from piip_search.export._report import ReportInfo, render_report, report_info
from piip_search.export._yaml import trial_config

__all__ = ["EXPORTERS", "ReportInfo", "export_study", "mmdet_unsupported", "render_report", "report_info",
           "to_mmdet_config", "trial_config"]
