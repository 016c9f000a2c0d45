"""`piip-search` command line: a thin layer over the public API.

Exit codes: 0 success, 2 bad input (a message, no traceback), 1 internal failure.
Each `_cmd_*` function parses nothing itself: it receives argparse's namespace, calls the library and renders.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from piip_search.errors import PiipSearchError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


def print_json(obj: Any) -> None:
    """Stable JSON on stdout (sorted keys, one object)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _console():
    from rich.console import Console

    return Console()


# ---------------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------------
def _warn_not_inverted(cfg: Any) -> None:
    from piip_search.config import inversion_problems

    for problem in inversion_problems(cfg):
        print(f"warning: not parameter-inverted: {problem}", file=sys.stderr)


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
    _warn_not_inverted(cfg)
    rep = count(cfg, convention=args.convention)
    if args.json:
        print_json({**rep.to_dict(), "config": args.config})
    else:
        _console().print(flops_table(rep))
    return EXIT_OK


def _cmd_describe(args: argparse.Namespace) -> int:
    from piip_search.config import load_config
    from piip_search.flops import branches_table, count, flops_table, interactions_lines

    cfg = load_config(args.config)
    _warn_not_inverted(cfg)
    rep = count(cfg, convention=args.convention)
    con = _console()
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
        _warn_not_inverted(load_config(args.config))
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


def _cmd_run(args: argparse.Namespace) -> int:
    from piip_search.search import SearchSpace, default_space_path, pareto_front, run_search

    space_path = args.space or default_space_path()
    space = SearchSpace.from_yaml(space_path)
    name = args.study or space.name
    study, outcomes = run_search(
        space, name=name, storage_url=args.storage, trials_dir=args.trials_dir, n_trials=args.trials,
        total=args.total, sampler=args.sampler, seed=args.seed, evaluator=args.evaluator, enqueue=args.enqueue,
        resume=args.resume, device=args.device, backend=args.backend, max_concurrent=args.max_concurrent,
        trial_hook=_report_hook)
    _print_front(pareto_front(study), title=f"study {name}: {len(outcomes)} trials run now")
    if _all_failed(outcomes):
        return EXIT_INTERNAL
    print(f"next: piip-search pareto {name} | piip-search export {name} --select knee --out {name}-knee.yaml"
          + ("" if args.trials_dir == "trials" else f" --trials-dir {args.trials_dir}"), file=sys.stderr)
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    from piip_search.search import run_worker

    outcomes = run_worker(args.study, storage_url=args.storage, trials_dir=args.trials_dir, n_trials=args.trials,
                          total=args.total, device=args.device, evaluator=args.evaluator, trial_hook=_report_hook)
    print(f"worker finished {len(outcomes)} trials of study {args.study}", file=sys.stderr)
    return EXIT_INTERNAL if _all_failed(outcomes) else EXIT_OK


def _report_hook(study: Any, study_path: Any) -> Any:
    """`trials/<study>/report.html`, rewritten after finished trials while a search runs."""
    from piip_search.report import ReportHook

    return ReportHook(study, study_path / "report.html")


def _all_failed(outcomes: list[Any]) -> bool:
    """Say so when no trial of this run gave a result: a broken evaluator or dataset, not a search."""
    if not outcomes or not all(o.status.startswith("failed:") for o in outcomes):
        return False
    reasons = sorted({f"{o.status}: {str(o.metrics.get('message', ''))[:200]}" for o in outcomes})
    print("piip-search: every trial of this run failed; reasons:\n  " + "\n  ".join(reasons[:5]), file=sys.stderr)
    return True


def _cmd_status(args: argparse.Namespace) -> int:
    from piip_search.search import attach_study, status_summary

    study, _ = attach_study(args.study, storage_url=args.storage, trials_dir=args.trials_dir)
    info = status_summary(study)
    tune_runs = _tune_runs(study, args)
    if tune_runs:
        info["tune"] = tune_runs
    if args.json:
        print_json(info)
        return EXIT_OK
    from rich.table import Table

    t = Table(title=f"study {info['study']}")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("trials", str(info["n_trials"]))
    for k, v in info["by_status"].items():
        t.add_row(f"  {k}", str(v) + ("" if k in ("ok", "running") else "  (not on the front)"))
    t.add_row("evaluator", str(info.get("evaluator") or "-"))
    t.add_row("sampler", str(info.get("sampler") or "-"))
    t.add_row("front size", str(info["front_size"]))
    t.add_row("hypervolume", f"{info['hypervolume']:.6g}")
    t.add_row("reference point", str(info["reference_point"]))
    t.add_row("best AP on front", info.get("best_ap_label") or "-")
    if info["repeats"]["repeat_trials"]:
        rp = info["repeats"]
        t.add_row("repeats (other seeds)", f"{rp['repeat_trials']} trials, {rp['configs_repeated']} configs, "
                  f"AP noise std {rp['ap_noise_std'] or 0:.4f}")
    _console().print(t)
    for run in tune_runs:
        _console().print(_tune_table(run))
    return EXIT_OK


def _tune_runs(study, args: argparse.Namespace) -> list:
    """Tune experiments of a `--backend ray-tune` study (none without Ray installed or such a run)."""
    if not any(k.startswith("tune:") for k in study.user_attrs):
        return []
    from piip_search.search._storage import study_dir
    from piip_search.search._tune import tune_status

    return tune_status(study, study_dir(args.trials_dir, args.study))


def _tune_table(run: dict):
    from rich.table import Table

    t = Table(title=f"Tune experiment {run['experiment']}: {run['suggested']}/{run['target']} trials suggested",
              caption=f"experiment folder {run['path']}")
    for col in ("trial", "Tune trial", "state", "failures"):
        t.add_column(col)
    t.add_column("log folder", overflow="fold")
    for r in run["trials"]:
        t.add_row(str(r["trial"]), r["tune_trial"], r["state"], str(r["failures"]), r["log_dir"])
    return t


def _cmd_pareto(args: argparse.Namespace) -> int:
    from piip_search.search import attach_study, pareto_front

    study, _ = attach_study(args.study, storage_url=args.storage, trials_dir=args.trials_dir)
    front = pareto_front(study)
    if args.json:
        d = front.to_dict()
        print_json({"study": args.study, "hypervolume": d["hypervolume"], "reference_point": d["reference_point"],
                    "objectives": d["objectives"], "knee": d["knee"], "front": d["front"]})
        return EXIT_OK
    _print_front(front, title=f"Pareto front of study {args.study}")
    return EXIT_OK


def _print_front(front, *, title: str) -> None:
    from rich.table import Table

    t = Table(title=title, caption=f"hypervolume {front.hypervolume:.6g} (reference {front.reference_point}); "
                                   f"FLOPs are multiply-adds; {front.n_trials} trials give {front.n_candidates} valid "
                                   f"full-fidelity points, one per config (`status` lists the others)")
    for col in ("trial", "GFLOPs", "params (M)", "AP", "knee", "branches (model@resolution)", "interactions"):
        t.add_column(col, justify="right" if col in ("trial", "GFLOPs", "params (M)", "AP") else "left")
    from piip_search.search import ap_label, branches_label, interactions_label

    for r in front.points:  # AP: the mean ± std over the config's seeds when it was evaluated more than once
        t.add_row(str(r.number), f"{r.gflops:.4f}", f"{(r.params or 0) / 1e6:.3f}", ap_label(r),
                  "*" if front.knee is r else "", branches_label(r.config), interactions_label(r.config))
    if not front.points:
        t.add_row("-", "-", "-", "-", "", "no feasible trial at full fidelity yet", "")
    _console().print(t)


def _cmd_export(args: argparse.Namespace) -> int:
    from piip_search.export import export_study
    from piip_search.search import attach_study

    study, _ = attach_study(args.study, storage_url=args.storage, trials_dir=args.trials_dir)
    paths = export_study(study, select_spec=args.select, out=args.out, fmt=args.format, force=args.force)
    for p in paths:
        print(p)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from piip_search.report import render_compare, report_data, set_study_metric_names, write_pngs
    from piip_search.report.render import render_report
    from piip_search.search import attach_study

    names = [args.study, *args.others]
    data = []
    for name in names:
        study, _ = attach_study(name, storage_url=args.storage, trials_dir=args.trials_dir)
        set_study_metric_names(study)
        data.append(report_data(study, importances=len(names) == 1))
    if len(data) > 1:
        print(render_compare(data, args.out or "compare.html"))
    else:
        print(render_report(data[0], args.out or str(Path(args.trials_dir) / args.study / "report.html")))
    if args.png:
        for d in data:
            for p in write_pngs(d, Path(args.png) / d.study if len(data) > 1 else args.png):
                print(p)
    return EXIT_OK


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from piip_search.search import attach_study

    if not 1 <= args.port <= 65535:
        raise PiipSearchError(f"--port: must be between 1 and 65535, got {args.port}")
    study, _ = attach_study(args.study, storage_url=args.storage, trials_dir=args.trials_dir)
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise PiipSearchError("dashboard needs optuna-dashboard: pip install 'piip-search[dashboard]'") from None
    from piip_search.report import attach_report_plots, set_study_metric_names

    set_study_metric_names(study)
    attach_report_plots(study)  # a snapshot; `report` or a restart refreshes it
    print(f"optuna-dashboard for study {args.study} on http://{args.host}:{args.port}/ (Ctrl-C to stop)",
          file=sys.stderr)
    run_server(study._storage, host=args.host, port=args.port)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------------
def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:50]!r}") from None
    if not 0 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000000, got {n}")
    return n


def _count_options(sp: argparse.ArgumentParser) -> None:
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--trials", type=_count, default=None, help="run this many more trials")
    group.add_argument("--total", type=_count, default=None,
                       help="run until the study holds this many trials (all workers together)")


def build_parser() -> argparse.ArgumentParser:
    from piip_search.search import BACKENDS, SAMPLERS

    p = argparse.ArgumentParser(
        prog="piip-search",
        description="Neural-architecture search for PIIP networks: FLOPs (multiply-adds) against detection AP.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    sp = cmd("models", _cmd_models, "list the shipped configs (published PIIP models, tiny examples)")
    sp.add_argument("--json", action="store_true", help="print a JSON list")

    sp = cmd("flops", _cmd_flops, "params and FLOPs (multiply-adds) of a config, with a per-part breakdown")
    sp.add_argument("config", metavar="CONFIG", help="YAML path or shipped model name (see `models`)")
    sp.add_argument("--convention", choices=["paper", "model"], default="paper",
                    help="paper: the counting behind the published PIIP numbers; model: the network this tool "
                         "builds (default: paper)")
    sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = cmd("describe", _cmd_describe, "branches, interactions and a params/FLOPs table of a config")
    sp.add_argument("config", metavar="CONFIG", help="YAML path or shipped model name")
    sp.add_argument("--convention", choices=["paper", "model"], default="model")

    sp = cmd("make-data", _cmd_make_data, "write a COCO-format dataset")
    sp.add_argument("kind", choices=["synthetic"], help="dataset kind")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--images", type=int, default=None, help="number of training images")
    sp.add_argument("--size", type=int, default=None, help="image side in pixels")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--min-object", type=float, default=None,
                    help="smallest object diameter in pixels (default: size / 10)")

    sp = cmd("train", _cmd_train, "one proxy training run of a config; prints AP")
    sp.add_argument("config", metavar="CONFIG", help="YAML path or shipped model name")
    sp.add_argument("--data", default=None, help="COCO folder (train/, val/, annotations/); default: synthetic")
    sp.add_argument("--iters", type=int, default=None, help="training iterations")
    sp.add_argument("--detector", default=None, help="faster_rcnn | mask_rcnn | retinanet | fcos")
    sp.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    sp.add_argument("--json", action="store_true", help="print the result object as JSON")

    sp = cmd("run", _cmd_run, "run a search (default: search_spaces/default.yaml on synthetic data)")
    sp.add_argument("--space", default=None, help="search-space YAML (default: the shipped default.yaml)")
    sp.add_argument("--study", default=None, help="study name (default: the space's name)")
    sp.add_argument("--storage", default=None,
                    help="Optuna storage: a journal file path or a database URL (default: trials/<study>/journal.log)")
    _count_options(sp)
    sp.add_argument("--sampler", default=None, choices=list(SAMPLERS))
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--backend", default="optuna", choices=list(BACKENDS),
                    help="optuna: local loop; ray: Ray tasks; ray-tune: a Ray Tune experiment (see README)")
    sp.add_argument("--max-concurrent", type=int, default=None,
                    help="ray/ray-tune: trials at once (default: what the cluster's CPUs/GPUs allow)")
    sp.add_argument("--evaluator", default=None, help="builtin:proxy | builtin:flops-only | package.module:function")
    sp.add_argument("--enqueue", action="append", default=[], metavar="CONFIG",
                    help="seed the study with a known config (repeatable)")
    sp.add_argument("--resume", action="store_true", help="continue an existing study")
    sp.add_argument("--trials-dir", default="trials", help="home of studies (default: trials/)")
    sp.add_argument("--device", default=None)

    sp = cmd("worker", _cmd_worker, "join a running study as one more worker (same space and evaluator)")
    sp.add_argument("--storage", required=True, help="the study's journal file path or database URL")
    sp.add_argument("--study", required=True)
    _count_options(sp)
    sp.add_argument("--trials-dir", default="trials")
    sp.add_argument("--device", default=None)
    sp.add_argument("--evaluator", default=None, help="must be the study's own (default: the study's)")

    for name, fn, help in (("status", _cmd_status, "progress of a study"),
                           ("pareto", _cmd_pareto, "the Pareto front of FLOPs against AP")):
        sp = cmd(name, fn, help)
        sp.add_argument("study", metavar="STUDY")
        sp.add_argument("--storage", default=None)
        sp.add_argument("--trials-dir", default="trials")
        sp.add_argument("--json", action="store_true")

    sp = cmd("export", _cmd_export, "write chosen configs of a study")
    sp.add_argument("study", metavar="STUDY")
    sp.add_argument("--select", default="knee", help="knee | max-ap | min-flops | budget:<gflops> | all")
    sp.add_argument("--out", required=True, help="output file (one config) or folder")
    from piip_search.export import EXPORTERS

    sp.add_argument("--format", default="yaml", choices=list(EXPORTERS))
    sp.add_argument("--force", action="store_true", help="overwrite existing files")
    sp.add_argument("--storage", default=None)
    sp.add_argument("--trials-dir", default="trials")

    sp = cmd("report", _cmd_report, "write a self-contained HTML report of a study (several: a comparison)")
    sp.add_argument("study", metavar="STUDY")
    sp.add_argument("others", metavar="STUDY", nargs="*", help="more studies: overlay their fronts and hypervolume")
    sp.add_argument("--out", default=None, help="HTML file (default: trials/<study>/report.html, compare.html)")
    sp.add_argument("--png", default=None, metavar="DIR", help="also write front.png and hypervolume.png there")
    sp.add_argument("--storage", default=None)
    sp.add_argument("--trials-dir", default="trials")

    sp = cmd("dashboard", _cmd_dashboard, "serve optuna-dashboard for a study on 127.0.0.1")
    sp.add_argument("study", metavar="STUDY")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--storage", default=None)
    sp.add_argument("--trials-dir", default="trials")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run", "worker"):  # our own progress says what optuna's INFO lines would
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except PiipSearchError as e:
        print(f"piip-search {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        print(f"piip-search {args.command}: interrupted ({e or 'SIGINT'}); the running trial is queued again and "
              f"everything recorded so far is kept (continue with --resume)", file=sys.stderr)
        return 130
    except OSError as e:  # a path the user gave: unreadable, not writable, a file where a folder should be
        where = f"{e.filename}: " if e.filename else ""
        print(f"piip-search {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # an internal failure: say so, keep the traceback short but available
        import traceback

        traceback.print_exc()
        print(f"piip-search {args.command}: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
