"""Sizing a sampling planner to a per-call time target (mbrl.planners.sizing and the run's
use of it, mbrl.agents.plan_sizing)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json

import pytest
import torch

from mbrl.agents.config import RunConfig
from mbrl.agents.describe import describe_setup
from mbrl.agents.loop import run
from mbrl.agents.plan_sizing import PLAN_SIZE_KEY, resumed_sizing, sizing_target_ms
from mbrl.agents.setup import build_run
from mbrl.commands.run import config_from_args, register
from mbrl.envs.point_mass import POINT_MASS_ENV_ID
from mbrl.planners.cem import CEMConfig
from mbrl.planners.mppi import MPPIConfig
from mbrl.planners.random_shooting import RandomShootingConfig
from mbrl.planners.registry import ICEM_DEFAULTS
from mbrl.planners.sizing import (
    POPULATION_FLOOR,
    ObjectiveCost,
    choose_plan_size,
    measure_objective_cost,
)

# 1 ms per iteration plus 10 us per candidate: CEM 500 x 5 costs 5 + 25 = 30 ms.
COST = ObjectiveCost(overhead_s=1e-3, per_row_s=1e-5)


def fake_cost(cost: ObjectiveCost = COST):
    calls = []

    def measure(score, low, high, horizon, generator):
        calls.append((low.shape, horizon))
        return cost

    measure.calls = calls  # type: ignore[attr-defined]
    return measure


def test_a_default_that_fits_is_kept() -> None:
    size = choose_plan_size(COST, 500, 5, target_ms=40.0)
    assert (size.population, size.iterations) == (500, 5) and not size.changed
    assert size.predicted_ms == pytest.approx(30.0) == size.default_ms


def test_the_population_shrinks_first_and_the_call_fits() -> None:
    # 5 iterations: 5 ms overhead; 15 ms left is 1500 candidates -> 300 per iteration,
    # the grid's largest below that is 256.
    size = choose_plan_size(COST, 500, 5, target_ms=20.0)
    assert (size.population, size.iterations) == (256, 5)
    assert size.predicted_ms == pytest.approx(5 + 5 * 256 * 0.01)
    assert size.predicted_ms <= 20.0 < size.default_ms


def test_iterations_go_before_the_population_drops_below_the_floor() -> None:
    # 64 x 5 costs 5 + 3.2 = 8.2 ms; at 7 ms: 64 x 4 (4 + 2.56 = 6.56) rather than 32 x 5.
    size = choose_plan_size(COST, 500, 5, target_ms=7.0)
    assert (size.population, size.iterations) == (POPULATION_FLOOR, 4)
    # At 2 iterations the floor no longer holds: 2 + 2 * 48 * 0.01 = 2.96 ms.
    size = choose_plan_size(COST, 500, 5, target_ms=3.0)
    assert (size.population, size.iterations) == (48, 2)


def test_given_iterations_are_kept_and_nothing_fitting_says_so() -> None:
    size = choose_plan_size(COST, 500, 5, target_ms=7.0, fixed_iterations=True)
    assert size.iterations == 5 and size.population == 32  # 5 + 1.6 ms
    hopeless = choose_plan_size(COST, 500, 5, target_ms=0.5)
    assert (hopeless.population, hopeless.iterations) == (16, 2)
    assert "misses" in hopeless.reason and hopeless.predicted_ms > 0.5


def test_the_rows_function_counts_what_a_call_scores() -> None:
    # Rows counted double: the population must halve against the plain count.
    plain = choose_plan_size(COST, 500, 5, target_ms=20.0)
    double = choose_plan_size(COST, 500, 5, target_ms=20.0, rows=lambda p, i: 2 * p * i)
    assert double.population < plain.population
    assert double.predicted_ms == pytest.approx(5 + 2 * 5 * double.population * 0.01)


@pytest.mark.parametrize(
    "args",
    [(0, 5, 10.0), (500, 0, 10.0), (500, 5, 0.0), (500, 5, float("nan"))],
)
def test_bad_sizes_and_targets_raise(args) -> None:
    with pytest.raises(ValueError, match="population|target_ms"):
        choose_plan_size(COST, *args)


def test_candidates_per_call_by_hand() -> None:
    assert CEMConfig(population=500, iterations=5).candidates_per_call() == 2500
    # iCEM 300 x 3: 30 elites, populations 300, 150, max(60, 75) = 75; 9 kept elites per
    # iteration; the final mean.
    assert ICEM_DEFAULTS.candidates_per_call() == 300 + 150 + 75 + 3 * 9 + 1
    shrunk = dataclasses.replace(ICEM_DEFAULTS, population=40)  # 4 elites: floor of 8
    assert shrunk.candidates_per_call() == 40 + 20 + 10 + 3 * 1 + 1
    assert MPPIConfig(population=100, iterations=4).candidates_per_call() == 400
    assert RandomShootingConfig(population=64).candidates_per_call() == 64


def test_measuring_recovers_overhead_and_slope() -> None:
    now = itertools.count()
    clock_value = [0.0]

    def clock() -> float:
        next(now)
        return clock_value[0]

    def score(cands: torch.Tensor) -> torch.Tensor:
        clock_value[0] += 0.002 + 3e-5 * cands.shape[0]  # what the call "takes"
        return cands.sum((1, 2))

    low, high = -torch.ones(2), torch.ones(2)
    gen = torch.Generator().manual_seed(0)
    cost = measure_objective_cost(score, low, high, 7, gen, clock=clock)
    assert cost.overhead_s == pytest.approx(0.002)
    assert cost.per_row_s == pytest.approx(3e-5)
    with pytest.raises(ValueError, match="sizes"):
        measure_objective_cost(score, low, high, 7, gen, sizes=(64, 64))


def _cfg(**fields) -> RunConfig:
    return RunConfig(env_id=POINT_MASS_ENV_ID, progress=False, **fields)


def test_a_run_without_a_population_is_sized_and_records_it() -> None:
    measure = fake_cost()
    setup = build_run(_cfg(auto_size_ms=7.0), size_cost=measure)
    setup.env.close()
    assert measure.calls[0] == ((2,), 15)  # (a second call: the same on one thread)
    size = setup.plan_size
    assert size is not None and (size.population, size.iterations) == (64, 4)
    assert setup.planner.optimizer.config.population == 64
    assert setup.planner.optimizer.config.iterations == 4
    assert setup.config.planner_options == {"population": 64, "iterations": 4}
    lines = describe_setup(setup)
    assert any(line.startswith("sizing:") and "64 x 4" in line for line in lines)
    assert any("no preset" in line for line in lines)


def test_a_budget_sets_the_target_and_given_sizes_are_not_measured() -> None:
    assert sizing_target_ms(250.0, 80.0) == pytest.approx(68.0)
    assert sizing_target_ms(250.0, None) == 250.0 and sizing_target_ms(None, 80.0) is None
    measure = fake_cost()
    for cfg in (
        _cfg(planner_options={"population": 100}),  # the user chose it
        _cfg(auto_size_ms=None),  # sizing off
        RunConfig(progress=False),  # Pendulum's preset chose it
        _cfg(planner="mcts", planner_options={"widening_k": 1.0}),  # not a sampling planner
    ):
        setup = build_run(cfg, size_cost=measure)
        setup.env.close()
        assert setup.plan_size is None
    assert measure.calls == []
    setup = build_run(_cfg(planner_options={"iterations": 5}, auto_size_ms=7.0), size_cost=measure)
    setup.env.close()
    assert setup.plan_size.iterations == 5 and setup.plan_size.population == 32


@pytest.mark.filterwarnings("ignore:planning measured")  # real timing on a shared machine
def test_measuring_leaves_the_planners_random_numbers_alone() -> None:
    one = {"iterations": 1}  # one CEM iteration of 500 keeps the two plan calls short
    sized = build_run(_cfg(auto_size_ms=1e6, planner_options=one))  # real timing: fits
    plain = build_run(_cfg(auto_size_ms=None, planner_options=one))
    for setup in (sized, plain):
        setup.env.close()
    assert sized.plan_size is not None and not sized.plan_size.changed
    assert torch.equal(sized.generator.get_state(), plain.generator.get_state())
    obs = torch.zeros(6)
    torch.testing.assert_close(sized.planner.plan(obs), plain.planner.plan(obs))


@pytest.mark.filterwarnings("ignore:planning measured")  # real timing on a shared machine
def test_resume_reads_the_sizes_back(tmp_path) -> None:
    out = tmp_path / "run"
    cfg = _cfg(auto_size_ms=1e6, episodes=0, seed_episodes=1, max_episode_steps=2, out=str(out))
    run(cfg)
    doc = json.loads((out / "config.json").read_text())
    assert doc[PLAN_SIZE_KEY] == {"population": 500, "iterations": 5}
    resumed = resumed_sizing(cfg, doc)
    assert resumed.planner_options == {"population": 500, "iterations": 5}
    old = {"config": {k: v for k, v in doc["config"].items() if k != "auto_size_ms"}}
    assert resumed_sizing(cfg, old).auto_size_ms is None  # started before sizing existed


def test_cli_flag() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    off = config_from_args(parser.parse_args(["run", "--auto-size-ms", "off"]))
    assert off.auto_size_ms is None
    assert config_from_args(parser.parse_args(["run", "--auto-size-ms", "80"])).auto_size_ms == 80
    assert config_from_args(parser.parse_args(["run"])).auto_size_ms == 250.0
    for bad in ("0", "-1", "inf", "fast"):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "--auto-size-ms", bad])
    with pytest.raises(ValueError, match="auto_size_ms"):
        RunConfig(auto_size_ms=-5.0)


def test_a_much_faster_single_thread_is_reported() -> None:
    def measure(score, low, high, horizon, generator):
        threads = torch.get_num_threads()
        return COST if threads == 1 else ObjectiveCost(COST.overhead_s, 10 * COST.per_row_s)

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.warns(RuntimeWarning, match="faster on 1 torch thread"):
            setup = build_run(_cfg(auto_size_ms=7.0), size_cost=measure)
        assert torch.get_num_threads() == 2  # measured, not changed
        setup.env.close()
        assert "OMP_NUM_THREADS=1" in setup.plan_size.reason
        # Sized with the cost of the threads the run uses: 10 x 0.01 ms per candidate.
        assert setup.plan_size.predicted_ms == pytest.approx(2 + 0.1 * 24 * 2)
    finally:
        torch.set_num_threads(threads)


def test_the_resolved_configuration_names_what_the_run_uses() -> None:
    setup = build_run(RunConfig(progress=False))  # Pendulum-v1, its preset
    setup.env.close()
    lines = describe_setup(setup)
    assert lines[0].startswith("env Pendulum-v1 (its preset): obs (3,), action (1,) box")
    assert "known task functions" in lines[2]
    assert "horizon 15" in lines[3] and "population=300, iterations=4" in lines[3]
    assert not any(line.startswith("sizing:") for line in lines)  # the preset sized it
    gp = build_run(RunConfig(model="gp", planner="gpmpc", progress=False))
    gp.env.close()
    plan = describe_setup(gp)[3]
    assert "horizon=25" in plan and "horizon 15" not in plan  # GP-MPC's own horizon


def test_a_budget_sizes_a_presets_population_but_not_the_users() -> None:
    measure = fake_cost()  # Pendulum's preset CEM 300 x 4 costs 4 + 12 = 16 ms
    setup = build_run(RunConfig(progress=False, plan_budget_ms=10.0), size_cost=measure)
    setup.env.close()
    size = setup.plan_size
    assert size is not None and size.changed and size.predicted_ms <= 8.5
    assert size.default_ms == pytest.approx(16.0)  # sized down from the preset, not 500 x 5
    assert setup.planner.optimizer.config.population == size.population < 300
    users = RunConfig(progress=False, plan_budget_ms=10.0, planner_options={"population": 300})
    setup = build_run(users, size_cost=measure)
    setup.env.close()
    assert setup.plan_size is None and setup.planner.optimizer.config.population == 300
