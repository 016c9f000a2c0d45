"""One walk over a config's branches and interaction units for both counting conventions.

The conventions agree on which layers exist and differ in a few terms, each a field of `Terms`: the norm/bias
rules, how many position-embedding tokens a branch stores, which token counts the attention matmuls and the
windowed qkv see, and the closed form of deformable sampling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from piip_search.config import BranchConfig, InteractionConfig, PIIPConfig
from piip_search.flops import _terms as t
from piip_search.flops._report import Part


@dataclass(frozen=True)
class Terms:
    rules: t.Rules
    pos_tokens: Callable[[BranchConfig, bool], int]  # (branch, classification?) -> stored pos-embed tokens
    global_attn: Callable[[int, int], tuple[int, int]]  # (tokens in blocks, patch tokens) -> matmul (N_q, N_k)
    window_qkv: Callable[[BranchConfig, int, int], int]  # (branch, window, tokens in blocks) -> qkv tokens
    window_queries: Callable[[int, int], int]  # (padded tokens, patch tokens) -> attention query tokens
    deform: Callable[[InteractionConfig, int, int], int]  # (interactions, N_q, d_q) -> sampling FLOPs


def branch_parts(cfg: PIIPConfig, i: int, terms: Terms) -> list[Part]:
    mod, attn = _branch_cost(cfg.branches[i], cfg.task == "classification", terms)
    name = f"branch{i + 1}"
    return [Part(name, mod.params, mod.flops, "module"), Part(f"{name}.attention", 0, attn, "formula")]


@functools.lru_cache(maxsize=4096)
def _branch_cost(b: BranchConfig, cls_task: bool, terms: Terms) -> tuple[t.Cost, int]:
    """A branch's module cost and attention-matmul FLOPs: a function of the branch alone, so searches that
    count thousands of candidates built from a few branch shapes walk each shape's blocks once."""
    d, g = b.embed_dim, b.grid
    n = g * g
    n_tok = n + 1 if cls_task else n  # the cls token runs through the blocks
    bt = b.block_type
    mod = t.patch_embed(n, d, terms.rules)
    mod += t.Cost((terms.pos_tokens(b, cls_task) + (1 if b.family == "internvit" else 0)) * d, 0)
    if cls_task:
        mod += t.Cost(d, 0)  # cls token
    attn = 0
    for k in range(b.depth):
        ws = b.window_of(k)
        if ws is None:
            mod += t.block(d, b.mlp_hidden, bt, n_tok, terms.rules)
            attn += t.attention_matmuls(*terms.global_attn(n_tok, n), d)
        else:
            mod += t.block(d, b.mlp_hidden, bt, n_tok, terms.rules, terms.window_qkv(b, ws, n_tok))
            attn += t.attention_matmuls(terms.window_queries(t.padded_tokens(g, ws), n), ws * ws, d)
    return mod, attn


def interaction_parts(cfg: PIIPConfig, terms: Terms) -> list[Part]:
    injectors = t.directions(cfg.unit_pairs())
    if not injectors:
        return []
    ic, br = cfg.interactions, cfg.branches
    mod, formula = t.ZERO, 0
    for q, k in injectors:  # query branch q, features from branch k
        dq, dk, nq, nk = br[q].embed_dim, br[k].embed_dim, br[q].grid ** 2, br[k].grid ** 2
        if ic.projection:
            mod += t.linear(nk, dk, dq)
        mod += t.injector(dq, dq if ic.projection else dk, nq, nk, ic, terms.rules)
        if ic.attention == "deformable":
            formula += terms.deform(ic, nq, dq)
        else:
            formula += t.attention_matmuls(nq, nk, dq)
    n = cfg.n_interactions
    label = "deform" if ic.attention == "deformable" else "attention"
    return [Part("interactions", mod.params * n, mod.flops * n, "module"),
            Part(f"interactions.{label}", 0, formula * n, "formula")]
