"""Convention `model` (placeholder until piip_search.models lands)."""
from __future__ import annotations
from piip_search.config import PIIPConfig
from piip_search.flops._report import FlopsReport

def count_model(cfg: PIIPConfig) -> FlopsReport:
    raise NotImplementedError
