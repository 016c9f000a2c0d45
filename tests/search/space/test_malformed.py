"""Any value in any place of a shipped space gives a `SearchSpaceError` naming a key, never another exception."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from piip_search.errors import SearchSpaceError
from piip_search.search.space import SearchSpace

ROOT = Path(__file__).resolve().parents[3]
VALUES = [None, "x", [], {}, [None], [1, "a"], {"low": 1}, {"low": "a", "high": 3}, {"choices": 3}, -1, 0,
          10**12, 2.5, float("nan"), float("inf"), True, [[1]], {"a": {"b": 1}}, [64, 64], {"low": 64, "high": 32}]


def _paths(d, pre=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield (*pre, k)
            yield from _paths(v, (*pre, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield (*pre, i)
            yield from _paths(v, (*pre, i))


@pytest.mark.parametrize("name", ["default", "paper"])
def test_every_malformed_value_is_a_space_error(name):
    doc = yaml.safe_load((ROOT / "search_spaces" / f"{name}.yaml").read_text())
    errors = 0
    for path in _paths(doc):
        for value in VALUES:
            d = copy.deepcopy(doc)
            holder = d
            for k in path[:-1]:
                holder = holder[k]
            holder[path[-1]] = value
            try:
                SearchSpace.from_dict(d, source="f.yaml", check_budgets=False)
            except SearchSpaceError as e:
                assert str(e).startswith("f.yaml: ") and len(str(e)) < 1500
                errors += 1
    assert errors > len(VALUES)  # most replacements are mistakes, and every one was named
