"""From a validated `SpaceDocument` to the space's attributes: one `Dim` per dimension, sorted the way the
sampler draws them, plus the settings that pass through (budgets, objectives, fidelity, proxy)."""

from __future__ import annotations

from piip_search.config import PRESET_ORDER
from piip_search.errors import ConfigError, SearchSpaceError
from piip_search.search.space._schema import Choices, SpaceDocument, WindowChoices
from piip_search.search.space._state import SpaceState
from piip_search.search.space._values import DEFAULT_OBJECTIVES, Budgets, Dim, Objective


def _dim(path: str, c: Choices | None, *, ordered: bool = True) -> Dim | None:
    """A dimension; `ordered` sorts its values (and a written list), as the inverted rule draws them."""
    if c is None:
        return None
    if not ordered:
        return Dim(path, c.values, list(c.spec))
    return Dim(path, tuple(sorted(c.values)), c.spec if isinstance(c.spec, dict) else sorted(c.spec))


class SpaceParsers(SpaceState):
    """Mixin of `SearchSpace`: sets every attribute from the document, once, in `SearchSpace.__init__`."""

    def _read_document(self, doc: SpaceDocument) -> None:
        self.name = doc.name
        self.description = doc.description
        self.trials = doc.trials
        self.max_retries = doc.max_retries
        self.repeats = doc.repeats
        self.inverted = doc.inverted
        self.fixed = dict(doc.fixed)
        self.task = self.fixed.get("task", "detection")
        self._read_branches(doc)
        it = doc.interactions
        self.inter_count = _dim("interactions.count", it.count)
        self.inter_direction = _dim("interactions.direction", it.direction, ordered=False)
        self.inter_attention = _dim("interactions.attention", it.attention, ordered=False)
        self.budgets = Budgets(doc.budgets.max_gflops, doc.budgets.max_params_m)
        pairs = doc.objectives if doc.objectives is not None else DEFAULT_OBJECTIVES
        self.objectives = [Objective(n, d) for n, d in pairs]
        self.flops_convention = doc.flops_convention
        self.evaluator = doc.evaluator
        self.sampler = doc.sampler
        self.proxy = dict(doc.proxy)
        f = doc.fidelity
        self.fidelity = None if f is None else {"rungs": f.schedule(), "eta": f.eta, "min_results": f.min_results}

    def _read_branches(self, doc: SpaceDocument) -> None:
        b = doc.branches
        self.n_branches = _dim("branches.count", b.count)  # type: ignore[assignment]
        self.presets = self.embed_dims = self.depths = None
        self.head_dim = self.num_heads = None
        if isinstance(b.models, Choices):
            ordered = tuple(sorted(b.models.values, key=PRESET_ORDER.index))
            self.presets = Dim("branches.models", ordered, list(ordered))
        else:
            self.embed_dims = _dim("branches.models.embed_dim", b.models.embed_dim)
            self.depths = _dim("branches.models.depth", b.models.depth)
            self.head_dim, self.num_heads = b.models.head_dim, b.models.num_heads
        self.resolutions = _dim("branches.resolutions", b.resolutions)  # type: ignore[assignment]
        self.window, self.window_per_branch = None, False
        if "window_size" in b.model_fields_set:
            if isinstance(b.window_size, WindowChoices):
                self.window_per_branch = b.window_size.per_branch
                self.window = _dim("branches.window_size.choices", b.window_size.choices, ordered=False)
            else:
                self.window = _dim("branches.window_size", b.window_size, ordered=False)

    def check_proxy(self) -> None:
        """Check `proxy:` against the proxy trainer's settings when the builtin proxy evaluator is used
        (`dataset`/`data` name the data, `gpus_per_trial`/`cpus_per_trial` the Ray resources: not settings)."""
        if self.evaluator != "builtin:proxy":
            return
        from piip_search.proxy import ProxySettings
        from piip_search.search._evaluators import RESOURCE_KEYS

        opts = {k: v for k, v in self.proxy.items() if k not in ("dataset", "data", *RESOURCE_KEYS)}
        try:
            ProxySettings.from_dict(opts)
        except (ConfigError, TypeError, ValueError) as e:
            raise SearchSpaceError(f"{self.source}: {e}") from None
