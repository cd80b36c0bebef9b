"""Episode-level progress of a running suite, read from its cells' run directories.

A suite's progress bar moves once per finished cell, and one cell can take many minutes.
Where cells are checkpointed (:class:`~mbrl.bench.cells.CheckpointedCell`), every finished
episode is a line in ``runs/<cell_id>/metrics.jsonl`` on the driver's disk; an
:class:`EpisodeProgress` counts those lines from a background thread and shows them as a
second bar, whatever executor runs the cells.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm

from mbrl.agents.writer import METRICS_FILE
from mbrl.bench.cells import CellSpec


def expected_episodes(spec: CellSpec) -> int:
    """Episodes a cell's run plans for: its seed episodes plus its MPC episodes (a run may add
    seed episodes while it has too few transitions, so this is a lower bound)."""
    cfg = spec.run_config()
    return cfg.seed_episodes + cfg.episodes


def finished_episodes(runs_dir: Path, cells: Sequence[CellSpec]) -> int:
    """Lines in the ``metrics.jsonl`` of ``cells``' run directories under ``runs_dir`` (each
    line is one finished episode; a missing file counts 0)."""
    total = 0
    for spec in cells:
        path = runs_dir / spec.cell_id / METRICS_FILE
        try:
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        except OSError:
            continue
    return total


class EpisodeProgress:
    """A tqdm bar over the episodes of ``cells``, refreshed every ``every_s`` seconds.

    Use as a context manager around the suite's run: a daemon thread counts the finished
    episodes (:func:`finished_episodes`) until the block ends, then the bar is refreshed a
    last time and closed.

    Args:
        runs_dir: the suite's run directories (``out/runs``).
        cells: the cells being run.
        every_s: seconds between counts (default 2).
        disable: show nothing (the thread does not start).
        file: where the bar is drawn (default stdout).
    """

    def __init__(
        self,
        runs_dir: Path,
        cells: Sequence[CellSpec],
        *,
        every_s: float = 2.0,
        disable: bool = False,
        file: TextIO | None = None,
    ) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s!r}")
        self.runs_dir, self.cells, self.every_s = Path(runs_dir), list(cells), float(every_s)
        self._disable = disable
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bar = tqdm(
            total=sum(expected_episodes(c) for c in self.cells),
            desc="episodes",
            unit="ep",
            position=1,
            leave=False,
            disable=disable,
            file=file or sys.stdout,
        )

    def refresh(self) -> int:
        """Count the finished episodes now, move the bar there, and return the count."""
        done = finished_episodes(self.runs_dir, self.cells)
        if done > self.bar.total:  # runs that added seed episodes
            self.bar.total = done
        self.bar.n = done
        self.bar.refresh()
        return done

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            self.refresh()

    def __enter__(self) -> EpisodeProgress:
        if not self._disable:
            self.refresh()
            self._thread = threading.Thread(target=self._watch, name="episode-progress")
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.refresh()
        self.bar.close()


__all__ = ["EpisodeProgress", "expected_episodes", "finished_episodes"]
