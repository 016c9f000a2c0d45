"""Plotly figures of the report's views, built from `ReportData` (data.py); no I/O."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from piip_search.report.data import ReportData

__all__ = ["composition_figure", "compare_figures", "front_figure", "hv_figure", "importance_figure",
           "parcoords_figure", "progress_figure"]

#: marker style per status kind: only "ok" trials are filled circles; the rest are marked apart
STYLE = {
    "truncated": {"symbol": "triangle-down-open", "color": "#d62728"},
    "stopped": {"symbol": "square-open", "color": "#ff7f0e"},
    "infeasible": {"symbol": "x-thin-open", "color": "#7f7f7f"},
    "failed": {"symbol": "x", "color": "#000000"},
}


def _hover(r: dict[str, Any]) -> str:
    ap = "-" if r["ap"] is None else f"{r['ap']:.4f}"
    if r.get("ap_mean") is not None:  # a config evaluated with several seeds: this seed, then the mean
        ap += f" (this seed); mean {r['ap_mean']:.4f} ± {r['ap_std'] or 0.0:.4f} over {r['ap_n']} seeds"
    elif r.get("ap_std") is not None:
        ap += f" ± {r['ap_std']:.4f}"
    params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
    gf = "-" if r["gflops"] is None else f"{r['gflops']:.4g}"
    pm = "-" if r["params_m"] is None else f"{r['params_m']:.2f}"
    dup = f" (duplicate of {r['duplicate_of']})" if r.get("duplicate_of") is not None else ""
    return (f"trial {r['trial']} [{r['status']}]{dup}<br>{r['branches']}<br>interactions: {r['interactions']}"
            f"<br>GFLOPs {gf}  params {pm} M  AP {ap}<br><span style='font-size:10px'>{params}</span>")


def drawn_ap(r: dict[str, Any], mean: bool) -> float:
    """The AP a row is drawn at: a front point's config mean (`mean`), else its own; 0 without AP."""
    if mean and r.get("ap_mean") is not None:
        return float(r["ap_mean"])
    return float(r["ap"]) if r["ap"] is not None else 0.0


def _scatter(rows: list[dict[str, Any]], name: str, marker: dict[str, Any], *, mean: bool = False) -> go.Scatter:
    # numpy arrays: plotly validates them in one pass instead of element by element (5,000 trials)
    return go.Scatter(x=np.array([r["gflops"] for r in rows], dtype=float),
                      y=np.array([drawn_ap(r, mean) for r in rows], dtype=float),
                      mode="markers", name=f"{name} ({len(rows)})", marker=marker, meta="trials",
                      customdata=np.array([r["trial"] for r in rows], dtype=int),
                      hovertext=np.array([_hover(r) for r in rows], dtype=object), hoverinfo="text")


def front_figure(d: ReportData) -> go.Figure:
    """GFLOPs (log) against AP: the front, dominated ok trials greyed, other kinds marked apart, the knee,
    published models. A trial without AP (failed, infeasible) is drawn at AP 0."""
    fig = go.Figure()
    drawn = [r for r in d.rows if r["gflops"] is not None and r["gflops"] > 0]
    dominated = [r for r in drawn if r["kind"] == "ok" and not r["on_front"]]
    front = sorted((r for r in drawn if r["on_front"]), key=lambda r: r["gflops"])
    fig.add_trace(_scatter(dominated, "dominated", {"color": "#c7c7c7", "size": 6}))
    seeds = [r for r in drawn if r.get("other_seed_of_front")]
    if seeds:  # the single seeds of repeated front configs, around their mean on the front
        fig.add_trace(_scatter(seeds, "seeds of front configs", {"color": "#1f77b4", "size": 6,
                                                                 "symbol": "circle-open"}))
    for kind, style in STYLE.items():
        rs = [r for r in drawn if r["kind"] == kind]
        if rs:
            fig.add_trace(_scatter(rs, kind, {**style, "size": 7}))
    tr = _scatter(front, "Pareto front", {"color": "#1f77b4", "size": 9}, mean=True)
    tr.update(mode="lines+markers", line={"shape": "hv"})
    fig.add_trace(tr)
    knee = [r for r in front if r["knee"]]
    if knee:
        fig.add_trace(go.Scatter(x=[knee[0]["gflops"]], y=[drawn_ap(knee[0], True)], mode="markers", name="knee",
                                 marker={"symbol": "star", "size": 18, "color": "gold",
                                         "line": {"color": "black", "width": 1}}, hoverinfo="skip"))
    if d.references:
        fig.add_trace(go.Scatter(x=[r["gflops"] for r in d.references], y=[r["ap"] for r in d.references],
                                 mode="markers+text", name="published PIIP", text=[r["name"] for r in d.references],
                                 textposition="top center",
                                 marker={"symbol": "diamond", "size": 11, "color": "#2ca02c"}))
    fig.update_layout(title="Front: GFLOPs (multiply-adds, log) against AP", xaxis_type="log",
                      xaxis_title="GFLOPs", yaxis_title="AP", height=520, legend={"orientation": "h", "y": -0.2})
    return fig


def hv_figure(d: ReportData) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("hypervolume over trials",
                                                        f"hypervolume over compute ({d.compute_unit})"))
    fig.add_trace(go.Scatter(x=[n for n, _ in d.hv_by_trial], y=[h for _, h in d.hv_by_trial], name="all",
                             line={"shape": "hv"}), row=1, col=1)
    if len(d.hv_by_sampler) > 1:
        for s, series in d.hv_by_sampler.items():
            fig.add_trace(go.Scatter(x=[n for n, _ in series], y=[h for _, h in series], name=f"sampler {s}",
                                     line={"shape": "hv", "dash": "dot"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=[c for c, _ in d.hv_by_compute], y=[h for _, h in d.hv_by_compute],
                             name="by compute", line={"shape": "hv"}), row=1, col=2)
    fig.update_xaxes(title_text="trial", row=1, col=1)
    fig.update_xaxes(title_text=d.compute_unit, row=1, col=2)
    fig.update_layout(height=380, title="Progress: hypervolume")
    return fig


def progress_figure(d: ReportData) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("trials by state over time", "throughput per worker"))
    for kind, series in d.states_over_time.items():
        fig.add_trace(go.Scatter(x=[t for t, _ in series], y=[c for _, c in series], name=kind,
                                 line={"shape": "hv"}), row=1, col=1)
    fig.add_trace(go.Bar(x=[w["worker"] for w in d.throughput], y=[w["trials_per_hour"] for w in d.throughput],
                         name="trials/hour", text=[f"{w['trials']} trials" for w in d.throughput]), row=1, col=2)
    fig.update_xaxes(title_text="hours since the first trial", row=1, col=1)
    fig.update_yaxes(title_text="trials", row=1, col=1)
    fig.update_yaxes(title_text="trials per hour", row=1, col=2)
    fig.update_layout(height=360, title="Progress: states and workers")
    return fig


def importance_figure(d: ReportData) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=tuple(f"importance for {t}" for t in d.importances))
    for i, (target, scores) in enumerate(d.importances.items(), start=1):
        items = sorted(((k, v or 0.0) for k, v in scores.items()), key=lambda kv: kv[1])
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h", name=target),
                      row=1, col=i)
    fig.update_layout(height=max(300, 22 * len(d.searched_params) + 120), showlegend=False,
                      title="What matters: parameter importances (Optuna PED-ANOVA, ok trials)")
    return fig


def parcoords_figure(d: ReportData) -> go.Figure:
    ok = [r for r in d.rows if r["kind"] == "ok" and r["ap"] is not None]
    dims = []
    for p in d.searched_params:
        vals = [r["params"].get(p) for r in ok]
        if all(v is None or isinstance(v, int | float) for v in vals):
            dims.append({"label": p, "values": np.array([v if v is not None else np.nan for v in vals], dtype=float)})
        else:  # categorical: integer codes with their labels as ticks
            cats = sorted({str(v) for v in vals})
            code = {c: i for i, c in enumerate(cats)}
            dims.append({"label": p, "values": np.array([code[str(v)] for v in vals], dtype=int),
                         "tickvals": list(range(len(cats))), "ticktext": cats})
    ap = np.array([r["ap"] for r in ok], dtype=float)
    dims.append({"label": "AP", "values": ap})
    fig = go.Figure(go.Parcoords(line={"color": ap, "colorscale": "Viridis", "showscale": True},
                                 dimensions=dims))
    fig.update_layout(height=420, title="Searched parameters of the ok trials, coloured by AP")
    return fig


def composition_figure(d: ReportData) -> go.Figure:
    """Share of the front against share of the ok trials, per feature value."""
    labels, front, study = [], [], []
    n_front = max(1, len(d.front))
    n_ok = max(1, sum(r["kind"] == "ok" for r in d.rows))
    for feat, vals in d.composition.items():
        for v, c in sorted(vals.items()):
            labels.append(f"{feat} = {v}")
            front.append(c["front"] / n_front)
            study.append(c["study"] / n_ok)
    fig = go.Figure([go.Bar(y=labels, x=front, name="on the front", orientation="h"),
                     go.Bar(y=labels, x=study, name="all ok trials", orientation="h")])
    fig.update_layout(barmode="group", height=max(320, 26 * len(labels) + 120), xaxis_title="share",
                      title="What the front is made of (share of front points vs share of ok trials)")
    return fig


def compare_figures(studies: list[ReportData]) -> tuple[go.Figure, go.Figure]:
    """Fronts and hypervolume curves of several studies on shared axes."""
    fr, hv = go.Figure(), go.Figure()
    for d in studies:
        by = {r["trial"]: r for r in d.rows}
        pts = sorted((by[n] for n in d.front), key=lambda r: r["gflops"])
        fr.add_trace(go.Scatter(x=[r["gflops"] for r in pts], y=[drawn_ap(r, True) for r in pts], mode="lines+markers",
                                line={"shape": "hv"}, name=f"{d.study} ({d.header['sampler']})",
                                hovertext=[_hover(r) for r in pts], hoverinfo="text"))
        hv.add_trace(go.Scatter(x=[n for n, _ in d.hv_by_trial], y=[h for _, h in d.hv_by_trial],
                                name=d.study, line={"shape": "hv"}))
    fr.update_layout(title="Fronts", xaxis_type="log", xaxis_title="GFLOPs", yaxis_title="AP", height=520)
    hv.update_layout(title="Hypervolume over trials", xaxis_title="trial", yaxis_title="hypervolume", height=380)
    return fr, hv
