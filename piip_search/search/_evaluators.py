"""Pluggable evaluators: what turns a sampled `PIIPConfig` into metrics (at least `ap`).

A space names its evaluator (`builtin:proxy` by default, `builtin:flops-only`, or a user's
`package.module:function`). Every evaluator is called as `fn(cfg, ctx) -> dict` with an `EvalContext`;
it may call `ctx.report(iters, metrics)` at the iterations in `ctx.rungs` and must stop early when that
returns False (multi-fidelity promotion, see `_fidelity.py`). A returned `status` other than "ok" marks the
trial failed (with `message`); an exception does the same; neither stops the search.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piip_search._registry import Registry
from piip_search.config import PIIPConfig
from piip_search.errors import SearchSpaceError

RESOURCE_KEYS = ("gpus_per_trial", "cpus_per_trial")  # `proxy:` keys read by the Ray backends

Evaluator = Callable[[PIIPConfig, "EvalContext"], dict[str, Any]]


@dataclass
class EvalContext:
    """What an evaluator gets besides the config."""

    trial_dir: Path
    fidelity: int | None  # full-fidelity training iterations (None: the evaluator's own default)
    rungs: list[int] = field(default_factory=list)  # iterations at which to call `report` (last = fidelity)
    device: str | None = None
    proxy: dict[str, Any] = field(default_factory=dict)  # the space's `proxy:` settings
    trial_number: int = -1
    report: Callable[[int, dict[str, Any]], bool] = lambda iters, metrics: True
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("piip_search.trial"))

    @property
    def seed(self) -> int:
        """The proxy seed of this evaluation: `proxy.seed` (0 if unset), moved on by k for a config's k-th
        re-evaluation (`repeats:` in the space); the builtin proxy trains with it."""
        return int(self.proxy.get("seed", 0) or 0)


def _proxy_evaluator(cfg: PIIPConfig, ctx: EvalContext) -> dict[str, Any]:
    """Short proxy training on the space's dataset (default: the embedded synthetic set); returns COCO AP."""
    from piip_search.proxy import ProxySettings, train_proxy

    opts = {k: v for k, v in ctx.proxy.items() if k not in RESOURCE_KEYS}  # Ray's business, not training's
    data = opts.pop("dataset", None) or opts.pop("data", None)
    if data is None:
        from piip_search.data import default_dataset_dir

        data = default_dataset_dir()
    if ctx.fidelity is not None:
        opts["iters"] = ctx.fidelity
    if ctx.rungs:
        opts["eval_at"] = sorted(set(ctx.rungs))
    if ctx.device is not None:
        opts["device"] = ctx.device
    settings = ProxySettings(**opts)

    def on_eval(iters: int, metrics: dict[str, Any]) -> bool:
        return ctx.report(iters, metrics)

    result = train_proxy(cfg, data, settings, progress=False, log_path=ctx.trial_dir / "log.txt",
                         on_eval=on_eval if ctx.rungs else None)
    return result.to_dict()


def _flops_only_evaluator(cfg: PIIPConfig, ctx: EvalContext) -> dict[str, Any]:
    """No training: AP is reported as 0.0. Useful to explore budgets and check a space end to end."""
    return {"status": "ok", "ap": 0.0, "note": "flops-only evaluator: no training, AP not measured"}


#: Evaluators a space names as `builtin:<name>`; a user's own is `package.module:function` instead.
BUILTIN: Registry[Evaluator] = Registry("evaluator")
BUILTIN.register("builtin:proxy")(_proxy_evaluator)
BUILTIN.register("builtin:flops-only")(_flops_only_evaluator)


def resolve_evaluator(spec: str) -> Evaluator:
    """`builtin:proxy`, `builtin:flops-only` or `package.module:function` (importable from the cwd too)."""
    if spec in BUILTIN:
        return BUILTIN.get(spec)
    if spec.startswith("builtin:"):
        raise SearchSpaceError(f"evaluator: unknown builtin {spec!r}; choose one of {sorted(BUILTIN)}")
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SearchSpaceError(f"evaluator: must be 'builtin:proxy', 'builtin:flops-only' or "
                               f"'package.module:function', got {spec!r}")
    import sys

    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SearchSpaceError(f"evaluator: cannot import module {module_name!r} of {spec!r}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SearchSpaceError(f"evaluator: {module_name!r} has no callable {attr!r} (from {spec!r})")
    return fn
