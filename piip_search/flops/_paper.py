"""Convention `paper`: the counting behind the published PIIP #Param/#FLOPs (piip-architecture.md §6).

The README numbers come from the official classification code path (`classification/get_flops.py`), which
counts with mmcv hooks (Linear/Conv/norm layers only) and adds closed-form terms:

* branches: patch conv, pos-embed sized at the branch's own grid G = resolution // 16 (G^2 * D, plus a cls
  slot for InternViT-type branches), blocks (qkv on padded tokens for InternViT-type windowed blocks);
  attention matmuls by formula: global 2 * N^2 * D, windowed 2 * N * ws^2 * D per block (ws^2 even where
  the real kernel pads; cls tokens ignored);
* interactions: the units' Linear/LN/conv layers plus the deformable term 5 * G_q^2 * K * d_q per
  direction with K = 4 hard-coded (heads, value ratio and the real number of points are ignored);
* detection configs: cls-style merges (GN / GN-Linear-GN) and LayerNorm + Linear(D_1, 1000) head, no
  pyramid; single-branch baselines: final norm + 1000-way head;
* classification configs: cls tokens in the blocks (N + 1 tokens), one norm + head per branch
  (separate heads), no merge.

FLOPs are multiply-adds.
"""

from __future__ import annotations

from piip_search.config import PATCH_SIZE, PIIPConfig
from piip_search.flops import _terms as t
from piip_search.flops._report import FlopsReport, Part, make_report

DEFORM_K = 4  # n_points * n_levels hard-coded in the official FLOPs scripts
PAPER_HEAD_CLASSES = 1000  # the FLOPs script builds the classification PIIP with a 1000-way head


def _branch(cfg: PIIPConfig, i: int) -> tuple[Part, Part]:
    b = cfg.branches[i]
    cls_task = cfg.task == "classification"
    d, g = b.dim, b.grid
    n = g * g
    n_tok = n + 1 if cls_task else n  # the cls token runs through the blocks
    bt = b.block_type
    mod = t.patch_embed(n, d)
    mod += t.Cost((n + (1 if b.family == "internvit" else 0)) * d, 0)  # pos-embed at the real grid
    if cls_task:
        mod += t.Cost(d, 0)  # cls token
    attn = 0
    for k in range(b.n_blocks):
        ws = b.window_of(k)
        if ws is None:
            mod += t.block(d, b.mlp_hidden, bt, n_tok)
            attn += t.attention_matmuls(n, n, d)
        else:
            n_qkv = t.padded_tokens(g, ws) if b.family == "internvit" else n_tok
            mod += t.block(d, b.mlp_hidden, bt, n_tok, n_qkv)
            attn += t.attention_matmuls(n, ws * ws, d)
    name = f"branch{i + 1}"
    return (Part(name, mod.params, mod.flops, "module"), Part(f"{name}.attention", 0, attn, "formula"))


def _interactions(cfg: PIIPConfig) -> list[Part]:
    pairs = cfg.unit_pairs()
    if not pairs:
        return []
    ic = cfg.interactions
    kw = dict(attention=ic.attention, heads=ic.heads, points=ic.points, ratio=ic.deform_ratio,
              cffn=ic.cffn, cffn_ratio=ic.cffn_ratio, norm_on=ic.norm)
    br = cfg.branches
    mod, formula = t.ZERO, 0
    for a, b, a_to_b, b_to_a in pairs:
        da, db = br[a].dim, br[b].dim
        ga, gb = br[a].grid, br[b].grid
        na, nb = ga * ga, gb * gb
        if b_to_a:  # queries on branch a, features from b
            if ic.projection:
                mod += t.linear(nb, db, da)
            mod += t.injector_modules(da, da if ic.projection else db, na, nb, **kw)
            formula += _cross_formula(ic.attention, ga, na, nb, da)
        if a_to_b:
            if ic.projection:
                mod += t.linear(na, da, db)
            mod += t.injector_modules(db, db if ic.projection else da, nb, na, **kw)
            formula += _cross_formula(ic.attention, gb, nb, na, db)
    k = cfg.n_interactions
    mod = mod.times(k)
    label = "deform" if ic.attention == "deformable" else "attention"
    return [Part("interactions", mod.params, mod.flops, "module"),
            Part(f"interactions.{label}", 0, formula * k, "formula")]


def _cross_formula(attention: str, g_q: int, n_q: int, n_k: int, d_q: int) -> int:
    if attention == "deformable":
        return 5 * g_q * g_q * DEFORM_K * d_q
    return t.attention_matmuls(n_q, n_k, d_q)


def _merge_and_head(cfg: PIIPConfig) -> list[Part]:
    br = cfg.branches
    if cfg.task == "classification":
        c = t.ZERO
        for b in br:  # separate heads: norm on the patch tokens, head on one token
            c += t.norm(b.grid ** 2, b.dim) + t.linear(1, b.dim, cfg.num_classes)
        return [Part("heads", c.params, c.flops)]
    d1 = br[0].dim
    n_last = br[-1].grid ** 2
    head_norm = br[0].block_type.norm if len(br) == 1 else "ln"
    head = t.norm(n_last, d1, head_norm) + t.linear(1, d1, PAPER_HEAD_CLASSES)
    parts = []
    if len(br) > 1:
        m = t.norm(br[0].grid ** 2, d1)
        for b in br[1:]:
            nk = b.grid ** 2
            m += t.norm(nk, b.dim) + t.linear(nk, b.dim, d1) + t.norm(nk, d1)
        m += t.Cost(len(br), 0)  # merge weights
        parts.append(Part("merge", m.params, m.flops))
    parts.append(Part("head", head.params, head.flops))
    return parts


def count_paper(cfg: PIIPConfig) -> FlopsReport:
    assert PATCH_SIZE == 16
    parts: list[Part] = []
    for i in range(len(cfg.branches)):
        parts.extend(_branch(cfg, i))
    parts.extend(_interactions(cfg))
    parts.extend(_merge_and_head(cfg))
    return make_report(parts, "paper", cfg.name)
