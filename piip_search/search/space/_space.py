"""`SearchSpace`: a parsed, validated, frozen search space over PIIP architectures.

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
    repeats: 3                              # near-front configs get up to 3 proxy seeds (default 1; _repeats.py)

The parameter-inverted rule (`inverted: true`, docs/official-code.md §0, §9): branch 1 has the largest model
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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from piip_search import _yaml
from piip_search._validation import format_error
from piip_search.errors import SearchSpaceError
from piip_search.search._fidelity import FidelitySchedule
from piip_search.search.space._codec import SpaceCodec
from piip_search.search.space._feasibility import SpaceFeasibility
from piip_search.search.space._lookup import space_path
from piip_search.search.space._parse import SpaceParsers
from piip_search.search.space._rules import SpaceRules
from piip_search.search.space._schema import SpaceDocument
from piip_search.search.space._values import Dim

if TYPE_CHECKING:
    pass


# ---- the search space --------------------------------------------------------------------------------------
class SearchSpace(SpaceParsers, SpaceFeasibility, SpaceCodec):
    """A parsed, validated search space. Build with `from_yaml(path)` or `from_dict(data, source=...)`.

    Attributes read by the driver: `name`, `objectives` (list of `Objective`), `directions`, `budgets`,
    `flops_convention`, `proxy`, `evaluator`, `sampler`, `trials`, `max_retries`, `repeats`,
    `fidelity_schedule()`.
    """

    def __init__(self, data: Mapping[str, Any], *, source: str = "<space>", check_budgets: bool = True,
                 check_proxy: bool = False) -> None:
        self.source = source
        try:
            doc = SpaceDocument.model_validate(copy.deepcopy(dict(data)))
        except ValidationError as e:
            raise SearchSpaceError(format_error(e, source, schema=SpaceDocument, first_only=True)) from None
        self._read_document(doc)
        r = SpaceRules(source)
        self._check_feasible(r)
        if check_budgets:
            self.check_budgets()
        if check_proxy:
            self.check_proxy()
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"a SearchSpace is frozen: {name!r} cannot be set (read a new space instead)")
        object.__setattr__(self, name, value)

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
            data = _yaml.loads(_yaml.read_text(p))
        except _yaml.YAMLInputError as e:
            raise SearchSpaceError(f"{source}: {e}") from None
        except OSError as e:
            raise SearchSpaceError(f"{source}: cannot read: {e.strerror}") from None
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
            "evaluator": self.evaluator, "sampler": self.sampler, "max_retries": self.max_retries,
        })
        if self.repeats != 1:  # absent at the default, so studies stored before the key resume unchanged
            out["repeats"] = self.repeats
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=110)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SearchSpace(name={self.name!r}, source={self.source!r}, params={list(self.dimensions())})"

    # ---- views ---------------------------------------------------------------------------------------------
    def objective_pairs(self) -> list[tuple[str, str]]:
        """(name, direction) per objective, in order."""
        return [(o.name, o.direction) for o in self.objectives]

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
