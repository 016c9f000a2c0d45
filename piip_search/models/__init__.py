"""PIIP networks: ViT branches, deformable/regular interactions, merges, backbone and classifier.

Yang et al., "Parameter-Inverted Image Pyramid Networks", NeurIPS 2024; reference/piip-architecture.md.
"""

from piip_search.models._branch import PIIPAttention, PIIPBlock, PIIPBranch, create_branch
from piip_search.models._deform_attn import MSDeformAttn, deform_attn_core, reference_points
from piip_search.models._interaction import (
    INTERACTION_ATTN,
    ConvFFN,
    CrossAttention,
    Injector,
    InteractionBlock,
    InteractionUnit,
)
from piip_search.models._merge import BranchMerge, ClassificationHead, ShapeSpec, SimpleFeaturePyramid
from piip_search.models._official_ckpt import (
    from_official_state_dict,
    load_official_checkpoint,
    save_official_checkpoint,
    to_official_state_dict,
)
from piip_search.models._piip import PIIPBackbone, PIIPClassifier, build_piip
from piip_search.models._pretrained import convert_vit_state_dict, load_branch_pretrained, read_checkpoint

__all__ = [
    "INTERACTION_ATTN",
    "BranchMerge",
    "ClassificationHead",
    "ConvFFN",
    "CrossAttention",
    "Injector",
    "InteractionBlock",
    "InteractionUnit",
    "MSDeformAttn",
    "PIIPAttention",
    "PIIPBackbone",
    "PIIPBlock",
    "PIIPBranch",
    "PIIPClassifier",
    "ShapeSpec",
    "SimpleFeaturePyramid",
    "build_piip",
    "convert_vit_state_dict",
    "create_branch",
    "deform_attn_core",
    "from_official_state_dict",
    "load_branch_pretrained",
    "load_official_checkpoint",
    "read_checkpoint",
    "reference_points",
    "save_official_checkpoint",
    "to_official_state_dict",
]
