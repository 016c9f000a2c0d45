"""The `piip-search` argument parser: one subcommand per command function."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

from piip_search.cli import _config_commands as C
from piip_search.cli import _study_commands as S


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


class _Registered:
    """`choices` read from a registry on first use (a given value, `--help`, an error), so light commands such
    as `models` or `flops` never import the search and its Optuna."""

    def __init__(self, load: Callable[[], list[str]]) -> None:
        self._load = load

    def __contains__(self, item: object) -> bool:
        return item in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())


def _samplers() -> list[str]:
    from piip_search.search import SAMPLERS

    return list(SAMPLERS)


def _backends() -> list[str]:
    from piip_search.search import BACKENDS

    return list(BACKENDS)


def _formats() -> list[str]:
    from piip_search.export import EXPORTERS

    return list(EXPORTERS)


Command = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="piip-search",
        description="Neural-architecture search for PIIP networks: FLOPs (multiply-adds) against detection AP.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    _config_commands(cmd)
    _search_commands(cmd)
    _study_commands(cmd)
    return p


def _config_commands(cmd: Command) -> None:
    sp = cmd("models", C._cmd_models, "list the shipped configs (published PIIP models, tiny examples)")
    sp.add_argument("--json", action="store_true", help="print a JSON list")

    sp = cmd("flops", C._cmd_flops, "params and FLOPs (multiply-adds) of a config, with a per-part breakdown")
    sp.add_argument("config", metavar="CONFIG", help="YAML path or shipped model name (see `models`)")
    sp.add_argument("--convention", choices=["paper", "model"], default="paper",
                    help="paper: the counting behind the published PIIP numbers; model: the network this tool "
                         "builds (default: paper)")
    sp.add_argument("--json", action="store_true", help="print one JSON object")

    sp = cmd("describe", C._cmd_describe, "branches, interactions and a params/FLOPs table of a config")
    sp.add_argument("config", metavar="CONFIG", help="YAML path or shipped model name")
    sp.add_argument("--convention", choices=["paper", "model"], default="model")

    sp = cmd("make-data", C._cmd_make_data, "write a COCO-format dataset")
    sp.add_argument("kind", choices=["synthetic"], help="dataset kind")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--images", type=int, default=None, help="number of training images")
    sp.add_argument("--size", type=int, default=None, help="image side in pixels")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--min-object", type=float, default=None,
                    help="smallest object diameter in pixels (default: size / 10)")

    sp = cmd("train", C._cmd_train, "one proxy training run of a config; prints AP")
    sp.add_argument("config", metavar="CONFIG", help="YAML path or shipped model name")
    sp.add_argument("--data", default=None, help="COCO folder (train/, val/, annotations/); default: synthetic")
    sp.add_argument("--iters", type=int, default=None, help="training iterations")
    sp.add_argument("--detector", default=None, help="faster_rcnn | mask_rcnn | retinanet | fcos")
    sp.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    sp.add_argument("--json", action="store_true", help="print the result object as JSON")



def _search_commands(cmd: Command) -> None:
    sp = cmd("run", S._cmd_run, "run a search (default: search_spaces/default.yaml on synthetic data)")
    sp.add_argument("--space", default=None, help="search-space YAML (default: the shipped default.yaml)")
    sp.add_argument("--study", default=None, help="study name (default: the space's name)")
    sp.add_argument("--storage", default=None,
                    help="Optuna storage: a journal file path or a database URL (default: trials/<study>/journal.log)")
    _count_options(sp)
    sp.add_argument("--sampler", default=None, choices=_Registered(_samplers), metavar="NAME",
                    help="one of %(choices)s (default: the space's sampler, else auto)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--backend", default="optuna", choices=_Registered(_backends), metavar="NAME",
                    help="one of %(choices)s. optuna: local loop; ray: Ray tasks; ray-tune: a Ray Tune "
                         "experiment (see README)")
    sp.add_argument("--max-concurrent", type=int, default=None,
                    help="ray/ray-tune: trials at once (default: what the cluster's CPUs/GPUs allow)")
    sp.add_argument("--evaluator", default=None, help="builtin:proxy | builtin:flops-only | package.module:function")
    sp.add_argument("--enqueue", action="append", default=[], metavar="CONFIG",
                    help="seed the study with a known config (repeatable)")
    sp.add_argument("--resume", action="store_true", help="continue an existing study")
    sp.add_argument("--trials-dir", default="trials", help="home of studies (default: trials/)")
    sp.add_argument("--device", default=None)

    sp = cmd("worker", S._cmd_worker, "join a running study as one more worker (same space and evaluator)")
    sp.add_argument("--storage", required=True, help="the study's journal file path or database URL")
    sp.add_argument("--study", required=True)
    _count_options(sp)
    sp.add_argument("--trials-dir", default="trials")
    sp.add_argument("--device", default=None)
    sp.add_argument("--evaluator", default=None, help="must be the study's own (default: the study's)")



def _study_commands(cmd: Command) -> None:
    for name, fn, help in (("status", S._cmd_status, "progress of a study"),
                           ("pareto", S._cmd_pareto, "the Pareto front of FLOPs against AP")):
        sp = cmd(name, fn, help)
        sp.add_argument("study", metavar="STUDY")
        sp.add_argument("--storage", default=None)
        sp.add_argument("--trials-dir", default="trials")
        sp.add_argument("--json", action="store_true")

    sp = cmd("export", S._cmd_export, "write chosen configs of a study")
    sp.add_argument("study", metavar="STUDY")
    sp.add_argument("--select", default="knee", help="knee | max-ap | min-flops | budget:<gflops> | all")
    sp.add_argument("--out", required=True, help="output file (one config) or folder")
    sp.add_argument("--format", default="yaml", choices=_Registered(_formats), metavar="NAME",
                    help="one of %(choices)s (default: yaml)")
    sp.add_argument("--force", action="store_true", help="overwrite existing files")
    sp.add_argument("--storage", default=None)
    sp.add_argument("--trials-dir", default="trials")

    sp = cmd("report", S._cmd_report, "write a self-contained HTML report of a study (several: a comparison)")
    sp.add_argument("study", metavar="STUDY")
    sp.add_argument("others", metavar="STUDY", nargs="*", help="more studies: overlay their fronts and hypervolume")
    sp.add_argument("--out", default=None, help="HTML file (default: trials/<study>/report.html, compare.html)")
    sp.add_argument("--png", default=None, metavar="DIR", help="also write front.png and hypervolume.png there")
    sp.add_argument("--storage", default=None)
    sp.add_argument("--trials-dir", default="trials")

    sp = cmd("dashboard", S._cmd_dashboard, "serve optuna-dashboard for a study on 127.0.0.1")
    sp.add_argument("study", metavar="STUDY")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--storage", default=None)
    sp.add_argument("--trials-dir", default="trials")
