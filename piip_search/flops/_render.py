"""Rich tables for `piip-search flops` and `describe` (rendering only; numbers come from `count`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from piip_search.flops._report import FlopsReport

if TYPE_CHECKING:
    from rich.table import Table

    from piip_search.config import BranchConfig, PIIPConfig

UNIT_NOTE = "FLOPs are multiply-adds (one fused multiply-add = one FLOP)"

_CONVENTION_NOTE = {
    "paper": "convention paper: the counting behind the published PIIP #Param/#FLOPs",
    "model": "convention model: the backbone piip-search builds, at the branch resolutions",
}


def _m(x: int) -> str:
    return f"{x / 1e6:,.3f}"


def _g(x: int) -> str:
    return f"{x / 1e9:,.3f}"


def flops_table(rep: FlopsReport, title: str | None = None) -> Table:
    from rich.table import Table

    head = title or f"{rep.name or 'config'}: params and FLOPs, convention {rep.convention!r}"
    table = Table(title=f"{head}\n{UNIT_NOTE}", caption=_CONVENTION_NOTE.get(rep.convention),
                  title_justify="left", caption_justify="left")
    table.add_column("part")
    table.add_column("kind", style="dim")
    table.add_column("params (M)", justify="right")
    table.add_column("FLOPs (G MACs)", justify="right")
    table.add_column("% FLOPs", justify="right")
    for p in rep.parts:
        share = 100.0 * p.flops / rep.flops if rep.flops else 0.0
        table.add_row(p.name, p.kind, _m(p.params), _g(p.flops), f"{share:.1f}")
    table.add_section()
    table.add_row("total", "", _m(rep.params), _g(rep.flops), "100.0", style="bold")
    return table


def _windows(b: BranchConfig) -> str:
    if b.window_size is None:
        return "global"
    if not b.global_blocks:
        return f"window {b.window_size}"
    return f"window {b.window_size}, global {','.join(map(str, b.global_blocks))}"


def branches_table(cfg: PIIPConfig) -> Table:
    from rich.table import Table

    table = Table(title=f"{cfg.name or 'config'} ({cfg.task}): branches", title_justify="left")
    for col in ("#", "model", "dim/depth/heads/mlp", "block type", "res", "grid", "attention"):
        table.add_column(col, justify="right" if col in ("res", "grid") else "left")
    for i, b in enumerate(cfg.branches):
        bt = b.block_type
        block = " ".join([b.family, bt.norm.upper(), "qkv-bias" if bt.qkv_bias else "no-qkv-bias",
                          "no-LS" if bt.layer_scale is None else f"LS{bt.layer_scale:g}"]
                         + (["qk-norm"] if bt.qk_norm else []))
        shape = f"{b.embed_dim}/{b.depth}/{b.num_heads}/{b.mlp_hidden}"
        table.add_row(str(i + 1), b.model or "custom", shape, block, str(b.resolution), f"{b.grid}x{b.grid}",
                      _windows(b))
    return table


def interactions_lines(cfg: PIIPConfig) -> list[str]:
    ic = cfg.interactions
    pairs = cfg.unit_pairs()
    if not pairs:
        return [f"interactions: none ({len(cfg.branches)} branch(es) meet only at the merge)"]
    units = []
    for a, b, a_to_b, b_to_a in pairs:
        arrow = "<->" if a_to_b and b_to_a else ("->" if a_to_b else "<-")
        units.append(f"{a + 1}{arrow}{b + 1}")
    attn = (f"deformable (heads {ic.heads}, points {ic.points}, value ratio {ic.deform_ratio})"
            if ic.attention == "deformable" else f"regular cross-attention (heads {ic.heads})")
    lines = [
        f"interactions: {cfg.n_interactions} x [{', '.join(units)}], direction {ic.direction}",
        f"  attention: {attn}",
        f"  CFFN: {f'ratio {ic.cffn_ratio}' if ic.cffn else 'off'}; projection: "
        f"{'on' if ic.projection else 'off'}; norm: {'LayerNorm' if ic.norm else 'none'}",
    ]
    for i, ranges in enumerate(cfg.block_ranges):
        shown = [f"{s}-{e}" if e > s else str(s) for s, e in ranges]
        sizes = {e - s + 1 for s, e in ranges}
        if len(ranges) > 4:
            shown = [*shown[:2], "...", shown[-1]]
        per = f"{min(sizes)}" if len(sizes) == 1 else f"{min(sizes)}-{max(sizes)}"
        lines.append(f"  branch{i + 1}: {len(ranges)} block ranges of {per} block(s): {', '.join(shown)}")
    return lines
