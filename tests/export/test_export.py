"""Export round trips (YAML -> flops gives the recorded FLOPs; piip-mmdet parses with mmengine), report, CLI."""

from __future__ import annotations

import json

import pytest
import yaml

from piip_search.cli import main
from piip_search.config import PIIPConfig, load_config
from piip_search.export import EXPORTERS, mmdet_unsupported, to_mmdet_config
from piip_search.report import report_data
from piip_search.search._run import run_search
from piip_search.search._study import attach_study
from tests.search.test_driver import space_of


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("trials")
    run_search(space_of(), name="ex", trials_dir=d, n_trials=10, seed=5, progress=False)
    return d


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_yaml_export_round_trips_through_flops(study_dir, tmp_path, capsys):
    code, out, err = _run(capsys, "export", "ex", "--select", "all", "--out", str(tmp_path / "all"),
                          "--trials-dir", str(study_dir))
    assert code == 0, err
    study, _ = attach_study("ex", storage_url=None, trials_dir=study_dir)
    files = sorted((tmp_path / "all").glob("*.yaml"))
    assert files and len(files) == len(out.split())
    for f in files:
        cfg = PIIPConfig.from_yaml(f.read_text())
        trial = study.trials[cfg.provenance["trial"]]
        code, out, err = _run(capsys, "flops", str(f), "--convention", "model", "--json")
        assert code == 0, err
        assert json.loads(out)["flops"] == trial.user_attrs["flops"] == cfg.provenance["flops"]
        assert cfg.provenance["study"] == "ex" and cfg.provenance["flops_convention"] == "model"
        assert cfg.provenance["metrics"]["ap"] == pytest.approx(trial.values[1])
        assert cfg.fingerprint() == trial.user_attrs["fingerprint"]


def test_single_selection_writes_one_file(study_dir, tmp_path, capsys):
    out_file = tmp_path / "knee.yaml"
    code, out, err = _run(capsys, "export", "ex", "--select", "max-ap", "--out", str(out_file),
                          "--trials-dir", str(study_dir))
    assert code == 0, err
    assert out.strip() == str(out_file) and out_file.exists()


def _mmdet_tree(tmp_path):
    base = tmp_path / "configs" / "_base_"
    for rel in ("models/mask_rcnn_r50_fpn.py", "datasets/coco_instance.py", "schedules/schedule_1x.py",
                "default_runtime.py"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text("model = dict(type='MaskRCNN', backbone=dict(type='ResNet'))\n"
                                if rel.startswith("models") else "\n")
    out = tmp_path / "configs" / "piip" / "searched"
    out.mkdir(parents=True)
    return out


@pytest.mark.parametrize("name", ["piip-tsb-1120-896-448", "piip-h6b-1024-512", "piip-tsbl-1344-896-672-448",
                                  "piip-sbl-augreg-speedup-1568-1120-672", "tiny-piip-3branch"])
def test_mmdet_config_parses_with_mmengine_and_keeps_the_architecture(tmp_path, name):
    from mmengine import Config

    cfg = load_config(name)
    path = _mmdet_tree(tmp_path) / f"{name}.py"
    path.write_text(to_mmdet_config(cfg))
    parsed = Config.fromfile(str(path), import_custom_modules=False)
    bb = parsed.model.backbone
    assert parsed.model.type == "MaskRCNN" and bb.type.startswith("PIIP")
    for i, b in enumerate(cfg.branches):
        d = bb[f"branch{i + 1}"]
        assert (d.real_size, d.embed_dim, d.depth, d.num_heads) == (b.resolution, b.embed_dim, b.depth, b.num_heads)
        assert [tuple(r) for r in d.interaction_indexes] == list(cfg.block_ranges[i])
        if b.window_size is not None:
            assert d.window_size[0] == b.window_size
    assert parsed.model.neck.in_channels == [cfg.out_dim] * 4
    assert bb.get("interaction_proj", True) == cfg.interactions.projection


def test_mmdet_export_of_the_study(study_dir, tmp_path, capsys):
    from mmengine import Config

    out = _mmdet_tree(tmp_path)
    code, printed, err = _run(capsys, "export", "ex", "--select", "knee", "--out", str(out), "--format",
                              "piip-mmdet", "--trials-dir", str(study_dir))
    assert code == 0, err
    parsed = Config.fromfile(printed.split()[0], import_custom_modules=False)
    assert parsed.model.backbone.type == "PIIPTwoBranch"


def test_mmdet_refuses_what_the_official_code_cannot_express():
    cfg = PIIPConfig.from_dict({"branches": [{"model": "B", "resolution": 448}, {"model": "S", "resolution": 896}],
                                "interactions": {"direction": "top-down"}})
    assert "bidirectional" in mmdet_unsupported(cfg)
    from piip_search.errors import ConfigError

    with pytest.raises(ConfigError, match="piip-mmdet"):
        to_mmdet_config(cfg)
    assert "classification" in mmdet_unsupported(load_config("cls-piip-tsb-368-192-128"))


def test_report_info_and_html(study_dir, tmp_path, capsys):
    study, _ = attach_study("ex", storage_url=None, trials_dir=study_dir)
    info = report_data(study, importances=False)
    assert len(info.rows) == 10 and info.front
    hv = [h for _, h in info.hv_by_trial]
    assert hv == sorted(hv) and hv[-1] == pytest.approx(info.header["hypervolume"])
    code, out, err = _run(capsys, "report", "ex", "--out", str(tmp_path / "r.html"), "--trials-dir", str(study_dir))
    assert code == 0, err
    text = (tmp_path / "r.html").read_text()
    assert "Pareto front" in text and "plotly" in text.lower()


def test_pareto_and_status_json(study_dir, capsys):
    code, out, err = _run(capsys, "pareto", "ex", "--json", "--trials-dir", str(study_dir))
    assert code == 0, err
    d = json.loads(out)
    assert d["front"] and {"trial", "flops", "params", "ap", "config"} <= set(d["front"][0])
    assert d["hypervolume"] > 0 and len(d["reference_point"]) == 2
    code, out, err = _run(capsys, "status", "ex", "--json", "--trials-dir", str(study_dir))
    assert code == 0 and json.loads(out)["n_trials"] == 10


@pytest.mark.parametrize(("argv", "fragment"), [
    (["pareto", "missing-study"], "no storage"),
    (["export", "ex", "--select", "nonsense", "--out", "x.yaml"], "--select"),
    (["run", "--space", "/no/such/space.yaml"], "space.yaml"),
    (["flops", "no-such-config"], "not a shipped model name"),
])
def test_bad_input_exits_2_with_a_message(study_dir, capsys, argv, fragment, tmp_path):
    code, out, err = _run(capsys, *argv, "--trials-dir", str(study_dir)) if argv[0] != "flops" else _run(capsys, *argv)
    assert code == 2, (out, err)
    assert fragment in err and "Traceback" not in err


def test_bad_space_file_exits_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "branches": {"count": [2], "models": ["T", "Q"],
                                                           "resolutions": [224, 448]}}))
    code, out, err = _run(capsys, "run", "--space", str(p), "--trials-dir", str(tmp_path))
    assert code == 2 and "bad.yaml" in err and "Q" in err
    assert not (tmp_path / "x").exists()  # failed before any work


def test_dashboard_serves_the_study(study_dir):
    """optuna-dashboard (what `piip-search dashboard` serves) reads our storage and lists the study."""
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    study, _ = attach_study("ex", storage_url=None, trials_dir=study_dir)
    app = wsgi(study._storage)
    status = {}
    env = {"PATH_INFO": "/api/studies"}
    setup_testing_defaults(env)
    body = b"".join(app(env, lambda s, h, exc_info=None: status.update(s=s)))
    assert status["s"].startswith("200")
    names = [s["study_name"] for s in json.loads(body)["study_summaries"]]
    assert names == ["ex"]


def test_dashboard_on_a_missing_study_exits_2(tmp_path, capsys):
    code, out, err = _run(capsys, "dashboard", "nope", "--trials-dir", str(tmp_path))
    assert code == 2 and "nope" in err


@pytest.mark.parametrize("fmt", list(EXPORTERS))
def test_every_registered_format_exports_the_front(fmt, tmp_path):
    """Conformance over the exporter registry: every format writes one file per selected point."""
    from piip_search.export import export_study
    from piip_search.search import run_search
    from tests.search.test_driver import space_of

    study, _ = run_search(space_of(), name="fmt", trials_dir=tmp_path, n_trials=6, seed=0, progress=False)
    paths = export_study(study, select_spec="all", out=tmp_path / "out", fmt=fmt)
    assert paths and all(p.suffix == EXPORTERS.get(fmt).suffix and p.stat().st_size > 0 for p in paths)
