"""Convention `paper`: the counting behind the published PIIP #Param/#FLOPs (docs/official-code.md §6).

The README numbers come from the official classification code path (`classification/get_flops.py`), which
counts with mmcv hooks (Linear / Conv / LayerNorm / GroupNorm only; RMSNorm is not hooked) and adds
closed-form terms:

* branches: patch conv, pos-embed sized at the branch's own grid G = resolution // 16 (G^2 * D, plus a cls
  slot for InternViT-type branches), blocks (qkv on the padded tokens for InternViT-type windowed blocks);
  attention matmuls by formula: global 2 * N^2 * D, windowed 2 * N * ws^2 * D per block (ws^2 even where the
  real kernel pads; cls tokens ignored);
* interactions: the units' Linear / LN / conv layers plus the deformable term 5 * G_q^2 * K * d_q per
  direction with K = 4 hard-coded (heads, value ratio and the configured points are ignored); regular
  cross-attention: 2 * N_q * N_k * d_q;
* detection configs: cls-style merges (GN; GN-Linear-GN per other branch; n weights) and a LayerNorm +
  Linear(D_1, 1000) head, no pyramid; single-branch baselines: final norm + 1000-way head;
* classification configs: cls token in the blocks (N + 1 tokens), one norm (on the patch tokens) + head per
  branch (separate heads), no merge.

FLOPs are multiply-adds. The README prints mmcv's one-decimal output rounded to integers (e.g. 1740.49 G ->
"1740.5" -> 1741 G), which this reproduces for every published row.
"""

from __future__ import annotations

from piip_search.config import PIIPConfig
from piip_search.flops import _terms as t
from piip_search.flops._report import FlopsReport, Part, make_report
from piip_search.flops._walk import Terms, branch_parts, interaction_parts

RULES = t.MMCV
DEFORM_K = 4  # n_points * n_levels, hard-coded in the official FLOPs scripts
PAPER_HEAD_CLASSES = 1000  # the FLOPs script builds the classification PIIP with a 1000-way head


TERMS = Terms(
    rules=RULES,
    pos_tokens=lambda b, cls_task: b.grid ** 2,  # pos-embed at the real grid
    global_attn=lambda n_tok, n: (n, n),  # cls tokens ignored
    window_qkv=lambda b, ws, n_tok: t.padded_tokens(b.grid, ws) if b.family == "internvit" else n_tok,
    window_queries=lambda n_pad, n: n,  # ws^2 keys even where the real kernel pads
    deform=lambda ic, nq, dq: 5 * nq * DEFORM_K * dq,
)


def _merge_and_head(cfg: PIIPConfig) -> list[Part]:
    br = cfg.branches
    if cfg.task == "classification":
        c = t.ZERO
        for b in br:  # separate heads: norm on the patch tokens, head on one token
            c += t.norm(b.grid ** 2, b.embed_dim, RULES) + t.linear(1, b.embed_dim, cfg.num_classes)
        return [Part("heads", c.params, c.flops)]
    d1 = br[0].embed_dim
    parts = []
    if len(br) > 1:
        m = t.norm(br[0].grid ** 2, d1, RULES)
        for b in br[1:]:
            nk = b.grid ** 2
            m += t.norm(nk, b.embed_dim, RULES) + t.linear(nk, b.embed_dim, d1) + t.norm(nk, d1, RULES)
        m += t.Cost(len(br), 0)  # merge weights
        parts.append(Part("merge", m.params, m.flops))
    head_norm = br[0].block_type.norm if len(br) == 1 else "ln"  # a baseline keeps its own final norm
    head = t.norm(br[-1].grid ** 2, d1, RULES, head_norm) + t.linear(1, d1, PAPER_HEAD_CLASSES)
    parts.append(Part("head", head.params, head.flops))
    return parts


def count_paper(cfg: PIIPConfig) -> FlopsReport:
    parts: list[Part] = []
    for i in range(len(cfg.branches)):
        parts.extend(branch_parts(cfg, i, TERMS))
    parts.extend(interaction_parts(cfg, TERMS))
    parts.extend(_merge_and_head(cfg))
    return make_report(parts, "paper", cfg.name)
