"""`piip-search export`: chosen front points -> YAML (PIIPConfig + provenance) or official mmdet configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import optuna

from piip_search._registry import Registry
from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError
from piip_search.export._mmdet import to_mmdet_config
from piip_search.export._yaml import trial_config
from piip_search.search import TrialRecord, pareto_front, select


class Exporter(NamedTuple):
    suffix: str
    render: Callable[[PIIPConfig, TrialRecord, str, str], str]  # (config, record, study, convention) -> text


#: `--format` names -> how a chosen config is written; adding a format is registering one here.
EXPORTERS: Registry[Exporter] = Registry("export format")


def _yaml_text(cfg: PIIPConfig, rec: TrialRecord, study: str, convention: str) -> str:
    return f"# Exported by piip-search from study {study!r}, trial {rec.number}\n" + cfg.to_yaml()


def _mmdet_text(cfg: PIIPConfig, rec: TrialRecord, study: str, convention: str) -> str:
    header = (f"study {study}, trial {rec.number}: AP {rec.ap}, {rec.gflops or 0:.3f} GFLOPs "
              f"({convention} convention, multiply-adds), {(rec.params or 0) / 1e6:.2f}M params")
    return to_mmdet_config(cfg, header=header)


EXPORTERS.register("yaml")(Exporter(".yaml", _yaml_text))
EXPORTERS.register("piip-mmdet")(Exporter(".py", _mmdet_text))


def export_study(study: optuna.Study, *, select_spec: str, out: str | Path, fmt: str = "yaml",
                 force: bool = False) -> list[Path]:
    """Write the selected configs. One selected point and `out` not an existing folder: `out` is the file;
    otherwise `out` is a folder and files are named `<study>-trial-<n>.{yaml,py}`. Existing files are kept
    unless `force`."""
    front = pareto_front(study)
    chosen = select(front, select_spec)
    convention = (study.user_attrs.get("space", {}) or {}).get("flops_convention", "model")
    if fmt not in EXPORTERS:
        raise ConfigError(f"--format: must be one of {list(EXPORTERS)}, got {fmt!r}")
    exporter = EXPORTERS.get(fmt)
    suffix = exporter.suffix
    out = Path(out)
    single = len(chosen) == 1 and not out.is_dir() and out.suffix in (".yaml", ".yml", ".py")
    if not single and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: {len(chosen)} configs are selected, so --out must be a folder, and "
                          f"{out} is a file")
    written = []
    for rec in chosen:
        cfg = trial_config(rec, study=study.study_name, convention=convention)
        text = exporter.render(cfg, rec, study.study_name, convention)
        path = out if single else out / f"{study.study_name}-trial-{rec.number}{suffix}"
        if path.exists() and not force:
            raise ConfigError(f"--out {path}: the file exists; pass --force to overwrite it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as e:
            raise ConfigError(f"--out {path}: cannot write: {e.strerror or e}") from None
        written.append(path)
    return written
