"""Crash-safe file writes: a file is either its old content or its complete new content.

:func:`atomic_write` writes through a temporary sibling (``NAME.tmp``), flushes it to the disk
(``fsync``), renames it over the target (``os.replace``, atomic on POSIX and Windows) and syncs
the directory, so a crash, SIGKILL or power loss never leaves half a file under the real
name. If writing fails (a full disk, no permission, Ctrl-C) the temporary file is removed and
the error propagates; the old file is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

TMP_SUFFIX = ".tmp"
"""Suffix of the temporary siblings :func:`atomic_write` writes through."""


def _fsync_path(path: Path, directory: bool = False) -> None:
    if directory and os.name == "nt":  # directories cannot be opened for fsync there
        return
    fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR)
    try:
        os.fsync(fd)
    except OSError as err:
        # Some file systems (and most directories off Linux) do not support fsync at all;
        # anything else (ENOSPC, EIO surfacing late) must reach the caller.
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush directory ``path``'s entries (renames into it) to the disk (no-op where
    unsupported)."""
    _fsync_path(Path(path), directory=True)


def remove_temporaries(path: str | os.PathLike) -> None:
    """Remove ``path`` and every sibling whose name starts with its name (writers that add
    their own ``.tmp`` to it, e.g. :func:`~mbrl.models.checkpoint.save_checkpoint`)."""
    path = Path(path)
    with contextlib.suppress(OSError):
        for sibling in path.parent.iterdir():
            if sibling.name.startswith(path.name):
                with contextlib.suppress(OSError):
                    sibling.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Create or replace ``path`` atomically: ``write(tmp)`` writes the content to a temporary
    sibling, which is synced to the disk and renamed over ``path``.

    Raises:
        OSError: from ``write``, the sync or the rename (``ENOSPC``, ``EACCES``...); the
            temporary file is removed first and ``path`` keeps its old content.
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove_temporaries(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """:func:`atomic_write` of ``torch.save(obj)``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def json_safe(value: Any) -> Any:
    """``value`` with every NaN / infinite float (nested in dicts, lists, tuples) replaced by
    None, so that ``json.dumps(..., allow_nan=False)`` writes standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dumps_json(value: Any, **kwargs: Any) -> str:
    """Standard JSON (no bare ``NaN`` / ``Infinity``: they become ``null``) of ``value``."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
