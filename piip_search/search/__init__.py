"""Search: spaces over PIIP architectures, the Optuna driver and its workers, trial records, Pareto tools,
multi-fidelity promotion."""

from piip_search.search._driver import Prepared, SearchDriver, TrialOutcome
from piip_search.search._evaluators import EvalContext, resolve_evaluator
from piip_search.search._fidelity import FidelitySchedule, PromotionDecision, geometric_rungs
from piip_search.search._pareto import (
    as_minimization,
    crowding_distance,
    dominates,
    hypervolume,
    knee_point,
    non_dominated_ranks,
    pareto_indices,
    pareto_mask,
)
from piip_search.search._results import (
    FrontInfo,
    TrialRecord,
    ap_label,
    branches_label,
    config_points,
    interactions_label,
    pareto_front,
    records,
    select,
    status_summary,
)
from piip_search.search._run import BACKENDS, run_search, run_worker
from piip_search.search._samplers import DEFAULT_SAMPLER, make_sampler
from piip_search.search._storage import study_dir
from piip_search.search._storage_retry import StorageUnavailableError
from piip_search.search._study import attach_study, open_study, set_metric_names
from piip_search.search._tune_status import tune_status
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
from piip_search.search.space import (
    SAMPLER_NAMES as SAMPLERS,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_SAMPLER",
    "OBJECTIVES",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "Budgets",
    "EvalContext",
    "FidelitySchedule",
    "FrontInfo",
    "Objective",
    "Prepared",
    "PromotionDecision",
    "SearchDriver",
    "SearchSpace",
    "StorageUnavailableError",
    "TrialOutcome",
    "TrialRecord",
    "as_minimization",
    "ap_label",
    "attach_study",
    "branches_label",
    "config_points",
    "crowding_distance",
    "default_space_path",
    "dominates",
    "geometric_rungs",
    "hypervolume",
    "interactions_label",
    "knee_point",
    "list_spaces",
    "make_sampler",
    "non_dominated_ranks",
    "open_study",
    "pareto_front",
    "pareto_indices",
    "pareto_mask",
    "records",
    "resolve_evaluator",
    "run_search",
    "run_worker",
    "select",
    "set_metric_names",
    "space_path",
    "status_summary",
    "study_dir",
    "tune_status",
]
