"""Search spaces over PIIP architectures: YAML schema, validation, define-by-run sampling with Optuna.

A space file (`search_spaces/default.yaml`, `search_spaces/paper.yaml`) looks like::

    name: paper
    branches:
      count: [2, 3, 4]                      # number of branches
      models: [T, S, B, L]                  # presets, or {embed_dim: [...], depth: [...], head_dim: 64}
      resolutions: {low: 448, high: 1792, step: 32}   # or a list; multiples of 16
      window_size: [14, 28, null]           # null = global; {choices: [...], per_branch: true} per branch
    inverted: true                          # true | strict | false
    interactions: {count: {low: 2, high: 12}, direction: [bidirectional, top-down], attention: [deformable]}
    fixed: {task: detection, interactions: {heads: 16}, branches: {drop_path_rate: 0.1}}
    budgets: {max_gflops: 400, max_params_m: 300}
    objectives: [{flops: minimize}, {ap: maximize}]
    flops_convention: paper                 # model (default) | paper
    proxy: {...}                            # handed to the proxy trainer as is (checked against its settings)
    fidelity: {min_iters: 250, max_iters: 2250, eta: 3, min_results: 3}   # or {rungs: [...]}
    evaluator: builtin:proxy
    sampler: tpe
    trials: 200

The parameter-inverted rule (`inverted: true`, piip-architecture.md §0, §9): branch 1 has the largest model
and the lowest resolution; a higher-resolution branch never gets a larger model. Sampling enforces it by
construction: the `n` model draws `b0.model ... b{n-1}.model` form a pool that is sorted from the largest to
the smallest model (PRESET_ORDER; for explicit dims, widths and depths are each sorted, so a later branch is
never wider nor deeper), and the resolution draws are sorted from the lowest to the highest. So `b{i}.model`
is the i-th *draw*, not necessarily branch i's model; for configs given to `params_from_config` (already
inverted) they coincide. Every other `b{i}.*` parameter (per-branch window size) is positional. `inverted:
strict` also wants models strictly decreasing and resolutions strictly increasing; equal draws are nudged to
the nearest free choice (recorded in the trial's `space.repairs` user attribute). `inverted: false` keeps
model draws in place (resolutions are still sorted: a PIIP config needs them non-decreasing).

Parameter names (stable; a parameter with one choice is not suggested at all): `n_branches`, `b{i}.model` or
`b{i}.embed_dim`/`b{i}.depth`, `b{i}.resolution`, `window_size` or `b{i}.window_size`,
`interactions.direction`, `interactions.count`, `interactions.attention`. Conditional (define-by-run):
`b{i}.*` exist for i < n_branches; the interaction parameters only with 2+ branches (count and attention are
drawn even with direction `none`, where they change nothing: samplers that model only the parameters common to
all trials, GP and NSGA-II, then still see them). Ordered numeric choices (a range, or an evenly spaced list)
are integer parameters, the rest categorical.

Every rule is checked when the file is read, before any work: unknown keys, types, ranges, values that no
architecture accepts (e.g. a width not divisible by the interaction heads, an interaction count above a
depth), spaces with no valid sample at all (strict inversion without enough distinct choices, budgets below
the cheapest architecture). Messages read `<file>: <key path>: <rule>, got <value>`.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import yaml
from pydantic import ValidationError

from piip_search.config import DIRECTIONS, PATCH_SIZE, PRESET_ORDER, PRESETS, PIIPConfig, even_ranges
from piip_search.config._architecture import BranchConfig, InteractionConfig
from piip_search.errors import ConfigError, SearchSpaceError
from piip_search.search._fidelity import FidelitySchedule, geometric_rungs

if TYPE_CHECKING:
    import optuna

__all__ = [
    "OBJECTIVES",
    "SAMPLER_NAMES",
    "Budgets",
    "Objective",
    "SearchSpace",
    "default_space_path",
    "list_spaces",
    "space_path",
]

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
SAMPLER_NAMES: tuple[str, ...] = ("auto", "nsga2", "tpe", "gp", "random", "known-cost")

FLOPS_CONVENTIONS: tuple[str, ...] = ("model", "paper")
ATTENTIONS: tuple[str, ...] = ("deformable", "regular")

_TOP_KEYS = ("name", "description", "trials", "branches", "inverted", "interactions", "fixed", "budgets",
             "objectives", "flops_convention", "proxy", "fidelity", "evaluator", "sampler")
_BRANCH_KEYS = ("count", "models", "resolutions", "window_size")
_DIMS_KEYS = ("embed_dim", "depth", "head_dim", "num_heads")
_INTER_KEYS = ("count", "direction", "attention")
_RANGE_KEYS = ("low", "high", "step")
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
                               f"got {value!r}")


class _Model(NamedTuple):
    """A branch model as the sampler sees it: a preset name, or explicit (embed_dim, depth)."""

    preset: str | None
    embed_dim: int
    depth: int

    @property
    def label(self) -> str:
        return self.preset or f"{self.embed_dim}x{self.depth}"


# ---- the shipped spaces ------------------------------------------------------------------------------------
def _spaces_dirs() -> list[Path]:
    dirs = [Path(__file__).resolve().parents[2] / _SPACES_DIR]  # repository checkout / editable install
    try:
        dirs.append(Path(str(resources.files("piip_search") / _SPACES_DIR)))  # inside a wheel
    except (ModuleNotFoundError, TypeError):
        pass
    return [d for d in dirs if d.is_dir()]


def list_spaces() -> list[str]:
    """Names of the shipped search spaces (`default`, `paper`, ...)."""
    return sorted({p.stem for d in _spaces_dirs() for p in d.glob("*.yaml")})


def space_path(ref: str | Path) -> Path:
    """Path of a space file: an existing path, or the name of a shipped space (`paper`, `paper.yaml`)."""
    p = Path(ref)
    if p.is_file():
        return p
    stem = p.name[:-5] if p.name.endswith(".yaml") else p.name
    if p.parent == Path("."):
        for d in _spaces_dirs():
            if (d / f"{stem}.yaml").is_file():
                return d / f"{stem}.yaml"
    raise SearchSpaceError(f"{ref}: no such file, and not a shipped search space (shipped: "
                           f"{', '.join(list_spaces()) or 'none found'})")


def default_space_path() -> Path:
    """`search_spaces/default.yaml`: the tiny, CPU-sized space `piip-search run` uses without `--space`."""
    return space_path("default")


# ---- parsing helpers ---------------------------------------------------------------------------------------
class _Reader:
    """Reads one space document, raising `SearchSpaceError("<source>: <path>: <rule>, got <value>")`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, rule: str, value: Any = ..., *, shown: str | None = None) -> NoReturn:
        got = "" if value is ... else f", got {shown if shown is not None else repr(value)}"
        raise SearchSpaceError(f"{self.source}: {path}: {rule}{got}")

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping with keys {', '.join(allowed)}", value)
        for k in value:
            if k not in allowed:
                self.fail(f"{path}.{k}" if path else str(k), f"unknown key (allowed: {', '.join(allowed)})",
                          k)
        for k in required:
            if k not in value or value[k] is None:
                self.fail(f"{path}.{k}" if path else k, "required key is missing")
        return value

    def integer(self, value: Any, path: str, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "must be an integer", value)
        if minimum is not None and value < minimum:
            self.fail(path, f"must be >= {minimum}", value)
        return value

    def number(self, value: Any, path: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(path, "must be a finite number", value)
        if positive and value <= 0:
            self.fail(path, "must be > 0", value)
        return value

    def string(self, value: Any, path: str, allowed: Sequence[str] | None = None) -> str:
        if not isinstance(value, str):
            self.fail(path, "must be a string" if allowed is None else f"must be one of {list(allowed)}",
                      value)
        if allowed is not None and value not in allowed:
            self.fail(path, f"must be one of {list(allowed)}", value)
        return value

    def choices(self, value: Any, path: str, check: Callable[[Any, str], Any], *, allow_range: bool = False,
                range_step_multiple: int = 1) -> Dim:
        """A list of choices, a single value, or (if allowed) an integer range {low, high, step}."""
        if isinstance(value, dict) and allow_range:
            self.mapping(value, path, _RANGE_KEYS, required=("low", "high"))
            low = self.integer(value["low"], f"{path}.low", minimum=1)
            high = self.integer(value["high"], f"{path}.high", minimum=1)
            step = self.integer(value.get("step", range_step_multiple), f"{path}.step", minimum=1)
            if step % range_step_multiple:
                self.fail(f"{path}.step", f"must be a multiple of {range_step_multiple}", step)
            if high < low:
                self.fail(f"{path}.high", f"must be >= low={low}", high)
            if (high - low) % step:
                self.fail(f"{path}.high", f"high - low must be a multiple of step={step} (low={low})", high)
            values = tuple(range(low, high + 1, step))
            for i, v in enumerate(values):
                check(v, f"{path}.low" if i == 0 else f"{path}")
            return Dim(path, values, {"low": low, "high": high, "step": step})
        if isinstance(value, dict):
            self.fail(path, "must be a list of choices or a single value", value)
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            self.fail(path, "needs at least one choice", value)
        out = []
        for i, v in enumerate(items):
            v = check(v, f"{path}[{i}]" if isinstance(value, (list, tuple)) else path)
            if v in out:
                self.fail(f"{path}[{i}]", "duplicate choice", v)
            out.append(v)
        return Dim(path, tuple(out), list(out))


def _format_pydantic(e: ValidationError, prefix: str, source: str) -> str:
    err = e.errors()[0]
    path = prefix
    for part in err["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        return f"{source}: {path}: unknown key"
    return f"{source}: {path}: {msg}, got {err.get('input')!r}"


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


# ---- the search space --------------------------------------------------------------------------------------
class SearchSpace:
    """A parsed, validated search space. Build with `from_yaml(path)` or `from_dict(data, source=...)`.

    Attributes read by the driver: `name`, `objectives` (list of `Objective`), `directions`, `budgets`,
    `flops_convention`, `proxy`, `evaluator`, `sampler`, `trials`, `fidelity_schedule()`.
    """

    def __init__(self, data: Mapping[str, Any], *, source: str = "<space>", check_budgets: bool = True,
                 check_proxy: bool = False) -> None:
        self.source = source
        r = _Reader(source)
        d = r.mapping(copy.deepcopy(dict(data)) if isinstance(data, Mapping) else data, "", _TOP_KEYS,
                      required=("name", "branches"))
        self.name: str = r.string(d["name"], "name")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            r.fail("name", "must be letters, digits, '_', '-' or '.' (it names the study folder)", self.name)
        self.description: str | None = None if d.get("description") is None else r.string(d["description"],
                                                                                             "description")
        trials = d.get("trials")
        self.trials: int | None = None if trials is None else r.integer(trials, "trials", minimum=1)
        inv = d.get("inverted", True)
        if inv not in (True, False, "strict"):
            r.fail("inverted", "must be true, false or 'strict'", inv)
        self.inverted: bool | str = inv
        self._parse_fixed(r, d.get("fixed"))
        self._parse_branches(r, d["branches"])
        self._parse_interactions(r, d.get("interactions"))
        self._parse_budgets(r, d.get("budgets"))
        self._parse_objectives(r, d.get("objectives"))
        self.flops_convention: str = r.string(d.get("flops_convention", "model"), "flops_convention",
                                              FLOPS_CONVENTIONS)
        self.evaluator: str = r.string(d.get("evaluator", "builtin:proxy"), "evaluator")
        if not re.fullmatch(r"(builtin:[\w-]+|[\w.]+:[\w]+)", self.evaluator):
            r.fail("evaluator", "must be 'builtin:<name>' or 'package.module:function'", self.evaluator)
        self.sampler: str | None = None if d.get("sampler") is None else r.string(d["sampler"], "sampler",
                                                                                   SAMPLER_NAMES)
        proxy = d.get("proxy") or {}
        if not isinstance(proxy, dict):
            r.fail("proxy", "must be a mapping of proxy-training settings", proxy)
        self.proxy: dict[str, Any] = proxy
        self._parse_fidelity(r, d.get("fidelity"))
        self._check_feasible(r)
        if check_budgets:
            self.check_budgets()
        if check_proxy:
            self.check_proxy()

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<space>", check_budgets: bool = True,
                  check_proxy: bool = False) -> SearchSpace:
        """Parse and validate a space mapping. `check_budgets`: fail if a budget is below the cheapest
        architecture (needs the FLOPs counter, fast). `check_proxy`: check `proxy:` against the proxy
        trainer's settings (imports torch, seconds; `from_yaml` does it, a study's stored space was checked
        already)."""
        if not isinstance(data, Mapping):
            raise SearchSpaceError(f"{source}: a search space must be a mapping (name, branches, ...), "
                                   f"got {type(data).__name__}")
        return cls(data, source=source, check_budgets=check_budgets, check_proxy=check_proxy)

    @classmethod
    def from_yaml(cls, path: str | Path, *, check_budgets: bool = True,
                  check_proxy: bool = True) -> SearchSpace:
        """Read a space file (a path, or the name of a shipped space such as `paper`), with every check."""
        source = str(path)
        p = space_path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise SearchSpaceError(f"{source}: cannot read: {e.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SearchSpaceError(f"{source}: not valid YAML: {e}") from None
        if isinstance(data, dict) and "name" not in data:
            data = {"name": p.stem, **data}
        return cls.from_dict(data, source=source, check_budgets=check_budgets, check_proxy=check_proxy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-native normal form; `SearchSpace.from_dict(s.to_dict()) == s`."""
        branches: dict[str, Any] = {"count": self.n_branches.spec, "resolutions": self.resolutions.spec}
        if self.presets is not None:
            branches["models"] = list(self.presets.spec)
        else:
            models: dict[str, Any] = {"embed_dim": self.embed_dims.spec, "depth": self.depths.spec}  # type: ignore[union-attr]
            models["head_dim" if self.head_dim is not None else "num_heads"] = self.head_dim or self.num_heads
            branches["models"] = models
        if self.window is not None:
            branches["window_size"] = ({"choices": list(self.window.values), "per_branch": True}
                                       if self.window_per_branch else list(self.window.values))
        inter = {k: dim.spec for k, dim in (("count", self.inter_count), ("direction", self.inter_direction),
                                            ("attention", self.inter_attention)) if dim is not None}
        out: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            out["description"] = self.description
        if self.trials is not None:
            out["trials"] = self.trials
        out.update({
            "branches": branches, "inverted": self.inverted, "interactions": inter,
            "fixed": copy.deepcopy(self.fixed), "budgets": self.budgets.to_dict(),
            "objectives": [{o.name: o.direction} for o in self.objectives],
            "flops_convention": self.flops_convention, "proxy": copy.deepcopy(self.proxy),
            "fidelity": None if self.fidelity is None else dict(self.fidelity),
            "evaluator": self.evaluator, "sampler": self.sampler,
        })
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=110)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SearchSpace(name={self.name!r}, source={self.source!r}, params={list(self.dimensions())})"

    # ---- section parsers -----------------------------------------------------------------------------------
    def _parse_fixed(self, r: _Reader, fixed: Any) -> None:
        fixed = {} if fixed is None else fixed
        allowed = [k for k in PIIPConfig.model_fields if k not in ("name", "provenance")]
        if not isinstance(fixed, dict):
            r.fail("fixed", "must be a mapping of PIIPConfig fields", fixed)
        for k in fixed:
            if k in _FORBIDDEN_FIXED:
                r.fail(f"fixed.{k}", f"cannot be fixed: {_FORBIDDEN_FIXED[k]}", fixed[k])
        r.mapping(fixed, "fixed", allowed)
        fb = fixed.get("branches") or {}
        if not isinstance(fb, dict):
            r.fail("fixed.branches", "must be a mapping of branch fields applied to every branch "
                   "(the search decides the number of branches)", fb)
        r.mapping(fb, "fixed.branches", list(BranchConfig.model_fields))
        for k in _SEARCHED_BRANCH_FIELDS:
            if k in fb:
                r.fail(f"fixed.branches.{k}", "is set by the search (branches.models / branches.resolutions)",
                       fb[k])
        fi = fixed.get("interactions") or {}
        if not isinstance(fi, dict):
            r.fail("fixed.interactions", "must be a mapping of interaction fields", fi)
        if "indexes" in fi:
            r.fail("fixed.interactions.indexes",
                   f"cannot be fixed: {_FORBIDDEN_FIXED['interactions.indexes']}", fi["indexes"])
        # field types and ranges, with the fixed.* path
        try:
            InteractionConfig.model_validate(fi)
        except ValidationError as e:
            raise SearchSpaceError(_format_pydantic(e, "fixed.interactions", r.source)) from None
        try:
            BranchConfig.model_validate({"model": "T", "resolution": 64, **fb})
        except ValidationError as e:
            raise SearchSpaceError(_format_pydantic(e, "fixed.branches", r.source)) from None
        top = {k: v for k, v in fixed.items() if k not in ("branches", "interactions")}
        try:
            PIIPConfig.model_validate({"branches": [{"model": "T", "resolution": 64}],
                                       "interactions": {"count": 1}, **top})
        except ValidationError as e:
            raise SearchSpaceError(_format_pydantic(e, "fixed", r.source)) from None
        self.fixed: dict[str, Any] = fixed
        self.task: str = fixed.get("task", "detection")

    def _parse_branches(self, r: _Reader, b: Any) -> None:
        b = r.mapping(b, "branches", _BRANCH_KEYS, required=("count", "models", "resolutions"))
        self.n_branches = self._sorted(r.choices(b["count"], "branches.count",
                                                 lambda v, p: r.integer(v, p, minimum=1), allow_range=True))
        self.presets: Dim | None = None
        self.embed_dims: Dim | None = None
        self.depths: Dim | None = None
        self.head_dim: int | None = None
        self.num_heads: int | None = None
        m = b["models"]
        if isinstance(m, dict):
            r.mapping(m, "branches.models", _DIMS_KEYS, required=("embed_dim", "depth"))
            pos = lambda v, p: r.integer(v, p, minimum=1)  # noqa: E731
            self.embed_dims = self._sorted(r.choices(m["embed_dim"], "branches.models.embed_dim", pos,
                                                     allow_range=True))
            self.depths = self._sorted(r.choices(m["depth"], "branches.models.depth", pos, allow_range=True))
            if ("head_dim" in m) == ("num_heads" in m):
                r.fail("branches.models", "give exactly one of head_dim (num_heads = embed_dim / head_dim) "
                       "or num_heads (the same for every width)", m, shown=repr(sorted(m)))
            key = "head_dim" if "head_dim" in m else "num_heads"
            val = r.integer(m[key], f"branches.models.{key}", minimum=1)
            setattr(self, key, val)
            for e in self.embed_dims.values:
                if e % val:
                    r.fail("branches.models.embed_dim", f"every width must be divisible by {key}={val}", e)
        else:
            def preset(v: Any, p: str) -> str:
                v = str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # YAML keeps "6B" a str
                return r.string(v, p, PRESET_ORDER)

            dim = r.choices(m, "branches.models", preset)
            ordered = tuple(sorted(dim.values, key=PRESET_ORDER.index))
            self.presets = Dim(dim.path, ordered, list(ordered))
        self.resolutions = self._sorted(r.choices(b["resolutions"], "branches.resolutions",
                                                  self._resolution(r), allow_range=True,
                                                  range_step_multiple=PATCH_SIZE))
        self.window: Dim | None = None
        self.window_per_branch = False
        w = b.get("window_size", ...)
        if w is not ...:
            if isinstance(w, dict):
                r.mapping(w, "branches.window_size", ("choices", "per_branch"), required=("choices",))
                pb = w.get("per_branch", False)
                if not isinstance(pb, bool):
                    r.fail("branches.window_size.per_branch", "must be true or false", pb)
                self.window_per_branch = pb
                self.window = r.choices(w["choices"], "branches.window_size.choices", self._window(r))
            else:
                self.window = r.choices(w, "branches.window_size", self._window(r))
            if "window_size" in (self.fixed.get("branches") or {}):
                r.fail("fixed.branches.window_size", "is searched in branches.window_size",
                       self.fixed["branches"]["window_size"])

    @staticmethod
    def _sorted(dim: Dim) -> Dim:
        return Dim(dim.path, tuple(sorted(dim.values)), dim.spec if isinstance(dim.spec, dict) else
                   sorted(dim.spec))

    @staticmethod
    def _resolution(r: _Reader) -> Callable[[Any, str], int]:
        def check(v: Any, p: str) -> int:
            r.integer(v, p, minimum=PATCH_SIZE)
            if v % PATCH_SIZE:
                r.fail(p, f"must be a multiple of {PATCH_SIZE}", v)
            return v
        return check

    @staticmethod
    def _window(r: _Reader) -> Callable[[Any, str], int | None]:
        def check(v: Any, p: str) -> int | None:
            if v is None or v == "global":
                return None
            return r.integer(v, p, minimum=1)
        return check

    def _parse_interactions(self, r: _Reader, it: Any) -> None:
        it = r.mapping({} if it is None else it, "interactions", _INTER_KEYS)
        fixed_inter = self.fixed.get("interactions") or {}
        for k in _INTER_KEYS:
            if k in it and k in fixed_inter:
                r.fail(f"fixed.interactions.{k}", f"is searched in interactions.{k}", fixed_inter[k])
        self.inter_count = None if "count" not in it else r.choices(
            it["count"], "interactions.count", lambda v, p: r.integer(v, p, minimum=1), allow_range=True)
        if self.inter_count is not None:
            self.inter_count = self._sorted(self.inter_count)
        self.inter_direction = None if "direction" not in it else r.choices(
            it["direction"], "interactions.direction", lambda v, p: r.string(v, p, DIRECTIONS))
        self.inter_attention = None if "attention" not in it else r.choices(
            it["attention"], "interactions.attention", lambda v, p: r.string(v, p, ATTENTIONS))

    def _parse_budgets(self, r: _Reader, b: Any) -> None:
        b = r.mapping({} if b is None else b, "budgets", ("max_gflops", "max_params_m"))
        vals = {k: None if b.get(k) is None else float(r.number(b[k], f"budgets.{k}", positive=True))
                for k in ("max_gflops", "max_params_m")}
        self.budgets = Budgets(**vals)

    def _parse_objectives(self, r: _Reader, objs: Any) -> None:
        if objs is None:
            self.objectives = [Objective(n, d) for n, d in DEFAULT_OBJECTIVES]
            return
        if not isinstance(objs, list) or not objs:
            r.fail("objectives", "must be a non-empty list such as [{flops: minimize}, {ap: maximize}]", objs)
        out: list[Objective] = []
        for i, o in enumerate(objs):
            p = f"objectives[{i}]"
            if isinstance(o, str):
                if o not in OBJECTIVES:
                    r.fail(p, f"unknown objective; known: {list(OBJECTIVES)} (others need a direction: "
                           f"{{name: minimize|maximize}})", o)
                name, direction = o, OBJECTIVES[o]
            elif isinstance(o, dict) and set(o) == {"name", "direction"}:
                name, direction = o["name"], o["direction"]
            elif isinstance(o, dict) and len(o) == 1:
                ((name, direction),) = o.items()
            else:
                r.fail(p, "must be a name or a one-key mapping {name: minimize|maximize}", o)
            r.string(name, p)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                r.fail(p, "the objective name must be an identifier (a metric key)", name)
            r.string(direction, f"{p}.{name}", ("minimize", "maximize"))
            if name in OBJECTIVES and direction != OBJECTIVES[name]:
                r.fail(f"{p}.{name}", f"{name} can only be {OBJECTIVES[name]}d", direction)
            if any(x.name == name for x in out):
                r.fail(p, "duplicate objective", name)
            out.append(Objective(name, direction))
        self.objectives = out

    def _parse_fidelity(self, r: _Reader, f: Any) -> None:
        self.fidelity: dict[str, Any] | None = None
        if f is None:
            return
        f = r.mapping(f, "fidelity", ("rungs", "min_iters", "max_iters", "eta", "min_results"))
        eta = r.number(f.get("eta", 3), "fidelity.eta")
        if not eta > 1:
            r.fail("fidelity.eta", "must be > 1", eta)
        min_results = r.integer(f.get("min_results", 3), "fidelity.min_results", minimum=1)
        if "rungs" in f:
            if "min_iters" in f or "max_iters" in f:
                r.fail("fidelity", "give either rungs or min_iters/max_iters, not both", sorted(f))
            rungs = f["rungs"]
            if not isinstance(rungs, list) or not rungs:
                r.fail("fidelity.rungs", "must be a non-empty list of iteration counts", rungs)
            for i, x in enumerate(rungs):
                r.integer(x, f"fidelity.rungs[{i}]", minimum=1)
                if i and x <= rungs[i - 1]:
                    r.fail(f"fidelity.rungs[{i}]",
                           f"rungs must be strictly increasing (previous {rungs[i - 1]})", x)
            rungs = list(rungs)
        else:
            r.mapping(f, "fidelity", ("rungs", "min_iters", "max_iters", "eta", "min_results"),
                      required=("min_iters", "max_iters"))
            lo = r.integer(f["min_iters"], "fidelity.min_iters", minimum=1)
            hi = r.integer(f["max_iters"], "fidelity.max_iters", minimum=1)
            if hi < lo:
                r.fail("fidelity.max_iters", f"must be >= min_iters={lo}", hi)
            rungs = list(geometric_rungs(lo, hi, eta))
        iters = self.proxy.get("iters")
        if iters is not None and iters != rungs[-1]:
            r.fail("fidelity", f"the last rung is the full-fidelity iteration count and must equal "
                   f"proxy.iters={iters} (or leave proxy.iters out)", rungs[-1],
                   shown=f"last rung {rungs[-1]}")
        self.fidelity = {"rungs": rungs, "eta": eta, "min_results": min_results}

    def check_proxy(self) -> None:
        """Check `proxy:` against the proxy trainer's settings when the builtin proxy evaluator is used
        (`dataset`/`data` name the data and are not settings)."""
        if self.evaluator != "builtin:proxy":
            return
        try:
            from piip_search.proxy import ProxySettings
        except ImportError:  # the proxy module is optional here: the evaluator checks again when it runs
            return
        r = _Reader(self.source)
        opts = {k: v for k, v in self.proxy.items() if k not in ("dataset", "data")}
        try:
            ProxySettings.from_dict(opts)
        except (ConfigError, TypeError, ValueError) as e:
            raise SearchSpaceError(f"{r.source}: {e}") from None

    # ---- feasibility of the whole space ------------------------------------------------------------------
    def _model_values(self) -> list[_Model]:
        if self.presets is not None:
            return [_Model(p, PRESETS[p].embed_dim, PRESETS[p].depth) for p in self.presets.values]
        return [_Model(None, e, d) for e in self.embed_dims.values for d in self.depths.values]  # type: ignore[union-attr]

    def _heads_of(self, embed_dim: int) -> int:
        return embed_dim // self.head_dim if self.head_dim is not None else self.num_heads  # type: ignore[return-value]

    def _count_values(self) -> tuple[tuple[int, ...], str]:
        if self.inter_count is not None:
            return self.inter_count.values, "interactions.count"
        fixed = (self.fixed.get("interactions") or {}).get("count")
        if fixed is not None:
            return (fixed,), "fixed.interactions.count"
        return (InteractionConfig().count or 1,), "interactions.count (not given: PIIP default)"

    def _check_feasible(self, r: _Reader) -> None:
        """Rules across sections with space key paths; then build configs over the space as a backstop."""
        fi = self.fixed.get("interactions") or {}
        max_n = max(self.n_branches.values)
        models = self._model_values()
        windows = self.window.values if self.window is not None else ((self.fixed.get("branches") or {})
                                                                      .get("window_size"),)
        directions = (self.inter_direction.values if self.inter_direction
                      else (fi.get("direction", "bidirectional"),))
        attentions = (self.inter_attention.values if self.inter_attention
                      else (fi.get("attention", "deformable"),))
        interacting = max_n > 1 and any(d != "none" for d in directions)
        mpath = "branches.models" if self.presets is not None else "branches.models.embed_dim"
        # widths: GroupNorm(32) in the merge, interaction heads
        if self.task == "detection" and max_n > 1:
            for mo in models:
                if mo.embed_dim % 32:
                    r.fail(mpath, "every width must be divisible by 32 with 2+ branches (GroupNorm(32) in "
                           "the branch merge)", mo.embed_dim)
        if interacting:
            heads = fi.get("heads", InteractionConfig().heads)
            ratio = fi.get("deform_ratio", InteractionConfig().deform_ratio)
            hsrc = "fixed.interactions.heads" if "heads" in fi else "interactions heads (PIIP default)"
            for mo in models:
                if "deformable" in attentions and (mo.embed_dim % heads or int(mo.embed_dim * ratio) % heads):
                    r.fail(mpath, f"with deformable interactions every width and width*deform_ratio "
                           f"({int(mo.embed_dim * ratio)}) must be divisible by {hsrc}={heads}", mo.label)
                if "regular" in attentions and mo.embed_dim % heads:
                    r.fail(mpath, f"with regular-attention interactions every width must be divisible by "
                           f"{hsrc}={heads}", mo.label)
        # interaction count <= every depth
        counts, cpath = self._count_values()
        min_depth = min(mo.depth for mo in models)
        if max(counts) > min_depth:
            r.fail(cpath, f"every choice must be <= the smallest branch depth ({min_depth}: interactions are "
                   f"spread over each branch's blocks)", max(counts))
        if self.task == "classification" and any(w is not None for w in windows):
            r.fail(self.window.path if self.window else "fixed.branches.window_size",
                   "classification branches use global attention (null)",
                   next(w for w in windows if w is not None))
        # strict inversion needs enough distinct choices
        if self.inverted == "strict":
            distinct = len(self.presets.values) if self.presets else len(self.embed_dims.values)  # type: ignore[union-attr]
            if max_n > distinct:
                r.fail("branches.count", f"inverted: strict needs a strictly smaller model on every later "
                       f"branch, but {mpath} has only {distinct} distinct choice(s): no inverted assignment "
                       f"exists", max_n)
            if max_n > len(self.resolutions.values):
                r.fail("branches.count", f"inverted: strict needs strictly increasing resolutions, but "
                       f"branches.resolutions has only {len(self.resolutions.values)} choice(s): no inverted "
                       f"assignment exists", max_n)
        # backstop: build configs across the space (every branch alike, lowest resolution)
        combos = list(itertools.product(self.n_branches.values, models, windows, directions, attentions))
        if len(combos) > _PROBE_LIMIT:
            combos = combos[:: math.ceil(len(combos) / _PROBE_LIMIT)]
        res = self.resolutions.values[0]
        for n, mo, w, d, a in combos:
            data = self._assemble([mo] * n, [res] * n, [w] * n if self.window else None, max(counts), d, a)
            try:
                PIIPConfig.from_dict(data)
            except ConfigError as e:
                r.fail("branches", f"no valid architecture with {n} branch(es) of model {mo.label}, window "
                       f"{w}, direction {d}, attention {a}: {e}")

    def cheapest_configs(self) -> list[PIIPConfig]:
        """Configs among which the space's minimum FLOPs and params lie: fewest branches, smallest models at
        the lowest resolution and fewest interactions, for every window / direction / attention choice."""
        mins = min(self._model_values(), key=lambda mo: (mo.embed_dim, mo.depth))
        n = min(self.n_branches.values)
        counts, _ = self._count_values()
        windows = self.window.values if self.window is not None else (None,)
        dirs = self.inter_direction.values if self.inter_direction else (None,)
        attns = self.inter_attention.values if self.inter_attention else (None,)
        out = []
        for w, d, a in itertools.product(windows, dirs, attns):
            data = self._assemble([mins] * n, [self.resolutions.values[0]] * n,
                                  [w] * n if self.window else None, min(counts), d, a)
            out.append(PIIPConfig.from_dict(data))
        return out

    def check_budgets(self, counter: Callable[[PIIPConfig], Any] | None = None) -> None:
        """Fail if a budget lies below the cheapest architecture of the space (then no sample is feasible).

        `counter(cfg)` returns an object with `.flops` and `.params`; default `piip_search.flops.count` under
        the space's convention. Skipped when there are no budgets or no counter for the convention yet.
        """
        if self.budgets.max_gflops is None and self.budgets.max_params_m is None:
            return
        if counter is None:
            try:
                from piip_search.flops import count
            except ImportError:
                return

            def counter(cfg: PIIPConfig) -> Any:
                return count(cfg, convention=self.flops_convention)
        try:
            reps = [counter(c) for c in self.cheapest_configs()]
        except NotImplementedError:
            return
        gmin = min(rep.flops for rep in reps) / 1e9
        pmin = min(rep.params for rep in reps) / 1e6
        r = _Reader(self.source)
        if self.budgets.max_gflops is not None and self.budgets.max_gflops < gmin:
            r.fail("budgets.max_gflops", f"is below the cheapest architecture of the space ({gmin:.4g} "
                   f"GFLOPs, {self.flops_convention} convention): no sample would be feasible",
                   self.budgets.max_gflops)
        if self.budgets.max_params_m is not None and self.budgets.max_params_m < pmin:
            r.fail("budgets.max_params_m", f"is below the smallest architecture of the space ({pmin:.4g} M "
                   f"params, {self.flops_convention} convention): no sample would be feasible",
                   self.budgets.max_params_m)

    # ---- views ---------------------------------------------------------------------------------------------
    @property
    def directions(self) -> list[str]:
        """Optuna study directions, one per objective."""
        return [o.direction for o in self.objectives]

    def fidelity_schedule(self) -> FidelitySchedule | None:
        """The multi-fidelity schedule, or None when every trial trains to full fidelity at once."""
        if self.fidelity is None:
            return None
        return FidelitySchedule(tuple(self.fidelity["rungs"]), float(self.fidelity["eta"]),
                                int(self.fidelity["min_results"]))

    def dimensions(self) -> dict[str, tuple[Any, ...]]:
        """Every Optuna parameter the space can suggest (for the largest branch count) and its choices."""
        out: dict[str, tuple[Any, ...]] = {}

        def add(name: str, dim: Dim | None) -> None:
            if dim is not None and dim.searched:
                out[name] = dim.values

        add("n_branches", self.n_branches)
        for i in range(max(self.n_branches.values)):
            add(f"b{i}.model", self.presets)
            add(f"b{i}.embed_dim", self.embed_dims)
            add(f"b{i}.depth", self.depths)
            add(f"b{i}.resolution", self.resolutions)
            if self.window_per_branch:
                add(f"b{i}.window_size", self.window)
        if not self.window_per_branch:
            add("window_size", self.window)
        if max(self.n_branches.values) > 1:
            add("interactions.direction", self.inter_direction)
            add("interactions.count", self.inter_count)
            add("interactions.attention", self.inter_attention)
        return out

    # ---- sampling ------------------------------------------------------------------------------------------
    def _assemble(self, models: Sequence[_Model], resolutions: Sequence[int],
                  windows: Sequence[int | None] | None, count: int | None, direction: str | None,
                  attention: str | None) -> dict[str, Any]:
        """The PIIPConfig mapping for per-branch choices in branch order, merged with `fixed:`."""
        fb = self.fixed.get("branches") or {}
        branches = []
        for i, (mo, res) in enumerate(zip(models, resolutions, strict=True)):
            b: dict[str, Any] = dict(fb)
            if mo.preset is not None:
                b["model"] = mo.preset
            else:
                b.update(embed_dim=mo.embed_dim, depth=mo.depth, num_heads=self._heads_of(mo.embed_dim))
            b["resolution"] = res
            if windows is not None:
                b["window_size"] = windows[i]
            branches.append(b)
        inter = dict(self.fixed.get("interactions") or {})
        for k, v in (("count", count), ("direction", direction), ("attention", attention)):
            if v is not None:
                inter[k] = v
        top = {k: copy.deepcopy(v) for k, v in self.fixed.items() if k not in ("branches", "interactions")}
        return {**top, "branches": branches, "interactions": inter}

    def _realise(self, get: Callable[[str, Dim], Any], notes: list[str]) -> PIIPConfig:
        """Draw every parameter through `get(name, dim)`, order the draws (inverted rule), build a config."""
        n = get("n_branches", self.n_branches)
        models: list[_Model] = []
        res: list[int] = []
        per_branch_w: list[int | None] = []
        for i in range(n):
            if self.presets is not None:
                p = get(f"b{i}.model", self.presets)
                models.append(_Model(p, PRESETS[p].embed_dim, PRESETS[p].depth))
            else:
                models.append(_Model(None, get(f"b{i}.embed_dim", self.embed_dims),
                                     get(f"b{i}.depth", self.depths)))
            res.append(get(f"b{i}.resolution", self.resolutions))
            if self.window is not None and self.window_per_branch:
                per_branch_w.append(get(f"b{i}.window_size", self.window))
        windows: list[int | None] | None = None
        if self.window is not None:
            windows = per_branch_w if self.window_per_branch else [get("window_size", self.window)] * n
        res.sort()
        if self.inverted:
            if self.presets is not None:
                models.sort(key=lambda mo: PRESET_ORDER.index(mo.preset), reverse=True)  # type: ignore[arg-type]
            else:
                dims = sorted((mo.embed_dim for mo in models), reverse=True)
                depths = sorted((mo.depth for mo in models), reverse=True)
                models = [_Model(None, e, d) for e, d in zip(dims, depths, strict=True)]
        if self.inverted == "strict":
            models, res = self._make_strict(models, res, notes)
        count = direction = attention = None
        if n > 1:  # with direction `none` count and attention change nothing in the network, but are drawn
            # anyway: samplers that model only the parameters every trial has (GP, NSGA-II) then see them
            direction = get("interactions.direction", self.inter_direction) if self.inter_direction else None
            count = get("interactions.count", self.inter_count) if self.inter_count else None
            if self.inter_attention:
                attention = get("interactions.attention", self.inter_attention)
        if count is None and self.inter_count is not None:
            count = self.inter_count.values[0]
        if direction is None and self.inter_direction is not None:
            direction = self.inter_direction.values[0]
        if attention is None and self.inter_attention is not None:
            attention = self.inter_attention.values[0]
        data = self._assemble(models, res, windows, count, direction, attention)
        try:
            return PIIPConfig.from_dict(data, source=f"{self.source}: sampled config")
        except ConfigError as e:
            raise SearchSpaceError(f"{e} (the space allows an invalid combination; draws: "
                                   f"{[mo.label for mo in models]} at {res})") from None

    def _make_strict(self, models: list[_Model], res: list[int],
                     notes: list[str]) -> tuple[list[_Model], list[int]]:
        if self.presets is not None:
            vals: tuple[Any, ...] = self.presets.values
            idx = [vals.index(mo.preset) for mo in models]
        else:
            vals = self.embed_dims.values  # type: ignore[union-attr]
            idx = [vals.index(mo.embed_dim) for mo in models]
        new = _spread(idx, len(vals), decreasing=True)
        if new != idx:
            before = [mo.label for mo in models]
            if self.presets is not None:
                models = [_Model(vals[k], PRESETS[vals[k]].embed_dim, PRESETS[vals[k]].depth) for k in new]
            else:
                models = [_Model(None, vals[k], mo.depth) for k, mo in zip(new, models, strict=True)]
            notes.append(f"models {before} -> {[mo.label for mo in models]} (inverted: strict)")
        ridx = [self.resolutions.values.index(x) for x in res]
        rnew = _spread(ridx, len(self.resolutions.values), decreasing=False)
        if rnew != ridx:
            new_res = [self.resolutions.values[k] for k in rnew]
            notes.append(f"resolutions {res} -> {new_res} (inverted: strict)")
            res = new_res
        return models, res

    def sample(self, trial: optuna.Trial) -> PIIPConfig:
        """Suggest every parameter on `trial` (define-by-run) and return a valid, parameter-inverted config.

        Strict-inversion repairs are recorded in the user attribute `space.repairs`. If a draw is invalid
        despite the checks made when the space was read, the reason goes to `space.invalid` and
        `SearchSpaceError` is raised (the driver tells the trial FAIL with that message).
        """
        notes: list[str] = []
        try:
            cfg = self._realise(lambda name, dim: dim.suggest(trial, name), notes)
        except SearchSpaceError as e:
            trial.set_user_attr("space.invalid", str(e))
            raise
        if notes:
            trial.set_user_attr("space.repairs", notes)
        return cfg

    def config_from_params(self, params: Mapping[str, Any]) -> PIIPConfig:
        """Rebuild the config of a finished trial from its `params` (extra keys are ignored)."""
        return self._realise(lambda name, dim: dim.read(params, name, self.source), [])

    def params_from_config(self, cfg: PIIPConfig) -> dict[str, Any]:
        """Parameters that make the space produce `cfg` (for `study.enqueue_trial`).

        Raises `SearchSpaceError` naming the first thing the space cannot express (a branch count, model,
        resolution or window outside the choices, a non-inverted order, explicit interaction ranges, a field
        that differs from `fixed:`). Names, drop-path rates and pretrained weights do not matter.
        """
        label = cfg.name or "config"
        r = _Reader(f"{self.source}: cannot represent {label}")
        n = len(cfg.branches)
        params: dict[str, Any] = {}

        def put(name: str, dim: Dim | None, value: Any, what: str) -> None:
            if dim is None:
                return
            if value not in dim.values:
                shown = dim.spec if isinstance(dim.spec, dict) else list(dim.values)
                r.fail(what, f"not among the choices of {dim.path} {shown}", value)
            if dim.searched:
                params[name] = value

        put("n_branches", self.n_branches, n, "number of branches")
        for i, b in enumerate(cfg.branches):
            p = f"branches[{i}]"
            if self.presets is not None:
                shape = (b.dim, b.n_blocks, b.heads)
                preset = b.model if b.embed_dim is None and b.depth is None and b.num_heads is None else next(
                    (k for k, v in PRESETS.items() if (v.embed_dim, v.depth, v.num_heads) == shape), None)
                if preset is None:
                    r.fail(p, "explicit dims that match no preset", f"{b.dim}x{b.n_blocks}")
                put(f"b{i}.model", self.presets, preset, f"{p}.model")
            else:
                put(f"b{i}.embed_dim", self.embed_dims, b.dim, f"{p}.embed_dim")
                put(f"b{i}.depth", self.depths, b.n_blocks, f"{p}.depth")
                if b.heads != self._heads_of(b.dim):
                    r.fail(f"{p}.num_heads",
                           f"the space uses {self._heads_of(b.dim)} heads for width {b.dim}", b.heads)
            put(f"b{i}.resolution", self.resolutions, b.resolution, f"{p}.resolution")
            if self.window is not None and self.window_per_branch:
                put(f"b{i}.window_size", self.window, b.window_size, f"{p}.window_size")
        if self.window is not None and not self.window_per_branch:
            ws = {b.window_size for b in cfg.branches}
            if len(ws) > 1:
                r.fail("branches.window_size", "the space gives every branch the same window size",
                       [b.window_size for b in cfg.branches])
            put("window_size", self.window, ws.pop(), "branches[*].window_size")
        if self.inverted:
            for i in range(1, n):
                a, b = cfg.branches[i - 1], cfg.branches[i]
                bigger = (PRESET_ORDER.index(b.model) > PRESET_ORDER.index(a.model)  # type: ignore[arg-type]
                          if self.presets is not None else (b.dim > a.dim or b.n_blocks > a.n_blocks))
                if bigger:
                    r.fail(f"branches[{i}]", f"not parameter-inverted: larger than branches[{i - 1}]",
                           f"{b.model or (b.dim, b.n_blocks)} after {a.model or (a.dim, a.n_blocks)}")
        inter = cfg.interactions
        if n > 1:
            put("interactions.direction", self.inter_direction, inter.direction, "interactions.direction")
            count = inter.count
            if inter.indexes is not None:
                k = len(inter.indexes[0])
                if tuple(tuple(x) for x in inter.indexes) != tuple(even_ranges(b.n_blocks, k)
                                                                    for b in cfg.branches):
                    r.fail("interactions.indexes", "explicit ranges that are not the even split the space "
                           "uses", [list(map(list, x)) for x in inter.indexes])
                count = k
            put("interactions.count", self.inter_count, count, "interactions.count")
            put("interactions.attention", self.inter_attention, inter.attention, "interactions.attention")
        try:
            rebuilt = self.config_from_params(params)
        except SearchSpaceError as e:
            r.fail("params", f"do not rebuild the config ({e})")
        diff = _first_difference(rebuilt.canonical(), cfg.canonical())
        if diff is not None:
            path, space_v, cfg_v = diff
            r.fail(path, f"the space (with its fixed: fields) gives {space_v!r}", cfg_v)
        return params
