"""`piip-search report`: one study, a comparison of several, PNGs, bad input."""

from __future__ import annotations

import optuna

from piip_search.cli import main
from piip_search.search._run import run_search
from tests.search.test_driver import space_of

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_report_compare_and_png(tmp_path, capsys):
    for name, sampler in (("a", "random"), ("b", "tpe")):
        run_search(space_of(sampler=sampler), name=name, trials_dir=tmp_path, n_trials=4, seed=0, progress=False)
    assert main(["report", "a", "--trials-dir", str(tmp_path), "--png", str(tmp_path / "png")]) == 0
    html = (tmp_path / "a" / "report.html").read_text()
    assert "id='front'" in html and "id='rows'" in html and "Plotly.newPlot" in html
    assert "https://cdn" not in html.split("<body>")[1]  # plotly.js is embedded, not fetched
    for png in ("front.png", "hypervolume.png"):
        assert (tmp_path / "png" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "cmp.html"
    assert main(["report", "a", "b", "--trials-dir", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.count("Plotly.newPlot") == 2 and "a (random)" in text and "b (tpe)" in text
    study = optuna.load_study(study_name="a", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "a" / "journal.log"))))
    assert study.metric_names == ["GFLOPs", "AP"]  # `report` names the objectives of an old study


def test_report_of_a_missing_study_exits_2(tmp_path, capsys):
    assert main(["report", "nope", "--trials-dir", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
