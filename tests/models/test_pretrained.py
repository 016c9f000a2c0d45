"""Pretrained loading from checkpoints written here: kernel resize, pos-embed resampling, keys, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from piip_search.config import PIIPConfig
from piip_search.errors import ConfigError
from piip_search.models import build_piip


def _timm_vit(patch_size=8, img_size=56, dim=64, **kw):
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=dim, depth=2, num_heads=2,
                             qkv_bias=True, init_values=1.0, num_classes=10, **kw)


def _cfg(path, *, family="deit", task="detection", dim=64):
    branch = {"embed_dim": dim, "depth": 2, "num_heads": 2, "resolution": 64, "family": family,
              "pretrained": str(path)}
    return PIIPConfig.from_dict({"task": task, "branches": [branch],
                                 "interactions": {"count": 1, "direction": "none"}})


def _expected_pos(pos, n_prefix, old, new):
    grid = pos[:, n_prefix:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)


@pytest.mark.parametrize("patch_size", [8, 14])
def test_timm_checkpoint_is_resized_and_loaded(tmp_path, patch_size):
    vit = _timm_vit(patch_size=patch_size)
    with torch.no_grad():
        for blk in vit.blocks:
            blk.ls1.gamma.normal_()
    sd = vit.state_dict()
    path = tmp_path / "vit.pth"
    torch.save({"model": sd, "epoch": 3}, path)
    branch = build_piip(_cfg(path)).branches[0]
    bsd = branch.state_dict()

    want_kernel = F.interpolate(sd["patch_embed.proj.weight"], size=(16, 16), mode="bicubic",
                                align_corners=False)
    assert bsd["patch_embed.proj.weight"].shape == (64, 3, 16, 16)
    torch.testing.assert_close(bsd["patch_embed.proj.weight"], want_kernel)
    old = 56 // patch_size
    # detection: stored at the pretrain grid 224 // 16 = 14 (resampled to the input's grid in forward)
    torch.testing.assert_close(bsd["pos_embed"], _expected_pos(sd["pos_embed"], 1, old, 14))
    block_keys = [k for k in bsd if k.startswith("blocks.")]
    assert len(block_keys) == 2 * 14  # norm1 (2), qkv (2), proj (2), ls1, norm2 (2), fc1 (2), fc2 (2), ls2
    for k in block_keys:
        assert torch.equal(bsd[k], sd[k]), k


def test_deit_key_names_safetensors_and_internvit_cls_slot(tmp_path):
    sd = _timm_vit().state_dict()
    deit = {k.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2"): v for k, v in sd.items()}
    deit["blocks.0.gamma_1"] = torch.full((64,), 0.5)
    path = tmp_path / "deit3.safetensors"
    save_file({k: v.contiguous() for k, v in deit.items()}, str(path))
    branch = build_piip(_cfg(path, family="internvit")).branches[0]
    assert branch.blocks[0].ls1.gamma.detach().eq(0.5).all()
    assert branch.pos_embed.shape == (1, 197, 64)
    assert torch.equal(branch.pos_embed[:, :1].detach(), sd["pos_embed"][:, :1])


def test_deit1_without_gammas_keeps_init_and_classifier_takes_cls_token(tmp_path):
    sd = {k: v for k, v in _timm_vit().state_dict().items() if ".ls" not in k}
    path = tmp_path / "deit1.pth"
    torch.save(sd, path)
    model = build_piip(_cfg(path, task="classification"))
    assert all(b.ls1.gamma.detach().eq(1.0).all() for b in model.branches[0].blocks)
    assert torch.equal(model.branches[0].cls_token.detach(), sd["cls_token"])


def test_pretrained_flag_off_skips_loading(tmp_path):
    model = build_piip(_cfg(tmp_path / "missing.pth"), pretrained=False)
    assert model.branches[0].patch_embed.proj.weight.shape[-1] == 16


def test_missing_file_gives_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"branches\[0\]\.pretrained: no such checkpoint file"):
        build_piip(_cfg(tmp_path / "missing.pth"))


def test_unknown_name_and_shape_mismatch_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="neither an existing checkpoint file nor a timm model name"):
        build_piip(_cfg("not_a_model_xyz"))
    path = tmp_path / "wide.pth"
    torch.save(_timm_vit(dim=96).state_dict(), path)
    with pytest.raises(ConfigError, match=r"does not fit .*blocks\.0\.norm1\.weight: expected \(64,\)"):
        build_piip(_cfg(path))
