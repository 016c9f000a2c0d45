"""Result types of the FLOPs/params counters. FLOPs are multiply-adds (one fused multiply-add = one FLOP)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The counting conventions `count` understands.
CONVENTIONS: tuple[str, ...] = ("paper", "model")


@dataclass(frozen=True)
class Part:
    """One line of a breakdown: a named piece of the network with its params and multiply-adds.

    `kind` says where the number comes from: "module" (parameterised layers: Linear/Conv/norm hooks),
    "formula" (parameter-free terms added in closed form: attention matmuls, deformable sampling),
    or "mixed".
    """

    name: str
    params: int
    flops: int
    kind: str = "module"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FlopsReport:
    """Params and FLOPs (multiply-adds) of one config under one convention; `parts` sum to the totals."""

    params: int
    flops: int
    convention: str
    parts: tuple[Part, ...] = field(default_factory=tuple)
    name: str | None = None

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6

    def part(self, name: str) -> Part:
        """The part called `name` (KeyError listing the names if absent)."""
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(f"no part {name!r}; parts: {', '.join(p.name for p in self.parts)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "convention": self.convention,
            "unit": "multiply-adds",
            "params": self.params,
            "flops": self.flops,
            "gflops": round(self.gflops, 6),
            "mparams": round(self.mparams, 6),
            "parts": [p.to_dict() for p in self.parts],
        }


def make_report(parts: list[Part], convention: str, name: str | None) -> FlopsReport:
    return FlopsReport(
        params=sum(p.params for p in parts),
        flops=sum(p.flops for p in parts),
        convention=convention,
        parts=tuple(parts),
        name=name,
    )
