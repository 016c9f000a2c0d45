"""benchmarks/bench_sampler_suite.py caches a space's table: the cached table is the fresh one, a changed space
gets a new file."""

from __future__ import annotations

import copy
import sys

import pytest

from piip_search.search import SearchSpace
from tests.benchmarks._scripts import load_script


@pytest.fixture(scope="module")
def bench():
    yield load_script("bench_sampler_suite")
    sys.modules.pop("bench_sampler_suite", None)


def _small(bench) -> dict:
    d = copy.deepcopy(bench.SPACES["tiny"])
    d["name"] = "tiny-test"
    d["branches"]["count"] = [2]
    d["branches"]["resolutions"] = [64, 128]
    return d


def test_cached_table_equals_fresh_and_a_changed_space_gets_a_new_cache(bench, tmp_path):
    d = _small(bench)
    space = SearchSpace.from_dict(d, source="tiny-test")
    fresh = bench.build_table(space)
    assert 10 < len(fresh) <= len(bench.enumerate_space(space))  # distinct configs (fingerprints)

    logs: list[str] = []
    first = bench.table(space, d, cache_dir=tmp_path, log=logs.append)
    assert "enumerated" in logs[-1] and first == fresh
    files = sorted(tmp_path.glob("tiny-test-*.pkl"))
    assert len(files) == 1
    again = bench.table(space, d, cache_dir=tmp_path, log=logs.append)
    assert "loaded" in logs[-1] and again == fresh  # read back from the file, the same rows
    assert bench.build_table(space, d, workers=2) == fresh  # the process pool counts the same

    d2 = copy.deepcopy(d)
    d2["branches"]["resolutions"] = [64, 128, 192]
    space2 = SearchSpace.from_dict(d2, source="tiny-test")
    changed = bench.table(space2, d2, cache_dir=tmp_path, log=logs.append)
    assert "enumerated" in logs[-1] and len(changed) > len(fresh)
    assert len(sorted(tmp_path.glob("tiny-test-*.pkl"))) == 2
    assert bench.cache_key(d2) != bench.cache_key(d)
