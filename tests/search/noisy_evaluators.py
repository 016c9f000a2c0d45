"""A seed-noisy evaluator for the repeats tests: `tests.search.noisy_evaluators:noisy`.

True AP = the smooth `known_ap` of the config, less `NEAR` when branch 1 runs at 96 px (a little worse than the
same config at 64 px, which costs fewer FLOPs: near the front) and less `FAR` at 128 px (far from the front).
Each seed adds a deterministic noise in [-NOISE, NOISE]. The lucky config is a near one whose seed 0 is `LUCK`
better (on the front by one seed) and whose seeds 1 and 2 are `LUCK / 2` worse: its mean is its true AP.
"""

from __future__ import annotations

import hashlib

from tests.search.fake_evaluators import known_ap

SEEN: list[tuple[str, int, float]] = []  # (fingerprint, seed, AP) of every evaluation, in order
NOISE = 0.01
NEAR, FAR = 0.05, 0.3
LUCK = 0.1
LUCKY = {"widths": (32, 32), "resolutions": (96, 96)}  # true AP 0.05 below the staircase at its FLOPs


def seed_noise(fingerprint: str, seed: int) -> float:
    h = hashlib.sha256(f"{fingerprint}:{seed}".encode()).digest()
    return NOISE * (2.0 * int.from_bytes(h[:4], "little") / 2**32 - 1.0)


def is_lucky(cfg) -> bool:
    return (tuple(b.embed_dim for b in cfg.branches) == LUCKY["widths"]
            and tuple(b.resolution for b in cfg.branches) == LUCKY["resolutions"])


def true_ap(cfg) -> float:
    low = cfg.branches[0].resolution
    return known_ap(cfg) - {96: NEAR, 128: FAR}.get(low, 0.0)


def noisy(cfg, ctx):
    fp, seed = cfg.fingerprint(), ctx.seed
    ap = true_ap(cfg) + seed_noise(fp, seed)
    if is_lucky(cfg):
        ap += LUCK if seed == 0 else -LUCK / 2
    SEEN.append((fp, seed, ap))
    return {"status": "ok", "ap": ap}
