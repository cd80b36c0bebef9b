"""Logging conventions of mbrl: messages go through the standard :mod:`logging` module.

Every module logs to its own logger, ``get_logger(__name__)``, a child of the package logger
``mbrl``. As a library, mbrl installs only a :class:`logging.NullHandler` on that logger (so an
application that configures no logging sees nothing, not Python's last-resort output); where
the messages go is the application's choice (``logging.getLogger("mbrl").setLevel(...)``, or
the root logger's handlers, to which mbrl's messages propagate).

The ``mbrl`` command line calls :func:`configure_cli_logging` (``mbrl --log-level LEVEL``,
default ``info``): messages go to stderr as one line each, ``mbrl: LEVEL: message``, written
through ``tqdm.write`` so that they do not break a progress bar. The per-episode result lines
and the final ``done:`` line of ``mbrl run`` are the command's output, not log messages: they
stay on stdout.
"""

from __future__ import annotations

import logging
import sys

__all__ = [
    "CLI_FORMAT",
    "LEVELS",
    "PACKAGE",
    "configure_cli_logging",
    "get_logger",
    "logger",
    "reset_cli_logging",
]

PACKAGE = "mbrl"
"""Name of the package logger; every module logger of mbrl is a child of it."""

CLI_FORMAT = "mbrl: %(levelname)s: %(message)s"
"""One line per message on the command line."""

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
"""The ``--log-level`` names and their :mod:`logging` levels."""

logger = logging.getLogger(PACKAGE)
logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (pass ``__name__``); a child of ``mbrl`` for mbrl's own
    modules. Importing this module is what installs the package's NullHandler, so modules
    take their logger from here rather than from :func:`logging.getLogger` directly."""
    return logging.getLogger(name)


class _CliHandler(logging.Handler):
    """Writes each record as one line to the ``sys.stderr`` of the moment (looked up at every
    message, so that a replaced stderr, e.g. pytest's capture, receives it) via ``tqdm.write``,
    which clears and redraws any progress bar around the line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_cli_logging(level: str | int = "info") -> logging.Handler:
    """Send the ``mbrl`` logger's messages at ``level`` and above to stderr, one line each
    (:data:`CLI_FORMAT`). Calling it again replaces the handler of the earlier call.

    Args:
        level: one of :data:`LEVELS` (``debug``, ``info``, ``warning``, ``error``) or a
            :mod:`logging` level number.

    Returns:
        The handler installed on the ``mbrl`` logger.

    Raises:
        ValueError: ``level`` is a name other than those.
        TypeError: ``level`` is neither a name nor an int.
    """
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"log level must be one of {list(LEVELS)}, got {level!r}")
        number = LEVELS[level.lower()]
    elif isinstance(level, int) and not isinstance(level, bool):
        number = level
    else:
        raise TypeError(f"log level must be a name or an int, got {level!r}")
    reset_cli_logging()
    handler = _CliHandler()
    handler.setFormatter(logging.Formatter(CLI_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(number)
    return handler


def reset_cli_logging() -> None:
    """Remove the handler of :func:`configure_cli_logging` and restore the ``mbrl`` logger's
    level (NOTSET: the root logger's applies), e.g. when :func:`mbrl.cli.main` returns."""
    for handler in list(logger.handlers):
        if isinstance(handler, _CliHandler):
            logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
