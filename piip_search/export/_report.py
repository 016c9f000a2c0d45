"""Static HTML report of a study: FLOPs-vs-AP scatter with the Pareto front, hypervolume history, tables.

`report_info(study)` computes everything (tested); `render_report(info, path)` only renders it with plotly.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from piip_search.search._pareto import hypervolume, pareto_mask
from piip_search.search._results import (
    FrontInfo,
    TrialRecord,
    branches_label,
    interactions_label,
    pareto_front,
    records,
)


@dataclass
class ReportInfo:
    study: str
    front: FrontInfo
    trials: list[TrialRecord]
    hv_history: list[tuple[int, float]]  # (trial number, hypervolume of the front up to it)


def report_info(study: optuna.Study) -> ReportInfo:
    front = pareto_front(study)
    recs = records(study)
    directions = [d for _, d in front.objectives]
    hist: list[tuple[int, float]] = []
    pts: list[list[float]] = []
    for r in recs:
        if r.on_front_candidate:
            pts.append(r.values)  # type: ignore[arg-type]
            arr = np.array(pts, dtype=float)
            hist.append((r.number, float(hypervolume(arr[pareto_mask(arr, directions)], front.reference_point,
                                                     directions))))
    return ReportInfo(study.study_name, front, recs, hist)


def _branches_text(cfg: dict[str, Any] | None) -> str:
    return f"{branches_label(cfg)} | {interactions_label(cfg)}" if cfg else ""


def render_report(info: ReportInfo, path: str | Path) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("GFLOPs (multiply-adds) vs AP", "Hypervolume history"))
    groups: dict[str, list[TrialRecord]] = {}
    for r in info.trials:
        if r.gflops is not None and r.ap is not None:
            groups.setdefault(r.status.split(":")[0], []).append(r)
    for status, rs in sorted(groups.items()):
        fig.add_trace(go.Scatter(
            x=[r.gflops for r in rs], y=[r.ap for r in rs], mode="markers", name=f"{status} ({len(rs)})",
            text=[f"trial {r.number}<br>{_branches_text(r.config)}" for r in rs], hoverinfo="text+x+y",
            marker={"symbol": "x" if status != "ok" else "circle", "opacity": 0.6}), row=1, col=1)
    fp = info.front.points
    fig.add_trace(go.Scatter(x=[r.gflops for r in fp], y=[r.ap for r in fp], mode="lines+markers",
                             name="Pareto front", line={"shape": "hv"},
                             text=[f"trial {r.number}<br>{_branches_text(r.config)}" for r in fp]), row=1, col=1)
    if info.hv_history:
        fig.add_trace(go.Scatter(x=[n for n, _ in info.hv_history], y=[h for _, h in info.hv_history],
                                 mode="lines+markers", name="hypervolume"), row=1, col=2)
    fig.update_xaxes(title_text="GFLOPs", row=1, col=1)
    fig.update_yaxes(title_text="AP", row=1, col=1)
    fig.update_xaxes(title_text="trial", row=1, col=2)
    fig.update_layout(height=520, width=1200, title=f"piip-search study {info.study}")

    rows = "".join(
        f"<tr><td>{r.number}</td><td>{r.gflops:.4f}</td><td>{(r.params or 0) / 1e6:.3f}</td>"
        f"<td>{(r.ap or 0):.4f}</td><td>{html.escape(_branches_text(r.config))}</td></tr>" for r in fp)
    knee = info.front.knee.number if info.front.knee is not None else "-"
    body = (
        f"<h1>piip-search: {html.escape(info.study)}</h1>"
        f"<p>{info.front.n_trials} trials, {info.front.n_candidates} feasible at full fidelity, "
        f"{len(fp)} on the front; hypervolume {info.front.hypervolume:.6g} (reference point "
        f"{info.front.reference_point}); knee: trial {knee}. FLOPs are multiply-adds.</p>"
        + fig.to_html(full_html=False, include_plotlyjs="inline")
        + "<h2>Pareto front</h2><table border=1 cellpadding=4><tr><th>trial</th><th>GFLOPs</th><th>params (M)</th>"
        f"<th>AP</th><th>architecture</th></tr>{rows}</table>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info.study)}</title>"
                    f"</head><body>{body}</body></html>")
    return path
