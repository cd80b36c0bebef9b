"""One benchmark cell: a :class:`~mbrl.agents.loop.RunConfig` run in isolation, and its records.

A cell is the unit the suite runner hands to an executor (local process pool, Ray, inline):
:func:`run_cell` takes a :class:`CellSpec`, runs :func:`mbrl.agents.loop.run` with its own seed
and a fixed number of torch threads, and returns a :class:`CellOutcome` (never raises for a
failing run: the traceback is recorded). The same function runs on every executor, so the same
spec gives the same numbers wherever it runs.

The driver stores each outcome (:func:`write_outcome`) as ``cells/<cell_id>.jsonl`` (one JSON
object per episode) and ``cells/<cell_id>.json`` (the summary row, written last: the marker
that the cell finished). Workers never write files, so a Ray cluster needs no shared disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mbrl.agents.loop import RunConfig, run
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


def run_cell(spec: CellSpec) -> CellOutcome:
    """Run one cell with ``spec.threads`` torch threads; a failing run is recorded, not raised.

    The global thread count is restored afterwards, so running cells inline in the driver
    gives the same numbers as running them in worker processes.
    """
    previous = torch.get_num_threads()
    start = time.perf_counter()
    host = socket.gethostname()
    torch.set_num_threads(spec.threads)
    try:
        result = run(spec.run_config())
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
    episodes = [{**axes, **_json_safe(rec.to_json())} for rec in result.records]
    options = dict(result.config.planner_options)
    return CellOutcome(
        spec, "ok", episodes, time.perf_counter() - start, host, planner_options=options
    )


def _json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats (e.g. the validation loss before the first fit) become ``None``
    (JSON ``null``), so the lines are strict JSON."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def init_worker(threads: int) -> None:
    """Process-pool initialiser: pin OpenMP/torch to ``threads`` threads in the worker."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


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
