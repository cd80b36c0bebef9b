"""Checks of output paths made before any work, so a bad ``--out`` fails at once."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def check_output_dir(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` as a :class:`~pathlib.Path` after checking a directory can be written there:
    it is a directory or does not exist yet, its nearest existing ancestor is a directory, and
    that one is writable (a probe directory is made there and removed at once).

    Args:
        path: the directory to write into (created later by the caller).
        what: the argument's name to start the messages with (e.g. ``"--out"``; default none).

    Raises:
        ValueError: naming ``what``, the path and the problem (a file, under a file, not
            writable).
    """
    target = Path(path)
    name = f"{what} {str(target)!r}".lstrip()
    if target.exists() and not target.is_dir():
        raise ValueError(f"{name} is a file, not a directory")
    ancestor = target
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ValueError(f"{name} cannot be created: {str(ancestor)!r} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: {str(ancestor)!r} is not writable")
    # Permission bits do not tell everything (root on a read-only mount, /proc): a probe
    # directory does, and is removed at once.
    problem = _make_dir_problem(ancestor)
    if problem:
        raise ValueError(f"{name}: cannot create a directory in {str(ancestor)!r} ({problem})")
    return target


def _make_dir_problem(parent: Path) -> str:
    """'' if a directory can be made in ``parent`` (made and removed at once), else why not."""
    probe = parent / f".mbrl-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError as err:
        return err.strerror or str(err)
    probe.rmdir()
    return ""
