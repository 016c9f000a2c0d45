"""Exports of chosen configs (YAML, official PIIP mmdet format). The HTML report lives in piip_search.report."""

from piip_search.export._export import EXPORTERS, export_study
from piip_search.export._mmdet import mmdet_unsupported, to_mmdet_config
from piip_search.export._yaml import trial_config

__all__ = ["EXPORTERS", "export_study", "mmdet_unsupported", "to_mmdet_config", "trial_config"]
