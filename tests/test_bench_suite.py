"""Benchmark suites: loading and validation, resumable runs, failed cells, the speed bench."""

from __future__ import annotations

import csv
import json
import math
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import mbrl.agents.loop as loop_module
import mbrl.bench.cells as cells_module
from mbrl.bench.cells import SUMMARY_COLUMNS, CellSpec, cell_id_for, run_cell
from mbrl.bench.executors import InlineExecutor
from mbrl.bench.speed import (
    SpeedShape,
    model_rollout_speed,
    planner_latency_ms,
    speed_report,
)
from mbrl.bench.suite import Suite, load_suite, parse_suite, run_suite, suite_names, validate_suite
from mbrl.cli import main as cli_main
from mbrl.models.registry import model_names
from mbrl.planners.registry import planner_names

TINY_SUITE = """
name = "tiny"
seeds = [0, 1]

[defaults]
use_preset = false
seed_episodes = 1
episodes = 2
max_episode_steps = 8
min_seed_transitions = 1
horizon = 3
n_particles = 2
fit = {{ max_steps = 20, eval_every = 10 }}

[model_options.ensemble]
ensemble_size = 2
hidden_size = 16
num_layers = 1

[planner_options.cem]
population = 16
iterations = 1

[planner_options.shooting]
population = 16

[[grid]]
envs = [{envs}]
models = ["ensemble"]
planners = [{planners}]
{extra}
"""

CRASHY_MODULE = '''
"""A Pendulum that raises on its 5th step (a cell that crashes mid-run)."""
import gymnasium as gym
from gymnasium.envs.classic_control.pendulum import PendulumEnv


class CrashyPendulum(PendulumEnv):
    def reset(self, **kwargs):
        self._n = 0
        return super().reset(**kwargs)

    def step(self, action):
        self._n += 1
        if self._n >= 5:
            raise RuntimeError("boom: the simulator crashed")
        return super().step(action)


if "CrashyPendulum-v0" not in gym.registry:
    gym.register("CrashyPendulum-v0", entry_point=CrashyPendulum, max_episode_steps=200)
'''


def write_suite(tmp_path, envs='"Pendulum-v1"', planners='"cem", "shooting"', extra=""):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE.format(envs=envs, planners=planners, extra=extra))
    return path


@pytest.fixture
def crashy_env(tmp_path, monkeypatch):
    """An importable module ``crashy_env_mod`` registering ``CrashyPendulum-v0``."""
    (tmp_path / "crashy_env_mod.py").write_text(CRASHY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "crashy_env_mod:CrashyPendulum-v0"


class CountingCells:
    """A cell function that records which cells ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, spec: CellSpec):
        self.calls.append(spec.cell_id)
        return run_cell(spec)


# ------------------------------------------------------------------------- shipped suites
def test_shipped_suites_load_validate_and_name_registered_things():
    assert {"smoke", "standard"} <= set(suite_names())
    smoke = load_suite("smoke")
    standard = load_suite("standard")  # validates every cell: envs, models, planners, options
    for suite in (smoke, standard):
        assert suite.cells and len({c.cell_id for c in suite.cells}) == len(suite.cells)
        assert {c.model for c in suite.cells} <= set(model_names())
        assert {c.planner for c in suite.cells} <= set(planner_names())
    envs = {c.env_id for c in standard.cells}
    assert {
        "Pendulum-v1",
        "MountainCarContinuous-v0",
        "CartPole-v1",
        "InvertedPendulum-v5",
        "HalfCheetah-v5",
        "mbrl/AwakeSteering-v0",
    } <= envs
    assert {"Pendulum-v1", "mbrl/AwakeSteering-v0"} <= {c.env_id for c in smoke.cells}
    assert {"cem", "mppi", "shooting", "ilqr"} <= {c.planner for c in smoke.cells}
    assert {c.seed for c in smoke.cells} == {0, 1}


def test_precedence_of_defaults_options_and_grid_settings():
    suite = parse_suite(
        {
            "seeds": [3],
            "defaults": {"episodes": 2, "horizon": 7, "fit": {"max_steps": 30, "lr": 0.01}},
            "planner_options": {"cem": {"population": 50, "iterations": 2}},
            "grid": [
                {
                    "envs": ["Pendulum-v1"],
                    "models": ["ensemble"],
                    "planners": ["cem", "mppi"],
                    "horizon": 9,
                    "fit": {"max_steps": 40},
                    "tag": "long",
                    "planner_options": {"cem": {"iterations": 5}},
                }
            ],
        },
        "inline.toml",
    )
    cem, mppi = suite.cells
    assert cem.cell_id == "Pendulum-v1__ensemble__cem__long__s3"
    cfg = cem.run_config()
    assert (cfg.episodes, cfg.horizon, cfg.seed, cfg.progress) == (2, 9, 3, False)
    assert cfg.planner_options == {"population": 50, "iterations": 5}
    assert (cfg.fit.max_steps, cfg.fit.lr) == (40, 0.01)
    assert mppi.run_config().planner_options == {}
    assert cell_id_for("mbrl/AwakeSteering-v0", "m", "p", 1) == "mbrl-AwakeSteering-v0__m__p__s1"


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("envs", "planners", "extra", "message"),
    [
        ('"Pendulum-v9"', '"cem"', "", "unknown gymnasium env id 'Pendulum-v9'"),
        ('"Pendulum-v1"', '"cme"', "", "unknown planner 'cme'"),
        ('"Pendulum-v1"', '"cem"', 'models = ["ensembel"]', "unknown model 'ensembel'"),
        ('"Pendulum-v1"', '"cem"', "[grid.planner_options.cem]\npopulaton = 3", "populaton"),
        ('"Pendulum-v1"', '"cem"', "horizn = 3", "unknown key(s) ['horizn']"),
        ('"Pendulum-v1"', '"cem"', "[grid.model_options.ensemble]\nnum_layers = 0", "num_layers"),
        ('"CartPole-v1"', '"cem"', "", "Discrete"),
    ],
)
def test_bad_suite_fails_before_any_cell_starts(tmp_path, capsys, envs, planners, extra, message):
    text = TINY_SUITE.format(envs=envs, planners=planners, extra="")
    if extra.startswith("models"):
        text = text.replace('models = ["ensemble"]', extra)
    else:
        text += extra + "\n"
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.toml") as info:
        load_suite(path)
    assert message in str(info.value)
    out = tmp_path / "out"
    rc = cli_main(["bench", "--suite", str(path), "--out", str(out), "--executor", "inline"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "bad.toml" in err
    assert not out.exists()  # nothing ran, nothing written


@pytest.mark.parametrize(
    ("model", "overrides"),
    [
        ("ensemble", {"value": "learned", "gamma": 0.99}),  # cem uses no value
        ("ensemble", {"policy": "learned"}),  # cem rolls out no policy
        ("ensemble", {"value": "learned", "planner": "mcts"}),  # mcts, but gamma = 1
        ("rssm", {"gamma": 0.9}),  # the PlaNet loop plans undiscounted
        ("rssm", {"model_options": {"chunk_length": 500}}),  # longer than an episode
    ],
)
def test_suite_check_rejects_what_run_rejects_with_the_same_message(model, overrides):
    from mbrl.agents import run
    from mbrl.bench.suite import check_cell

    overrides = {"episodes": 1, "max_episode_steps": 8, "progress": False, **overrides}
    planner = overrides.pop("planner", "cem")
    spec = CellSpec("Pendulum-v1", model, planner, 0, overrides=overrides)
    with pytest.raises(ValueError) as from_run:
        run(spec.run_config())
    with pytest.raises(ValueError) as from_check:
        check_cell(spec)
    assert str(from_check.value) == str(from_run.value)
    suite = Suite("s", "", "s.toml", (spec,))
    with pytest.raises(ValueError, match="s.toml: cell") as from_suite:
        validate_suite(suite)
    assert str(from_run.value) in str(from_suite.value)


def test_rssm_cells_validate_and_run_through_the_suite(tmp_path):
    from mbrl.bench.cells import run_cell

    rssm = {
        "deter_size": 8, "stoch_size": 2, "hidden_size": 8, "embed_size": 4, "action_repeat": 4,
        "train_steps": 1, "batch_size": 2, "chunk_length": 4, "eval_context": 2,
        "eval_horizon": 2,
    }  # fmt: skip
    suite = parse_suite(
        {
            "seeds": [0],
            "defaults": {"episodes": 1, "seed_episodes": 1, "max_episode_steps": 6, "horizon": 2},
            "model_options": {"rssm": rssm},
            "planner_options": {"cem": {"population": 8, "iterations": 1}},
            "grid": [{"envs": ["mbrl/PendulumNoVel-v0"], "models": ["rssm"], "planners": ["cem"]}],
        }
    )
    validate_suite(suite)
    outcome = run_cell(suite.cells[0])
    assert outcome.status == "ok", outcome.error
    row = outcome.summary_row()
    assert row["episodes"] == 1 and row["env_steps"] == 48 and math.isnan(row["final_val_loss"])
    # The done marker records the planner options the run resolved to.
    assert outcome.to_json()["planner_options"]["population"] == 8


def test_bad_suite_structure_is_named(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        parse_suite({"seeds": [0]}, "x.toml")
    with pytest.raises(ValueError, match="unknown top-level key"):
        parse_suite({"seed": [0], "grid": []}, "x.toml")
    grid = {"envs": ["Pendulum-v1"], "models": ["ensemble"], "planners": ["cem"]}
    with pytest.raises(ValueError, match="no seeds"):
        parse_suite({"grid": [grid]}, "x.toml")
    with pytest.raises(ValueError, match="already defined"):
        parse_suite({"seeds": [0], "grid": [grid, grid]}, "x.toml")
    with pytest.raises(ValueError, match="not in \\[defaults\\]"):
        parse_suite({"seeds": [0], "defaults": {"planner_options": {}}, "grid": [grid]}, "x.toml")
    with pytest.raises(ValueError, match="neither a shipped suite"):
        load_suite(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("grid = [")
    with pytest.raises(ValueError, match="broken.toml: cannot parse"):
        load_suite(tmp_path / "broken.toml")


# ------------------------------------------------------------------- running and resuming
def test_run_writes_jsonl_and_summary_and_resume_skips_finished(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    out = tmp_path / "out"
    first = CountingCells()
    summary = run_suite(suite, out, InlineExecutor(), progress=False, cell_fn=first)
    assert sorted(first.calls) == sorted(c.cell_id for c in suite.cells) and not summary.failed

    with (out / "summary.csv").open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == SUMMARY_COLUMNS
    assert [r["cell_id"] for r in rows] == [c.cell_id for c in suite.cells]
    assert all(r["status"] == "ok" and r["episodes"] == "2" for r in rows)
    assert all(r["env_steps"] == "24" for r in rows)  # 3 episodes x 8 steps
    lines = (out / "cells" / f"{suite.cells[0].cell_id}.jsonl").read_text().splitlines()
    eps = [json.loads(line) for line in lines]  # strict JSON: no NaN
    assert [e["kind"] for e in eps] == ["seed", "mpc", "mpc"]
    assert [e["env_steps"] for e in eps] == [8, 16, 24]
    assert eps[0]["model_val_loss"] is None and eps[1]["plan_ms"] > 0
    assert {"return", "steps", "plan_ms", "model_val_loss", "env_steps"} <= set(eps[1])
    assert len((out / "results.jsonl").read_text().splitlines()) == 3 * len(suite.cells)

    again = CountingCells()
    summary = run_suite(suite, out, InlineExecutor(), progress=False, cell_fn=again)
    assert again.calls == [] and len(summary.skipped) == len(suite.cells)

    # A removed result and a changed setting make exactly those cells run again.
    (out / "cells" / f"{suite.cells[1].cell_id}.json").unlink()
    edited = load_suite(write_suite(tmp_path, planners='"cem", "shooting"', extra="episodes = 1"))
    third = CountingCells()
    run_suite(edited, out, InlineExecutor(), progress=False, cell_fn=third)
    assert sorted(third.calls) == sorted(c.cell_id for c in edited.cells)
    partial = CountingCells()
    (out / "cells" / f"{edited.cells[2].cell_id}.json").unlink()
    run_suite(edited, out, InlineExecutor(), progress=False, cell_fn=partial)
    assert partial.calls == [edited.cells[2].cell_id]


def _returns_of(out, cell_id: str) -> list[float]:
    lines = (out / "cells" / f"{cell_id}.jsonl").read_text().splitlines()
    return [json.loads(line)["return"] for line in lines]


class _Calls:
    """Wraps ``mbrl.bench.cells``' ``run`` and ``resume``, recording which one ran."""

    def __init__(self, monkeypatch) -> None:
        self.names: list[str] = []
        for name in ("run", "resume"):
            real = getattr(cells_module, name)

            def wrapped(*args, _real=real, _name=name, **kwargs):
                self.names.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(cells_module, name, wrapped)


def test_an_interrupted_suite_resumes_its_cell_from_the_last_finished_episode(
    tmp_path, monkeypatch
):
    suite = load_suite(write_suite(tmp_path, planners='"cem"', extra="seeds = [0]"))
    (cell,) = suite.cells
    reference = run_cell(cell)  # no run directory
    out = tmp_path / "out"
    fits = {"n": 0}
    real_fit = loop_module.fit

    def fit(*args, **kwargs):  # Ctrl-C before the second MPC episode
        fits["n"] += 1
        if fits["n"] == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop_module, "fit", fit)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, InlineExecutor(), progress=False)
    monkeypatch.setattr(loop_module, "fit", real_fit)
    run_dir = out / "runs" / cell.cell_id
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2  # seed + 1st MPC
    assert not (out / "cells" / f"{cell.cell_id}.json").exists()

    calls = _Calls(monkeypatch)
    summary = run_suite(suite, out, InlineExecutor(), progress=False)
    assert calls.names == ["resume"] and summary.ran == [cell.cell_id] and not summary.failed
    assert _returns_of(out, cell.cell_id) == [e["return"] for e in reference.episodes]

    # A cell that finished but whose outcome was lost is read back, not run again.
    (out / "cells" / f"{cell.cell_id}.json").unlink()
    calls.names.clear()
    run_suite(suite, out, InlineExecutor(), progress=False)
    assert calls.names == []
    assert _returns_of(out, cell.cell_id) == [e["return"] for e in reference.episodes]
    done = json.loads((out / "cells" / f"{cell.cell_id}.json").read_text())
    assert done["planner_options"] == reference.planner_options

    # Changed settings start the cell over in the same directory.
    edited = load_suite(write_suite(tmp_path, planners='"cem"', extra="seeds = [0]\nepisodes = 1"))
    run_suite(edited, out, InlineExecutor(), progress=False)
    assert calls.names == ["run"]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2  # seed + 1 MPC


def _worker_alive(run_dir) -> bool:
    """Whether some process still holds the cell's run-directory lock."""
    import fcntl

    with open(run_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_episode_progress_counts_the_finished_episodes_of_running_cells(tmp_path, capsys):
    from mbrl.bench.watch import EpisodeProgress, expected_episodes, finished_episodes

    suite = load_suite(write_suite(tmp_path))  # 4 cells of 1 seed + 2 MPC episodes
    a, b = suite.cells[:2]
    runs = tmp_path / "runs"
    (runs / a.cell_id).mkdir(parents=True)
    (runs / a.cell_id / "metrics.jsonl").write_text('{"episode": 0}\n{"episode": 1}\n\n')
    assert [expected_episodes(c) for c in suite.cells] == [3, 3, 3, 3]
    assert finished_episodes(runs, [a, b]) == 2  # b has no directory yet
    with EpisodeProgress(runs, [a, b], every_s=0.01, file=sys.stdout) as watch:
        assert watch.bar.total == 6
        (runs / b.cell_id).mkdir()
        (runs / b.cell_id / "metrics.jsonl").write_text('{"episode": 0}\n' * 7)
        deadline = time.monotonic() + 10
        while watch.bar.n != 9:  # the thread picks it up
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert watch.bar.total == 9  # grown past the plan (seed episodes were added)
    with pytest.raises(ValueError, match="every_s"):
        EpisodeProgress(runs, [a], every_s=0)

    out = tmp_path / "out"
    capsys.readouterr()
    run_suite(
        load_suite(write_suite(tmp_path, planners='"cem"', extra="seeds = [0]")),
        out,
        InlineExecutor(),
    )
    assert re.search(r"episodes: +\d+%.*\| 3/3 ", capsys.readouterr().out)


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks are POSIX")
def test_a_cell_directory_in_use_by_a_live_process_is_refused_clearly(tmp_path):
    import fcntl

    (cell,) = load_suite(write_suite(tmp_path, planners='"cem"', extra="seeds = [0]")).cells
    run_dir = tmp_path / "runs" / cell.cell_id
    run_dir.mkdir(parents=True)
    with open(run_dir / ".lock", "a+") as handle:  # as a still-running worker holds it
        fcntl.flock(handle, fcntl.LOCK_EX)
        outcome = run_cell(cell, run_dir)
    assert outcome.status == "failed" and "in use by another process" in outcome.error_line
    assert not (run_dir / "metrics.jsonl").exists()
    assert run_cell(cell, run_dir).status == "ok"  # free again once the holder is gone


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_sigkill_of_the_bench_driver_mid_cell_then_rerun_resumes_the_cell(tmp_path):
    """(Two CLI processes with a spawned worker each: about 30 s on 2 idle cores.)"""
    path = write_suite(tmp_path, planners='"cem"', extra="seeds = [0]\nepisodes = 6")
    (cell,) = load_suite(path).cells
    reference = [e["return"] for e in run_cell(cell).episodes]
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "mbrl.cli", "bench", "--suite", str(path), "--out", str(out)]
    argv += ["--executor", "local", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = out / "runs" / cell.cell_id / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the cell never wrote 3 episodes"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while _worker_alive(metrics.parent):  # the worker dies with its driver
        assert time.monotonic() < deadline, "the worker outlived the killed driver"
        time.sleep(0.05)
    assert not (out / "cells" / f"{cell.cell_id}.json").exists()
    before = metrics.read_text().splitlines()
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _returns_of(out, cell.cell_id) == reference  # 7 episodes
    # Resumed, not rerun: the finished episodes' lines (their timings too) are kept.
    assert metrics.read_text().splitlines()[: len(before)] == before


def test_crashing_cell_is_recorded_failed_and_the_rest_still_runs(tmp_path, crashy_env):
    path = write_suite(tmp_path, envs=f'"{crashy_env}", "Pendulum-v1"', planners='"cem"')
    suite = load_suite(path)  # the crashy env builds fine: it fails only when stepped
    out = tmp_path / "out"
    summary = run_suite(suite, out, InlineExecutor(), progress=False)
    crashy = [c.cell_id for c in suite.cells if c.env_id == crashy_env]
    assert sorted(summary.failed) == sorted(crashy) and len(crashy) == 2
    rows = {r["cell_id"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert len(rows) == 4
    for cid in crashy:
        assert rows[cid]["status"] == "failed"
        assert "RuntimeError: boom" in rows[cid]["error"]
        done = json.loads((out / "cells" / f"{cid}.json").read_text())
        assert done["error"].startswith("Traceback") and "crashy_env_mod.py" in done["error"]
    assert all(rows[c.cell_id]["status"] == "ok" for c in suite.cells if c.env_id == "Pendulum-v1")

    # Re-running retries the failed cells only.
    again = CountingCells()
    run_suite(suite, out, InlineExecutor(), progress=False, cell_fn=again)
    assert sorted(again.calls) == sorted(crashy)


def test_cli_suite_returns_1_when_a_cell_failed(tmp_path, crashy_env, capsys):
    path = write_suite(tmp_path, envs=f'"{crashy_env}"', planners='"cem"')
    rc = cli_main(
        ["bench", "--suite", str(path), "--out", str(tmp_path / "o"), "--executor", "inline"]
    )
    assert rc == 1 and "2 cell(s) failed" in capsys.readouterr().out


def test_same_seed_same_returns_and_seeds_differ():
    spec = load_suite_cells_for_determinism()
    a, b = run_cell(spec[0]), run_cell(spec[0])
    c = run_cell(spec[1])
    assert a.status == b.status == c.status == "ok"
    ret = [[e["return"] for e in o.episodes] for o in (a, b, c)]
    assert ret[0] == ret[1] and ret[0] != ret[2]
    assert torch.get_num_threads() >= 1  # restored after the cell


def load_suite_cells_for_determinism() -> list[CellSpec]:
    overrides = {
        "use_preset": False,
        "episodes": 1,
        "max_episode_steps": 8,
        "horizon": 3,
        "n_particles": 2,
        "fit": {"max_steps": 20, "eval_every": 10},
        "model_options": {"ensemble_size": 2, "hidden_size": 16, "num_layers": 1},
        "planner_options": {"population": 16, "iterations": 1},
    }
    return [CellSpec("Pendulum-v1", "ensemble", "cem", s, "", overrides) for s in (0, 1)]


# ------------------------------------------------------------------------- speed bench
TINY_SHAPE = SpeedShape(
    name="tiny", candidates=8, horizon=3, particles=2, ensemble_size=2, hidden_size=16, num_layers=2
)


@pytest.mark.parametrize("kind", ["ensemble", "mlp", "known"])
def test_model_rollout_speed_per_kind(kind):
    row = model_rollout_speed(kind, TINY_SHAPE, torch.device("cpu"), repeats=1)
    assert row.engine_steps_per_s > 0 and row.forward_steps_per_s > 0
    assert row.ratio == pytest.approx(row.engine_steps_per_s / row.forward_steps_per_s)


@pytest.mark.parametrize("name", ["mppi", "shooting", "ilqr"])
def test_planner_latency_at_a_shape(name):
    ms, _ = planner_latency_ms(name, TINY_SHAPE, torch.device("cpu"), repeats=1)
    assert ms > 0


def test_speed_report_rows_skips_and_compiled_fallback(monkeypatch):
    import mbrl.bench.speed as speed

    monkeypatch.setattr(speed, "PETS_SHAPE", TINY_SHAPE)
    monkeypatch.setattr(speed, "MBRL_LIB_SHAPE", TINY_SHAPE)
    rows = speed_report(
        torch.device("cpu"),
        repeats=1,
        include_bf16=False,
        models=["ensemble", "known"],
        planners=["cem", "mcts"],
        compiled=True,
        compiled_backends=("graph",),  # "compile" would run inductor for minutes on CPU
    )
    kinds = {(r["what"], r.get("model"), r.get("backend")) for r in rows}
    assert ("rollout", "ensemble", "eager") in kinds and ("rollout", "known", "eager") in kinds
    graph = next(r for r in rows if r.get("backend") == "graph")
    assert "backend eager" in graph["note"] and "CUDA" in graph["note"]  # CPU fallback, noted
    assert any(r["what"] == "skipped" and r["item"] == "planner mcts" for r in rows)
    assert {"cem [eager] ms/action", "cem [graph] ms/action"} <= {r["what"] for r in rows}
    with pytest.raises(ValueError, match="unknown planner"):
        speed_report(torch.device("cpu"), models=[], planners=["nope"])


def test_suite_file_example_in_docstring_parses(tmp_path):
    import mbrl.bench.suite as suite_module

    doc = suite_module.__doc__
    block = doc[doc.index("    name = ") : doc.index("Precedence")]
    path = tmp_path / "doc.toml"
    path.write_text(textwrap.dedent(block))
    suite = load_suite(path)
    assert len(suite.cells) == 6 and suite.cells[0].run_config().planner_options["iterations"] == 5


def test_cli_speed_prints_rows_per_model_and_planner(monkeypatch, capsys, tmp_path):
    import mbrl.bench.speed as speed

    monkeypatch.setattr(speed, "PETS_SHAPE", TINY_SHAPE)
    out = tmp_path / "rows.json"
    args = ["bench", "speed", "--no-bf16", "--repeats", "1", "--models", "known,mlp"]
    rc = cli_main([*args, "--planners", "shooting,mcts", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "rollout known" in text and "rollout mlp" in text and "ratio" in text
    assert "shooting ms/action" in text and "skipped planner mcts" in text
    assert {r["what"] for r in json.loads(out.read_text())} >= {"rollout", "skipped"}
