"""`piip-search export`: chosen front points -> YAML (PIIPConfig + provenance) or official mmdet configs."""

from __future__ import annotations

from pathlib import Path

import optuna

from piip_search.errors import ConfigError
from piip_search.export._mmdet import to_mmdet_config
from piip_search.export._yaml import trial_config
from piip_search.search._results import pareto_front, select


def export_study(study: optuna.Study, *, select_spec: str, out: str | Path, fmt: str = "yaml",
                 force: bool = False) -> list[Path]:
    """Write the selected configs. One selected point and `out` not an existing folder: `out` is the file;
    otherwise `out` is a folder and files are named `<study>-trial-<n>.{yaml,py}`. Existing files are kept
    unless `force`."""
    front = pareto_front(study)
    chosen = select(front, select_spec)
    convention = (study.user_attrs.get("space", {}) or {}).get("flops_convention", "model")
    suffix = ".yaml" if fmt == "yaml" else ".py"
    out = Path(out)
    single = len(chosen) == 1 and not out.is_dir() and out.suffix in (".yaml", ".yml", ".py")
    if not single and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: {len(chosen)} configs are selected, so --out must be a folder, and "
                          f"{out} is a file")
    written = []
    for rec in chosen:
        cfg = trial_config(rec, study=study.study_name, convention=convention)
        if fmt == "yaml":
            text = f"# Exported by piip-search from study {study.study_name!r}, trial {rec.number}\n" + cfg.to_yaml()
        elif fmt == "piip-mmdet":
            header = (f"study {study.study_name}, trial {rec.number}: AP {rec.ap}, {rec.gflops:.3f} GFLOPs "
                      f"({convention} convention, multiply-adds), {(rec.params or 0) / 1e6:.2f}M params")
            text = to_mmdet_config(cfg, header=header)
        else:
            raise ConfigError(f"--format: must be yaml or piip-mmdet, got {fmt!r}")
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
