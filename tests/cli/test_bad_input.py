"""Bad input exits 2 with a short message that names the file, key or rule; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from piip_search.cli import main

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)) + "branches: [*h]\n"


def _files(tmp: Path) -> dict[str, Path]:
    files = {
        "inf.yaml": "branches:\n  - {model: T, resolution: 224, mlp_ratio: .inf}\n",
        "bomb.yaml": ALIAS_BOMB,
        "deep.yaml": "branches:\n  - {embed_dim: 64, depth: 1000000000, num_heads: 2, resolution: 64}\n",
        "huge-res.yaml": "branches:\n  - {model: T, resolution: 16000000000}\n",
        "notjournal.log": "hello, I am not a journal\n",
        "afile": "x\n",
        "export-target.yaml": "keep me\n",
    }
    out = {}
    for name, text in files.items():
        (tmp / name).write_text(text)
        out[name] = tmp / name
    (tmp / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    out["bin.yaml"] = tmp / "bin.yaml"
    (tmp / "adir").mkdir()
    out["adir"] = tmp / "adir"
    return out


CASES = {
    "mlp_ratio inf": (["flops", "{inf.yaml}"], "mlp_ratio"),
    "binary config": (["flops", "{bin.yaml}"], "binary file"),
    "alias bomb config": (["flops", "{bomb.yaml}"], "alias bomb"),
    "alias bomb space": (["run", "--space", "{bomb.yaml}", "--trials-dir", "{tmp}"], "alias bomb"),
    "absurd depth": (["flops", "{deep.yaml}"], "depth"),
    "absurd resolution": (["flops", "{huge-res.yaml}"], "resolution"),
    "storage is a folder": (["status", "s", "--storage", "{adir}"], "is a folder"),
    "storage not a journal": (["status", "s", "--storage", "{notjournal.log}"], "not an Optuna journal"),
    "trials-dir is a file": (["run", "--trials-dir", "{afile}", "--trials", "1", "--evaluator",
                              "builtin:flops-only"], "is a file"),
    "dashboard port": (["dashboard", "s", "--port", "99999"], "--port"),
    "negative trials": (["run", "--trials", "-3"], "--trials"),
    "trials and total": (["run", "--trials", "2", "--total", "3"], "not allowed"),
    "missing dataset": (["run", "--space", "{space-missing-data}", "--trials-dir", "{tmp}", "--trials", "1"],
                        "dataset folder not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_a_named_problem(case, tmp_path, capsys):
    files = _files(tmp_path)
    space = tmp_path / "missing-data.yaml"
    import yaml

    from tests.search.test_driver import BASE

    space.write_text(yaml.safe_dump({**BASE, "evaluator": "builtin:proxy",
                                     "proxy": {"dataset": str(tmp_path / "no-such-data")}}))
    subst = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path), "space-missing-data": str(space)}
    argv, expected = CASES[case]
    for key, value in subst.items():
        argv = [a.replace("{" + key + "}", value) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err
    assert len(err) < 3000  # values are cut, never dumped whole


def test_export_never_overwrites_without_force(tmp_path, capsys):
    from piip_search.search._run import run_search
    from tests.search.test_driver import space_of

    run_search(space_of(), name="ex", trials_dir=tmp_path, n_trials=4, seed=0, progress=False)
    target = tmp_path / "knee.yaml"
    target.write_text("keep me\n")
    argv = ["export", "ex", "--trials-dir", str(tmp_path), "--select", "max-ap", "--out", str(target)]
    assert main(argv) == 2 and "--force" in capsys.readouterr().err
    assert target.read_text() == "keep me\n"
    assert main([*argv, "--force"]) == 0 and "branches" in target.read_text()


def test_a_non_inverted_config_is_warned_about(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("branches:\n  - {model: T, resolution: 224}\n  - {model: B, resolution: 448}\n"
                   "interactions: {count: 2}\n")
    assert main(["flops", str(cfg)]) == 0
    assert "not parameter-inverted" in capsys.readouterr().err


def test_a_run_whose_every_trial_fails_says_so_and_exits_1(tmp_path, capsys):
    import yaml

    from tests.search.test_driver import BASE

    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump({**BASE, "evaluator": "tests.search.fake_evaluators:failing"}))
    code = main(["run", "--space", str(space), "--trials-dir", str(tmp_path), "--trials", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "every trial of this run failed" in err and "user trainer exploded" in err
