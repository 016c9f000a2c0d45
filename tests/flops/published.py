"""Every #Param / #FLOPs row published by the official PIIP repository (OpenGVLab/PIIP).

Sources: the top-level README.md (COCO detection table, ImageNet-1K table) and mmdetection/README.md
("Faster Training" table: the AugReg SBL and H6B rows with and without the speedup settings).
Detection numbers are backbone-only; FLOPs are multiply-adds (mmcv's convention), in G = 1e9.
Columns: shipped config name, README #Param (M), README #FLOPs (G), decimals the README prints for FLOPs.
"""

from __future__ import annotations

from typing import NamedTuple


class Row(NamedTuple):
    config: str
    params_m: float
    flops_g: float
    flops_decimals: int = 0
    source: str = "README.md"


PUBLISHED: tuple[Row, ...] = (
    # README.md, COCO object detection and instance segmentation (Mask R-CNN 1x)
    Row("vit-b-1024", 90, 463),
    Row("piip-tsb-1120-896-448", 146, 243),
    Row("piip-tsb-1568-896-448", 147, 287),
    Row("piip-tsb-1568-1120-672", 149, 453),
    Row("vit-l-1024", 308, 1542),
    Row("piip-sbl-1120-672-448", 493, 727),
    Row("piip-sbl-1344-896-448", 495, 1002),
    Row("piip-sbl-1568-896-672", 497, 1464),
    Row("piip-tsbl-1344-896-672-448", 506, 755),
    Row("piip-tsbl-1568-1120-672-448", 507, 861),
    Row("piip-tsbl-1792-1568-1120-448", 512, 1535),
    Row("internvit-6b-1024", 5919, 29323),
    Row("piip-h6b-1024-512", 6872, 11080),
    # mmdetection/README.md, "Faster Training" (w/o = standard interactions, w/ = speedup settings)
    Row("piip-sbl-augreg-1568-1120-672", 498, 1874, source="mmdetection/README.md"),
    Row("piip-sbl-augreg-speedup-1568-1120-672", 470, 1741, source="mmdetection/README.md"),
    Row("internvit-6b-1024", 5919, 29323, source="mmdetection/README.md"),
    Row("piip-h6b-1024-512", 6872, 11080, source="mmdetection/README.md"),
    Row("piip-h6b-speedup-1024-512", 6752, 10692, source="mmdetection/README.md"),
    # README.md, ImageNet-1K image classification
    Row("cls-piip-tsb-368-192-128", 144, 17.4, 1),
    Row("cls-piip-sbl-augreg-320-160-96", 489, 39.0, 1),
    Row("cls-piip-sbl-augreg-384-192-128", 489, 61.2, 1),
)

#: piip-architecture.md §6.4, the worked check for PIIP-TSB 1120/896/448, as printed there
#: (params in M, FLOPs in G; strings keep the printed precision).
WORKED_TSB_1120 = {
    "params": {"branch1": "86.266", "branch2": "22.802", "branch3": "6.431", "interactions": "29.722",
               "merge": "0.450", "head": "0.770", "total": "146.44"},
    "flops": {"branch1": "67.081", "branch2": "67.573", "branch3": "26.780", "branch1.attention": "2.832",
              "branch2.attention": "5.665", "branch3.attention": "4.426", "interactions": "66.155",
              "interactions.deform": "0.948", "merge": "1.665", "head": "0.008", "total": "243.13"},
}
