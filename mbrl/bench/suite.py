"""Benchmark suites: grids of envs x models x planners x seeds, defined in small TOML files.

A suite file (TOML; YAML too when PyYAML is installed) looks like::

    name = "smoke"
    description = "what it is for"
    seeds = [0, 1]                      # default seeds of every grid
    threads = 1                         # torch threads per cell (default 1)

    [defaults]                          # RunConfig fields for every cell
    episodes = 3
    max_episode_steps = 100
    fit = { max_steps = 400 }           # FitConfig fields

    [planner_options.cem]               # options for cells whose planner is "cem"
    population = 100

    [model_options.ensemble]            # options for cells whose model is "ensemble"
    hidden_size = 128

    [[grid]]                            # one block of the grid; a suite has one or more
    envs = ["Pendulum-v1"]
    models = ["ensemble"]
    planners = ["cem", "mppi"]
    seeds = [0, 1, 2]                   # optional: overrides the suite's seeds
    tag = "long"                        # optional: variant label, part of the cell id
    episodes = 10                       # optional: any RunConfig field, over [defaults]
    [grid.planner_options.cem]          # optional: over the suite's [planner_options.cem]
    iterations = 5

Precedence for one cell: RunConfig defaults < the env's preset (only with
``use_preset = true``, the RunConfig default) < ``[defaults]`` < ``[planner_options.P]`` /
``[model_options.M]`` < the grid's fields < the grid's option tables.

:func:`load_suite` parses a shipped suite by name (``smoke``, ``standard``; see
:func:`suite_names`) or a file path, expands the grid and validates every cell before anything
runs (:func:`validate_suite`): each distinct cell is set up once by the run's own set-up
(:func:`mbrl.agents.setup.build_run` with ``dry=True``), so a cell passes exactly when its run
would start. :func:`run_suite` runs the cells on an
executor, resumably, and writes ``summary.csv``.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mbrl.agents.setup import EnvInfo, build_run, run_model_names
from mbrl.bench.cells import (
    OVERRIDABLE,
    RUNS_DIR,
    SUMMARY_COLUMNS,
    CellOutcome,
    CellSpec,
    CheckpointedCell,
    cell_paths,
    is_finished,
    read_done,
    read_episodes,
    run_cell,
    write_outcome,
)
from mbrl.bench.executors import Executor, ExecutorError
from mbrl.bench.watch import EpisodeProgress
from mbrl.planners.registry import planner_names

SUITE_KEYS = frozenset(
    {
        "name",
        "description",
        "seeds",
        "threads",
        "defaults",
        "planner_options",
        "model_options",
        "grid",
    }
)
"""Top-level keys a suite file may have."""
GRID_AXES = frozenset({"envs", "models", "planners", "seeds", "tag"})
"""Keys of a ``[[grid]]`` block besides run settings and option tables."""
_OPTION_TABLES = ("planner_options", "model_options")


@dataclass(frozen=True)
class Suite:
    """An expanded suite.

    Attributes:
        name: suite name (the file's ``name``, or its stem).
        description: free text.
        source: where it was read from (path string).
        cells: every cell, in grid order (env, model, planner, seed nested in that order).
    """

    name: str
    description: str
    source: str
    cells: tuple[CellSpec, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """JSON object stored as ``suite.json`` in the results directory."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "cells": [c.to_json() for c in self.cells],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Suite:
        """Inverse of :meth:`to_json` (no validation)."""
        return cls(
            data["name"],
            data.get("description", ""),
            data.get("source", ""),
            tuple(CellSpec.from_json(c) for c in data["cells"]),
        )


# ------------------------------------------------------------------------------ loading
def _suites_dir() -> Any:
    return resources.files("mbrl.bench").joinpath("suites")


def suite_names() -> list[str]:
    """Names of the suites shipped with mbrl (``mbrl/bench/suites/*.toml``)."""
    return sorted(
        p.name.removesuffix(".toml") for p in _suites_dir().iterdir() if p.name.endswith(".toml")
    )


def _load_toml(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError as err:
            raise ValueError(
                "reading TOML suite files on Python 3.10 needs the 'tomli' package "
                "(pip install tomli)"
            ) from err
    return tomllib.loads(text)


def read_suite_file(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """The raw table of a suite and where it came from.

    ``name_or_path`` is a shipped suite name (:func:`suite_names`) or a path to a ``.toml``
    (or, with PyYAML installed, ``.yaml``/``.yml``) file.

    Raises:
        ValueError: unknown name, missing file, unsupported extension or a syntax error
            (naming the file).
    """
    text_path = Path(name_or_path)
    if text_path.suffix == "" and str(name_or_path) in suite_names():
        res = _suites_dir().joinpath(f"{name_or_path}.toml")
        return _parse_text(res.read_text(), ".toml", str(res)), str(res)
    if not text_path.exists():
        raise ValueError(
            f"suite {str(name_or_path)!r} is neither a shipped suite {suite_names()} nor an "
            "existing file"
        )
    return _parse_text(text_path.read_text(), text_path.suffix, str(text_path)), str(text_path)


def _parse_text(text: str, suffix: str, source: str) -> dict[str, Any]:
    if suffix == ".toml":
        loads = _load_toml
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError as err:
            raise ValueError(
                f"suite file {source}: YAML suites need PyYAML (pip install pyyaml); "
                "or write it as TOML"
            ) from err
        loads = yaml.safe_load
    else:
        raise ValueError(f"suite file {source}: expected a .toml or .yaml file")
    try:
        data = loads(text)
    except Exception as err:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise ValueError(f"suite file {source}: cannot parse it: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"suite file {source}: expected a table at the top level")
    return data


def _as_str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a non-empty list of names, got {value!r}")
    return value


def _as_seed_list(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{where} must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{where} has repeated seeds: {value}")
    return value


def _check_run_keys(table: Mapping[str, Any], where: str, extra: frozenset[str]) -> None:
    allowed = set(OVERRIDABLE) | set(extra)
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {unknown}; run settings are {sorted(OVERRIDABLE)}"
            + (f", plus {sorted(extra)}" if extra else "")
        )


def _option_tables(table: Mapping[str, Any], where: str) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for key in _OPTION_TABLES:
        per_name = table.get(key, {})
        if not isinstance(per_name, Mapping) or not all(
            isinstance(v, Mapping) for v in per_name.values()
        ):
            kind = key.split("_")[0]
            raise ValueError(
                f"{where}: {key} must hold one table per {kind} name, e.g. "
                f"[{key}.NAME] (got {per_name!r})"
            )
        known = planner_names() if key == "planner_options" else run_model_names()
        for name in per_name:
            if name not in known:
                kind = key.split("_")[0]
                raise ValueError(
                    f"{where}: [{key}.{name}]: unknown {kind} {name!r}; choose one of {known}"
                )
        out[key] = {k: dict(v) for k, v in per_name.items()}
    return out


def parse_suite(data: Mapping[str, Any], source: str = "<suite>") -> Suite:
    """Expand a suite table into cells, checking its structure and the model/planner names.

    Env ids and option values are checked by :func:`validate_suite`.

    Raises:
        ValueError: naming ``source``, the grid block and the bad key or name.
    """
    where = f"suite file {source}"
    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown top-level key(s) {unknown}; valid: {sorted(SUITE_KEYS)}"
        )
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: name must be a non-empty string, got {name!r}")
    threads = data.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"{where}: threads must be an integer >= 1, got {threads!r}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise ValueError(f"{where}: [defaults] must be a table")
    for key in _OPTION_TABLES:
        if key in defaults:
            raise ValueError(
                f"{where}: put {key} in [{key}.NAME] tables (one per name), not in [defaults]"
            )
    _check_run_keys(defaults, f"{where}: [defaults]", frozenset())
    suite_opts = _option_tables(data, where)
    suite_seeds = _as_seed_list(data["seeds"], f"{where}: seeds") if "seeds" in data else None
    grids = data.get("grid")
    if not isinstance(grids, list) or not grids or not all(isinstance(g, Mapping) for g in grids):
        raise ValueError(f"{where}: needs at least one [[grid]] block")

    cells: list[CellSpec] = []
    origin: dict[str, str] = {}
    for gi, grid in enumerate(grids, start=1):
        gwhere = f"{where}: grid {gi}"
        _check_run_keys(
            {k: v for k, v in grid.items() if k not in _OPTION_TABLES},
            gwhere,
            GRID_AXES,
        )
        for axis in ("envs", "models", "planners"):
            if axis not in grid:
                raise ValueError(f"{gwhere}: missing {axis!r}")
        envs = _as_str_list(grid["envs"], f"{gwhere}: envs")
        models = _as_str_list(grid["models"], f"{gwhere}: models")
        planners = _as_str_list(grid["planners"], f"{gwhere}: planners")
        for m in models:
            if m not in run_model_names():
                raise ValueError(
                    f"{gwhere}: unknown model {m!r}; choose one of {run_model_names()}"
                )
        for p in planners:
            if p not in planner_names():
                raise ValueError(
                    f"{gwhere}: unknown planner {p!r}; choose one of {planner_names()}"
                )
        if "seeds" in grid:
            seeds = _as_seed_list(grid["seeds"], f"{gwhere}: seeds")
        elif suite_seeds is not None:
            seeds = suite_seeds
        else:
            raise ValueError(f"{gwhere}: no seeds (set seeds in the grid or at the top level)")
        tag = grid.get("tag", "")
        if not isinstance(tag, str):
            raise ValueError(f"{gwhere}: tag must be a string, got {tag!r}")
        grid_opts = _option_tables(grid, gwhere)
        plain = {k: v for k, v in grid.items() if k not in GRID_AXES and k not in _OPTION_TABLES}
        for env_id, model, planner, seed in itertools.product(envs, models, planners, seeds):
            overrides: dict[str, Any] = {**dict(defaults), **plain}
            if "fit" in defaults and "fit" in plain:
                overrides["fit"] = {**dict(defaults["fit"]), **dict(plain["fit"])}
            overrides["planner_options"] = {
                **suite_opts["planner_options"].get(planner, {}),
                **grid_opts["planner_options"].get(planner, {}),
            }
            overrides["model_options"] = {
                **suite_opts["model_options"].get(model, {}),
                **grid_opts["model_options"].get(model, {}),
            }
            spec = CellSpec(env_id, model, planner, seed, tag, overrides, threads)
            if spec.cell_id in origin:
                raise ValueError(
                    f"{gwhere}: cell {spec.cell_id} is already defined by {origin[spec.cell_id]}; "
                    "give one of the blocks a distinct tag"
                )
            origin[spec.cell_id] = f"grid {gi}"
            cells.append(spec)
    description = data.get("description", "")
    return Suite(name, str(description), source, tuple(cells))


# --------------------------------------------------------------------------- validation
def check_cell(
    spec: CellSpec, env_cache: dict[str, EnvInfo] | None = None, check_device: bool = True
) -> None:
    """Set ``spec``'s run up without running it: :func:`mbrl.agents.setup.build_run` with
    ``dry=True`` (on CPU, no env kept), the same set-up :func:`mbrl.agents.loop.run` uses, so
    a cell passes exactly when its run would start.

    Args:
        spec: the cell.
        env_cache: env id -> :class:`~mbrl.agents.setup.EnvInfo`, shared across cells.
        check_device: also check that the cell's device exists on this machine.

    Raises:
        ValueError / TypeError: whatever the run's set-up raises (unknown env, model, planner
            or option; a planner that cannot act in the env's action space; a value or policy
            the planner cannot use; a bad device), with the same message.
    """
    build_run(spec.run_config(), dry=True, check_device=check_device, env_cache=env_cache)


def validate_suite(suite: Suite, check_device: bool = True) -> None:
    """Check every cell of ``suite`` with :func:`check_cell` (each distinct setting once).

    Raises:
        ValueError: ``suite file SOURCE: cell CELL_ID: <reason>`` for the first bad cell.
    """
    env_cache: dict[str, Any] = {}
    seen: set[str] = set()
    for spec in suite.cells:
        key = json.dumps({**spec.to_json(), "seed": 0}, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            check_cell(spec, env_cache, check_device)
        except (ValueError, TypeError) as err:
            raise ValueError(f"suite file {suite.source}: cell {spec.cell_id}: {err}") from err
        except Exception as err:  # an env or model constructor failing in its own way
            raise ValueError(
                f"suite file {suite.source}: cell {spec.cell_id}: setting it up failed: "
                f"{type(err).__name__}: {err}"
            ) from err


def load_suite(name_or_path: str | Path, validate: bool = True, check_device: bool = True) -> Suite:
    """Read, expand and (by default) validate a suite: a shipped name or a file path.

    Raises:
        ValueError: bad file, structure, name or option, naming the file and the cell.
    """
    data, source = read_suite_file(name_or_path)
    suite = parse_suite(data, source)
    if validate:
        validate_suite(suite, check_device)
    return suite


# ------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class SuiteRunSummary:
    """What :func:`run_suite` did.

    Attributes:
        out_dir: results directory; rows: ``summary.csv`` rows in cell order (cells not yet
        run are absent); ran / skipped / failed: cell ids run now, skipped as finished, and
        failed (now).
    """

    out_dir: Path
    rows: list[dict[str, Any]]
    ran: list[str]
    skipped: list[str]
    failed: list[str]


def summary_rows(out_dir: str | Path, suite: Suite) -> list[dict[str, Any]]:
    """Rows of every cell of ``suite`` with a done marker in ``out_dir``, in suite order."""
    rows = []
    for spec in suite.cells:
        done = read_done(out_dir, spec.cell_id)
        if done is not None and "row" in done:
            rows.append(done["row"])
    return rows


def write_summary(out_dir: str | Path, suite: Suite) -> list[dict[str, Any]]:
    """(Re)write ``summary.csv`` and ``results.jsonl`` from the stored cells; returns the rows."""
    out = Path(out_dir)
    rows = summary_rows(out, suite)
    tmp = out / "summary.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(SUMMARY_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: (f"{v:.6g}" if isinstance(v, float) and not math.isnan(v) else v)
                    for k, v in row.items()
                }
            )
    tmp.replace(out / "summary.csv")
    with (out / "results.jsonl.tmp").open("w") as fh:
        for spec in suite.cells:
            for ep in read_episodes(out, spec.cell_id):
                fh.write(json.dumps(ep) + "\n")
    (out / "results.jsonl.tmp").replace(out / "results.jsonl")
    return rows


def _cell_line(outcome: CellOutcome, out_dir: Path) -> str:
    row = outcome.summary_row()
    head = f"{row['env']} {row['model']} {row['planner']}{' ' + row['tag'] if row['tag'] else ''} seed {row['seed']}"
    if outcome.status == "ok":
        return (
            f"[ok]     {head}: last-3 return {row['last3_mean_return']:.2f}, "
            f"plan {row['mean_plan_ms']:.1f} ms/step, {row['wall_s']:.0f} s"
        )
    _, done_path = cell_paths(out_dir, outcome.spec.cell_id)
    return f"[FAILED] {head}: {row['error']} (traceback in {done_path})"


def _failure_outcome(spec: CellSpec, err: BaseException) -> CellOutcome:
    import traceback

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    line = f"executor error: {type(err).__name__}: {err}".splitlines()[0]
    return CellOutcome(spec, "failed", [], math.nan, "", f"executor error: {text}", line)


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    executor: Executor,
    *,
    progress: bool = True,
    cell_fn: Callable[[CellSpec], CellOutcome] | None = None,
) -> SuiteRunSummary:
    """Run every unfinished cell of ``suite`` on ``executor``; store results under ``out_dir``.

    Finished cells (status ok, same settings) are skipped; failed and missing ones run. Each
    outcome is written as soon as it arrives (``cells/<id>.jsonl`` + ``cells/<id>.json``),
    then ``summary.csv`` and ``results.jsonl`` are rewritten. A failed cell is recorded with its
    traceback; the rest of the grid still runs.

    Args:
        suite: a validated suite (see :func:`load_suite`).
        out_dir: results directory (created).
        executor: where cells run (:mod:`mbrl.bench.executors`).
        progress: show a progress bar over cells and one line per finished cell.
        cell_fn: the function run per cell (default: :func:`run_cell`, checkpointed in
            ``out_dir/runs/<cell_id>/`` when the executor shares this machine's disk, so a
            cell's episodes appear in its ``metrics.jsonl`` as they finish and an
            interrupted suite resumes its unfinished cells; see :mod:`mbrl.bench.cells`).
    """
    out = Path(out_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "suite.json").write_text(json.dumps(suite.to_json(), indent=1, default=str))
    skipped = [s.cell_id for s in suite.cells if is_finished(out, s)]
    finished = set(skipped)
    pending = [s for s in suite.cells if s.cell_id not in finished]
    if cell_fn is None:
        cell_fn = CheckpointedCell(str(out / RUNS_DIR)) if executor.shares_disk else run_cell
    say = (lambda msg: tqdm.write(msg, file=sys.stdout)) if progress else (lambda msg: None)
    say(
        f"suite {suite.name}: {len(suite.cells)} cells, {len(skipped)} finished (skipped), "
        f"running {len(pending)} on {executor.describe()}"
    )
    ran: list[str] = []
    failed: list[str] = []
    start = time.perf_counter()
    bar = tqdm(
        total=len(suite.cells),
        initial=len(skipped),
        desc=f"{suite.name} cells",
        unit="cell",
        disable=not progress,
        file=sys.stdout,
    )
    watch = EpisodeProgress(
        out / RUNS_DIR,
        pending,
        disable=not (progress and isinstance(cell_fn, CheckpointedCell)),
    )
    try:
        with watch:
            for index, result in executor.map_unordered(cell_fn, pending):
                spec = pending[index]
                outcome = (
                    result
                    if isinstance(result, CellOutcome)
                    else _failure_outcome(
                        spec,
                        result
                        if isinstance(result, BaseException)
                        else ExecutorError(repr(result)),
                    )
                )
                write_outcome(out, outcome)
                ran.append(spec.cell_id)
                if outcome.status != "ok":
                    failed.append(spec.cell_id)
                say(_cell_line(outcome, out))
                bar.update(1)
                bar.set_postfix(failed=len(failed))
                write_summary(out, suite)
    finally:
        bar.close()
    rows = write_summary(out, suite)
    say(
        f"suite {suite.name}: ran {len(ran)} cells in {time.perf_counter() - start:.0f} s "
        f"({len(failed)} failed); results in {out}"
    )
    return SuiteRunSummary(out, rows, ran, skipped, failed)


__all__ = [
    "GRID_AXES",
    "SUITE_KEYS",
    "Suite",
    "SuiteRunSummary",
    "check_cell",
    "load_suite",
    "parse_suite",
    "read_suite_file",
    "run_suite",
    "suite_names",
    "summary_rows",
    "validate_suite",
    "write_summary",
]
