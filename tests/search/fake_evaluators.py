"""Evaluators for driver tests: known AP, no training. Referenced as `tests.search.fake_evaluators:<name>`."""

from __future__ import annotations

import math

CALLS: list[str] = []


def known_ap(cfg) -> float:
    """A smooth, saturating AP: more width and resolution help, with diminishing returns."""
    widths = sum(b.embed_dim for b in cfg.branches)
    res = max(b.resolution for b in cfg.branches)
    return round(1.0 - math.exp(-widths / 200.0) * math.exp(-res / 400.0), 6)


def evaluate(cfg, ctx):
    CALLS.append(cfg.fingerprint())
    for it in ctx.rungs:
        if not ctx.report(it, {"ap": known_ap(cfg) * it / max(ctx.rungs)}):
            return {"status": "ok", "ap": known_ap(cfg) * it / max(ctx.rungs), "stopped": True}
    return {"status": "ok", "ap": known_ap(cfg), "ap50": min(1.0, known_ap(cfg) + 0.1)}


def failing(cfg, ctx):
    raise RuntimeError("user trainer exploded")


def no_ap(cfg, ctx):
    return {"status": "ok", "loss": 1.0}


def slow(cfg, ctx):
    import time

    time.sleep(0.5)
    return evaluate(cfg, ctx)


def hang(cfg, ctx):
    import time

    (ctx.trial_dir / "started").write_text("1")
    time.sleep(120)
    return evaluate(cfg, ctx)


def with_pid(cfg, ctx):
    import os

    return {**evaluate(cfg, ctx), "pid": os.getpid()}


def hang_if_asked(cfg, ctx):
    """`hang` while PIIP_TEST_HANG is set (the process to kill), `evaluate` otherwise (the one that resumes)."""
    import os

    if os.environ.get("PIIP_TEST_HANG"):
        return hang(cfg, ctx)
    return evaluate(cfg, ctx)


def truncating(cfg, ctx):
    """A run cut by a wall-clock cap after a tenth of its iterations (what a busy machine does to the proxy)."""
    planned = ctx.fidelity or 100
    return {"status": "ok", "ap": known_ap(cfg), "iters": max(1, planned // 10), "stop_reason": "time_budget"}


def full_iters(cfg, ctx):
    return {"status": "ok", "ap": known_ap(cfg), "iters": ctx.fidelity or 100, "stop_reason": "iters"}


def poison(cfg, ctx):
    """Kills its own process (as the OOM killer would) for the config recorded in $PIIP_TEST_POISON_FILE;
    the first config it sees becomes the poison one."""
    import os
    import signal
    from pathlib import Path

    marker = Path(os.environ["PIIP_TEST_POISON_FILE"])
    if not marker.exists():
        marker.write_text(cfg.fingerprint())
    if marker.read_text() == cfg.fingerprint():
        with open(str(marker) + ".deaths", "a") as f:
            f.write("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return evaluate(cfg, ctx)


def sleeping(cfg, ctx):
    """Sleeps the space's `proxy: {sleep_s: ...}` seconds (default 2), then returns the known AP: a stand-in for
    training time that costs no CPU."""
    import time

    time.sleep(float(ctx.proxy.get("sleep_s", 2)))
    return evaluate(cfg, ctx)


def dies_once(cfg, ctx):
    """Kills its own process (the Tune actor) on the first attempt at a trial; the retry succeeds."""
    import os
    import signal

    attempts = ctx.trial_dir / "attempts"
    n = len(attempts.read_text()) if attempts.exists() else 0
    attempts.write_text("x" * (n + 1))
    if n == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return evaluate(cfg, ctx)


def marking(cfg, ctx):
    """Sleeps $PIIP_TEST_SLEEP_S (default 1 s) and leaves one marker line per evaluation in the study folder,
    so a test can prove that nothing was evaluated twice."""
    import os
    import time

    (ctx.trial_dir / "started").write_text("1")
    time.sleep(float(os.environ.get("PIIP_TEST_SLEEP_S", "1")))
    with open(ctx.trial_dir.parent / "evaluations.txt", "a") as f:
        f.write(f"{cfg.fingerprint()} {ctx.trial_number}\n")
    return evaluate(cfg, ctx)


def sleeping_logged(cfg, ctx):
    """`sleeping`, appending `start`/`end` to the trial folder's evals.log: shows what ran how often."""
    log = ctx.trial_dir / "evals.log"
    with log.open("a") as f:
        f.write("start\n")
    out = sleeping(cfg, ctx)
    with log.open("a") as f:
        f.write("end\n")
    return out
