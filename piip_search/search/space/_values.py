"""The space's vocabulary: known objectives, sampler names, limits, and the small value types (a dimension,
a budget, a branch model)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from piip_search.errors import SearchSpaceError
from piip_search.errors import shown as short
from piip_search.search._samplers import SAMPLERS as SAMPLER_REGISTRY

if TYPE_CHECKING:
    import optuna


#: Known objectives and their only sensible direction. Other names (metrics of a user's evaluator) are allowed
#: with an explicit direction.
OBJECTIVES: dict[str, str] = {
    "flops": "minimize",
    "ap": "maximize",
    "params": "minimize",
    "latency_ms": "minimize",
    "peak_mem_mb": "minimize",
}
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (("flops", "minimize"), ("ap", "maximize"))

#: Sampler names a space may choose as its default (the driver maps them to Optuna samplers).
SAMPLER_NAMES: tuple[str, ...] = tuple(SAMPLER_REGISTRY.keys())

FLOPS_CONVENTIONS: tuple[str, ...] = ("model", "paper")
ATTENTIONS: tuple[str, ...] = ("deformable", "regular")

MAX_CHOICES = 10_000  # per dimension: more can only be a typo in a range
DEFAULT_MAX_RETRIES = 2  # re-queues of a trial whose worker died before a config is failed for good
MAX_REPEATS = 10  # evaluations of one config (seeds) at most: `repeats:` (see search/_repeats.py)
#: Fixed branch fields the search itself sets (always), and fixed fields that cannot apply to sampled configs.
_SEARCHED_BRANCH_FIELDS = ("model", "embed_dim", "depth", "num_heads", "resolution")
_FORBIDDEN_FIXED = {"name": "every sampled config gets its own name", "provenance": "written by `export`",
                    "interactions.indexes": "the space spreads `interactions.count` evenly over each branch"}
_PROBE_LIMIT = 4000  # configs built to check a space when it is read
_SPACES_DIR = "search_spaces"


# ---- small value types -------------------------------------------------------------------------------------
class Objective(NamedTuple):
    name: str
    direction: str  # "minimize" | "maximize"


@dataclass(frozen=True)
class Budgets:
    """Hard limits: a config over a budget is never built (`trial.set_constraint`, value <= 0 = feasible)."""

    max_gflops: float | None = None
    max_params_m: float | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def to_dict(self) -> dict[str, float | None]:
        return {"max_gflops": self.max_gflops, "max_params_m": self.max_params_m}

    def violations(self, flops: int, params: int) -> dict[str, float]:
        """Constraint values (<= 0 feasible) in GFLOPs and M params, one per budget set."""
        out: dict[str, float] = {}
        if self.max_gflops is not None:
            out["max_gflops"] = flops / 1e9 - float(self.max_gflops)
        if self.max_params_m is not None:
            out["max_params_m"] = params / 1e6 - float(self.max_params_m)
        return out


@dataclass(frozen=True)
class Dim:
    """One dimension of the space: its YAML key path, its choices (ordered) and how it was written."""

    path: str
    values: tuple[Any, ...]
    spec: Any  # JSON form written back by `to_dict` (a list, or {low, high, step})

    @property
    def searched(self) -> bool:
        return len(self.values) > 1

    def int_range(self) -> tuple[int, int, int] | None:
        """(low, high, step) if the choices are evenly spaced integers (then an ordered int parameter)."""
        v = self.values
        if len(v) < 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return None
        step = v[1] - v[0]
        if step <= 0 or any(b - a != step for a, b in zip(v, v[1:], strict=False)):
            return None
        return v[0], v[-1], step

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if not self.searched:
            return self.values[0]
        r = self.int_range()
        if r is not None:
            return trial.suggest_int(name, r[0], r[1], step=r[2])
        return trial.suggest_categorical(name, list(self.values))

    def read(self, params: Mapping[str, Any], name: str, source: str) -> Any:
        if not self.searched:
            return self.values[0]
        if name not in params:
            raise SearchSpaceError(f"{source}: params: missing parameter {name!r} ({self.path})")
        value = params[name]
        for v in self.values:  # JSON may turn 448 into 448.0
            same_type = type(v) is type(value) or (
                isinstance(v, int) and not isinstance(v, bool) and isinstance(value, float))
            if same_type and v == value:
                return v
        shown = self.spec if isinstance(self.spec, dict) else list(self.values)
        raise SearchSpaceError(f"{source}: params.{name}: must be one of {shown} ({self.path}), "
                               f"got {short(value)}")


class _Model(NamedTuple):
    """A branch model as the sampler sees it: a preset name, or explicit (embed_dim, depth)."""

    preset: str | None
    embed_dim: int
    depth: int

    @property
    def label(self) -> str:
        return self.preset or f"{self.embed_dim}x{self.depth}"


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else (path, a, b)


def _spread(idx: list[int], n_values: int, decreasing: bool) -> list[int]:
    """Strictly monotone repair of a sorted index sequence (`inverted: strict`): each index that repeats its
    predecessor moves one step on, and the tail is pulled back inside [0, n_values) (n_values >= len)."""
    out = list(idx)
    step = -1 if decreasing else 1
    for j in range(1, len(out)):  # push each later element past its predecessor
        if (out[j] - out[j - 1]) * step <= 0:
            out[j] = out[j - 1] + step
    lo, hi = 0, n_values - 1
    for j in reversed(range(len(out))):  # if pushed off the end, pull back from the end
        bound = (lo if decreasing else hi) if j == len(out) - 1 else out[j + 1] - step
        out[j] = max(out[j], bound) if decreasing else min(out[j], bound)
    return out
