"""The ``mbrl`` command line: ``mbrl run``, ``mbrl bench``, ... (``mbrl -h`` lists them)."""

from __future__ import annotations

import argparse
import importlib
import sys

from mbrl._version import __version__
from mbrl.util.log import LEVELS, configure_cli_logging, reset_cli_logging

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("mbrl.commands.run", "model-based RL loop: seed data, fit, plan with MPC, refit"),
    "bench": (
        "mbrl.commands.bench",
        "benchmarks: '--suite NAME --out DIR' runs a planner grid; 'speed' times rollouts",
    ),
    "report": (
        "mbrl.commands.report",
        "report of 'mbrl bench --suite' results: figures and ranking tables",
    ),
    "surrogate": (
        "mbrl.commands.surrogate",
        "collect transitions, fit a model, save it as a gymnasium env (mbrl/Surrogate-v0)",
    ),
    "dyna": (
        "mbrl.commands.dyna",
        "MBPO: SAC on real + branched model rollouts (needs the sb3 extra); or Dyna-Q",
    ),
    "export": (
        "mbrl.commands.export",
        "export a run's policy or CEM planner as a torch.export artefact (.pt2) for deployment",
    ),
}
"""``{subcommand: (module, one-line help)}``. Each module adds its subcommand with
``register(subparsers)``; it is imported only when its subcommand is chosen (its imports pull
in torch), so ``mbrl --help`` and ``mbrl --version`` need none of them. The help line shown by
``mbrl --help`` is this one (tests/test_lazy_imports.py checks it equals the module's)."""

COMMAND_MODULES = tuple(module for module, _ in COMMANDS.values())
"""Modules that each add one subcommand via ``register(subparsers)``."""

LOG_LEVEL = "--log-level"
"""The one option of ``mbrl`` itself that takes a value (before the subcommand)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``mbrl``.

    Args:
        command: register only this subcommand's module (the others appear in ``--help`` by
            name and help line); ``None`` registers every module.
    """
    parser = argparse.ArgumentParser(
        prog="mbrl", description="Model-based planning and RL toolkit."
    )
    parser.add_argument("--version", action="version", version=f"mbrl-toolkit {__version__}")
    parser.add_argument(
        LOG_LEVEL,
        choices=list(LEVELS),
        default="info",
        help="messages at this level and above go to stderr, one line each (default info); "
        "results stay on stdout",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_line) in COMMANDS.items():
        if command is None or command == name:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def _chosen_command(argv: list[str]) -> str:
    """The subcommand named in ``argv`` ('' for none): the first argument that is neither an
    option nor the value of ``--log-level LEVEL`` (``mbrl``'s other options take none)."""
    args = iter(argv)
    for arg in args:
        if arg == LOG_LEVEL:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return ""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mbrl`` console script. Bad input exits with code 2 and one message."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_chosen_command(argv))
    args = parser.parse_args(argv)
    configure_cli_logging(args.log_level)
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
    finally:
        # main() is called in-process too (tests, scripts): leave logging as it was.
        reset_cli_logging()


if __name__ == "__main__":
    sys.exit(main())
