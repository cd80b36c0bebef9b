"""TensorBoard event files of a run (``RunConfig.tensorboard``, ``mbrl run --tensorboard DIR``).

A sink beside :class:`~mbrl.agents.writer.RunWriter`, which keeps the run's own files: the
episode loop hands :class:`TensorBoardWriter` every episode's record, and it writes one
scalar per metric at ``step`` = the episode index (seed episodes first), flushed after every
episode so that a live TensorBoard (``tensorboard --logdir DIR``) sees each episode as it
ends. The scalars (:func:`record_scalars`):

- ``episode/return``, ``episode/steps``, ``episode/env_steps`` (total env steps so far);
- ``plan/ms_mean``, ``plan/ms_p99`` (ms per plan call) and ``plan/deadline_misses``;
- ``fit/seconds``: the time spent fitting (training, for the PlaNet loop) before the episode;
- ``model/val_loss`` (the state-space loop's held-out model loss), or the PlaNet loop's
  ``model/loss_<part>`` training loss parts and ``model/openloop_mse``.

Values that are not finite (a seed episode has no model score yet) are left out. A resumed run
writes its remaining episodes to the same directory (a new event file; TensorBoard merges them).

Needs the ``tensorboard`` extra (``pip install "mbrl-toolkit[tensorboard]"``); it is imported
only when a writer is made.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from mbrl.util.log import get_logger

__all__ = [
    "INSTALL_HINT",
    "TensorBoardMissing",
    "TensorBoardWriter",
    "check_tensorboard",
    "record_scalars",
]

log = get_logger(__name__)

INSTALL_HINT = 'pip install "mbrl-toolkit[tensorboard]"'
"""How to get the optional dependency of :class:`TensorBoardWriter`."""


class TensorBoardMissing(ImportError):
    """TensorBoard event files were asked for, but the ``tensorboard`` package is missing
    (the message names :data:`INSTALL_HINT`)."""


def check_tensorboard(what: str = "tensorboard (--tensorboard)") -> None:
    """Check, without importing it, that the ``tensorboard`` package is installed.

    Args:
        what: how to name the setting that asked for it in the error.

    Raises:
        TensorBoardMissing: it is not (an ImportError naming :data:`INSTALL_HINT`).
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise TensorBoardMissing(
            f"{what} writes TensorBoard event files and needs the tensorboard package, which "
            f"is not installed: {INSTALL_HINT}"
        )


def record_scalars(record: Any) -> dict[str, float]:
    """The TensorBoard scalars of one episode record (see the module docstring).

    Args:
        record: a :class:`~mbrl.agents.episode_loop.LoopRecord` (``EpisodeRecord`` or
            ``PlanetRecord``): ``episode_return``, ``steps``, ``plan_ms``, ``plan_ms_p99``,
            ``deadline_misses``, its ``fit_field``, and optionally ``env_steps``,
            ``model_val_loss``, ``losses`` (name -> float) and ``openloop_mse`` (list of
            floats).

    Returns:
        Tag -> value, finite values only.
    """
    scalars: dict[str, float] = {
        "episode/return": record.episode_return,
        "episode/steps": record.steps,
        "plan/ms_mean": record.plan_ms,
        "plan/ms_p99": record.plan_ms_p99,
        "plan/deadline_misses": record.deadline_misses,
        "fit/seconds": getattr(record, record.fit_field),
    }
    if hasattr(record, "env_steps"):
        scalars["episode/env_steps"] = record.env_steps
    if hasattr(record, "model_val_loss"):
        scalars["model/val_loss"] = record.model_val_loss
    losses: Mapping[str, float] = getattr(record, "losses", None) or {}
    for name, value in losses.items():
        scalars[f"model/loss_{name}"] = value
    openloop = getattr(record, "openloop_mse", None)
    if openloop:
        scalars["model/openloop_mse"] = sum(openloop) / len(openloop)
    out = {}
    for tag, value in scalars.items():
        number = float(value)
        if math.isfinite(number):
            out[tag] = number
    return out


class TensorBoardWriter:
    """Writes the scalars of every episode of a run to TensorBoard event files in ``log_dir``.

    Args:
        log_dir: directory of the event files (created if missing).

    Raises:
        TensorBoardMissing: tensorboard is not installed (an ImportError naming
            :data:`INSTALL_HINT`).
        TypeError: ``log_dir`` is not a non-empty path.
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        if not isinstance(log_dir, str | os.PathLike) or not str(log_dir):
            raise TypeError(f"log_dir must be a non-empty path, got {log_dir!r}")
        check_tensorboard()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # e.g. a tensorboard torch cannot use
            raise TensorBoardMissing(
                f"tensorboard (--tensorboard) could not be loaded ({err}): {INSTALL_HINT}"
            ) from err
        self.log_dir = Path(log_dir)
        self._writer: Any = SummaryWriter(log_dir=str(self.log_dir))
        log.info("TensorBoard event files go to %s", self.log_dir)

    def add_record(self, record: Any) -> None:
        """Write the scalars of one finished episode (:func:`record_scalars`) at step
        ``record.episode``, and flush them to disk."""
        for tag, value in record_scalars(record).items():
            self._writer.add_scalar(tag, value, global_step=int(record.episode))
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (closing twice is harmless)."""
        self._writer.close()

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
