"""Loading pretrained ViT weights into a PIIP branch (piip-architecture.md §1.5, §1.6).

Sources: a local checkpoint (`.pth`/`.pt`/`.bin`/`.safetensors`; the state dict may sit under "model",
"state_dict" or "module"; a "module."/"backbone." prefix is stripped) or a timm model name (downloaded through
`timm.create_model(name, pretrained=True)`). Key names of timm ViTs, DeiT / DeiT III (`gamma_1`/`gamma_2`),
MAE / BEiT-style split q/v biases, DINOv2 and the official InternViT module are mapped onto the branch.

At load time (§1.5): a patch kernel that is not 16x16 is resized by bicubic interpolation of the kernel;
the checkpoint's position grid (prefix tokens detected from its length) is resampled bicubically to the
branch's stored grid (the pretrain grid for detection); an InternViT-type branch takes the checkpoint's cls
slot into its unused slot 0. Missing LayerScale gammas (DeiT-I) keep their init; the head, final norm,
dist/mask/register tokens are ignored. Checkpoint blocks beyond the branch depth are ignored with a warning.
Every other branch parameter must be present with the right shape, or a `ConfigError` names the parameter,
the expected and the found shape.

Deviation: checkpoints are read with `torch.load(weights_only=True)`; a pickle that needs arbitrary objects is
refused with a hint to re-save its state dict.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed

from piip_search.config import PATCH_SIZE
from piip_search.errors import ConfigError

if TYPE_CHECKING:
    from piip_search.models._branch import PIIPBranch

__all__ = ["convert_vit_state_dict", "load_branch_pretrained", "read_checkpoint"]

_logger = logging.getLogger(__name__)

_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".npz")
_RENAMES = ((re.compile(r"\.gamma_1$"), ".ls1.gamma"), (re.compile(r"\.gamma_2$"), ".ls2.gamma"))
_OPTIONAL = re.compile(r"^(cls_token|blocks\.\d+\.ls[12]\.gamma)$")


def read_checkpoint(source: str, *, where: str = "pretrained") -> dict[str, torch.Tensor]:
    """State dict of a checkpoint file or of a timm model name (pretrained weights)."""
    path = Path(source).expanduser()
    if path.is_file():
        return _unwrap(_read_file(path, where))
    if path.suffix in _CHECKPOINT_SUFFIXES or "/" in source or "\\" in source:
        raise ConfigError(f"{where}: no such checkpoint file, got {source!r}")
    import timm

    if not timm.is_model(source.split(".")[0]):
        raise ConfigError(f"{where}: neither an existing checkpoint file nor a timm model name, "
                          f"got {source!r}")
    try:
        model = timm.create_model(source, pretrained=True)
    except Exception as e:  # network, hub or cache failures all mean: these weights are not available
        raise ConfigError(f"{where}: cannot load pretrained timm model {source!r}: {e}") from e
    return model.state_dict()


def _read_file(path: Path, where: str) -> dict:
    if path.suffix == ".npz":
        raise ConfigError(f"{where}: .npz (JAX) checkpoints are not read directly; give the timm model name "
                          f"instead, got {str(path)!r}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise ConfigError(f"{where}: cannot read safetensors file {str(path)!r}: {e}") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{where}: cannot read checkpoint {str(path)!r} with torch.load(weights_only=True) "
                          f"({type(e).__name__}); if it holds more than tensors, re-save its state dict with "
                          f"torch.save(ckpt['model'], path)") from e


def _unwrap(ckpt: dict) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "module"):
        if isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    sd = {(k[len("module."):] if k.startswith("module.") else k): v
          for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    if not any(k.startswith("blocks.") for k in sd) and any(k.startswith("backbone.blocks.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    return sd


def _num_prefix_tokens(n_tokens: int) -> int:
    for n in range(0, 9):  # cls, dist and register tokens precede the grid
        g = math.isqrt(n_tokens - n)
        if g * g == n_tokens - n:
            return n
    raise ValueError(f"pos_embed length {n_tokens} is not a square grid plus up to 8 prefix tokens")


def convert_vit_state_dict(sd: dict[str, torch.Tensor], branch: PIIPBranch, *,
                           where: str = "pretrained") -> dict[str, torch.Tensor]:
    """Map a ViT state dict onto `branch`'s parameter names and shapes (kernel and pos-embed resized)."""
    target = branch.state_dict()
    depth = len(branch.blocks)
    out: dict[str, torch.Tensor] = {}
    extra_blocks: set[int] = set()
    for k, v in sd.items():
        for pattern, repl in _RENAMES:
            k = pattern.sub(repl, k)
        m = re.match(r"blocks\.(\d+)\.", k)
        if m and int(m.group(1)) >= depth:
            extra_blocks.add(int(m.group(1)))
            continue
        if k == "patch_embed.proj.weight" and v.shape[-2:] != (PATCH_SIZE, PATCH_SIZE):
            v = F.interpolate(v.float(), size=(PATCH_SIZE, PATCH_SIZE), mode="bicubic", align_corners=False)
        elif k == "pos_embed":
            v = _convert_pos_embed(v, branch, where)
        elif k == "cls_token" and branch.cls_token is None:
            continue
        elif m and k.endswith(".attn.q_bias"):  # MAE/BEiT-style split bias: qkv bias = (q, 0, v)
            v_bias = sd.get(k.replace(".attn.q_bias", ".attn.v_bias"))
            if v_bias is None:
                continue
            k, v = k.replace(".attn.q_bias", ".attn.qkv.bias"), torch.cat([v, torch.zeros_like(v), v_bias])
        if k in target:
            out[k] = v
    if extra_blocks:
        _logger.warning("%s: checkpoint blocks %d..%d ignored (the branch has %d blocks)", where,
                        min(extra_blocks), max(extra_blocks), depth)
    problems = [f"{k}: expected {tuple(t.shape)}, found {tuple(out[k].shape)}"
                for k, t in target.items() if k in out and out[k].shape != t.shape]
    missing = [k for k in target if k not in out and not _OPTIONAL.match(k)]
    if missing:
        problems.append(f"missing {len(missing)} parameters: {', '.join(missing[:5])}"
                        + (", ..." if len(missing) > 5 else ""))
    if problems:
        raise ConfigError(f"{where}: checkpoint does not fit the branch (dim {branch.dim}, depth {depth}): "
                          + "; ".join(problems))
    return {k: v.to(target[k].dtype) for k, v in out.items()}


def _convert_pos_embed(v: torch.Tensor, branch: PIIPBranch, where: str) -> torch.Tensor:
    if v.ndim == 2:
        v = v[None]
    try:
        n_prefix = _num_prefix_tokens(v.shape[1])
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    old = math.isqrt(v.shape[1] - n_prefix)
    grid = resample_abs_pos_embed(v[:, n_prefix:].float(), new_size=[branch.pos_grid, branch.pos_grid],
                                  old_size=[old, old], num_prefix_tokens=0, interpolation="bicubic",
                                  antialias=False)
    if branch.num_pos_prefix:
        slot = v[:, :1].float() if n_prefix else branch.pos_embed[:, :1].detach().float()
        grid = torch.cat([slot, grid], dim=1)
    return grid


def load_branch_pretrained(branch: PIIPBranch, source: str, *, where: str = "pretrained") -> None:
    """Load a timm model name or checkpoint file into `branch` (see the module docstring)."""
    state = convert_vit_state_dict(read_checkpoint(source, where=where), branch, where=where)
    branch.load_state_dict(state, strict=False)
    _logger.info("%s: loaded %d tensors from %s", where, len(state), source)
