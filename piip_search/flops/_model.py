"""Convention `model`: multiply-adds and parameters of the backbone that `models.build_piip(cfg)` builds.

Analytic (no model is built) and defined to agree with `traced_flops` (fvcore plus the handles of
`_traced.py`) op by op, for a batch-1 square image at the last branch's resolution:

* Linear: tokens * in * out; Conv2d: out pixels * k*k * C_in/groups * C_out; ConvTranspose2d: in pixels *
  k*k * C_in * C_out (biases are not counted: fvcore's rule);
* attention matmuls, QK^T and AV: 2 * N_q * N_k * D per block; windows as built: every (padded) window costs
  2 * (ws^2)^2 * D, i.e. 2 * N_pad * ws^2 * D with N_pad = (ceil(G/ws) * ws)^2; a classification branch
  attends over N + 1 tokens (cls token);
* windowed qkv on the padded tokens, both families (the official flash path; q/k norms likewise);
* LayerNorm / GroupNorm / RMSNorm: 5 per element (fvcore's estimate for affine norms);
* deformable sampling: 5 per sampled value (bilinear: 4 taps; attention weighting: 1), i.e.
  5 * N_q * points * int(d * deform_ratio) per injector (the trace attributes both to grid_sampler);
* bilinear resizing (the input image to each lower-resolution branch, merged maps to the last grid): 4 per
  output element (fvcore's rule for upsample_bilinear2d);
* not counted here or in the trace: activations, softmax, residual adds, LayerScale / gamma / merge-weight
  multiplies, pos-embed add, max-pool, reshapes.

Parameters are exactly `sum(p.numel() for p in build_piip(cfg).parameters())`, which for detection is the
official mmdet module's count: branches (patch conv, pos-embed at the pretrain grid for detection / the branch
grid for classification [+ cls slot for InternViT-type], cls token for classification, blocks),
interactions, and either the detection merge (3x3 conv-GN-ReLU x2 per branch, n weights; none for one branch)
+ simple feature pyramid, or the classification heads (LayerNorm + Linear per branch, on the cls token).
"""

from __future__ import annotations

from piip_search.config import PIIPConfig
from piip_search.flops import _terms as t
from piip_search.flops._report import FlopsReport, Part, make_report
from piip_search.flops._walk import Terms, branch_parts, interaction_parts

RULES = t.FVCORE
BILINEAR = 4  # per output element of a bilinear resize (fvcore)
DEFORM_SAMPLE = 5  # per sampled value: 4 bilinear taps + 1 attention weight


def _resize(cfg: PIIPConfig) -> list[Part]:
    last = cfg.branches[-1].resolution
    flops = sum(BILINEAR * 3 * b.resolution ** 2 for b in cfg.branches[:-1] if b.resolution != last)
    return [Part("resize", 0, flops, "formula")] if flops else []


TERMS = Terms(
    rules=RULES,
    pos_tokens=lambda b, cls_task: b.grid ** 2 if cls_task else b.pos_grid ** 2,  # pretrain grid for detection
    global_attn=lambda n_tok, n: (n_tok, n_tok),
    window_qkv=lambda b, ws, n_tok: t.padded_tokens(b.grid, ws),  # both families: the flash path pads first
    window_queries=lambda n_pad, n: n_pad,
    deform=lambda ic, nq, dq: DEFORM_SAMPLE * nq * ic.points * int(dq * ic.deform_ratio),
)


def _merge(cfg: PIIPConfig) -> list[Part]:
    br = cfg.branches
    if len(br) == 1:
        return []
    d1, g_last = br[0].embed_dim, br[-1].grid
    c = t.Cost(len(br), 0)  # merge weights
    for b in br:
        n = b.grid ** 2
        c += t.conv(n, b.embed_dim, d1, 3, RULES, bias=False) + t.norm(n, d1, RULES)
        c += t.conv(n, d1, d1, 3, RULES, bias=False) + t.norm(n, d1, RULES)
        if b.grid != g_last:
            c += t.Cost(0, BILINEAR * d1 * g_last * g_last)
    return [Part("merge", c.params, c.flops, "module")]


def _pyramid(cfg: PIIPConfig) -> Part:
    d, n = cfg.branches[0].embed_dim, cfg.branches[-1].grid ** 2
    convt = 4 * d * d  # ConvTranspose2d(d, d, 2, 2): charged per input pixel
    c = t.Cost(convt + d, convt * n)  # fpn1 first ConvT (stride 16 -> 8)
    c += t.norm(4 * n, d, RULES)  # GroupNorm on the stride-8 map
    c += t.Cost(convt + d, convt * 4 * n)  # fpn1 second ConvT (8 -> 4)
    c += t.Cost(convt + d, convt * n)  # fpn2
    return Part("pyramid", c.params, c.flops, "module")


def _heads(cfg: PIIPConfig) -> Part:
    c = t.ZERO
    for b in cfg.branches:  # norm + linear on the cls token of every branch
        c += t.norm(1, b.embed_dim, RULES) + t.linear(1, b.embed_dim, cfg.num_classes)
    return Part("heads", c.params, c.flops, "module")


def count_model(cfg: PIIPConfig) -> FlopsReport:
    parts: list[Part] = _resize(cfg)
    for i in range(len(cfg.branches)):
        parts.extend(branch_parts(cfg, i, TERMS))
    parts.extend(interaction_parts(cfg, TERMS))
    if cfg.task == "classification":
        parts.append(_heads(cfg))
    else:
        parts.extend(_merge(cfg))
        parts.append(_pyramid(cfg))
    return make_report(parts, "model", cfg.name)
