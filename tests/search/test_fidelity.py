"""Multi-fidelity promotion: rungs, and decisions that follow non-dominated ranks (ties by crowding)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from piip_search.search import FidelitySchedule, geometric_rungs, non_dominated_ranks

# (GFLOPs, AP) at one rung. Front (rank 0): A, B, C; rank 1: D, E; rank 2: F; rank 3: G.
A, B, C = (1.0, 30.0), (2.0, 40.0), (3.0, 50.0)
D, E = (2.0, 20.0), (3.0, 35.0)
F, G = (4.0, 10.0), (5.0, 5.0)
POINTS = {"A": A, "B": B, "C": C, "D": D, "E": E, "F": F, "G": G}


def _decide_all(schedule: FidelitySchedule, points: dict[str, tuple[float, float]]) -> set[str]:
    out = set()
    for name, p in points.items():
        others = [q for k, q in points.items() if k != name]
        if schedule.decide(0, p, others):
            out.add(name)
    return out


def test_geometric_rungs():
    assert geometric_rungs(50, 450, 3) == (50, 150, 450)
    assert geometric_rungs(20, 100, 3) == (20, 60, 100)
    assert geometric_rungs(100, 100, 3) == (100,)
    assert geometric_rungs(10, 1000, 10) == (10, 100, 1000)
    s = FidelitySchedule.geometric(20, 180, eta=3)
    assert s.rungs == (20, 60, 180) and s.rung_iters() == [20, 60, 180] and s.full_iters == 180
    assert s.iterations(1) == 60 and s.rung_of(60) == 1 and s.rung_of(61) is None
    assert s.is_final(2) and not s.is_final(0)
    with pytest.raises(ValueError, match="eta must be > 1"):
        geometric_rungs(10, 100, 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"rungs": ()}, "at least one"),
    ({"rungs": (10, 10)}, "strictly increasing"),
    ({"rungs": (0, 10)}, "positive integers"),
    ({"rungs": (10, 30), "eta": 1}, "eta: must be a number > 1, got 1"),
    ({"rungs": (10, 30), "min_results": 0}, "min_results: must be an integer >= 1, got 0"),
])
def test_schedule_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FidelitySchedule(**kwargs)


def test_ranks_of_the_fixture_are_as_documented():
    ranks = non_dominated_ranks(list(POINTS.values()), ["minimize", "maximize"])
    assert dict(zip(POINTS, ranks.tolist(), strict=True)) == {"A": 0, "B": 0, "C": 0, "D": 1, "E": 1, "F": 2,
                                                              "G": 3}


def test_promotion_follows_ranks_then_crowding():
    s = FidelitySchedule((10, 30, 90), eta=3, min_results=3)
    # n = 7 -> quota 2: the two extremes of the front (infinite crowding) go on, the middle of the front and
    # every dominated point stop.
    assert _decide_all(s, POINTS) == {"A", "C"}
    why = s.explain(0, B, [p for k, p in POINTS.items() if k != "B"])
    assert (why.promote, why.reason, why.rank, why.quota, why.position, why.n_results) == (
        False, "below-quota", 0, 2, 2, 7)
    # n = 9 -> quota 3: the whole front goes on, nothing of rank >= 1 does.
    more = POINTS | {"H": (6.0, 1.0), "I": (7.0, 0.5)}
    assert _decide_all(s, more) == {"A", "B", "C"}
    # eta = 2, n = 7 -> quota 3: same
    assert _decide_all(FidelitySchedule((10, 30), eta=2, min_results=3), POINTS) == {"A", "B", "C"}
    # synchronous selection picks exactly the quota
    assert s.promotions(list(more.values())).tolist() == [True, True, True] + [False] * 6
    assert s.promotions(list(POINTS.values())).sum() == 2


def test_min_results_final_rung_and_failed_results():
    s = FidelitySchedule((10, 30, 90), eta=3, min_results=4)
    # fewer than min_results results at the rung (this one included): no stop decision yet
    why = s.explain(0, G, [A, B])
    assert why.promote and why.reason == "too-few-results"
    assert not s.decide(0, G, [A, B, C])  # n = 4: quota 1, G is last
    # the final rung never stops a trial
    assert s.explain(2, G, [A, B, C, D]).reason == "final-rung" and s.decide(-1, G, [A])
    # a diverged run never goes on; other failed results are not evidence
    assert not s.decide(0, (1.0, math.nan), [])
    assert s.explain(0, A, [(2.0, math.nan), B, C]).n_results == 3
    with pytest.raises(IndexError, match="rung_index: must lie in"):
        s.decide(3, A, [])
    with pytest.raises(ValueError, match="this_point: needs 2 values"):
        s.decide(0, (1.0,), [])


def test_asynchronous_run_with_a_fake_evaluator():
    """Trials arrive one by one; AP at a rung is a known function of the architecture and the iterations.

    At every decision: a result dominated by at least quota(n) others at its rung stops; the cheapest and the
    most accurate result so far (front extremes, infinite crowding) go on. The fake evaluator keeps the AP
    order of architectures at every fidelity, so the cheapest and the best architectures reach full fidelity.
    """
    rng = np.random.default_rng(3)
    n = 30
    gflops = rng.uniform(1, 100, n).round(2)
    ap_full = (50 * (1 - np.exp(-gflops / 30)) + rng.normal(0, 6, n)).clip(1, None)

    def evaluate(i: int, iters: int) -> float:
        return float(ap_full[i] * (1 - math.exp(-iters / 60)))

    s = FidelitySchedule.geometric(20, 180, eta=3, min_results=3)
    at_rung: list[list[tuple[float, float]]] = [[] for _ in s.rungs]
    reached: dict[int, int] = {}
    stopped: dict[int, int] = {}
    for i in range(n):
        for k, iters in enumerate(s.rungs):
            p = (float(gflops[i]), evaluate(i, iters))
            others = at_rung[k]
            go_on = s.decide(k, p, others)
            if len(others) + 1 >= s.min_results and not s.is_final(k):
                dominators = sum(q[0] <= p[0] and q[1] >= p[1] and q != p for q in others)
                if dominators >= s.quota(len(others) + 1):
                    assert not go_on, (i, k)
                if all(p[1] > q[1] for q in others) or all(p[0] < q[0] for q in others):
                    assert go_on, (i, k)
            else:
                assert go_on
            others.append(p)
            reached[i] = k
            if not go_on:
                stopped[i] = k
                break
    final = len(s.rungs) - 1
    assert reached[int(np.argmax(ap_full))] == final and reached[int(np.argmin(gflops))] == final
    assert len(stopped) > n / 3  # the schedule does save work
    # only full-fidelity results feed the front
    results = [SimpleNamespace(trial=i, iters=s.rungs[reached[i]]) for i in range(n)]
    kept = s.full_fidelity(results)
    assert {r.trial for r in kept} == {i for i in range(n) if i not in stopped}
    assert s.full_fidelity([{"iters": 180}, {"iters": 60}, {}]) == [{"iters": 180}]


def test_stop_violation_is_graded_by_rung_and_place():
    """What samplers are told for a stopped trial: in (0, 1], lower the further it got and the better it placed."""
    s = FidelitySchedule((500, 1500, 4500), eta=3)
    assert s.stop_violation(0) == 1.0  # worst place at rung 0 (no place given)
    assert s.stop_violation(0, position=0, n_results=10) == pytest.approx(0.55)
    assert s.stop_violation(1, position=9, n_results=10) == pytest.approx(0.5)
    assert s.stop_violation(1, position=0, n_results=10) == pytest.approx(0.05)
    # any place at rung 1 is below any place at rung 0; within a rung, a better place is lower
    assert max(s.stop_violation(1, p, 10) for p in range(10)) <= min(s.stop_violation(0, p, 10) for p in range(10))
    assert [s.stop_violation(0, p, 10) for p in range(10)] == sorted(s.stop_violation(0, p, 10) for p in range(10))
    assert s.stop_violation(2) == s.stop_violation(-1) == 0.0  # completed the last rung: feasible
    two = FidelitySchedule((500, 4500), eta=2)
    assert two.stop_violation(0, position=3, n_results=8) == pytest.approx(0.5)
    with pytest.raises(IndexError):
        s.stop_violation(3)
