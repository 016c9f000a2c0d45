"""The dimension types of the space schema: a dimension ("choices") is written as a list, a single value, or,
for integers, a range `{low, high, step}`; each is validated into a `Choices` (the values in the order written,
and the form written, for `to_dict`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple, TypeAlias, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)

from piip_search._validation import rule
from piip_search.config import DIRECTIONS, PATCH_SIZE, PRESET_ORDER
from piip_search.search.space._values import ATTENTIONS, MAX_CHOICES

# Size bounds: a value past them can only be a mistake (PIIPConfig's own bounds; the official PIIP uses up to 4
# branches, 3200 wide, 48 deep, 1792 px).
MAX_BRANCHES, MAX_WIDTH, MAX_DEPTH, MAX_RESOLUTION, MAX_WINDOW = 8, 16384, 256, 8192, 1024


class Choices(NamedTuple):
    values: tuple[Any, ...]
    spec: Any  # a list, or {low, high, step}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---- dimensions --------------------------------------------------------------------------------------------
class IntRange(Section):
    """`{low, high, step}`: every integer from low to high in steps (step is declared before high so the rule
    on high can use it)."""

    STEP_MULTIPLE: ClassVar[int] = 1
    MAXIMUM: ClassVar[int | None] = None  # a value past it can only be a typo (the size bounds of PIIPConfig)
    low: int = Field(ge=1)
    step: int = Field(default=1, ge=1)
    high: int = Field(ge=1)

    @field_validator("step")
    @classmethod
    def _step(cls, v: int) -> int:
        if v % cls.STEP_MULTIPLE:
            raise rule(f"must be a multiple of {cls.STEP_MULTIPLE}")
        return v

    @field_validator("high")
    @classmethod
    def _high(cls, v: int, info: ValidationInfo) -> int:
        low, step = info.data.get("low"), info.data.get("step")
        if low is None or step is None:
            return v
        if v < low:
            raise rule(f"must be >= low={low}")
        if cls.MAXIMUM is not None and v > cls.MAXIMUM:
            raise rule(f"must be <= {cls.MAXIMUM}")
        if (v - low) % step:
            raise rule(f"high - low must be a multiple of step={step} (low={low})")
        if (v - low) // step >= MAX_CHOICES:
            raise rule(f"a range may hold at most {MAX_CHOICES} values")
        return v


class ResolutionRange(IntRange):
    STEP_MULTIPLE: ClassVar[int] = PATCH_SIZE
    MAXIMUM: ClassVar[int | None] = MAX_RESOLUTION
    low: int = Field(ge=PATCH_SIZE, multiple_of=PATCH_SIZE)
    step: int = Field(default=PATCH_SIZE, ge=1)
    high: int = Field(ge=PATCH_SIZE)


def _choice_list(items: list[Any]) -> list[Any]:
    if not items:
        raise rule("needs at least one choice")
    if len(items) > MAX_CHOICES:
        raise rule(f"at most {MAX_CHOICES} choices", got=f"{len(items)} choices")
    for i, v in enumerate(items):
        if v in items[:i]:
            raise rule("duplicate choice", got=v)
    return items


def _as_choices(value: Any) -> Choices:
    if isinstance(value, IntRange):
        return Choices(tuple(range(value.low, value.high + 1, value.step)),
                       {"low": value.low, "high": value.high, "step": value.step})
    if isinstance(value, list):
        return Choices(tuple(value), list(value))
    return Choices((value,), [value])


def _form(value: Any) -> str:
    if isinstance(value, dict):
        return "<range>"
    return "<list>" if isinstance(value, (list, tuple)) else "<one>"


def _lists_only(value: Any) -> Any:
    if isinstance(value, dict):
        raise rule("must be a list of choices or a single value")
    return list(value) if isinstance(value, tuple) else value


def choices(item: Any, range_model: type[IntRange] | None = None) -> Any:
    """The type of a dimension whose choices are `item`s: a list, one value, or a range (if `range_model`)."""
    many: Any = Annotated[list[item], AfterValidator(_choice_list)]
    forms: list[Any] = [Annotated[many, Tag("<list>")], Annotated[item, Tag("<one>")]]
    if range_model is not None:
        forms.append(Annotated[range_model, Tag("<range>")])
    union: Any = Annotated[Union[tuple(forms)], Discriminator(_form)]  # noqa: UP007 (built at run time)
    if range_model is None:
        return Annotated[union, BeforeValidator(_lists_only), AfterValidator(_as_choices)]
    return Annotated[union, AfterValidator(_as_choices)]


def _preset_name(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # YAML keeps "6B" a string


def _global_is_none(v: Any) -> Any:
    return None if v == "global" else v


PositiveInt = Annotated[int, Field(ge=1)]
Resolution = Annotated[int, Field(ge=PATCH_SIZE, multiple_of=PATCH_SIZE, le=MAX_RESOLUTION)]
Window = Annotated[Annotated[int, Field(ge=1, le=MAX_WINDOW)] | None, BeforeValidator(_global_is_none)]


def bounded_ints(maximum: int) -> Any:
    """Choices of integers in [1, maximum], as a list, one value or a range."""
    upto = type(f"IntRangeTo{maximum}", (IntRange,), {"MAXIMUM": maximum, "__module__": __name__})
    return choices(Annotated[int, Field(ge=1, le=maximum)], upto)

Preset = Annotated[Literal[PRESET_ORDER], BeforeValidator(_preset_name)]  # type: ignore[valid-type]
Direction = Literal[DIRECTIONS]  # type: ignore[valid-type]
Attention = Literal[ATTENTIONS]  # type: ignore[valid-type]

if TYPE_CHECKING:  # what validation yields; the runtime types below also say how it is read
    BranchCounts: TypeAlias = Choices
    Widths: TypeAlias = Choices
    Depths: TypeAlias = Choices
    InteractionCounts: TypeAlias = Choices
    ResolutionChoices: TypeAlias = Choices
    WindowList: TypeAlias = Choices
    PresetList: TypeAlias = Choices
    DirectionList: TypeAlias = Choices
    AttentionList: TypeAlias = Choices
else:
    BranchCounts = bounded_ints(MAX_BRANCHES)
    Widths = bounded_ints(MAX_WIDTH)
    Depths = bounded_ints(MAX_DEPTH)
    InteractionCounts = bounded_ints(MAX_DEPTH)  # spread over a branch's blocks: at most its depth
    ResolutionChoices = choices(Resolution, ResolutionRange)
    WindowList = choices(Window)
    PresetList = choices(Preset)
    DirectionList = choices(Direction)
    AttentionList = choices(Attention)
