"""The ``fnas`` command: search, export, train, report, envs.

Each subcommand is a module of this package with ``add_parser(subparsers)`` and
``run(args) -> int``; :func:`main` builds the parser and turns a user's mistake (an
unknown env, a bad path, a negative target, ...) into one clear line on stderr and
exit status 2, never a traceback. ``FNAS_DEBUG=1`` shows the traceback instead.

    fnas search --env FNAS-MNAS-v0 --budget 30 --run-dir runs/digits
    fnas export runs/digits --top 3
    fnas train runs/digits --epochs 30
    fnas report runs/digits
    fnas envs
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "CLIError", "COMMANDS", "positive_int"]

#: subcommand name -> module (imported only when that subcommand runs)
COMMANDS = {
    "search": "fnas_env.cli.search",
    "export": "fnas_env.cli.export",
    "train": "fnas_env.cli.train",
    "report": "fnas_env.cli.report",
    "envs": "fnas_env.cli.envs",
}


class CLIError(Exception):
    """A user's mistake: printed as one line, exit status 2."""


#: errors that say what the user gave wrong (raised by the library with a clear message)
USER_ERRORS: tuple[type[BaseException], ...] = (
    CLIError,
    ValueError,
    FileNotFoundError,
    PermissionError,
)


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, else argparse's one-line error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``fnas`` parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="fnas",
        description="FNAS: fast RL-based neural architecture search.",
        epilog="Run 'fnas COMMAND --help' for a command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fnas`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as err:
        if os.environ.get("FNAS_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__  # one line
        print(f"fnas {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which has quit
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        return 0
    except KeyboardInterrupt:
        print(f"fnas {args.command}: interrupted", file=sys.stderr)
        return 130
