"""Official-layout detection checkpoints: load a released PIIP backbone into `PIIPBackbone`, save ours back.

The official mmdet backbone names (under `backbone.` in a detector checkpoint; K = branch, 1-based):
`branch{K}.patch_embed.proj.*`, `branch{K}.pos_embed` (pretrain grid, cls slot for InternViT-type),
`branch{K}.blocks.{j}.{norm1,norm2,attn.qkv,attn.proj,mlp.fc1,mlp.fc2}.*`, `gamma_1`/`gamma_2` (DeiT-type)
or `ls1.gamma`/`ls2.gamma` and `attn.q_norm`/`attn.k_norm` (InternViT-type),
`interactions.{i}.interaction_units_{ab}.{branch1to2,branch2to1}_{proj,injector}.*` for the adjacent pair
(a, b), `merge_branch{K}.{0,1,3,4}.*`, scalar `w{K}`, `fpn1.{0,1,3}.*`, `fpn2.0.*`. Injector inner names are
ours already. The renaming is a fixed string table; no library knows this layout.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from piip_search.errors import ConfigError

__all__ = ["from_official_state_dict", "load_official_checkpoint", "save_official_checkpoint",
           "to_official_state_dict"]

_DIRECTIONS = (("proj_a_to_b", "branch1to2_proj"), ("injector_a_to_b", "branch1to2_injector"),
               ("proj_b_to_a", "branch2to1_proj"), ("injector_b_to_a", "branch2to1_injector"))


def _check_layout(model) -> None:
    from piip_search.models._piip import PIIPBackbone

    if not isinstance(model, PIIPBackbone):
        raise ConfigError("official checkpoint layout: only detection backbones (PIIPBackbone) have one")
    pairs = model.cfg.unit_pairs()
    if any(b != a + 1 or not (ab and ba) for a, b, ab, ba in pairs) or len(model.branches) < 2:
        raise ConfigError("official checkpoint layout: the official code has 2-4 branches with bidirectional "
                          "units between adjacent branches only")


def _official_name(model, name: str) -> str:
    """Our parameter name -> the official one."""
    m = re.match(r"branches\.(\d+)\.(.*)", name)
    if m:
        k, rest = int(m.group(1)), m.group(2)
        if model.cfg.branches[k].family == "deit":
            rest = rest.replace(".ls1.gamma", ".gamma_1").replace(".ls2.gamma", ".gamma_2")
        return f"branch{k + 1}.{rest}"
    m = re.match(r"interactions\.(\d+)\.units\.(\d+)\.(\w+)\.(.*)", name)
    if m:
        i, u, part, rest = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        a, b = model.interactions[i].pairs[u]
        return f"interactions.{i}.interaction_units_{a + 1}{b + 1}.{dict(_DIRECTIONS)[part]}.{rest}"
    m = re.match(r"branch_merge\.branch_merges\.(\d+)\.(.*)", name)
    if m:
        return f"merge_branch{int(m.group(1)) + 1}.{m.group(2)}"
    m = re.match(r"pyramid\.fpn([12])\.(.*)", name)
    if m:
        return f"fpn1.{m.group(2)}" if m.group(1) == "1" else f"fpn2.0.{m.group(2)}"
    raise KeyError(name)


def to_official_state_dict(model, *, prefix: str = "backbone.") -> dict[str, torch.Tensor]:
    """Our backbone's state in the official layout (merge weights as scalars `w{K}`)."""
    _check_layout(model)
    out: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        if name == "branch_merge.weights":
            out.update({f"{prefix}w{k + 1}": t[k].clone() for k in range(t.numel())})
        else:
            out[prefix + _official_name(model, name)] = t
    return out


def from_official_state_dict(model, sd: dict[str, torch.Tensor], *, prefix: str = "backbone.") -> None:
    """Load an official-layout state dict (keys under `prefix`; neck and heads ignored) into `model`.

    Raises:
        ConfigError: a backbone tensor is missing, has the wrong shape, or the checkpoint has backbone keys
            this model has no place for.
    """
    _check_layout(model)
    backbone = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    state, problems, used = {}, [], set()
    for name, t in model.state_dict().items():
        if name == "branch_merge.weights":
            keys = [f"w{k + 1}" for k in range(t.numel())]
            found = [backbone.get(k) for k in keys]
            if any(v is None for v in found):
                problems.append(f"missing {', '.join(k for k, v in zip(keys, found, strict=True) if v is None)}")
                continue
            state[name] = torch.stack([v.reshape(()) for v in found]).to(t.dtype)  # type: ignore[union-attr]
            used.update(keys)
            continue
        key = _official_name(model, name)
        v = backbone.get(key)
        if v is None:
            problems.append(f"missing {key}")
        elif v.shape != t.shape:
            problems.append(f"{key}: expected {tuple(t.shape)}, found {tuple(v.shape)}")
        else:
            state[name] = v.to(t.dtype)
            used.add(key)
    extra = sorted(set(backbone) - used)
    if extra:
        problems.append(f"{len(extra)} backbone keys without a place in this model: {', '.join(extra[:5])}")
    if problems:
        raise ConfigError("official checkpoint does not fit the backbone: " + "; ".join(problems[:8])
                          + (" ..." if len(problems) > 8 else ""))
    model.load_state_dict(state, strict=True)


def load_official_checkpoint(model, path: str | Path) -> None:
    """Load a released official PIIP detection checkpoint (mmdet `state_dict` under `backbone.`)."""
    from piip_search.models._pretrained import _read_file

    ckpt = _read_file(Path(path), where=str(path))
    sd = ckpt.get("state_dict", ckpt.get("module", ckpt)) if isinstance(ckpt, dict) else ckpt
    from_official_state_dict(model, sd)


def save_official_checkpoint(model, path: str | Path) -> None:
    """Write `{"state_dict": {"backbone.<official name>": tensor}}`, the layout mmdet checkpoints use."""
    torch.save({"state_dict": to_official_state_dict(model)}, path)
