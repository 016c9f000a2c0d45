"""Typed, validated PIIP architecture config with an exact YAML round trip.

Field-level rules (types, ranges, unknown keys) are pydantic's; rules across fields are checked in
`_check_config`, which raises with the key path of the offending value (`branches[1].resolution`).
Every error surfaces as `ConfigError("<key path>: <rule>, got <value>")`.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from piip_search import _yaml
from piip_search._validation import format_error
from piip_search.config._presets import PRESETS, BlockType, default_block_type
from piip_search.errors import ConfigError

PATCH_SIZE = 16  # every PIIP branch runs with patch 16 (pretrained 14x14 kernels are resized)

Direction = Literal["bidirectional", "top-down", "bottom-up", "all-pairs", "none"]
DIRECTIONS: tuple[str, ...] = ("bidirectional", "top-down", "bottom-up", "all-pairs", "none")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class BranchConfig(_Frozen):
    """One ViT branch. Give a preset `model` or explicit `embed_dim`/`depth`/`num_heads`."""

    model: Literal["T", "S", "B", "L", "H", "6B"] | None = None
    # upper bounds: a value past them can only be a typo (the largest PIIP model is 6B: 3200 wide, 48 deep)
    # a preset fills in the ones not given (`_fill_from_preset`), so these are always the branch's real shape
    embed_dim: int = Field(gt=0, le=16384)
    depth: int = Field(gt=0, le=256)
    num_heads: int = Field(gt=0, le=1024)
    mlp_ratio: float = Field(default=4.0, gt=0, le=64, allow_inf_nan=False)
    resolution: int = Field(gt=0, le=8192)
    window_size: int | None = Field(default=None, gt=0, le=1024)  # None = global attention in every block
    global_blocks: tuple[int, ...] = ()  # blocks with global attention although window_size is set
    family: Literal["deit", "internvit"] = "deit"
    # Block-type overrides; None = the default of family and preset (config/_presets.py).
    norm: Literal["ln", "rms"] | None = None
    qkv_bias: bool | None = None
    layer_scale: float | Literal["none"] | None = None  # LayerScale init; "none" = no LayerScale
    qk_norm: bool | None = None
    pretrained: str | None = None  # timm model name or local checkpoint path
    drop_path_rate: float = Field(default=0.0, ge=0.0, lt=1.0)
    # What the published weights were trained at (detection): the position embedding is stored at the grid
    # pretrain_img_size // 16 (plus a cls slot for InternViT-type) and resampled once to the input's grid.
    pretrain_img_size: int = Field(default=224, ge=16)
    pretrain_patch_size: int = Field(default=16, gt=0)  # patch of the published weights (14: MAE-H, 6B, DINOv2)
    checkpoint: str | None = None  # file name of the published weights (mmdet export); loads nothing
    mlp_type: Literal["regular", "fused_mlp"] = "regular"  # fused_mlp: flash-attn FusedMLP, tanh-GELU

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        """A preset `model` gives the dims not written out; without one, all three are needed."""
        if not isinstance(data, dict):
            return data
        model = data.get("model")
        preset = PRESETS.get(model) if isinstance(model, str) else None
        dims = ("embed_dim", "depth", "num_heads")
        if preset is None:
            missing = [n for n in dims if data.get(n) is None]
            if data.get("model") is None and missing:
                raise ValueError(f"give a preset `model` (T/S/B/L/H/6B) or all of embed_dim/depth/num_heads; "
                                 f"missing {missing}")
            return data
        return {**{n: getattr(preset, n) for n in dims}, **{k: v for k, v in data.items() if v is not None}}

    def preset_dims(self) -> dict[str, int]:
        """The dims that differ from the preset's (all of them without a preset): what a file needs to say."""
        preset = PRESETS.get(self.model) if self.model is not None else None
        return {n: getattr(self, n) for n in ("embed_dim", "depth", "num_heads")
                if preset is None or getattr(preset, n) != getattr(self, n)}

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def grid(self) -> int:
        """Side of this branch's token grid (square input)."""
        return self.resolution // PATCH_SIZE

    @property
    def pos_grid(self) -> int:
        """Side of the stored position-embedding grid of a detection branch (pretrain_img_size // 16)."""
        return self.pretrain_img_size // PATCH_SIZE

    @property
    def block_type(self) -> BlockType:
        base = default_block_type(self.family, self.model)
        ls: float | None
        if self.layer_scale is None:
            ls = base.layer_scale
        elif self.layer_scale == "none":
            ls = None
        else:
            ls = float(self.layer_scale)
        return BlockType(
            norm=self.norm or base.norm,
            qkv_bias=base.qkv_bias if self.qkv_bias is None else self.qkv_bias,
            layer_scale=ls,
            qk_norm=base.qk_norm if self.qk_norm is None else self.qk_norm,
        )

    def window_of(self, block: int) -> int | None:
        """Window size used by `block`, or None for global attention."""
        if self.window_size is None or block in self.global_blocks:
            return None
        return self.window_size


class InteractionConfig(_Frozen):
    """Cross-branch interaction units (§2). `count` spreads them evenly; `indexes` gives explicit ranges."""

    count: int | None = Field(default=12, gt=0, le=256)
    indexes: tuple[tuple[tuple[int, int], ...], ...] | None = None  # per branch: [[start, end], ...] inclusive
    direction: Direction = "bidirectional"
    attention: Literal["deformable", "regular"] = "deformable"
    heads: int = Field(default=16, gt=0, le=1024)
    points: int = Field(default=4, gt=0, le=256)
    deform_ratio: float = Field(default=0.5, gt=0, le=1.0, allow_inf_nan=False)
    cffn: bool = True
    cffn_ratio: float = Field(default=0.25, gt=0, le=64, allow_inf_nan=False)
    projection: bool = True
    norm: bool = True
    drop_path_rate: float = Field(default=0.4, ge=0.0, lt=1.0)


class PIIPConfig(_Frozen):
    """A whole PIIP backbone. branches[0] = largest model at the lowest resolution; last = smallest, highest."""

    task: Literal["detection", "classification"] = "detection"
    branches: tuple[BranchConfig, ...] = Field(min_length=1)
    interactions: InteractionConfig = InteractionConfig()
    num_classes: int = Field(default=1000, gt=0, le=1_000_000)  # classification head width
    name: str | None = None
    provenance: dict[str, Any] | None = None  # free-form: written by `export`, ignored by builders

    @model_validator(mode="after")
    def _cross_field_rules(self) -> PIIPConfig:
        _check_config(self)
        return self

    # ---- derived -----------------------------------------------------------------------------
    @cached_property
    def block_ranges(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per branch, the inclusive [start, end] block range run before each interaction."""
        if self.interactions.indexes is not None:
            return self.interactions.indexes
        n = self.interactions.count or 1
        return tuple(even_ranges(b.depth, n) for b in self.branches)

    @property
    def n_interactions(self) -> int:
        return len(self.block_ranges[0])

    @property
    def input_resolution(self) -> int:
        """The network input is the image at the last (highest-resolution) branch's size."""
        return self.branches[-1].resolution

    @property
    def out_dim(self) -> int:
        """Merged feature width = width of branch1."""
        return self.branches[0].embed_dim

    def unit_pairs(self) -> list[tuple[int, int, bool, bool]]:
        """Interaction units as (a, b, a_to_b, b_to_a) with a < b (a = larger model, lower resolution).

        Order = the official processing order: adjacent pairs from the high-resolution end towards branch1;
        for `all-pairs`, the non-adjacent pairs follow in the same spirit (by descending b, then a).
        """
        n = len(self.branches)
        d = self.interactions.direction
        if d == "none" or n < 2:
            return []
        if d == "all-pairs":
            pairs = sorted(((a, b) for a in range(n) for b in range(a + 1, n)), key=lambda p: (-p[1], -p[0]))
            return [(a, b, True, True) for a, b in pairs]
        a_to_b = d in ("bidirectional", "top-down")  # top-down: low-res/large -> high-res neighbour
        b_to_a = d in ("bidirectional", "bottom-up")
        return [(a, a + 1, a_to_b, b_to_a) for a in reversed(range(n - 1))]

    # ---- YAML / dict ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON form as a file would say it: a preset branch lists only the dims it overrides."""
        out = self.model_dump(mode="json", exclude_none=True)
        for b, d in zip(self.branches, out["branches"], strict=True):
            for n in set(("embed_dim", "depth", "num_heads")) - set(b.preset_dims()):
                d.pop(n, None)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> PIIPConfig:
        if not isinstance(data, dict):
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}the config must be a mapping (task/branches/interactions), "
                              f"got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, source)) from None

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> PIIPConfig:
        try:
            data = _yaml.loads(text)
        except _yaml.YAMLInputError as e:
            raise ConfigError(f"{source or 'config'}: {e}") from None
        return cls.from_dict(data, source=source)

    def canonical(self) -> dict[str, Any]:
        """Resolved form that identifies the architecture (names, provenance, weights, drop path excluded).

        Two configs with the same canonical form build the same network shape and cost the same FLOPs.
        """
        branches = []
        for b in self.branches:
            bt = b.block_type
            branches.append({
                "dim": b.embed_dim, "depth": b.depth, "heads": b.num_heads, "mlp_hidden": b.mlp_hidden,
                "resolution": b.resolution, "family": b.family,
                "windows": [b.window_of(i) for i in range(b.depth)],
                "norm": bt.norm, "qkv_bias": bt.qkv_bias, "layer_scale": bt.layer_scale, "qk_norm": bt.qk_norm,
            })
            if self.task == "detection" and b.pretrain_img_size != 224:  # only then: older fingerprints hold
                branches[-1]["pos_grid"] = b.pos_grid
            if b.mlp_type != "regular":
                branches[-1]["mlp_type"] = b.mlp_type
        inter = self.interactions.model_dump(mode="json", exclude={"count", "indexes", "drop_path_rate"})
        inter["ranges"] = [list(map(list, r)) for r in self.block_ranges]
        if not self.unit_pairs():  # no units: block ranges only order the same blocks, the network is the same
            inter = {"direction": "none"}
        out: dict[str, Any] = {"task": self.task, "branches": branches, "interactions": inter}
        if self.task == "classification":
            out["num_classes"] = self.num_classes
        return out

    def fingerprint(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def even_ranges(depth: int, n: int) -> tuple[tuple[int, int], ...]:
    """Split `depth` blocks into `n` contiguous ranges; shorter ranges first, as the official MAE-H
    config does for 32 blocks / 12 interactions ([0,1],[2,3],[4,5],[6,7],[8,10],...)."""
    q, r = divmod(depth, n)
    sizes = [q] * (n - r) + [q + 1] * r
    out, start = [], 0
    for s in sizes:
        out.append((start, start + s - 1))
        start += s
    return tuple(out)


# ---- cross-field validation ------------------------------------------------------------------------
def _fail(path: str, rule: str, value: Any) -> None:
    raise ValueError(f"{path}: {rule}, got {value!r}")


def _check_config(cfg: PIIPConfig) -> None:
    inter = cfg.interactions
    n = len(cfg.branches)
    interacting = n > 1 and inter.direction != "none"
    for i, b in enumerate(cfg.branches):
        p = f"branches[{i}]"
        if b.resolution % PATCH_SIZE:
            _fail(f"{p}.resolution", f"must be a multiple of {PATCH_SIZE}", b.resolution)
        if b.embed_dim % b.num_heads:
            _fail(f"{p}.embed_dim", f"must be divisible by num_heads={b.num_heads}", b.embed_dim)
        if b.block_type.norm == "rms" and b.family != "internvit":
            _fail(f"{p}.norm", "RMSNorm blocks exist only for family 'internvit'", b.norm)
        if cfg.task == "detection" and n > 1 and b.embed_dim % 32:
            _fail(f"{p}.embed_dim", "must be divisible by 32 (GroupNorm(32) in the branch merge)", b.embed_dim)
        for g in b.global_blocks:
            if not 0 <= g < b.depth:
                _fail(f"{p}.global_blocks", f"block indices must lie in [0, {b.depth - 1}]", g)
        if b.global_blocks and b.window_size is None:
            _fail(f"{p}.global_blocks", "only meaningful with window_size set", list(b.global_blocks))
        if cfg.task == "classification" and b.window_size is not None:
            _fail(f"{p}.window_size", "classification branches use global attention (cls token)", b.window_size)
        if interacting and inter.attention == "deformable":
            vdim = int(b.embed_dim * inter.deform_ratio)
            if b.embed_dim % inter.heads or vdim % inter.heads:
                _fail(f"{p}.embed_dim", f"width and width*deform_ratio ({vdim}) must be divisible by "
                      f"interactions.heads={inter.heads}", b.embed_dim)
        if interacting and inter.attention == "regular" and b.embed_dim % inter.heads:
            _fail(f"{p}.embed_dim", f"must be divisible by interactions.heads={inter.heads}", b.embed_dim)
        if i > 0 and b.resolution < cfg.branches[i - 1].resolution:
            _fail(f"{p}.resolution", f"branches go from the lowest resolution (branch 1) to the highest; "
                  f"must be >= branches[{i - 1}].resolution={cfg.branches[i - 1].resolution}", b.resolution)
    if inter.indexes is not None:
        if len(inter.indexes) != n:
            _fail("interactions.indexes", f"needs one list of ranges per branch ({n})", len(inter.indexes))
        counts = {len(r) for r in inter.indexes}
        if len(counts) != 1:
            _fail("interactions.indexes", "every branch needs the same number of interactions",
                  [len(r) for r in inter.indexes])
        for i, (ranges, b) in enumerate(zip(inter.indexes, cfg.branches, strict=True)):
            expected = 0
            for j, (s, e) in enumerate(ranges):
                p = f"interactions.indexes[{i}][{j}]"
                if e < s:
                    _fail(p, "a range [start, end] must be non-empty (start <= end)", [s, e])
                if s != expected:
                    _fail(p, f"ranges must tile the blocks contiguously; expected start {expected}", [s, e])
                expected = e + 1
            if expected != b.depth:
                _fail(f"interactions.indexes[{i}]", f"ranges must cover all {b.depth} blocks of "
                      f"branches[{i}]; they end at block {expected - 1}", [list(r) for r in ranges])
    else:
        count = inter.count or 1
        for i, b in enumerate(cfg.branches):
            if count > b.depth:
                _fail("interactions.count", f"cannot exceed the depth of branches[{i}] ({b.depth})", count)


def inversion_problems(cfg: PIIPConfig) -> list[str]:
    """Where `cfg` breaks the parameter-inverted rule (larger models at lower resolutions); [] if it keeps it."""
    out = []
    for i in range(len(cfg.branches) - 1):
        a, b = cfg.branches[i], cfg.branches[i + 1]
        if b.resolution < a.resolution:
            out.append(f"branches[{i + 1}] runs at {b.resolution} px, below branches[{i}]'s {a.resolution} px")
        if b.embed_dim**2 * b.depth > a.embed_dim**2 * a.depth:  # block params grow with width^2 x depth
            out.append(f"branches[{i + 1}] (width {b.embed_dim}, depth {b.depth}) is larger than branches[{i}] "
                       f"(width {a.embed_dim}, depth {a.depth})")
    return out


def format_validation_error(e: ValidationError, source: str | None = None) -> str:
    """Every problem of a config file, one `<key path>: <rule>, got <value>` line each."""
    return format_error(e, source, schema=PIIPConfig)


def load_config(ref: str | os.PathLike[str]) -> PIIPConfig:
    """Load a config from a YAML path or a shipped model name (`piip-tsb-1120-896-448`)."""
    from piip_search.config._zoo import zoo_path

    path = Path(ref)
    if not path.exists():
        shipped = zoo_path(str(ref))
        if shipped is None:
            from piip_search.config._zoo import list_models

            raise ConfigError(f"{ref}: no such file, and not a shipped model name "
                              f"(see `piip-search models`; e.g. {', '.join(list_models()[:3])})")
        path = shipped
    try:
        text = _yaml.read_text(path)
    except _yaml.YAMLInputError as e:
        raise ConfigError(f"{path}: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return PIIPConfig.from_yaml(text, source=str(ref))
