"""Commands on one config or dataset: `models`, `flops`, `describe`, `make-data`, `train`."""

from __future__ import annotations

import argparse
import sys

from piip_search.cli._output import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, console, print_json, warn_not_inverted
from piip_search.errors import PiipSearchError


def _cmd_models(args: argparse.Namespace) -> int:
    from piip_search.config import list_models

    names = list_models()
    if args.json:
        print_json(names)
    else:
        for n in names:
            print(n)
    return EXIT_OK


def _cmd_flops(args: argparse.Namespace) -> int:
    from piip_search.config import load_config
    from piip_search.flops import count, flops_table

    cfg = load_config(args.config)  # a bad CONFIG raises ConfigError -> exit 2
    warn_not_inverted(cfg)
    rep = count(cfg, convention=args.convention)
    if args.json:
        print_json({**rep.to_dict(), "config": args.config})
    else:
        console().print(flops_table(rep))
    return EXIT_OK


def _cmd_describe(args: argparse.Namespace) -> int:
    from piip_search.config import load_config
    from piip_search.flops import branches_table, count, flops_table, interactions_lines

    cfg = load_config(args.config)
    warn_not_inverted(cfg)
    rep = count(cfg, convention=args.convention)
    con = console()
    con.print(branches_table(cfg))
    for line in interactions_lines(cfg):
        con.print(line, highlight=False)
    con.print(flops_table(rep))
    return EXIT_OK


def _cmd_make_data(args: argparse.Namespace) -> int:
    from piip_search.data import (
        DEFAULT_IMAGES,
        DEFAULT_SIZE,
        SYNTHETIC_CLASSES,
        coco_layout,
        load_coco_json,
        make_synthetic_coco,
    )

    images = DEFAULT_IMAGES if args.images is None else args.images
    size = DEFAULT_SIZE if args.size is None else args.size
    root = make_synthetic_coco(args.out, images=images, size=size, seed=args.seed, min_object=args.min_object)
    layout = coco_layout(root)
    print(f"wrote a synthetic COCO dataset to {root}")
    for split, img_dir, ann in (("train", layout.train_images, layout.train_json),
                                ("val", layout.val_images, layout.val_json)):
        coco = load_coco_json(ann)
        print(f"  {split:5s} {len(coco['images']):5d} images  {len(coco['annotations']):6d} objects  "
              f"{img_dir}/  {ann}")
    classes = ", ".join(SYNTHETIC_CLASSES)
    print(f"  {size}x{size} px, seed {args.seed}, {len(SYNTHETIC_CLASSES)} classes: {classes}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from piip_search.proxy import ProxySettings, train_proxy

    given = (("iters", args.iters), ("detector", args.detector), ("device", args.device))
    overrides = {k: v for k, v in given if v is not None}
    settings = ProxySettings(**overrides)  # a bad value raises ConfigError: exit 2 with its message
    from piip_search.config import load_config

    try:
        warn_not_inverted(load_config(args.config))
    except PiipSearchError:
        pass  # train_proxy reports a bad config with its own status
    result = train_proxy(args.config, args.data, settings, progress=True)  # the bar goes to stderr
    if args.json:
        print_json(result.to_dict())
    elif result.ok:
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics().items())
        print(f"{metrics}\niters {result.iters} ({result.stop_reason})  wall {result.wall_s:.1f} s  "
              f"{result.images_per_s or 0:.1f} img/s  peak memory {result.peak_mem_mb or 0:.0f} MB  "
              f"input {result.input_side}px  {result.detector or 'classifier'} on {result.device}")
    if not result.ok:
        print(f"piip-search train: {result.status}: {result.message}", file=sys.stderr)
    if result.ok:
        return EXIT_OK
    return EXIT_BAD_INPUT if result.status in ("invalid_config", "data_error") else EXIT_INTERNAL
