"""One benchmark cell: a :class:`~mbrl.agents.loop.RunConfig` run in isolation, and its records.

A cell is the unit the suite runner hands to an executor (local process pool, Ray, inline):
:func:`run_cell` takes a :class:`CellSpec`, runs :func:`mbrl.agents.loop.run` with its own seed
and a fixed number of torch threads, and returns a :class:`CellOutcome` (never raises for a
failing run: the traceback is recorded). The same function runs on every executor, so the same
spec gives the same numbers wherever it runs.

The driver stores each outcome (:func:`write_outcome`) as ``cells/<cell_id>.jsonl`` (one JSON
object per episode) and ``cells/<cell_id>.json`` (the summary row, written last: the marker
that the cell finished). On a Ray cluster workers write no files, so it needs no shared disk.

Where the workers share the driver's disk (the local and inline executors), each cell also
runs as a checkpointed run directory, ``runs/<cell_id>/`` (:class:`CheckpointedCell`): its
``metrics.jsonl`` grows by one line per episode while the cell runs, and a suite stopped
mid-cell (Ctrl-C, kill -9, a reboot) resumes each unfinished cell from its last finished
episode on the next invocation instead of starting it over. The resumed episodes give the
numbers an uninterrupted cell would have given (:func:`mbrl.agents.loop.resume`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import math
import os
import re
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a cell's directory is then unguarded
    fcntl = None  # type: ignore[assignment]

from mbrl.agents.loop import RunConfig, resume, run, saved_run_config
from mbrl.agents.plan_sizing import resumed_sizing
from mbrl.agents.setup import build_run
from mbrl.agents.writer import CONFIG_FILE, SUMMARY_FILE, RunWriter
from mbrl.models.training import FitConfig

AXES = ("env_id", "model", "planner", "seed")
"""The :class:`RunConfig` fields that form the grid; every other field is an override."""

OVERRIDABLE = tuple(
    f.name for f in dataclasses.fields(RunConfig) if f.name not in (*AXES, "out", "progress")
)
""":class:`RunConfig` fields a suite may set (``fit`` as a table of :class:`FitConfig` fields)."""

SUMMARY_COLUMNS = (
    "cell_id",
    "env",
    "model",
    "planner",
    "tag",
    "seed",
    "status",
    "episodes",
    "final_return",
    "last3_mean_return",
    "mean_plan_ms",
    "env_steps",
    "final_val_loss",
    "wall_s",
    "host",
    "error",
)
"""Columns of ``summary.csv`` (one row per cell), in order."""

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def cell_id_for(env_id: str, model: str, planner: str, seed: int, tag: str = "") -> str:
    """File-safe id ``ENV__MODEL__PLANNER[__TAG]__sSEED`` (``/`` and ``:`` become ``-``)."""
    parts = [env_id, model, planner] + ([tag] if tag else []) + [f"s{seed}"]
    return "__".join(_SLUG.sub("-", p) for p in parts)


@dataclass(frozen=True)
class CellSpec:
    """One cell of a suite grid.

    Attributes:
        env_id / model / planner / seed: the grid axes (a :class:`RunConfig`'s fields).
        tag: optional variant label, part of ``cell_id`` (default ``""``).
        overrides: other :class:`RunConfig` fields (JSON-able; ``fit`` as a dict of
            :class:`FitConfig` fields), e.g. ``{"episodes": 3, "horizon": 20}``.
        threads: torch intra-op threads while the cell runs (default 1: deterministic and
            comparable timings on any executor).
        cell_id: derived from the axes and tag (see :func:`cell_id_for`).
    """

    env_id: str
    model: str
    planner: str
    seed: int
    tag: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    threads: int = 1

    @property
    def cell_id(self) -> str:
        """File-safe unique id of the cell within its suite."""
        return cell_id_for(self.env_id, self.model, self.planner, self.seed, self.tag)

    def run_config(self) -> RunConfig:
        """The :class:`RunConfig` this cell runs (``progress=False``, no output directory);
        every override and the planner are marked ``explicit``.

        Raises:
            ValueError / TypeError: from :class:`RunConfig` / :class:`FitConfig` for bad values,
                or for override names that are not :data:`OVERRIDABLE` fields.
        """
        unknown = sorted(set(self.overrides) - set(OVERRIDABLE))
        if unknown:
            raise ValueError(f"unknown run setting(s) {unknown}; valid: {sorted(OVERRIDABLE)}")
        kwargs = dict(self.overrides)
        if "fit" in kwargs:
            fit_opts = kwargs["fit"]
            if not isinstance(fit_opts, Mapping):
                raise TypeError(f"fit must be a table of FitConfig fields, got {fit_opts!r}")
            names = {f.name for f in dataclasses.fields(FitConfig)}
            bad = sorted(set(fit_opts) - names)
            if bad:
                raise ValueError(f"unknown fit option(s) {bad}; valid: {sorted(names)}")
            kwargs["fit"] = FitConfig(**fit_opts)
        for key in ("planner_options", "model_options"):
            if key in kwargs:
                kwargs[key] = dict(kwargs[key])
        # What the suite sets was set on purpose: env presets (and the PlaNet defaults of
        # rssm runs) never replace it, even where it equals the RunConfig default; the
        # planner is a grid axis, so it is never swapped for the action space's default.
        kwargs["explicit"] = (
            frozenset(kwargs.get("explicit", ())) | (set(kwargs) - {"explicit"}) | {"planner"}
        )
        return RunConfig(
            env_id=self.env_id,
            model=self.model,
            planner=self.planner,
            seed=self.seed,
            progress=False,
            **kwargs,
        )

    def fingerprint(self) -> str:
        """Hash of everything that determines the cell's numbers (axes, tag, overrides, threads).

        A stored result counts as finished for this spec only if its fingerprint matches, so
        editing a suite re-runs exactly the cells whose settings changed.
        """
        blob = json.dumps(self.to_json(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """JSON object that :meth:`from_json` reads back."""
        return {
            "env_id": self.env_id,
            "model": self.model,
            "planner": self.planner,
            "seed": self.seed,
            "tag": self.tag,
            "overrides": json.loads(json.dumps(dict(self.overrides), default=str)),
            "threads": self.threads,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CellSpec:
        """Inverse of :meth:`to_json`."""
        return cls(
            env_id=data["env_id"],
            model=data["model"],
            planner=data["planner"],
            seed=int(data["seed"]),
            tag=data.get("tag", ""),
            overrides=dict(data.get("overrides", {})),
            threads=int(data.get("threads", 1)),
        )


@dataclass(frozen=True)
class CellOutcome:
    """What :func:`run_cell` returns.

    Attributes:
        spec: the cell; status: ``"ok"`` or ``"failed"``.
        episodes: one JSON object per episode (seed episodes first): the run's
            ``metrics.jsonl`` line (``episode``, ``kind``, ``return``, ``steps``, ``plan_ms``,
            ``env_steps``, and ``model_val_loss``, ``fit_seconds``, ``terminated``,
            ``truncated`` for state-space models; losses and open-loop errors for ``rssm``)
            plus the cell's axes.
        wall_s: seconds the cell ran; host: machine it ran on.
        error: the full traceback of a failed cell (``None`` when ok).
        error_line: ``ExceptionType: message`` of a failed cell (``None`` when ok).
        planner_options: the planner options the run resolved to (preset and machine sizing
            applied: the population a sized planner got), empty for a failed cell.
    """

    spec: CellSpec
    status: str
    episodes: list[dict[str, Any]]
    wall_s: float
    host: str
    error: str | None = None
    error_line: str | None = None
    planner_options: dict[str, Any] = field(default_factory=dict)

    def summary_row(self) -> dict[str, Any]:
        """The ``summary.csv`` row (:data:`SUMMARY_COLUMNS`); ``error`` is ``Type: message``."""
        mpc = [e for e in self.episodes if e["kind"] != "seed"]  # "mpc", or "plan" for rssm
        returns = [float(e["return"]) for e in mpc]
        tail = returns[-3:]
        last = self.episodes[-1] if self.episodes else None
        return {
            "cell_id": self.spec.cell_id,
            "env": self.spec.env_id,
            "model": self.spec.model,
            "planner": self.spec.planner,
            "tag": self.spec.tag,
            "seed": self.spec.seed,
            "status": self.status,
            "episodes": len(mpc),
            "final_return": returns[-1] if returns else math.nan,
            "last3_mean_return": sum(tail) / len(tail) if tail else math.nan,
            "mean_plan_ms": (sum(float(e["plan_ms"]) for e in mpc) / len(mpc)) if mpc else math.nan,
            "env_steps": int(last["env_steps"]) if last else 0,
            # rssm runs report open-loop errors instead of a held-out loss
            "final_val_loss": _float(last.get("model_val_loss")) if last else math.nan,
            "wall_s": self.wall_s,
            "host": self.host,
            "error": (self.error_line or self.error.strip().splitlines()[-1]) if self.error else "",
        }

    def to_json(self) -> dict[str, Any]:
        """The done marker: summary row, full traceback, spec and fingerprint."""
        return {
            "row": _json_safe(self.summary_row()),
            "error": self.error,
            "spec": self.spec.to_json(),
            "fingerprint": self.spec.fingerprint(),
            "planner_options": json.loads(json.dumps(self.planner_options, default=str)),
        }


RUNS_DIR = "runs"
"""Subdirectory of a suite's output holding one checkpointed run directory per cell."""

LOCK_FILE = ".lock"
"""Lock file of a cell's run directory (see :func:`_exclusive`)."""

CELL_MARKER = "cell.json"
"""File in a cell's run directory naming the cell and its :meth:`CellSpec.fingerprint`: a
directory is resumed only for the cell (and settings) that started it."""


def run_cell(spec: CellSpec, run_dir: str | os.PathLike | None = None) -> CellOutcome:
    """Run one cell with ``spec.threads`` torch threads; a failing run is recorded, not raised.

    The global thread count is restored afterwards, so running cells inline in the driver
    gives the same numbers as running them in worker processes.

    Args:
        spec: the cell.
        run_dir: where the run checkpoints after every episode (default None: nowhere). A
            directory this cell (same fingerprint) left unfinished is resumed from its last
            finished episode, a finished one is read back without running anything, and
            anything else there is replaced by a fresh run.
    """
    previous = torch.get_num_threads()
    start = time.perf_counter()
    host = socket.gethostname()
    torch.set_num_threads(spec.threads)
    try:
        records, options = _run_records(spec, None if run_dir is None else Path(run_dir))
    except Exception as err:
        line = f"{type(err).__name__}: {err}".splitlines()[0]
        return CellOutcome(
            spec, "failed", [], time.perf_counter() - start, host, traceback.format_exc(), line
        )
    finally:
        torch.set_num_threads(previous)
    axes = {
        "cell_id": spec.cell_id,
        "env": spec.env_id,
        "model": spec.model,
        "planner": spec.planner,
        "tag": spec.tag,
        "seed": spec.seed,
    }
    episodes = [{**axes, **_json_safe(rec)} for rec in records]
    return CellOutcome(
        spec, "ok", episodes, time.perf_counter() - start, host, planner_options=options
    )


def _run_records(
    spec: CellSpec, run_dir: Path | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cell's episode records (``EpisodeRecord.to_json()``) and its resolved planner
    options: run, resumed, or read back from a finished ``run_dir``."""
    if run_dir is None:
        result = run(spec.run_config())
        return [r.to_json() for r in result.records], dict(result.config.planner_options)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(run_dir):
        return _run_in(spec, run_dir)


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock file while the cell runs there. The OS drops the lock when its
    holder dies (even by kill -9), so only a live process blocks the directory: a worker of
    an earlier invocation still running the cell, which must not share its checkpoints."""
    if fcntl is None:
        yield
        return
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"the cell's run directory {str(run_dir)!r} is in use by another process (a "
                "worker of an earlier invocation still running this cell?); let it finish or "
                "stop it, then run the suite again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_in(spec: CellSpec, run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if _started_by(run_dir, spec):
        if (run_dir / SUMMARY_FILE).exists():  # finished, but its outcome never reached the driver
            writer = RunWriter(run_dir)
            config = resumed_sizing(saved_run_config(run_dir), writer.read_config())
            resolved = build_run(config, dry=True).config
            return writer.read_records(), dict(resolved.planner_options)
        if (run_dir / CONFIG_FILE).exists():
            result = resume(run_dir, progress=False)
            return [r.to_json() for r in result.records], dict(result.config.planner_options)
    marker = {"cell_id": spec.cell_id, "fingerprint": spec.fingerprint()}
    _atomic_write(run_dir / CELL_MARKER, json.dumps(marker))
    config = dataclasses.replace(spec.run_config(), out=str(run_dir))
    result = run(config, overwrite=True)
    return [r.to_json() for r in result.records], dict(result.config.planner_options)


def _started_by(run_dir: Path, spec: CellSpec) -> bool:
    try:
        marker = json.loads((run_dir / CELL_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("fingerprint") == spec.fingerprint()


@dataclass(frozen=True)
class CheckpointedCell:
    """``run_cell(spec, run_dir=root/<cell_id>)`` as a picklable callable (the suite's cell
    function on executors that share the driver's disk).

    Attributes:
        root: directory holding one run directory per cell.
    """

    root: str

    def __call__(self, spec: CellSpec) -> CellOutcome:
        """Run (or resume, or read back) ``spec`` in its run directory under ``root``."""
        return run_cell(spec, Path(self.root) / spec.cell_id)


def _json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats (e.g. the validation loss before the first fit) become ``None``
    (JSON ``null``), so the lines are strict JSON."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def init_worker(threads: int) -> None:
    """Process-pool initialiser: pin OpenMP/torch to ``threads`` threads in the worker, and
    (on Linux) have the kernel kill the worker when the driver dies."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    _die_with_parent()


def _die_with_parent() -> None:
    # A driver killed with SIGKILL cannot stop its pool; without this its workers run their
    # cells to the end, holding CPUs and the cells' run directories a rerun wants to resume.
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no libc prctl (e.g. a static or unusual libc)
        return


_PR_SET_PDEATHSIG = 1


# ---------------------------------------------------------------------------------- storage
def cell_paths(out_dir: str | Path, cell_id: str) -> tuple[Path, Path]:
    """``(episodes .jsonl, done marker .json)`` of ``cell_id`` under ``out_dir/cells``."""
    base = Path(out_dir) / "cells"
    return base / f"{cell_id}.jsonl", base / f"{cell_id}.json"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outcome(out_dir: str | Path, outcome: CellOutcome) -> None:
    """Store ``outcome``: the episodes file first, then the done marker (atomic renames)."""
    episodes_path, done_path = cell_paths(out_dir, outcome.spec.cell_id)
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(e) + "\n" for e in outcome.episodes)
    _atomic_write(episodes_path, lines)
    _atomic_write(done_path, json.dumps(outcome.to_json(), indent=1, default=str))


def read_done(out_dir: str | Path, cell_id: str) -> dict[str, Any] | None:
    """The done marker of ``cell_id`` (``None`` if absent or unreadable)."""
    _, done_path = cell_paths(out_dir, cell_id)
    try:
        return json.loads(done_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_finished(out_dir: str | Path, spec: CellSpec) -> bool:
    """True if ``spec`` finished with status ok under its current settings (resume skips it)."""
    done = read_done(out_dir, spec.cell_id)
    episodes_path, _ = cell_paths(out_dir, spec.cell_id)
    return (
        done is not None
        and done.get("row", {}).get("status") == "ok"
        and done.get("fingerprint") == spec.fingerprint()
        and episodes_path.exists()
    )


def read_episodes(out_dir: str | Path, cell_id: str) -> list[dict[str, Any]]:
    """Episode objects stored for ``cell_id`` (empty if none)."""
    episodes_path, _ = cell_paths(out_dir, cell_id)
    if not episodes_path.exists():
        return []
    return [json.loads(line) for line in episodes_path.read_text().splitlines() if line.strip()]
