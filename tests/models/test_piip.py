"""PIIP backbone / classifier: shapes over branch counts, directions, attention types and tasks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from piip_search.config import DIRECTIONS, load_config
from piip_search.errors import ConfigError
from piip_search.models import PIIPBackbone, PIIPClassifier, build_piip

from .conftest import TINY_BRANCHES, tiny_config


@pytest.mark.parametrize("attention", ["deformable", "regular"])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("n_branches", [2, 3, 4])
def test_detection_forward_shapes(n_branches, direction, attention):
    cfg = tiny_config(n_branches, direction=direction, attention=attention)
    model = build_piip(cfg).eval()
    assert isinstance(model, PIIPBackbone)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 128))
    d1 = TINY_BRANCHES[n_branches][0][0]
    assert list(out) == ["p2", "p3", "p4", "p5"] and model.out_channels == d1
    for name, spec in model.output_shape().items():
        assert out[name].shape == (2, d1, 128 // spec.stride, 128 // spec.stride)
        assert torch.isfinite(out[name]).all()
    n_units = len(cfg.unit_pairs())
    assert sum(len(b.units) for b in model.interactions) == n_units * cfg.n_interactions


@pytest.mark.parametrize("attention", ["deformable", "regular"])
@pytest.mark.parametrize("direction", ["bidirectional", "all-pairs", "none"])
@pytest.mark.parametrize("n_branches", [2, 3, 4])
def test_classification_forward_shapes(n_branches, direction, attention):
    model = build_piip(tiny_config(n_branches, task="classification", direction=direction,
                                   attention=attention)).eval()
    assert isinstance(model, PIIPClassifier)
    with torch.no_grad():
        feats = model.forward_branches(torch.randn(2, 3, 128, 128))
        logits = model(torch.randn(2, 3, 128, 128))
    for f, (dim, _, res) in zip(feats, TINY_BRANCHES[n_branches], strict=True):
        assert f.shape == (2, 1 + (res // 16) ** 2, dim)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("task,family", [("detection", "deit"), ("detection", "internvit"),
                                         ("classification", "deit")])
def test_fresh_piip_equals_independent_branches(task, family):
    model = build_piip(tiny_config(3, task=task, family=family)).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        feats = model.forward_branches(x)
        for branch, f, res in zip(model.branches, feats, model.resolutions, strict=True):
            img = x if res == 128 else F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)
            alone = branch(img)
            if task == "detection":
                alone = alone.transpose(1, 2).reshape(f.shape)
            assert torch.equal(f, alone)


def test_single_branch_has_no_merge_and_rectangular_input_works():
    model = build_piip(tiny_config(1, count=1)).eval()
    assert model.branch_merge.branch_merges is None and model.branch_merge.weights is None
    assert len(model.interactions) == 0
    with torch.no_grad():
        out = build_piip(tiny_config(3)).eval()(torch.randn(1, 3, 128, 96))
    assert out["p4"].shape == (1, 128, 8, 6)


def test_merge_weights_and_no_weight_decay():
    model = build_piip(tiny_config(3))
    assert model.branch_merge.weights.tolist() == [1.0, 1.0, 1.0]
    assert model.no_weight_decay() == {"branches.0.pos_embed", "branches.1.pos_embed", "branches.2.pos_embed"}
    cls = build_piip(tiny_config(2, task="classification"))
    assert "branches.1.cls_token" in cls.no_weight_decay()


def test_parameter_count_of_published_tsb_detection_model():
    with torch.device("meta"):
        model = build_piip(load_config("piip-tsb-1120-896-448"))
    parts = {k: sum(p.numel() for n, p in model.named_parameters() if n.startswith(k))
             for k in ("branches", "interactions", "branch_merge", "pyramid")}
    # README-convention branches (pos-embed at the real grid, §6.4) less the pos-embed beyond the 14x14
    # pretrain grid the official module stores (§6.5)
    assert parts["branches"] == 86_265_600 + 22_802_304 + 6_431_424 - (588 * 768 + 2940 * 384 + 4704 * 192)
    assert parts["interactions"] == 29_722_176
    assert parts["branch_merge"] == 9 * 768 * (768 + 384 + 192) + 3 * 9 * 768 * 768 + 3 * 4 * 768 + 3
    assert parts["pyramid"] == 3 * (4 * 768 * 768 + 768) + 2 * 768


def test_build_errors():
    with pytest.raises(ConfigError, match="no such file"):
        build_piip("does-not-exist.yaml")
    with pytest.raises(TypeError, match="PIIPConfig"):
        build_piip(42)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation inside fvcore
def test_fvcore_trace_counts_attention_matmuls_and_sampling():
    import timm.layers
    from fvcore.nn import FlopCountAnalysis

    prev = timm.layers.use_fused_attn()
    timm.layers.set_fused_attn(False)
    try:
        model = build_piip(tiny_config(3)).eval()
        flops = FlopCountAnalysis(model, torch.randn(1, 3, 128, 128))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        ops = flops.by_operator()
    finally:
        timm.layers.set_fused_attn(prev)
    assert ops["matmul"] > 0 and ops["grid_sampler"] > 0
    assert "aten::scaled_dot_product_attention" not in flops.unsupported_ops()


def test_backbone_computes_only_the_levels_asked_for():
    model = build_piip(tiny_config(2)).eval()
    x = torch.randn(1, 3, 128, 128)
    calls = []
    model.pyramid.fpn1.register_forward_hook(lambda *a: calls.append("p2"))
    with torch.no_grad():
        full = model(x)
        some = model(x, levels=("p3", "p5"))
    assert calls == ["p2"] and list(full) == ["p2", "p3", "p4", "p5"] and list(some) == ["p3", "p5"]
    for k, v in some.items():
        torch.testing.assert_close(v, full[k])
    with pytest.raises(KeyError, match="p6"):
        model(x, levels=("p6",))
