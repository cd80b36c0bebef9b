"""Signals in long runs: SIGTERM as an exception, and blocks that signals do not cut in half.

:func:`sigterm_raises` turns SIGTERM into :class:`Terminated` (so ``finally`` blocks run and
data is saved, as Ctrl-C does with ``KeyboardInterrupt``); :func:`signals_deferred` holds
SIGTERM and SIGINT while a block runs (e.g. the files of one checkpoint being renamed into
place) and delivers them right after it. Both act in the main thread only (Python runs signal
handlers there); elsewhere they do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGTERM = 128 + signal.SIGTERM
"""Exit status of a command ended by SIGTERM (143, the shell's convention)."""

EXIT_SIGINT = 128 + signal.SIGINT
"""Exit status of a command ended by Ctrl-C (130)."""


class Terminated(Exception):
    """Raised inside a run when the process receives SIGTERM, so the data is saved."""


def add_note(err: BaseException, note: str) -> None:
    """Attach ``note`` to ``err`` (``BaseException.add_note`` where it exists, Python >= 3.11;
    the same ``__notes__`` list before)."""
    if hasattr(err, "add_note"):
        err.add_note(note)
    else:
        err.__notes__ = [*getattr(err, "__notes__", []), note]  # type: ignore[attr-defined]


def notes(err: BaseException) -> list[str]:
    """The notes attached to ``err`` (see :func:`add_note`)."""
    return list(getattr(err, "__notes__", []))


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only); the
    previous handler is restored afterwards."""
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends, then deliver them to the handlers that
    were installed before (raising :class:`Terminated` / ``KeyboardInterrupt`` there, or the
    default action). Main thread only; elsewhere the block runs unprotected."""
    if not _main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)
