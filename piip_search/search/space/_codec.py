"""The params <-> config codec: the Optuna params of a known config (`--enqueue`) and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from piip_search.config import PRESET_ORDER, PRESETS, PIIPConfig, even_ranges
from piip_search.errors import SearchSpaceError
from piip_search.search.space._rules import SpaceRules
from piip_search.search.space._sampling import SpaceSampling
from piip_search.search.space._values import (
    Dim,
    _first_difference,
)

if TYPE_CHECKING:
    pass


class SpaceCodec(SpaceSampling):
    """Mixin of `SearchSpace`: params <-> configs."""

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
        r = SpaceRules(f"{self.source}: cannot represent {label}")
        out = _Params(r)
        out.put("n_branches", self.n_branches, len(cfg.branches), "number of branches")
        self._branch_params(cfg, out)
        if self.inverted:
            self._check_inverted(cfg, r)
        if len(cfg.branches) > 1:
            self._interaction_params(cfg, out)
        params = out.params
        try:
            rebuilt = self.config_from_params(params)
        except SearchSpaceError as e:
            r.fail("params", f"do not rebuild the config ({e})")
        diff = _first_difference(rebuilt.canonical(), cfg.canonical())
        if diff is not None:
            path, space_v, cfg_v = diff
            r.fail(path, f"the space (with its fixed: fields) gives {space_v!r}", cfg_v)
        return params

    def _branch_params(self, cfg: PIIPConfig, out: _Params) -> None:
        r = out.rules
        for i, b in enumerate(cfg.branches):
            p = f"branches[{i}]"
            if self.presets is not None:
                shape = (b.embed_dim, b.depth, b.num_heads)
                preset = b.model if b.model is not None and not b.preset_dims() else next(
                    (k for k, v in PRESETS.items() if (v.embed_dim, v.depth, v.num_heads) == shape), None)
                if preset is None:
                    r.fail(p, "explicit dims that match no preset", f"{b.embed_dim}x{b.depth}")
                out.put(f"b{i}.model", self.presets, preset, f"{p}.model")
            else:
                out.put(f"b{i}.embed_dim", self.embed_dims, b.embed_dim, f"{p}.embed_dim")
                out.put(f"b{i}.depth", self.depths, b.depth, f"{p}.depth")
                if b.num_heads != self._heads_of(b.embed_dim):
                    r.fail(f"{p}.num_heads", f"the space uses {self._heads_of(b.embed_dim)} heads for width "
                           f"{b.embed_dim}", b.num_heads)
            out.put(f"b{i}.resolution", self.resolutions, b.resolution, f"{p}.resolution")
            if self.window is not None and self.window_per_branch:
                out.put(f"b{i}.window_size", self.window, b.window_size, f"{p}.window_size")
        if self.window is not None and not self.window_per_branch:
            ws = {b.window_size for b in cfg.branches}
            if len(ws) > 1:
                r.fail("branches.window_size", "the space gives every branch the same window size",
                       [b.window_size for b in cfg.branches])
            out.put("window_size", self.window, ws.pop(), "branches[*].window_size")

    def _check_inverted(self, cfg: PIIPConfig, r: SpaceRules) -> None:
        for i in range(1, len(cfg.branches)):
            a, b = cfg.branches[i - 1], cfg.branches[i]
            bigger = (PRESET_ORDER.index(b.model) > PRESET_ORDER.index(a.model)
                      if self.presets is not None else (b.embed_dim > a.embed_dim or b.depth > a.depth))
            if bigger:
                r.fail(f"branches[{i}]", f"not parameter-inverted: larger than branches[{i - 1}]",
                       f"{b.model or (b.embed_dim, b.depth)} after {a.model or (a.embed_dim, a.depth)}")

    def _interaction_params(self, cfg: PIIPConfig, out: _Params) -> None:
        inter = cfg.interactions
        out.put("interactions.direction", self.inter_direction, inter.direction, "interactions.direction")
        count = inter.count
        if inter.indexes is not None:
            k = len(inter.indexes[0])
            if tuple(tuple(x) for x in inter.indexes) != tuple(even_ranges(b.depth, k) for b in cfg.branches):
                out.rules.fail("interactions.indexes", "explicit ranges that are not the even split the space "
                               "uses", [list(map(list, x)) for x in inter.indexes])
            count = k
        out.put("interactions.count", self.inter_count, count, "interactions.count")
        out.put("interactions.attention", self.inter_attention, inter.attention, "interactions.attention")


class _Params:
    """The params `params_from_config` collects: a value outside a dimension's choices is a failure, and a
    dimension with one choice is not a parameter."""

    def __init__(self, rules: SpaceRules) -> None:
        self.rules = rules
        self.params: dict[str, Any] = {}

    def put(self, name: str, dim: Dim | None, value: Any, what: str) -> None:
        if dim is None:
            return
        if value not in dim.values:
            shown = dim.spec if isinstance(dim.spec, dict) else list(dim.values)
            self.rules.fail(what, f"not among the choices of {dim.path} {shown}", value)
        if dim.searched:
            self.params[name] = value
