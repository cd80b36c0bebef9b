"""``mbrl report RESULTS_DIR``: figures and ranking tables of a benchmark suite's results."""

from __future__ import annotations

import argparse
import sys

from mbrl.bench.report import MissingPlotDependency, write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="report of 'mbrl bench --suite' results: figures and ranking tables",
        description="Reads RESULTS_DIR (written by 'mbrl bench --suite NAME --out RESULTS_DIR') "
        "and writes into it: learning_curves.png (return per MPC episode, mean +- std over "
        "seeds), return_vs_plan_time.png, return_vs_env_steps.png, report.md (figures linked) "
        "and report.html (self-contained), with a ranking table per env. Needs matplotlib "
        "(pip install 'mbrl[plot]').",
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="a benchmark results directory")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Write the report and print where it is."""
    try:
        files = write_report(args.results_dir)
    except MissingPlotDependency as err:
        print(f"mbrl report: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {files.markdown} and {files.html}")
    for kind, path in files.figures.items():
        print(f"figure {kind}: {path}")
    return 0
