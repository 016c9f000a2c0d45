"""Static PNGs of the front and the hypervolume history for papers, with matplotlib (offline).

plotly's own static export (kaleido) needs a Chrome download at first use, which fails offline; matplotlib
draws the same data from `ReportData` with no browser.
"""

from __future__ import annotations

from pathlib import Path

from piip_search.report.data import ReportData
from piip_search.report.figures import STYLE, drawn_ap

__all__ = ["write_pngs"]

_MPL_MARKERS = {"truncated": "v", "stopped": "s", "infeasible": "x", "failed": "X"}


def write_pngs(d: ReportData, out_dir: str | Path, *, dpi: int = 200) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawn = [r for r in d.rows if r["gflops"] and r["gflops"] > 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    dom = [r for r in drawn if r["kind"] == "ok" and not r["on_front"]]
    ax.scatter([r["gflops"] for r in dom], [r["ap"] for r in dom], s=10, c="#c7c7c7", label="dominated")
    for kind, marker in _MPL_MARKERS.items():
        rs = [r for r in drawn if r["kind"] == kind]
        if rs:
            ax.scatter([r["gflops"] for r in rs], [r["ap"] or 0.0 for r in rs], s=14, marker=marker,
                       c=STYLE[kind]["color"], label=kind, facecolors="none" if marker in "vs" else None)
    front = sorted((r for r in drawn if r["on_front"]), key=lambda r: r["gflops"])
    ax.step([r["gflops"] for r in front], [drawn_ap(r, True) for r in front], where="post", c="#1f77b4", marker="o",
            ms=4, label="Pareto front")
    knee = [r for r in front if r["knee"]]
    if knee:
        ax.scatter([knee[0]["gflops"]], [drawn_ap(knee[0], True)], marker="*", s=160, c="gold", edgecolors="k",
                   zorder=5, label="knee")
    for ref in d.references:
        ax.scatter([ref["gflops"]], [ref["ap"]], marker="D", c="#2ca02c")
        ax.annotate(ref["name"], (ref["gflops"], ref["ap"]), fontsize=7)
    ax.set_xscale("log")
    ax.set(xlabel="GFLOPs (multiply-adds)", ylabel="AP", title=f"{d.study}: front")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths = [out / "front.png"]
    fig.savefig(paths[0], dpi=dpi)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.step([n for n, _ in d.hv_by_trial], [h for _, h in d.hv_by_trial], where="post")
    ax.set(xlabel="trial", ylabel="hypervolume", title=f"{d.study}: hypervolume")
    fig.tight_layout()
    paths.append(out / "hypervolume.png")
    fig.savefig(paths[1], dpi=dpi)
    plt.close(fig)
    return paths
