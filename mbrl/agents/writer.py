"""The files of a run, for both loops: ``metrics.jsonl``, ``summary.json``, checkpoints, buffer.

:class:`RunWriter` writes one ``metrics.jsonl`` line per episode as it ends, ``summary.json``,
the model checkpoints and the buffer at the end, and, through :meth:`RunWriter.guard`, saves
the data collected so far when a run fails part-way (SIGTERM and Ctrl-C included).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from mbrl.models.checkpoint import save_checkpoint


class Terminated(Exception):
    """Raised inside a run when the process receives SIGTERM, so the buffer is saved."""


class Savable(Protocol):
    """A buffer: ``save(path)`` writes it to ``path``."""

    def save(self, path: str | Path) -> None: ...


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def json_default(value: Any) -> Any:
    """JSON for config values json cannot encode: sets as sorted lists, the rest as strings."""
    return sorted(value) if isinstance(value, set | frozenset) else str(value)


def config_json(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON object (see :func:`json_default`)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=json_default))


class RunWriter:
    """Writes a run's outputs under ``out`` (nothing, except a crash-save, when ``out`` is None).

    Creating it creates ``out`` and empties ``out/metrics.jsonl``.

    Args:
        out: output directory, or None.
    """

    def __init__(self, out: str | Path | None) -> None:
        self.out = Path(out) if out else None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "metrics.jsonl").write_text("")

    def episode(self, record: Any) -> None:
        """Append ``record.to_json()`` as one line of ``metrics.jsonl``."""
        if self.out is not None:
            with (self.out / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(record.to_json()) + "\n")

    def finish(
        self,
        summary: Mapping[str, Any],
        checkpoints: Mapping[str, torch.nn.Module],
        meta: Mapping[str, Any],
        buffer: Savable,
    ) -> None:
        """Write ``summary.json``, each checkpoint (file name -> model, with ``meta``) and
        ``buffer.pt``."""
        if self.out is None:
            return
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        for name, model in checkpoints.items():
            save_checkpoint(self.out / name, model, dict(meta))
        buffer.save(self.out / "buffer.pt")

    @contextlib.contextmanager
    def guard(self, collected: Callable[[], tuple[Savable, str] | None]) -> Iterator[None]:
        """Run the block with SIGTERM raising :class:`Terminated`; if anything escapes it, save
        the buffer first (to ``out/buffer.pt``, or a new temporary directory) and add a note
        naming the file to the error.

        Args:
            collected: ``() -> (buffer, "25 transitions")``, or None while nothing was
                collected (then nothing is saved).
        """
        try:
            with sigterm_raises():
                yield
        except BaseException as err:
            what = collected()
            if what is None:
                raise
            buffer, description = what
            target = (self.out or Path(tempfile.mkdtemp(prefix="mbrl-crash-"))) / "buffer.pt"
            buffer.save(target)
            if hasattr(err, "add_note"):  # Python >= 3.11
                err.add_note(f"mbrl: the {description} collected so far were saved to {target}")
            raise
