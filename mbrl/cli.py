"""The ``mbrl`` command line: ``mbrl run``, ``mbrl bench``, ... (``mbrl -h`` lists them)."""

from __future__ import annotations

import argparse
import importlib
import sys

from mbrl._version import __version__

COMMAND_MODULES = (
    "mbrl.commands.run",
    "mbrl.commands.bench",
    "mbrl.commands.report",
    "mbrl.commands.surrogate",
    "mbrl.commands.dyna",
)
"""Modules that each add one subcommand via ``register(subparsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mbrl", description="Model-based planning and RL toolkit."
    )
    parser.add_argument("--version", action="version", version=f"mbrl-toolkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mbrl`` console script. Bad input exits with code 2 and one message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError) as err:
        print(f"mbrl {args.command}: error: {err}", file=sys.stderr)
        for note in getattr(err, "__notes__", []):
            print(f"mbrl {args.command}: {note}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mbrl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
