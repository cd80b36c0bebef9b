"""The files of a run, for both loops, written so that a run survives a crash and resumes.

A run directory (``RunConfig.out``) holds:

- ``config.json``: the run's config as given (:func:`~mbrl.agents.config.run_config_from_json`
  reads it back) and the rollout backend it resolved to; written before the first episode.
- after every episode, as one checkpoint: ``buffer.pt`` (the filled rows only), the model
  checkpoints (``model.pt``, learned task models, value / policy), ``loop_state.pt`` where the
  loop keeps more (the RSSM's optimiser; the state of a planner that keeps one across
  episodes, via its ``state_dict()``), ``metrics.jsonl`` (one standard-JSON line per
  episode; NaN and inf are written as ``null``) and ``state.json`` (where the run stands:
  the next episode, the seed episodes, the transitions stored).
- ``summary.json``, written only when the run finishes: a directory with it holds a finished
  run.

Every file is written atomically (temp file, ``fsync``, rename). The files of one checkpoint
are written under ``NAME.next-G`` names first; writing ``state.json`` (which lists them)
commits them, and they are renamed into place right after. A run killed at any moment
(SIGKILL included) therefore leaves either the previous checkpoint or the new one, never a
mix; :meth:`RunWriter.recover` finishes an interrupted rename and removes uncommitted files.
SIGTERM and Ctrl-C are held while a checkpoint is committed.

A write that fails (a full disk, no permission) raises :class:`RunOutputError`, naming the file;
the checkpoint's partial files are removed, and :meth:`RunWriter.guard` saves the buffer to a
new temporary directory, named in the error's note. :meth:`RunWriter.guard` saves the data when
anything else stops a run part-way too (SIGTERM and Ctrl-C included).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from mbrl.models.checkpoint import save_checkpoint
from mbrl.util.files import (
    TMP_SUFFIX,
    atomic_torch_save,
    atomic_write,
    atomic_write_text,
    dumps_json,
    fsync_dir,
    remove_temporaries,
)
from mbrl.util.paths import check_output_dir
from mbrl.util.signals import Terminated, add_note, signals_deferred, sigterm_raises

__all__ = [
    "CONFIG_FILE",
    "STATE_FILE",
    "SUMMARY_FILE",
    "Collected",
    "Committed",
    "RunOutputError",
    "RunWriter",
    "Savable",
    "Snapshot",
    "Terminated",
    "config_json",
    "json_default",
    "sigterm_raises",
]

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
BUFFER_FILE = "buffer.pt"
LOOP_STATE_FILE = "loop_state.pt"
INTERRUPTED_BUFFER_FILE = "buffer-interrupted.pt"
"""The buffer of a run stopped mid-episode (committed data plus the unfinished episode)."""

_RUN_FILES = (
    CONFIG_FILE,
    STATE_FILE,
    SUMMARY_FILE,
    METRICS_FILE,
    BUFFER_FILE,
    LOOP_STATE_FILE,
    INTERRUPTED_BUFFER_FILE,
)
_CHECKPOINT_PATTERNS = ("model.pt", "*_model.pt")
_STATE_FORMAT = "mbrl-run-state"
_CONFIG_FORMAT = "mbrl-run-config"
_NEXT = ".next-"


class Savable(Protocol):
    """A buffer: ``save(path)`` writes it to ``path``."""

    def save(self, path: str | Path) -> None: ...


class RunOutputError(OSError):
    """A run's output could not be written (full disk, no permission, ...): the message says
    which file and why; ``errno`` is the cause's, and the cause is ``__cause__``."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass(frozen=True)
class Collected:
    """The data a run holds in memory: ``buffer``, its size ``count`` in ``unit`` s
    (``transitions`` or ``episodes``), and ``added``, how much was ever added to it (grows
    with every step stored, also once a full buffer drops old data)."""

    buffer: Savable
    count: int
    unit: str
    added: int

    def describe(self) -> str:
        """E.g. ``"25 transitions"``."""
        return f"{self.count} {self.unit}"


@dataclass(frozen=True)
class Snapshot:
    """Everything a resumed run needs after an episode (written by :meth:`RunWriter.commit`).

    Attributes:
        next_episode: index of the next episode; total_episodes: where the run ends (it may
        grow while seed episodes are added); seed_episodes: seed episodes (incl. added ones);
        records: every episode's record so far (``to_json()``); collected: the buffer;
        checkpoints: file name -> model; meta: the checkpoints' metadata; loop_state: the
        loop's own tensors and numbers (None: none); rng: how the next episode is seeded.
    """

    next_episode: int
    total_episodes: int
    seed_episodes: int
    records: Sequence[Any]
    collected: Collected
    checkpoints: Mapping[str, torch.nn.Module]
    meta: Mapping[str, Any]
    loop_state: Mapping[str, Any] | None
    rng: Mapping[str, Any]


@dataclass(frozen=True)
class Committed:
    """What the last checkpoint of a run directory holds (``state.json``).

    Attributes:
        generation: checkpoints written so far; next_episode / total_episodes / seed_episodes:
        as in :class:`Snapshot`; count / unit / added: as in :class:`Collected`; files: the
        checkpoint's files.
    """

    generation: int
    next_episode: int
    total_episodes: int
    seed_episodes: int
    count: int
    unit: str
    added: int
    files: tuple[str, ...]

    def describe(self, out: Path) -> str:
        """Where the committed run stands and how to continue it."""
        done = (
            f"episodes 0-{self.next_episode - 1}"
            if self.next_episode > 1
            else f"episode {self.next_episode - 1}"
        )
        return (
            f"{out} holds {done} of {self.total_episodes}; 'mbrl run --resume {out}' runs the rest"
        )


def json_default(value: Any) -> Any:
    """JSON for config values json cannot encode: sets as sorted lists, the rest as strings."""
    return sorted(value) if isinstance(value, set | frozenset) else str(value)


def config_json(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON object (see :func:`json_default`)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=json_default))


def _is_run_file(name: str) -> bool:
    return (
        name in _RUN_FILES
        or any(Path(name).match(p) for p in _CHECKPOINT_PATTERNS)
        or _NEXT in name
        or name.endswith(TMP_SUFFIX)
    )


def check_out_dir(out: str | os.PathLike, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Check before any work that ``out`` can hold a run's outputs; creates nothing.

    A new run needs a missing or empty directory (or ``overwrite``: the files of the run there
    are replaced, other files are kept); ``resume`` needs a run directory that has not
    finished.

    Raises:
        ValueError: ``out`` is a file or lies under one, is not writable, holds files (without
            ``overwrite`` / ``resume``), or (``resume``) is no unfinished run directory.
    """
    path = check_output_dir(out, "--resume" if resume else "--out")
    if resume:
        if not path.is_dir():
            raise ValueError(f"--resume {str(out)!r}: no such directory")
        if not (path / CONFIG_FILE).is_file():
            raise ValueError(
                f"--resume {str(out)!r} is not a resumable mbrl run directory (it has no "
                f"{CONFIG_FILE}; runs written by mbrl before resumable runs cannot resume)"
            )
        if (path / SUMMARY_FILE).exists():
            raise ValueError(
                f"--resume {str(out)!r}: that run already finished ({SUMMARY_FILE} exists); "
                "nothing to resume"
            )
    elif path.is_dir() and any(path.iterdir()) and not overwrite:
        what = "an mbrl run" if (path / CONFIG_FILE).exists() else "files"
        hint = "--resume to continue it, or " if what == "an mbrl run" else ""
        raise ValueError(
            f"--out {str(out)!r} already holds {what}; pass {hint}--overwrite (overwrite=True) "
            "to replace the run files there, or choose another directory"
        )
    return path


class RunWriter:
    """Writes a run's outputs under ``out`` (nothing, except a crash-save, when ``out`` is None).

    Args:
        out: output directory (checked by :func:`check_out_dir` first), or None.
    """

    def __init__(self, out: str | Path | None) -> None:
        self.out = Path(out) if out else None
        self.committed: Committed | None = None

    def start(self, config: Mapping[str, Any], *, replace: bool = False) -> None:
        """Create ``out`` and write ``config.json`` (``config``: the JSON object of the
        config as given, plus what resuming needs); ``replace`` first removes the files of the
        run already there (other files are kept).

        Raises:
            RunOutputError: the directory or the file cannot be written.
        """
        if self.out is None:
            return
        with self._writing(self.out):
            self.out.mkdir(parents=True, exist_ok=True)
            if replace:
                for entry in self.out.iterdir():
                    if entry.is_file() and _is_run_file(entry.name):
                        entry.unlink()
            doc = {"format": _CONFIG_FORMAT, "version": 1, **config}
            self._write_text(self.out / CONFIG_FILE, dumps_json(doc, indent=2))

    def read_config(self) -> dict[str, Any]:
        """The object :meth:`start` wrote to ``config.json``.

        Raises:
            ValueError: the file is missing, not JSON, or not a run config.
        """
        assert self.out is not None
        doc = _read_json(self.out / CONFIG_FILE)
        if not isinstance(doc, dict) or doc.get("format") != _CONFIG_FORMAT:
            raise ValueError(f"{str(self.out / CONFIG_FILE)!r} is not an mbrl run config file")
        return doc

    def recover(self) -> Committed | None:
        """Bring a run directory to its last committed checkpoint: finish the renames of a
        checkpoint whose commit was interrupted, remove the files of an uncommitted one.

        Returns:
            The last checkpoint, or None when none was committed.

        Raises:
            ValueError: ``state.json`` is not a run state file, or files it lists are missing.
        """
        assert self.out is not None
        state_path = self.out / STATE_FILE
        state = _read_json(state_path) if state_path.exists() else None
        if state is not None and (
            not isinstance(state, dict) or state.get("format") != _STATE_FORMAT
        ):
            raise ValueError(f"{str(state_path)!r} is not an mbrl run state file")
        pending = dict(state.get("pending", {})) if state else {}
        for src, dst in pending.items():
            if (self.out / src).exists():
                os.replace(self.out / src, self.out / dst)
        for entry in self.out.iterdir():
            if _NEXT in entry.name or entry.name.endswith(TMP_SUFFIX):
                entry.unlink()
        if state is None:
            return None
        try:
            committed = Committed(**{f.name: state[f.name] for f in dataclasses.fields(Committed)})
        except KeyError as err:
            raise ValueError(f"{str(state_path)!r} lacks the key {err}") from err
        committed = dataclasses.replace(committed, files=tuple(committed.files))
        missing = [name for name in committed.files if not (self.out / name).exists()]
        if missing:
            raise ValueError(f"run directory {str(self.out)!r} lacks its file(s) {missing}")
        self.committed = committed
        return committed

    def read_records(self) -> list[dict[str, Any]]:
        """The ``metrics.jsonl`` lines of the last checkpoint (``null`` read as NaN)."""
        assert self.out is not None
        path = self.out / METRICS_FILE
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        try:
            return [_nan_for_null(json.loads(line)) for line in lines if line.strip()]
        except json.JSONDecodeError as err:
            raise ValueError(f"{str(path)!r} is not JSON lines: {err}") from err

    def commit(self, snap: Snapshot) -> None:
        """Write the checkpoint after an episode: buffer, checkpoints, loop state, metrics and
        ``state.json``, atomically as a whole (see the module docstring).

        Raises:
            RunOutputError: a file could not be written; what the directory held before is
                kept and no temporary file is left.
        """
        generation = (self.committed.generation if self.committed else 0) + 1
        if self.out is None:
            self.committed = _committed(snap, generation, ())
            return
        out, tag = self.out, f"{_NEXT}{generation}"
        staged: dict[str, str] = {}
        state_written = False

        def stage(name: str, write: Callable[[Path], None]) -> None:
            staged[name + tag] = name
            with self._writing(out / name):
                write(out / (name + tag))

        try:
            stage(BUFFER_FILE, snap.collected.buffer.save)
            for name, model in snap.checkpoints.items():
                stage(name, lambda p, m=model: atomic_write(p, _checkpoint_writer(m, snap.meta)))
            if snap.loop_state is not None:
                stage(LOOP_STATE_FILE, lambda p: atomic_torch_save(dict(snap.loop_state), p))
            lines = "".join(dumps_json(r.to_json()) + "\n" for r in snap.records)
            stage(METRICS_FILE, lambda p: atomic_write_text(p, lines))  # renamed last
            committed = _committed(snap, generation, tuple(staged.values()))
            state = {
                "format": _STATE_FORMAT,
                "version": 1,
                **dataclasses.asdict(committed),
                "rng": dict(snap.rng),
                "pending": staged,
            }
            with signals_deferred():  # the commit and its renames are never cut in half
                self._write_text(out / STATE_FILE, dumps_json(state, indent=2))
                state_written = True
                for src, dst in staged.items():
                    with self._writing(out / dst):
                        os.replace(out / src, out / dst)
                fsync_dir(out)
            self.committed = committed
        except BaseException:
            # Committed once state.json names this generation (it may be in place even when
            # writing it raised, e.g. syncing the directory after the rename): then the staged
            # files are part of the run and recover() finishes their renames.
            if state_written or self._generation_on_disk() == generation:
                self.committed = committed
            else:
                for src in staged:
                    remove_temporaries(out / src)
            raise

    def _generation_on_disk(self) -> int | None:
        try:
            return int(json.loads((self.out / STATE_FILE).read_text())["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Write ``summary.json``: the run is finished."""
        if self.out is not None:
            self._write_text(self.out / SUMMARY_FILE, dumps_json(summary, indent=2))

    def _write_text(self, path: Path, text: str) -> None:
        with self._writing(path):
            atomic_write_text(path, text)

    @contextlib.contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        try:
            yield
        except RunOutputError:
            raise
        except OSError as err:
            code = errno.errorcode.get(err.errno or 0, type(err).__name__)
            raise RunOutputError(
                err.errno, f"cannot write {path}: {err.strerror or err} [{code}]"
            ) from err

    @contextlib.contextmanager
    def guard(self, collected: Callable[[], Collected | None]) -> Iterator[None]:
        """Run the block with SIGTERM raising :class:`Terminated`; if anything escapes it,
        make sure the data collected so far is on disk first, and add a note naming where.

        With ``out``: what the last checkpoint holds is already there; data beyond it (an
        unfinished episode) is saved to ``out/buffer-interrupted.pt``. Without ``out``, or
        when writing to ``out`` failed (:class:`RunOutputError`): the buffer is saved to a new
        temporary directory.

        Args:
            collected: the data in memory, or None while nothing was collected.
        """
        try:
            with sigterm_raises():
                yield
        except BaseException as err:
            note = self._rescue(collected(), isinstance(err, RunOutputError))
            if note:
                add_note(err, note)
            raise

    def _rescue(self, what: Collected | None, output_failed: bool) -> str | None:
        committed, out = self.committed, self.out
        resumable = committed.describe(out) if out is not None and committed is not None else None
        if what is None or what.count == 0:
            return resumable
        keep_in_out = out is not None and not output_failed
        if keep_in_out and committed is not None and what.added == committed.added:
            saved = f"the {what.describe()} collected so far were saved to {out / BUFFER_FILE}"
        else:
            try:
                if keep_in_out:
                    target = out / INTERRUPTED_BUFFER_FILE
                else:
                    target = Path(tempfile.mkdtemp(prefix="mbrl-crash-")) / BUFFER_FILE
                what.buffer.save(target)
                saved = f"the {what.describe()} collected so far were saved to {target}"
            except (OSError, RuntimeError) as err:
                saved = f"the {what.describe()} collected so far could not be saved ({err})"
        return f"{saved}; {resumable}" if resumable else saved


def _checkpoint_writer(model: torch.nn.Module, meta: Mapping[str, Any]) -> Callable[[Path], None]:
    return lambda path: save_checkpoint(path, model, dict(meta))


def _committed(snap: Snapshot, generation: int, files: tuple[str, ...]) -> Committed:
    return Committed(
        generation,
        snap.next_episode,
        snap.total_episodes,
        snap.seed_episodes,
        snap.collected.count,
        snap.collected.unit,
        snap.collected.added,
        files,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ValueError(f"{str(path)!r} does not exist") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from err


def _nan_for_null(value: Any) -> Any:
    if value is None:
        return float("nan")
    if isinstance(value, dict):
        return {k: _nan_for_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return value
