"""A run's planning budget: ``--plan-budget-ms`` / ``--replan-every`` reach the planner and the
agent, and every MPC episode's metrics hold its p99 planning time and deadline misses."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
from test_resume import TINY

from mbrl.agents.config import RunConfig
from mbrl.agents.loop import run
from mbrl.agents.setup import build_run
from mbrl.commands import run as run_command


def _parse(argv: list[str]) -> RunConfig:
    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    return run_command.config_from_args(parser.parse_args(["run", *argv]))


def test_flags_set_the_budget_and_replan_interval():
    cfg = _parse(["--plan-budget-ms", "80", "--replan-every", "3"])
    assert (cfg.plan_budget_ms, cfg.replan_every) == (80.0, 3)
    setup = build_run(dataclasses.replace(cfg, progress=False), dry=True)
    assert setup.agent.replan_every == 3
    assert setup.agent.planner.plan_budget_ms == 80.0
    defaults = _parse([])
    assert (defaults.plan_budget_ms, defaults.replan_every) == (None, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"plan_budget_ms": 0.0}, ValueError, "plan_budget_ms must be a finite number"),
        ({"plan_budget_ms": float("nan")}, ValueError, "plan_budget_ms must be a finite number"),
        ({"plan_budget_ms": "fast"}, TypeError, "plan_budget_ms must be a number"),
        ({"replan_every": 0}, ValueError, "replan_every must be >= 1"),
    ],
)
def test_bad_budgets_are_refused_naming_the_field(kwargs, error, message):
    with pytest.raises(error, match=message):
        RunConfig(**kwargs)


def _episode_lines(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_every_plan_call_over_a_tiny_budget_is_a_recorded_miss(tmp_path):
    # 1 microsecond: no CEM iteration fits, so every call stops after its first one, late.
    out = tmp_path / "budget"
    run(RunConfig(**{**TINY, "episodes": 2}, plan_budget_ms=1e-3, out=str(out)))
    lines = _episode_lines(out)
    seed, mpc = lines[0], lines[1:]
    assert (seed["kind"], seed["deadline_misses"], seed["plan_ms_p99"]) == ("seed", 0, 0.0)
    for line in mpc:
        assert line["deadline_misses"] == line["steps"] == TINY["max_episode_steps"]
        assert line["plan_ms_p99"] >= line["plan_ms"] * 0.5 > 0.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["plan_budget_ms"] == 1e-3
    assert summary["deadline_misses"] == sum(line["steps"] for line in mpc)
    assert all("plan_ms_p99" in e and "deadline_misses" in e for e in summary["episodes"])


def test_without_a_budget_nothing_is_missed(tmp_path):
    out = tmp_path / "free"
    run(RunConfig(**{**TINY, "episodes": 1}, out=str(out)))
    mpc = _episode_lines(out)[-1]
    assert mpc["deadline_misses"] == 0 and mpc["plan_ms_p99"] > 0.0
    assert json.loads((out / "summary.json").read_text())["plan_budget_ms"] is None
