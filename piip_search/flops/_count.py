"""`count(cfg, convention=...)`: analytic params and FLOPs (multiply-adds), cached per canonical config."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from piip_search._registry import Registry
from piip_search.config import PIIPConfig, load_config
from piip_search.flops._report import FlopsReport

#: Analytic counters by convention name; each maps a config to a report (name left to `count`).
COUNTERS: Registry[Callable[[PIIPConfig], FlopsReport]] = Registry("FLOPs convention")

_CACHE: OrderedDict[tuple[str, str], FlopsReport] = OrderedDict()
_CACHE_SIZE = 4096
_LOCK = threading.Lock()  # searches may count from several threads


def _register() -> None:
    from piip_search.flops._model import count_model
    from piip_search.flops._paper import count_paper

    COUNTERS.register("paper")(count_paper)
    COUNTERS.register("model")(count_model)


_register()


def count(cfg: PIIPConfig | str | Path, convention: str = "paper", *, cache: bool = True) -> FlopsReport:
    """Params and FLOPs (multiply-adds) of `cfg` under `convention`, with a per-part breakdown.

    Args:
        cfg: a config, a YAML path or a shipped model name.
        convention: "paper" (the counting behind the published PIIP numbers) or "model" (the backbone
            `piip_search.models.build_piip` builds, at the branch resolutions).
        cache: reuse the result for configs with the same `fingerprint()` (the count is a pure function
            of the canonical config).

    Raises:
        KeyError: unknown convention (the message lists the known ones).
        ConfigError: `cfg` names no file or shipped model, or is invalid.
    """
    if not isinstance(cfg, PIIPConfig):
        cfg = load_config(cfg)
    counter = COUNTERS.get(convention)
    if not cache:
        return counter(cfg)
    key = (convention, cfg.fingerprint())
    with _LOCK:
        rep = _CACHE.get(key)
        if rep is not None:
            _CACHE.move_to_end(key)
    if rep is None:
        rep = counter(cfg)
        with _LOCK:
            _CACHE[key] = rep
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return rep if rep.name == cfg.name else dataclasses.replace(rep, name=cfg.name)

