"""Commands on a study: `run`, `worker`, `status`, `pareto`, `export`, `report`, `dashboard`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from piip_search.cli._output import EXIT_INTERNAL, EXIT_OK, console, print_json
from piip_search.errors import PiipSearchError


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
    console().print(t)
    for run in tune_runs:
        console().print(_tune_table(run))
    return EXIT_OK


def _tune_runs(study, args: argparse.Namespace) -> list:
    """Tune experiments of a `--backend ray-tune` study (none without Ray installed or such a run)."""
    if not any(k.startswith("tune:") for k in study.user_attrs):
        return []
    from piip_search.search import study_dir, tune_status

    return tune_status(study, study_dir(args.trials_dir, args.study))


def _tune_table(run: dict):
    from rich.table import Table

    t = Table(title=f"Tune experiment {run['experiment']}: {run['suggested']}/{run['target']} trials suggested",
              caption=f"experiment folder {run['path']}")
    for col in ("trial", "Tune trial", "state", "failures"):
        t.add_column(col)
    t.add_column("log folder", overflow="fold")
    for r in run["trials"]:
        t.add_row(str(r["trial"]), r["tune_trial"], r["state"], "-" if r["failures"] is None else str(r["failures"]),
                  r["log_dir"] or "-")
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
    console().print(t)


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

    from piip_search.report import render_compare, render_report, report_data, set_study_metric_names, write_pngs
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
    from piip_search.report import serve_dashboard

    print(f"optuna-dashboard for study {args.study} on http://{args.host}:{args.port}/ (Ctrl-C to stop)",
          file=sys.stderr)
    serve_dashboard(study, host=args.host, port=args.port)
    return EXIT_OK
