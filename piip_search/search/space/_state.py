"""The attributes a `SearchSpace` holds once read: declared once here for the mixins that read them."""

from __future__ import annotations

from typing import Any

from piip_search.search.space._values import Budgets, Dim, Objective


class SpaceState:
    """Declarations only: `SearchSpace.__init__` and its section parsers set every one of these."""

    source: str
    name: str
    description: str | None
    trials: int | None
    max_retries: int
    repeats: int
    inverted: bool | str
    task: str
    fixed: dict[str, Any]
    n_branches: Dim
    presets: Dim | None
    embed_dims: Dim | None
    depths: Dim | None
    head_dim: int | None
    num_heads: int | None
    resolutions: Dim
    window: Dim | None
    window_per_branch: bool
    inter_count: Dim | None
    inter_direction: Dim | None
    inter_attention: Dim | None
    budgets: Budgets
    objectives: list[Objective]
    flops_convention: str
    evaluator: str
    sampler: str | None
    proxy: dict[str, Any]
    fidelity: dict[str, Any] | None

    def _heads_of(self, embed_dim: int) -> int:
        return embed_dim // self.head_dim if self.head_dim is not None else self.num_heads  # type: ignore[return-value]
