"""Multi-fidelity for multi-objective search: asynchronous successive halving on non-dominated rank.

Optuna cannot prune multi-objective studies (`Trial.report` raises), so promotion is decided here, in the
spirit of ASHA (Li et al., 2020) with the ranking of MO-ASHA (Schmucker et al., 2021).

The schedule
------------
* Rungs are proxy-training iteration counts, strictly increasing: `rungs = (r_0, r_1, ..., r_K)`, usually
  geometric, `r_k = r_min * eta**k` capped by `r_max` (`geometric_rungs(20, 180, 3) == (20, 60, 180)`).
  The last rung is full fidelity: only results at `rungs[-1]` may enter the Pareto front
  (`FidelitySchedule.full_fidelity`). A space without a `fidelity:` section trains every trial to full
  fidelity (one rung).
* Every trial starts at rung 0. When it completes rung k < K (its evaluator reports the metrics at `r_k`),
  `decide(k, point, others)` says whether it goes on to rung k + 1, from the results *so far* at rung k
  (no waiting for a full rung: asynchronous, several workers).
* Decision at rung k, among the finite results at that rung (this trial's included, n of them):
  1. fewer than `min_results` results: go on (no stop decision on too little evidence);
  2. otherwise rank all of them by non-dominated sorting of (FLOPs, AP) (minimise, maximise by default),
     order by (rank ascending, crowding distance descending, crowding taken within each front), and go on
     iff this trial is among the top `max(1, floor(n / eta))`; ties are resolved in its favour.
* A result with a non-finite value (a diverged run) never goes on; other non-finite results at the rung
  are ignored (they count neither as evidence nor in n). At the final rung `decide` returns True: the trial
  simply completes.

FLOPs do not change between rungs (they are a property of the architecture); AP does. A stopped trial keeps
its last rung's result for the record, but not for the front.

What the sampler is told
------------------------
Optuna has no multi-objective pruning, so the driver tells a stopped trial COMPLETE with its last rung's
values and the constraint `full_fidelity` > 0: infeasible, hence in no front (ours, `best_trials`, the
dashboard's), while samplers still learn from it. The value is graded (`stop_violation`, in (0, 1]): lower for a
trial that got to a later rung or placed better at its rung, so samplers that rank infeasible trials by
violation (TPE, NSGA-II) or model it (GP's constraint model) see how far it got rather than a flat 1 (GP, 60
trials, 3 seeds: the full-fidelity hypervolume is reached after 77-96% of the iterations instead of never within
100%; TPE's "good" group is filled by full-fidelity trials before any infeasible one, so TPE is unaffected). Every
other trial of a multi-fidelity study carries `full_fidelity` = 0: GPSampler refuses trials with different
constraint keys (before this, every GP trial after the first stopped one failed as an invalid sample).

Choosing a schedule: docs/multi-fidelity.md gives the measured trade-offs (benchmarks/bench_multifidelity.py);
`rungs 500/4500, eta 2` is the suggestion with TPE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np

from piip_search.search._pareto import crowding_distance, non_dominated_ranks

__all__ = ["FidelitySchedule", "PromotionDecision", "geometric_rungs"]

T = TypeVar("T")

DEFAULT_DIRECTIONS: tuple[str, ...] = ("minimize", "maximize")  # (FLOPs, AP)


def geometric_rungs(min_iters: int, max_iters: int, eta: float = 3) -> tuple[int, ...]:
    """Iteration count of each rung: `min_iters * eta**k` (rounded) below `max_iters`, then `max_iters`.

    Example: `geometric_rungs(50, 450, 3) == (50, 150, 450)`; `geometric_rungs(20, 100, 3) == (20, 60, 100)`.
    """
    if not isinstance(min_iters, int) or not isinstance(max_iters, int) or min_iters <= 0 or max_iters <= 0:
        raise ValueError(f"min_iters and max_iters must be positive integers, got {min_iters!r}, "
                         f"{max_iters!r}")
    if min_iters > max_iters:
        raise ValueError(f"min_iters must be <= max_iters={max_iters}, got {min_iters}")
    if not eta > 1:
        raise ValueError(f"eta must be > 1, got {eta!r}")
    rungs: list[int] = []
    r = float(min_iters)
    while round(r) < max_iters:
        if not rungs or round(r) > rungs[-1]:
            rungs.append(int(round(r)))
        r *= eta
    rungs.append(max_iters)
    return tuple(rungs)


class PromotionDecision(NamedTuple):
    """Why `decide` answered as it did (for logs and tests)."""

    promote: bool
    reason: str  # "final-rung" | "non-finite" | "too-few-results" | "top-fraction" | "below-quota"
    n_results: int  # finite results at the rung, this one included
    quota: int  # how many of them go on
    position: int  # 0-based place of this point in (rank, -crowding) order, ties in its favour
    rank: int  # its non-dominated rank among the results at the rung (-1 if not ranked)
    crowding: float  # its crowding distance within its front (nan if not ranked)


@dataclass(frozen=True)
class FidelitySchedule:
    """Successive-halving rungs over proxy iterations, promotion by non-dominated rank (see module doc).

    Args:
        rungs: strictly increasing iteration counts; the last one is full fidelity.
        eta: reduction factor: about 1/eta of the trials reaching a rung go on to the next.
        min_results: results needed at a rung before any trial is stopped there.
        directions: objective directions of the points given to `decide` (default FLOPs min, AP max).
    """

    rungs: tuple[int, ...]
    eta: float = 3.0
    min_results: int = 3
    directions: tuple[str, ...] = DEFAULT_DIRECTIONS

    def __post_init__(self) -> None:
        rungs = tuple(self.rungs)
        if not rungs:
            raise ValueError("rungs: need at least one iteration count, got []")
        for r in rungs:
            if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r <= 0:
                raise ValueError(f"rungs: iteration counts must be positive integers, got {list(rungs)}")
        if any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
            raise ValueError(f"rungs: must be strictly increasing, got {list(rungs)}")
        if isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not self.eta > 1:
            raise ValueError(f"eta: must be a number > 1, got {self.eta!r}")
        mr = self.min_results
        if isinstance(mr, bool) or not isinstance(mr, int) or mr < 1:
            raise ValueError(f"min_results: must be an integer >= 1, got {self.min_results!r}")
        for d in self.directions:
            if d not in ("minimize", "maximize"):
                raise ValueError(f"directions: must be 'minimize' or 'maximize', got {d!r}")
        object.__setattr__(self, "rungs", tuple(int(r) for r in rungs))
        object.__setattr__(self, "directions", tuple(self.directions))

    @classmethod
    def geometric(cls, min_iters: int, max_iters: int, eta: float = 3.0, min_results: int = 3,
                  directions: Sequence[str] = DEFAULT_DIRECTIONS) -> FidelitySchedule:
        """Rungs `min_iters * eta**k` up to `max_iters` (see `geometric_rungs`)."""
        return cls(geometric_rungs(min_iters, max_iters, eta), eta, min_results, tuple(directions))

    # ---- the rungs -----------------------------------------------------------------------------------------
    @property
    def n_rungs(self) -> int:
        return len(self.rungs)

    @property
    def full_iters(self) -> int:
        """Iterations of a full-fidelity run (the last rung)."""
        return self.rungs[-1]

    def rung_iters(self) -> list[int]:
        """The iteration count of each rung, lowest first."""
        return list(self.rungs)

    def iterations(self, rung_index: int) -> int:
        """Iteration count of rung `rung_index` (negative indices count from the end)."""
        try:
            return self.rungs[rung_index]
        except IndexError:
            raise IndexError(f"rung_index: must lie in [0, {self.n_rungs - 1}], got {rung_index}") from None

    def rung_of(self, iters: int) -> int | None:
        """The rung whose iteration count is `iters`, or None."""
        return self.rungs.index(iters) if iters in self.rungs else None

    def is_final(self, rung_index: int) -> bool:
        return rung_index in (self.n_rungs - 1, -1)

    def is_full_fidelity(self, iters: int | None) -> bool:
        return iters is not None and int(iters) == self.full_iters

    def quota(self, n_results: int) -> int:
        """How many of `n_results` at a rung go on: the top `max(1, floor(n / eta))`."""
        return max(1, math.floor(n_results / self.eta))

    # ---- promotion -----------------------------------------------------------------------------------------
    def explain(self, rung_index: int, this_point: Sequence[float],
                others_at_rung: Iterable[Sequence[float]]) -> PromotionDecision:
        """`decide` with its reasons. `this_point` and each of `others_at_rung` are (FLOPs, AP) (or whatever
        objectives `directions` describes), the others being every other result reported at this rung."""
        self.iterations(rung_index)  # range check
        m = len(self.directions)
        this = np.asarray(this_point, dtype=float).reshape(-1)
        if this.size != m:
            raise ValueError(f"this_point: needs {m} values ({', '.join(self.directions)}), "
                             f"got {list(this_point)}")
        others = np.asarray([tuple(o) for o in others_at_rung], dtype=float).reshape(-1, m)
        others = others[np.all(np.isfinite(others), axis=1)]
        n = len(others) + 1
        if self.is_final(rung_index):
            return PromotionDecision(True, "final-rung", n, n, 0, -1, math.nan)
        if not np.all(np.isfinite(this)):
            return PromotionDecision(False, "non-finite", n, self.quota(n), n - 1, -1, math.nan)
        pts = np.vstack([this[None], others])
        ranks = non_dominated_ranks(pts, self.directions)
        crowd = np.empty(n)
        for r in np.unique(ranks):
            sel = ranks == r
            crowd[sel] = crowding_distance(pts[sel])
        ahead = (ranks[1:] < ranks[0]) | ((ranks[1:] == ranks[0]) & (crowd[1:] > crowd[0]))
        position = int(ahead.sum())
        quota = self.quota(n)
        rank, crowding = int(ranks[0]), float(crowd[0])
        if n < self.min_results:
            return PromotionDecision(True, "too-few-results", n, quota, position, rank, crowding)
        promote = position < quota
        return PromotionDecision(promote, "top-fraction" if promote else "below-quota", n, quota, position,
                                 rank, crowding)

    def decide(self, rung_index: int, this_point: Sequence[float],
               others_at_rung: Iterable[Sequence[float]]) -> bool:
        """True if the trial that just completed rung `rung_index` with `this_point` goes on to the next."""
        return self.explain(rung_index, this_point, others_at_rung).promote

    def promotions(self, points_at_rung: Sequence[Sequence[float]]) -> np.ndarray:
        """Synchronous successive halving: the mask of `points_at_rung` in the top quota by (rank, -crowding).

        Unlike `decide` (one trial against the results so far, ties in its favour), exactly
        `quota(n_finite)` finite points are selected; ties are broken by position in the list.
        """
        pts = np.asarray(points_at_rung, dtype=float).reshape(-1, len(self.directions))
        ok = np.all(np.isfinite(pts), axis=1)
        mask = np.zeros(len(pts), dtype=bool)
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return mask
        sub = pts[idx]
        ranks = non_dominated_ranks(sub, self.directions)
        crowd = np.empty(len(sub))
        for r in np.unique(ranks):
            sel = ranks == r
            crowd[sel] = crowding_distance(sub[sel])
        order = np.lexsort((np.arange(len(sub)), -crowd, ranks))
        mask[idx[order[: self.quota(len(sub))]]] = True
        return mask

    # ---- what samplers are told about a stopped trial ---------------------------------------------------------
    def stop_violation(self, rung_index: int, position: int | None = None, n_results: int | None = None) -> float:
        """Value of the `full_fidelity` constraint told for a trial stopped after rung `rung_index` (> 0, so
        no front contains it), graded so that samplers that rank infeasible trials by violation (TPE, NSGA-II)
        or model it (GP) see how far the trial got and how it placed.

        With K = `n_rungs` and q = (position + 1) / n_results in (0, 1] (its place among the results at the
        rung, `PromotionDecision.position`; the worst place when not given), a trial stopped at rung
        k <= K - 2 gets `(K - 2 - k + q) / (K - 1)`: rung 0 of (500, 1500, 4500) in (0.5, 1], rung 1 in
        (0, 0.5]; with two rungs just q. A trial that completed the last rung gets 0 (feasible).
        """
        self.iterations(rung_index)  # range check
        k = rung_index % self.n_rungs
        if self.is_final(k):
            return 0.0
        q = 1.0 if position is None or not n_results else min(1.0, (max(0, int(position)) + 1) / int(n_results))
        stages = self.n_rungs - 1
        return (stages - 1 - k + q) / stages

    # ---- the front uses full fidelity only -----------------------------------------------------------------
    def full_fidelity(self, results: Iterable[T],
                      iterations: Callable[[T], int | None] | None = None) -> list[T]:
        """The results trained to the last rung. `iterations(result)` gives a result's completed iterations;
        by default the attribute or key `iters`."""
        get = iterations or _iters_of
        return [r for r in results if self.is_full_fidelity(get(r))]

    # ---- (de)serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"rungs": list(self.rungs), "eta": self.eta, "min_results": self.min_results}


def _iters_of(result: Any) -> int | None:
    if isinstance(result, dict):
        return result.get("iters")
    return getattr(result, "iters", None)
