"""The YAML schema of a search space, in pydantic like `PIIPConfig`: types, ranges, unknown keys and the rules
between sections are checked here (the dimension types are in `_choices.py`); `SearchSpace` builds its
dimensions from the validated document.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from piip_search._validation import format_error, rule, verbatim
from piip_search.config import PIIPConfig
from piip_search.config._architecture import BranchConfig, InteractionConfig
from piip_search.search._fidelity import geometric_rungs
from piip_search.search.space._choices import (
    AttentionList,
    BranchCounts,
    Choices,
    Depths,
    DirectionList,
    InteractionCounts,
    PositiveInt,
    PresetList,
    ResolutionChoices,
    Section,
    Widths,
    WindowList,
)
from piip_search.search.space._values import (
    _FORBIDDEN_FIXED,
    _SEARCHED_BRANCH_FIELDS,
    DEFAULT_MAX_RETRIES,
    FLOPS_CONVENTIONS,
    MAX_REPEATS,
    OBJECTIVES,
    SAMPLER_NAMES,
)

__all__ = ["Choices", "SpaceDocument"]


# ---- sections ----------------------------------------------------------------------------------------------
class ModelDims(Section):
    """Explicit branch models: every width x depth, with heads from `head_dim` or a fixed `num_heads`."""

    embed_dim: Widths
    depth: Depths
    head_dim: Annotated[int, Field(ge=1, le=1024)] | None = None
    num_heads: Annotated[int, Field(ge=1, le=1024)] | None = None

    @model_validator(mode="after")
    def _heads(self) -> ModelDims:
        if (self.head_dim is None) == (self.num_heads is None):
            raise rule("give exactly one of head_dim (num_heads = embed_dim / head_dim) or num_heads (the same "
                       "for every width)", path="branches.models", got=sorted(self.model_fields_set))
        key, val = ("head_dim", self.head_dim) if self.head_dim is not None else ("num_heads", self.num_heads)
        for e in self.embed_dim.values:
            if e % val:
                raise rule(f"every width must be divisible by {key}={val}", path="branches.models.embed_dim",
                           got=e)
        return self


class WindowChoices(Section):
    choices: WindowList
    per_branch: bool = False


def _models_form(value: Any) -> str:
    return "<dims>" if isinstance(value, dict) else "<presets>"


def _windows_form(value: Any) -> str:
    return "<per-branch>" if isinstance(value, dict) else "<shared>"


if TYPE_CHECKING:
    ModelsField: TypeAlias = ModelDims | Choices
    WindowField: TypeAlias = WindowChoices | Choices | None
else:
    ModelsField = Annotated[Annotated[ModelDims, Tag("<dims>")] | Annotated[PresetList, Tag("<presets>")],
                            Discriminator(_models_form)]
    WindowField = Annotated[Annotated[WindowChoices, Tag("<per-branch>")] | Annotated[WindowList, Tag("<shared>")],
                            Discriminator(_windows_form)]


class Branches(Section):
    count: BranchCounts
    models: ModelsField
    resolutions: ResolutionChoices
    window_size: WindowField = None


class Interactions(Section):
    count: InteractionCounts | None = None
    direction: DirectionList | None = None
    attention: AttentionList | None = None


class BudgetLimits(Section):
    max_gflops: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_params_m: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class Fidelity(Section):
    """Iteration rungs, given as a list or as a geometric series from min_iters to max_iters."""

    rungs: list[PositiveInt] | None = Field(default=None, min_length=1)
    min_iters: PositiveInt | None = None
    max_iters: PositiveInt | None = None
    eta: float = Field(default=3.0, gt=1, allow_inf_nan=False)
    min_results: PositiveInt = 3

    @model_validator(mode="after")
    def _rungs(self) -> Fidelity:
        if self.rungs is not None:
            if self.min_iters is not None or self.max_iters is not None:
                raise rule("give either rungs or min_iters/max_iters, not both", path="fidelity",
                           got=sorted(self.model_fields_set))
            for i in range(1, len(self.rungs)):
                if self.rungs[i] <= self.rungs[i - 1]:
                    raise rule(f"rungs must be strictly increasing (previous {self.rungs[i - 1]})",
                               path=f"fidelity.rungs[{i}]", got=self.rungs[i])
            return self
        for key in ("min_iters", "max_iters"):
            if getattr(self, key) is None:
                raise rule("required key is missing", path=f"fidelity.{key}", got=None)
        if self.max_iters < self.min_iters:  # type: ignore[operator]
            raise rule(f"must be >= min_iters={self.min_iters}", path="fidelity.max_iters", got=self.max_iters)
        return self

    def schedule(self) -> list[int]:
        if self.rungs is not None:
            return list(self.rungs)
        return list(geometric_rungs(self.min_iters, self.max_iters, self.eta))  # type: ignore[arg-type]


def _matching(pattern: str, message: str) -> AfterValidator:
    """A string rule: the whole value matches `pattern`, else `message`."""
    def check(v: str) -> str:
        if not re.fullmatch(pattern, v):
            raise rule(message)
        return v
    return AfterValidator(check)


# ---- the document ------------------------------------------------------------------------------------------
_EMPTY_MEANS_DEFAULT = ("interactions", "fixed", "budgets", "proxy")


class SpaceDocument(Section):
    """A whole space file. Sections left out (or null) take their defaults."""

    name: Annotated[str, _matching(r"[A-Za-z0-9][A-Za-z0-9_.-]*",
                                   "must be letters, digits, '_', '-' or '.' (it names the study folder)")]
    description: str | None = None
    trials: PositiveInt | None = None
    branches: Branches
    inverted: Any = True
    interactions: Interactions = Interactions()
    fixed: dict[str, Any] = {}
    budgets: BudgetLimits = BudgetLimits()
    objectives: list[Any] | None = None
    flops_convention: Literal[FLOPS_CONVENTIONS] = "model"  # type: ignore[valid-type]
    proxy: dict[str, Any] = {}
    fidelity: Fidelity | None = None
    evaluator: Annotated[str, _matching(r"(builtin:[\w-]+|[\w.]+:[\w]+)",
                                        "must be 'builtin:<name>' or 'package.module:function'")] = "builtin:proxy"
    sampler: str | None = None
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0)
    repeats: PositiveInt = 1  # evaluations (proxy seeds) a near-front config may get: search/_repeats.py

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k in _EMPTY_MEANS_DEFAULT and v is None)}
        return data

    @field_validator("max_retries")
    @classmethod
    def _max_retries(cls, v: int) -> int:
        if v > 20:
            raise rule("must be at most 20 (a config that kills its worker that often is broken)")
        return v

    @field_validator("repeats")
    @classmethod
    def _repeats(cls, v: int) -> int:
        if v > MAX_REPEATS:
            raise rule(f"must be at most {MAX_REPEATS} (evaluations of one config, each with its own seed)")
        return v

    @field_validator("inverted", mode="before")
    @classmethod
    def _inverted(cls, v: Any) -> Any:
        if v is not True and v is not False and v != "strict":
            raise rule("must be true, false or 'strict'")
        return v

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: str | None) -> str | None:
        if v is not None and v not in SAMPLER_NAMES:
            raise rule(f"must be one of {list(SAMPLER_NAMES)}")
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, objs: list[Any] | None) -> list[tuple[str, str]] | None:
        if objs is None:
            return None
        if not objs:
            raise rule("must be a non-empty list such as [{flops: minimize}, {ap: maximize}]")
        out: list[tuple[str, str]] = []
        for i, o in enumerate(objs):
            name, direction = _objective(o, f"objectives[{i}]")
            if any(n == name for n, _ in out):
                raise rule("duplicate objective", path=f"objectives[{i}]", got=name)
            out.append((name, direction))
        return out

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        _check_fixed(fixed)
        return fixed

    @model_validator(mode="after")
    def _across_sections(self) -> SpaceDocument:
        fixed_inter = self.fixed.get("interactions") or {}
        for k in ("count", "direction", "attention"):
            if getattr(self.interactions, k) is not None and k in fixed_inter:
                raise rule(f"is searched in interactions.{k}", path=f"fixed.interactions.{k}", got=fixed_inter[k])
        fixed_branches = self.fixed.get("branches") or {}
        if self.branches.window_size is not None and "window_size" in fixed_branches:
            raise rule("is searched in branches.window_size", path="fixed.branches.window_size",
                       got=fixed_branches["window_size"])
        iters = self.proxy.get("iters")
        if self.fidelity is not None and iters is not None and iters != self.fidelity.schedule()[-1]:
            last = self.fidelity.schedule()[-1]
            raise rule(f"the last rung is the full-fidelity iteration count and must equal proxy.iters={iters} "
                       f"(or leave proxy.iters out)", path="fidelity", got_text=f"last rung {last}")
        return self


def _objective(o: Any, path: str) -> tuple[str, str]:
    """`ap`, `{ap: maximize}` or `{name: ap, direction: maximize}` as (name, direction)."""
    if isinstance(o, str):
        if o not in OBJECTIVES:
            raise rule(f"unknown objective; known: {list(OBJECTIVES)} (others need a direction: "
                       f"{{name: minimize|maximize}})", path=path, got=o)
        return o, OBJECTIVES[o]
    if isinstance(o, dict) and set(o) == {"name", "direction"}:
        name, direction = o["name"], o["direction"]
    elif isinstance(o, dict) and len(o) == 1:
        ((name, direction),) = o.items()
    else:
        raise rule("must be a name or a one-key mapping {name: minimize|maximize}", path=path, got=o)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise rule("the objective name must be an identifier (a metric key)", path=path, got=name)
    if direction not in ("minimize", "maximize"):
        raise rule("must be one of ['minimize', 'maximize']", path=f"{path}.{name}", got=direction)
    if name in OBJECTIVES and direction != OBJECTIVES[name]:
        raise rule(f"{name} can only be {OBJECTIVES[name]}d", path=f"{path}.{name}", got=direction)
    return name, direction


def _check_fixed(fixed: dict[str, Any]) -> None:
    """`fixed:` holds PIIPConfig fields set on every sampled config; each part is checked by its own model."""
    for k in fixed:
        if k in _FORBIDDEN_FIXED:
            raise rule(f"cannot be fixed: {_FORBIDDEN_FIXED[k]}", path=f"fixed.{k}", got=fixed[k])
    allowed = [k for k in PIIPConfig.model_fields if k not in ("name", "provenance")]
    for k in fixed:
        if k not in allowed:
            raise rule(f"unknown key (allowed: {', '.join(allowed)})", path=f"fixed.{k}", got=k)
    fb, fi = fixed.get("branches") or {}, fixed.get("interactions") or {}
    if not isinstance(fb, dict):
        raise rule("must be a mapping of branch fields applied to every branch (the search decides the number "
                   "of branches)", path="fixed.branches", got=fb)
    if not isinstance(fi, dict):
        raise rule("must be a mapping of interaction fields", path="fixed.interactions", got=fi)
    for k in _SEARCHED_BRANCH_FIELDS:
        if k in fb:
            raise rule("is set by the search (branches.models / branches.resolutions)", path=f"fixed.branches.{k}",
                       got=fb[k])
    if "indexes" in fi:
        raise rule(f"cannot be fixed: {_FORBIDDEN_FIXED['interactions.indexes']}",
                   path="fixed.interactions.indexes", got=fi["indexes"])
    top = {k: v for k, v in fixed.items() if k not in ("branches", "interactions")}
    for prefix, model, data in (
            ("fixed.interactions", InteractionConfig, fi),
            ("fixed.branches", BranchConfig, {"model": "T", "resolution": 64, **fb}),
            ("fixed", PIIPConfig, {"branches": [{"model": "T", "resolution": 64}], "interactions": {"count": 1},
                                   **top})):
        try:
            model.model_validate(data)
        except ValidationError as e:
            raise verbatim(format_error(e, prefix=prefix, schema=model, first_only=True)) from None
