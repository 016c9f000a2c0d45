"""Search: spaces over PIIP architectures, Pareto tools, multi-fidelity promotion (and the Optuna driver)."""

from piip_search.search._driver import (
    DEFAULT_SAMPLER,
    SAMPLERS,
    SearchDriver,
    attach_study,
    make_sampler,
    open_study,
    run_search,
    run_worker,
)
from piip_search.search._evaluators import EvalContext, resolve_evaluator
from piip_search.search._fidelity import FidelitySchedule, PromotionDecision, geometric_rungs
from piip_search.search._pareto import (
    as_minimization,
    crowding_distance,
    dominates,
    hypervolume,
    knee_point,
    non_dominated_ranks,
    pareto_front,
    pareto_mask,
)
from piip_search.search.space import (
    OBJECTIVES,
    SAMPLER_NAMES,
    Budgets,
    Objective,
    SearchSpace,
    default_space_path,
    list_spaces,
    space_path,
)

__all__ = [
    "DEFAULT_SAMPLER",
    "SAMPLERS",
    "EvalContext",
    "SearchDriver",
    "attach_study",
    "make_sampler",
    "open_study",
    "resolve_evaluator",
    "run_search",
    "run_worker",
    "OBJECTIVES",
    "SAMPLER_NAMES",
    "Budgets",
    "FidelitySchedule",
    "Objective",
    "PromotionDecision",
    "SearchSpace",
    "as_minimization",
    "crowding_distance",
    "default_space_path",
    "dominates",
    "geometric_rungs",
    "hypervolume",
    "knee_point",
    "list_spaces",
    "non_dominated_ranks",
    "pareto_front",
    "pareto_mask",
    "space_path",
]
