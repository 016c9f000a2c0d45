"""Export trials as `PIIPConfig` YAML files with provenance; `flops`/`train` read them back unchanged."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from piip_search.config import PIIPConfig


def trial_config(record: Any, *, study: str, convention: str) -> PIIPConfig:
    """The trial's config with a `provenance` block (study, trial, metrics, FLOPs and their convention)."""
    if record.config is None:
        raise ValueError(f"trial {record.number} has no recorded config")
    metrics = {k: v for k, v in (record.metrics or {}).items()
               if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    provenance = {
        "study": study,
        "trial": record.number,
        "flops": record.flops,
        "params": record.params,
        "flops_convention": convention,
        "flops_unit": "multiply-adds",
        "metrics": metrics,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "tool": "piip-search",
    }
    data = dict(record.config)
    data["name"] = f"{study}-trial-{record.number}"
    data["provenance"] = provenance
    return PIIPConfig.from_dict(data, source=f"trial {record.number}")
