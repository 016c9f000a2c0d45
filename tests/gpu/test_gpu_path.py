"""The GPU path searches run on (issue 13): run with `pytest -m gpu` on a machine with CUDA.

Excluded from `make test` (no GPU there); not measured yet (see README, "GPU path").
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from piip_search.models import MSDeformAttn, build_piip, reference_points
from piip_search.proxy import ProxySettings, build_detector, train_proxy
from tests.models.conftest import tiny_config
from tests.proxy.tiny import micro_config, small_dataset

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _cuda():
    if not torch.cuda.is_available():  # marked tests run only on request (-m gpu), where CUDA must exist
        pytest.fail("pytest -m gpu needs a CUDA device")
    torch.manual_seed(0)


def test_deformable_attention_cuda_matches_cpu():
    attn = MSDeformAttn(128, n_levels=1, n_heads=16, n_points=4, ratio=0.5, d_feat=96)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.2)
    hw_q, hw_k = (20, 28), (9, 14)
    q = torch.randn(2, hw_q[0] * hw_q[1], 128)
    feat = torch.randn(2, hw_k[0] * hw_k[1], 96)
    ref = reference_points(hw_q)
    want = attn(q, ref, feat, [hw_k])
    got = attn.cuda()(q.cuda(), ref.cuda(), feat.cuda(), [hw_k]).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_training_step_is_finite():
    model = build_piip(tiny_config(3)).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(2, 3, 128, 176, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
        loss = sum(v.float().pow(2).mean() for v in out.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    opt.step()


def test_full_detector_step_under_bf16():
    det = build_detector(micro_config(), num_classes=3, detector="mask_rcnn",
                         settings=ProxySettings(resolution_scale=1.0)).cuda().train()
    side = det.input_side
    images = [torch.rand(3, side, side, device="cuda") for _ in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]], device="cuda"),
                "labels": torch.tensor([1], device="cuda"),
                "masks": torch.zeros(1, side, side, dtype=torch.uint8, device="cuda")} for _ in images]
    for t in targets:
        t["masks"][:, 4:30, 4:30] = 1
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = det(images, targets)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)


def test_proxy_run_on_the_gpu_learns(tmp_path: Path):
    data = small_dataset(tmp_path / "ds", images=48, val_images=16, size=64)
    s = ProxySettings(resolution_scale=1.0, head_convs=0, batch_size=4, warmup_iters=10, iters=150, eval_at=[0],
                      device="cuda", amp=True)
    res = train_proxy(micro_config(), data, s, progress=False)
    assert res.status == "ok", res.message
    assert res.loss_end < 0.7 * res.loss_start
    assert res.history[-1]["ap50"] >= res.history[0]["ap50"] + 0.1, res.history
