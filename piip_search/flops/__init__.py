"""Parameter and FLOPs accounting for PIIP configs. FLOPs are multiply-adds everywhere.

Two analytic conventions (`count(cfg, convention=...)`, no model built, cached per canonical config):

* `paper`: the counting that produced the published PIIP #Param/#FLOPs (docs/official-code.md §6);
* `model`: the backbone `piip_search.models.build_piip(cfg)` builds, at the branch resolutions.

`traced_flops(cfg)` builds that backbone and counts it with fvcore (plus handles for what fvcore misses),
the cross-check of the `model` convention.
"""

from piip_search.flops._count import COUNTERS, count
from piip_search.flops._render import branches_table, flops_table, interactions_lines
from piip_search.flops._report import CONVENTIONS, FlopsReport, Part
from piip_search.flops._traced import TracedReport, traced_flops

__all__ = [
    "CONVENTIONS",
    "COUNTERS",
    "FlopsReport",
    "Part",
    "TracedReport",
    "branches_table",
    "count",
    "flops_table",
    "interactions_lines",
    "traced_flops",
]
