"""``fnas report``: figures and a Markdown summary of one or more searches."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fnas_env.cli import CLIError, positive_int

EPILOG = """\
writes into the output folder:
  report.md          per run: env, method, seed, activated/cached/trusted/replayed
                     counts, best reward, accuracy and architecture; per (env, method)
                     group the median over seeds; links to the figures
  progress.png       best reward and best accuracy against activated samples (a group
                     of several seeds: median line and min-max band)
  front.png          accuracy against latency: activated architectures, each group's
                     Pareto front and the target T (skipped when records have no latency)
  choices-RUN.png    share of each choice of each decision per window of the search,
                     one figure per run (blocks as rows, kinds of decision as columns)

examples:
  fnas report runs/digits                      # writes runs/digits/report/
  fnas report runs/fnas-s0 runs/fnas-s1 runs/mnas-s0 --out runs/compare
  fnas report runs/nb201 --windows 5 --out reports/nb201
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to ``sub``."""
    p = sub.add_parser(
        "report",
        help="figures and a Markdown summary of search runs",
        description=(
            "Plot one or more search runs (folders made by 'fnas search') and summarise\n"
            "them in report.md. Runs are grouped by (env id, method) from their\n"
            "search.json; a group of several seeds is drawn as its median over seeds."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="run folder(s) of a search (with search.json)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: RUN/report for one run; required for several runs)",
    )
    p.add_argument(
        "--windows",
        type=positive_int,
        default=8,
        metavar="N",
        help="windows the choice-share figures cut each search into (default: 8)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the report of ``args.runs`` into ``args.out``; returns the exit status."""
    if args.out is None and len(args.runs) > 1:
        raise CLIError(
            f"{len(args.runs)} runs given: say where their joint report goes with --out DIR "
            "(only a single run's report defaults to RUN/report)"
        )
    from fnas_env.report import write_report

    out = Path(args.out) if args.out is not None else Path(args.runs[0]) / "report"
    started = time.perf_counter()
    report = write_report(args.runs, out, windows=args.windows)
    elapsed = time.perf_counter() - started
    for note in report.notes:
        print(f"note: {note}")
    figures, runs = len(report.figures), len(report.runs)
    print(f"wrote {report.markdown} and {figures} figure(s) for {runs} run(s) in {elapsed:.1f} s")
    return 0
