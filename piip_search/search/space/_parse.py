"""The section parsers of `SearchSpace` (branches, interactions, fixed fields, budgets, objectives,
fidelity): each reads one YAML section into the space's attributes while it is built."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from piip_search.config import DIRECTIONS, PATCH_SIZE, PRESET_ORDER, PIIPConfig
from piip_search.config._architecture import BranchConfig, InteractionConfig
from piip_search.errors import ConfigError, SearchSpaceError
from piip_search.search._fidelity import geometric_rungs
from piip_search.search.space._reader import _format_pydantic, _Reader
from piip_search.search.space._state import SpaceState
from piip_search.search.space._values import (
    _BRANCH_KEYS,
    _DIMS_KEYS,
    _FORBIDDEN_FIXED,
    _INTER_KEYS,
    _SEARCHED_BRANCH_FIELDS,
    ATTENTIONS,
    DEFAULT_OBJECTIVES,
    OBJECTIVES,
    Budgets,
    Dim,
    Objective,
)

if TYPE_CHECKING:
    pass


class SpaceParsers(SpaceState):
    """Mixin of `SearchSpace`: one parser per YAML section, run once by `SearchSpace.__init__`."""

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
        (`dataset`/`data` name the data, `gpus_per_trial`/`cpus_per_trial` the Ray resources: not settings)."""
        if self.evaluator != "builtin:proxy":
            return
        from piip_search.proxy import ProxySettings
        from piip_search.search._evaluators import RESOURCE_KEYS

        r = _Reader(self.source)
        opts = {k: v for k, v in self.proxy.items() if k not in ("dataset", "data", *RESOURCE_KEYS)}
        try:
            ProxySettings.from_dict(opts)
        except (ConfigError, TypeError, ValueError) as e:
            raise SearchSpaceError(f"{r.source}: {e}") from None
