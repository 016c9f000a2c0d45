"""Search spaces: the YAML schema of `search_spaces/*.yaml`, read into a frozen `SearchSpace` that samples
configs from Optuna trials and maps configs to params and back."""

from piip_search.search.space._lookup import default_space_path, list_spaces, space_path
from piip_search.search.space._space import SearchSpace
from piip_search.search.space._values import (
    DEFAULT_MAX_RETRIES,
    OBJECTIVES,
    SAMPLER_NAMES,
    Budgets,
    Dim,
    Objective,
)

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "OBJECTIVES",
    "SAMPLER_NAMES",
    "Budgets",
    "Dim",
    "Objective",
    "SearchSpace",
    "default_space_path",
    "list_spaces",
    "space_path",
]
