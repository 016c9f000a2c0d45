"""benchmarks/bench_gpu.py runs end to end on CPU (--device cpu --quick); the figures need a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_gpu_quick_smoke_on_cpu():
    out = ROOT / "benchmarks" / "results" / "gpu_quick.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--device", "cpu", "--quick"],
                   check=True, cwd=ROOT, capture_output=True, timeout=600)
    data = json.loads(out.read_text())
    out.unlink()
    tsb, vit = data["rows"]
    assert tsb["images_per_s"] > 0 and vit["images_per_s"] > 0
    assert tsb["time_share"]["deform_attn"] > 0 and vit["time_share"]["deform_attn"] == 0
