"""benchmarks/bench_tabular_proxy.py builds its rows through real `piip-search worker` processes, resumably."""

from __future__ import annotations

import json

import pytest

from piip_search.search import attach_study
from tests.benchmarks._scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_tabular_proxy")


def test_build_runs_the_queued_configs_through_workers_and_a_rerun_adds_nothing(bench, tmp_path, capsys):
    queued = bench.enumerate_space(bench.study_space(2))[:2]
    out, study_root = tmp_path / "tab.jsonl", tmp_path / "study"
    argv = ["--limit", "2", "--iters", "2", "--out", str(out), "--study-dir", str(study_root)]
    assert bench.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["params"] for r in rows] == queued
    assert all(r["status"] == "ok" and r["iters"] == 2 and 0.0 <= r["ap"] <= 1.0 and r["gflops"] > 0
               for r in rows)
    sdir = study_root / "tabular-it2"
    assert "worker finished 2 trials" in (sdir / "worker_0.log").read_text()  # a `piip-search worker` ran them

    storage = str(sdir / "journal.log")
    trials = attach_study("tabular-it2", storage_url=storage, trials_dir=study_root)[0].get_trials()
    assert [t.params for t in trials] == queued  # each trial sampled exactly its queued config, nothing more
    assert all(t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs for t in trials)

    capsys.readouterr()
    assert bench.main(argv) == 0
    assert "0 queued now, 0 waiting" in capsys.readouterr().out
    assert len(attach_study("tabular-it2", storage_url=storage, trials_dir=study_root)[0].get_trials()) == 2
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_other_iterations_need_their_own_out_file(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--iters", "5", "--study-dir", str(tmp_path)])
    assert e.value.code == 2
    assert "--iters 5: give --out too" in capsys.readouterr().err
