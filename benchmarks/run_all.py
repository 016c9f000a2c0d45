"""Run every benchmark in turn (full settings; hours on a 2-core CPU). Each writes benchmarks/results/*.json.

    python benchmarks/run_all.py [--quick]    # --quick: smaller settings, minutes, for a smoke check
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ["bench_flops.py", "--published"],
    ["bench_forward.py"],
    ["bench_proxy.py"],
    ["bench_rank_fidelity.py"],
    ["bench_search_efficiency.py"],
    ["bench_search_efficiency.py", "--noise", "1", "--seeds", "3", "--trials", "100"],
    ["bench_multifidelity.py", "--trials", "60,120,200", "--seeds", "8", "--sampler", "tpe", "--rungs", "500,4500",
     "--eta", "2"],
    ["bench_multifidelity.py", "--trials", "60,120,200", "--seeds", "8", "--sampler", "tpe", "--rungs", "500,4500",
     "--eta", "3", "--noise", "0.1", "--out", "multifidelity_oracle.json"],
    ["bench_multifidelity_ceiling.py", "--eta", "4", "--noise", "0.1", "--seeds", "4"],
    ["bench_multifidelity_ceiling.py", "--eta", "2", "--noise", "1", "--seeds", "4", "--out",
     "multifidelity_ceiling_noise1.json"],
    ["bench_learning_curve.py", "--configs", "tiny-3branch", "--seeds", "0", "1", "--out", "lc_a.json"],
    ["bench_learning_curve.py", "--configs", "single-vit-128-at-256", "narrow-64-64-32", "low-res-96-128-192",
     "high-res-160-224-320", "--out", "lc_b.json"],
    ["bench_learning_curve.py", "--merge", "lc_a.json", "lc_b.json"],
    ["bench_driver_overhead.py"],
    ["bench_report.py"],
    ["bench_orchestration.py"],
    ["bench_fault_soak.py"],
    ["bench_journal_lock.py"],
]
QUICK = [
    ["bench_flops.py", "--random", "10"],
    ["bench_forward.py", "--iters", "3"],
    ["bench_proxy.py", "--seeds", "0"],
    ["bench_search_efficiency.py", "--quick"],
    ["bench_multifidelity.py", "--trials", "30", "--seeds", "1"],
    ["bench_multifidelity_ceiling.py", "--trials", "30", "--seeds", "1", "--out", "multifidelity_ceiling_quick.json"],
    ["bench_learning_curve.py", "--configs", "narrow-64-64-32", "--factor", "1", "--fractions", "0.5", "--out",
     "learning_curve_quick.json"],
    ["bench_driver_overhead.py", "--fill", "200", "--measure", "20"],
    ["bench_report.py", "--sizes", "100,1000", "--out", "report_quick.json"],
    ["bench_orchestration.py", "--quick", "--out", "orchestration_quick.json"],
    ["bench_fault_soak.py", "--quick", "--out", "fault_soak_quick.json"],
    ["bench_journal_lock.py", "--rounds", "2", "--out", "journal_lock_quick.json"],
]


def main() -> int:
    plan = QUICK if "--quick" in sys.argv[1:] else FULL
    failed = []
    for cmd in plan:
        print(f"== {' '.join(cmd)}", flush=True)
        if subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]]) != 0:
            failed.append(cmd[0])
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
