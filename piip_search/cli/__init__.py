"""`piip-search` command line: a thin layer over the public API.

Exit codes: 0 success, 2 bad input (a message, no traceback), 1 internal failure.
Each command function parses nothing itself: it receives argparse's namespace, calls the library and renders.
"""

from __future__ import annotations

import sys

from piip_search.cli._output import EXIT_BAD_INPUT, EXIT_INTERNAL
from piip_search.cli._parser import build_parser
from piip_search.errors import PiipSearchError

__all__ = ["build_parser", "main"]


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
