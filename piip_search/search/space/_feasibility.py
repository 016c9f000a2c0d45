"""Whole-space checks run when a space is read: every dimension buildable, a valid sample exists, the
budgets admit the cheapest architecture."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from piip_search.config import PRESETS, PIIPConfig
from piip_search.config._architecture import InteractionConfig
from piip_search.errors import ConfigError
from piip_search.search.space._rules import SpaceRules
from piip_search.search.space._sampling import SpaceSampling
from piip_search.search.space._values import (
    _PROBE_LIMIT,
    _Model,
)

if TYPE_CHECKING:
    pass


class SpaceFeasibility(SpaceSampling):
    """Mixin of `SearchSpace`: checks of the whole space."""

    def _model_values(self) -> list[_Model]:
        if self.presets is not None:
            return [_Model(p, PRESETS[p].embed_dim, PRESETS[p].depth) for p in self.presets.values]
        return [_Model(None, e, d) for e in self.embed_dims.values for d in self.depths.values]  # type: ignore[union-attr]

    def _count_values(self) -> tuple[tuple[int, ...], str]:
        if self.inter_count is not None:
            return self.inter_count.values, "interactions.count"
        fixed = (self.fixed.get("interactions") or {}).get("count")
        if fixed is not None:
            return (fixed,), "fixed.interactions.count"
        return (InteractionConfig().count or 1,), "interactions.count (not given: PIIP default)"

    def _check_feasible(self, r: SpaceRules) -> None:
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
        self._check_widths(r, models, attentions, interacting, mpath)
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
        self._probe(r, models, windows, directions, attentions, max(counts))

    def _check_widths(self, r: SpaceRules, models: list[_Model], attentions: tuple[Any, ...], interacting: bool,
                      mpath: str) -> None:
        """Widths: GroupNorm(32) in the branch merge, and the interaction heads."""
        fi = self.fixed.get("interactions") or {}
        max_n = max(self.n_branches.values)
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

    def _probe(self, r: SpaceRules, models: list[_Model], windows: tuple[Any, ...], directions: tuple[Any, ...],
               attentions: tuple[Any, ...], count: int) -> None:
        """The backstop: build configs across the space (every branch alike, lowest resolution)."""
        combos = list(itertools.product(self.n_branches.values, models, windows, directions, attentions))
        if len(combos) > _PROBE_LIMIT:
            combos = combos[:: math.ceil(len(combos) / _PROBE_LIMIT)]
        res = self.resolutions.values[0]
        for n, mo, w, d, a in combos:
            data = self._assemble([mo] * n, [res] * n, [w] * n if self.window else None, count, d, a)
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
        the space's convention. Skipped when there are no budgets.
        """
        if self.budgets.max_gflops is None and self.budgets.max_params_m is None:
            return
        if counter is None:
            from piip_search.flops import count

            def counter(cfg: PIIPConfig) -> Any:
                return count(cfg, convention=self.flops_convention)
        reps = [counter(c) for c in self.cheapest_configs()]
        gmin = min(rep.flops for rep in reps) / 1e9
        pmin = min(rep.params for rep in reps) / 1e6
        r = SpaceRules(self.source)
        if self.budgets.max_gflops is not None and self.budgets.max_gflops < gmin:
            r.fail("budgets.max_gflops", f"is below the cheapest architecture of the space ({gmin:.4g} "
                   f"GFLOPs, {self.flops_convention} convention): no sample would be feasible",
                   self.budgets.max_gflops)
        if self.budgets.max_params_m is not None and self.budgets.max_params_m < pmin:
            r.fail("budgets.max_params_m", f"is below the smallest architecture of the space ({pmin:.4g} M "
                   f"params, {self.flops_convention} convention): no sample would be feasible",
                   self.budgets.max_params_m)
