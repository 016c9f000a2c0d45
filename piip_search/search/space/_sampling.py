"""Define-by-run sampling of a config from an Optuna trial, with the parameter-inverted ordering and the
`inverted: strict` repair."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from piip_search.config import DEFAULT_DROP_PATH, PRESET_ORDER, PRESETS, PIIPConfig
from piip_search.errors import ConfigError, SearchSpaceError
from piip_search.search.space._state import SpaceState
from piip_search.search.space._values import (
    Dim,
    _Model,
    _spread,
)

if TYPE_CHECKING:
    import optuna


class SpaceSampling(SpaceState):
    """Mixin of `SearchSpace`: a trial's draws -> a `PIIPConfig`."""

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
                b.setdefault("drop_path_rate", DEFAULT_DROP_PATH[mo.preset])  # as the published configs
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
                assert self.embed_dims is not None and self.depths is not None  # no presets: widths and depths
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
                models.sort(key=lambda mo: PRESET_ORDER.index(mo.preset), reverse=True)
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
