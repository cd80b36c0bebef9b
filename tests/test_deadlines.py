"""Planning deadlines: every planner is anytime under ``plan_budget_ms``; plan calls recorded."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import quadratic_reward

import mbrl.planners.deadline as deadline_mod
from mbrl.agents.mpc import MPCAgent
from mbrl.models.gp.model import GPDynamics
from mbrl.models.known.cartpole import KnownCartPole
from mbrl.models.known.pendulum import KnownPendulum
from mbrl.planners import (
    CEMConfig,
    CEMOptimizer,
    MPPIConfig,
    MPPIOptimizer,
    RandomShootingConfig,
    RandomShootingOptimizer,
    SamplingPlanner,
)
from mbrl.planners.deadline import BudgetPacer, Deadline, IterationCost, PlanRecord, PlanStats
from mbrl.planners.gpmpc import GPMPC, GPMPCConfig
from mbrl.planners.ilqr import ILQR, ILQRConfig
from mbrl.planners.mcts import MCTS, MCTSConfig
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns.classic import cartpole_reward, cartpole_termination, pendulum_reward
from mbrl.util.configs import config_from_options

TINY = 1e-6
"""A budget spent before the first check: every planner does its minimum."""
AMPLE = 1e9
"""A budget never spent."""
BOX1 = ActionCodec.from_space(gym.spaces.Box(-1.0, 1.0, (1,)))
OBS = torch.tensor([1.0, 0.0])


def _sampling(point_mass, optimizer_cls, config, seed: int = 0) -> SamplingPlanner:
    gen = torch.Generator().manual_seed(seed)
    opt = optimizer_cls(config, torch.tensor([-1.0]), torch.tensor([1.0]), gen)
    return SamplingPlanner(point_mass, quadratic_reward, None, opt, horizon=6)


ITERATIVE = [
    (CEMOptimizer, CEMConfig, {"population": 64, "iterations": 5}, (5, 1)),
    (CEMOptimizer, CEMConfig, {"population": 64, "iterations": 5, "return_best": True}, (5, 1)),
    (MPPIOptimizer, MPPIConfig, {"population": 64, "iterations": 4}, (4, 1)),
    # Random shooting's work is candidates scored: all 64 and the warm start, or the first
    # of 4 chunks and the warm start.
    (
        RandomShootingOptimizer,
        RandomShootingConfig,
        {"population": 64, "budget_chunks": 4},
        (65, 17),
    ),
]
IDS = ["cem", "icem-best", "mppi", "shooting"]
PARAMS = ("opt_cls", "cfg_cls", "kwargs", "work")


@pytest.mark.parametrize(PARAMS, ITERATIVE, ids=IDS)
def test_a_tiny_budget_does_the_minimum_and_still_returns_a_finite_plan(
    point_mass, opt_cls, cfg_cls, kwargs, work
):
    full = _sampling(point_mass, opt_cls, cfg_cls(**kwargs))
    cut = _sampling(point_mass, opt_cls, cfg_cls(**kwargs, plan_budget_ms=TINY))
    full_plan, cut_plan = full.plan(OBS), cut.plan(OBS)
    assert full.plan_stats.last.work == work[0] and not full.plan_stats.last.stopped_early
    last = cut.plan_stats.last
    assert last.work == work[1] and last.stopped_early and last.missed and last.budget_ms == TINY
    assert cut_plan.shape == full_plan.shape == (6, 1)
    assert bool(torch.isfinite(cut_plan).all()) and bool((cut_plan.abs() <= 1).all())
    assert cut.plan_stats.summary()["deadline_misses"] == 1


@pytest.mark.parametrize(PARAMS, ITERATIVE, ids=IDS)
def test_an_unspent_budget_plans_exactly_as_no_budget(point_mass, opt_cls, cfg_cls, kwargs, work):
    plain = _sampling(point_mass, opt_cls, cfg_cls(**kwargs))
    budgeted = _sampling(point_mass, opt_cls, cfg_cls(**kwargs, plan_budget_ms=AMPLE))
    for _ in range(3):  # warm starts and kept elites carried the same way
        a, b = plain.plan(OBS), budgeted.plan(OBS)
        assert torch.equal(a, b)
        plain.advance(1)
        budgeted.advance(1)
    assert plain.plan_budget_ms is None and plain.plan_stats.last.budget_ms is None
    assert plain.plan_stats.deadline_misses == budgeted.plan_stats.deadline_misses == 0


def test_iteration_cost_recovers_overhead_and_slope_and_inverts_them():
    cost = IterationCost()
    assert cost.predict(100) is None and cost.affordable(1.0) is None
    cost.add(200, 0.5)  # one size seen: proportional
    assert cost.predict(400) == pytest.approx(1.0)
    cost = IterationCost(forget=0.9)
    for n in (100, 300, 150, 400, 250) * 3:
        cost.add(n, 0.02 + 1e-4 * n)
    assert cost.predict(1000) == pytest.approx(0.12)
    assert cost.affordable(0.05) == 300 and cost.affordable(0.01) == 0
    with pytest.raises(ValueError, match="forget must lie in"):
        IterationCost(forget=1.0)


class _FakeClock:
    """Stands in for the ``time`` module of :mod:`mbrl.planners.deadline`: only the objective
    advances it, so the pacing decisions do not depend on the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _SlowObjective:
    """Scores like a rollout whose cost grows with the candidates: 2 ms + 0.2 ms each (on
    ``clock``)."""

    def __init__(self, clock: _FakeClock) -> None:
        self.sizes: list[int] = []
        self.clock = clock

    def __call__(self, cands: torch.Tensor) -> torch.Tensor:
        self.sizes.append(cands.shape[1])
        self.clock.now += 0.002 + 0.0002 * cands.shape[1]
        return -(cands - 0.3).square().sum((-1, -2))


@pytest.mark.parametrize(
    ("opt_cls", "cfg_cls"), [(CEMOptimizer, CEMConfig), (MPPIOptimizer, MPPIConfig)]
)
def test_paced_iterations_meet_a_budget_one_iteration_would_overrun(opt_cls, cfg_cls, monkeypatch):
    # 100 candidates cost 22 ms an iteration. Checking the clock between iterations only,
    # a 35 ms budget runs two (44 ms, a miss every call); a 12 ms budget is missed by the
    # first iteration alone. Paced, the second iteration is not started, and a budget below
    # one iteration shrinks the population instead. The objective's cost is charged to a
    # fake clock, so the test checks the pacing, not this machine's load.
    clock = _FakeClock()
    monkeypatch.setattr(deadline_mod, "time", clock)
    gen = torch.Generator().manual_seed(0)
    for budget, most in ((35.0, 100), (12.0, 48)):
        cfg = cfg_cls(population=100, iterations=5, plan_budget_ms=budget)
        opt = opt_cls(cfg, torch.tensor([-1.0]), torch.tensor([1.0]), gen)
        ms = []
        for call in range(8):
            slow = _SlowObjective(clock)
            start = clock.now
            plan = opt.optimize(slow, torch.zeros(1, 4, 1))
            ms.append(1e3 * (clock.now - start))
            assert plan.shape == (1, 4, 1) and bool(torch.isfinite(plan).all())
            if call > 0:  # the first call measures the cost of a full iteration
                assert max(slow.sizes) <= most and opt.last_run.stopped_early
        assert max(ms[1:]) <= budget, ms  # every paced call meets it
    with pytest.raises(ValueError, match="safety must lie in"):
        BudgetPacer(safety=0.0)


def test_no_budget_reads_no_clock_and_never_expires():
    deadline = Deadline(None)
    assert not deadline.limited and not deadline.expired()
    assert Deadline(TINY).expired()


@pytest.mark.parametrize(
    "bad", [0, -5.0, math.nan, math.inf, "80", True], ids=["0", "neg", "nan", "inf", "str", "bool"]
)
def test_bad_budgets_are_refused_naming_the_option(bad):
    with pytest.raises((ValueError, TypeError), match="plan_budget_ms"):
        CEMConfig(plan_budget_ms=bad)


def test_mcts_stops_simulating_when_the_budget_is_spent():
    codec = ActionCodec.from_space(gym.spaces.Discrete(2))
    obs = torch.tensor([0.0, 0.0, 0.05, 0.0])

    def planner(**budget) -> MCTS:
        cfg = MCTSConfig(num_simulations=64, leaves_per_batch=4, rollout_depth=5, **budget)
        return MCTS(KnownCartPole(), cartpole_reward, cartpole_termination, codec, cfg)

    full, cut = planner(), planner(plan_budget_ms=TINY)
    full.plan(obs)
    plan = cut.plan(obs)
    assert full.plan_stats.last.work == 64
    # One round: at most leaves_per_batch simulations (fewer when descents collide).
    assert 1 <= cut.plan_stats.last.work <= 4 and cut.plan_stats.last.stopped_early
    assert plan.shape[1] == 2 and float(plan[0].sum()) == 1.0  # a one-hot action


def test_ilqr_stops_optimising_when_the_budget_is_spent():
    def planner(**budget) -> ILQR:
        cfg = ILQRConfig(cold_iterations=30, restarts=0, tol=1e-12, **budget)
        return ILQR(
            KnownPendulum(), pendulum_reward, -2 * torch.ones(1), 2 * torch.ones(1), 20, cfg
        )

    obs = torch.tensor([-1.0, 0.0, 0.0])  # hanging down: many iterations to the swing-up
    full, cut = planner(), planner(plan_budget_ms=TINY)
    full.plan(obs)
    plan = cut.plan(obs)
    assert full.plan_stats.last.work > 1
    assert cut.plan_stats.last.work == 1 and cut.plan_stats.last.stopped_early
    assert plan.shape == (20, 1) and bool(torch.isfinite(plan).all())


def test_gpmpc_stops_lbfgs_when_the_budget_is_spent():
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(30, 1, generator=gen, dtype=torch.float64) * 4 - 2
    a = torch.rand(30, 1, generator=gen, dtype=torch.float64) * 2 - 1
    model = GPDynamics(1, 1)
    model.fit_data(s, a, s + 0.5 * a)

    def reward(obs, action, next_obs):
        return -(next_obs[:, 0] - 1.0).square()

    def planner(**budget) -> GPMPC:
        cfg = GPMPCConfig(restarts=2, first_iterations=20, **budget)
        return GPMPC(model, reward, None, -torch.ones(1), torch.ones(1), 4, cfg)

    full, cut = planner(), planner(plan_budget_ms=TINY)
    full.plan(torch.zeros(1))
    plan = cut.plan(torch.zeros(1))
    assert full.plan_stats.last.work > 1
    assert cut.plan_stats.last.work == 1 and cut.plan_stats.last.stopped_early
    assert cut.last_info["iterations"] == 1.0
    assert plan.shape == (4, 1) and bool(torch.isfinite(plan).all())


def _context(model, codec, options) -> PlannerContext:
    return PlannerContext(
        model,
        pendulum_reward if codec.dim == 1 and not codec.discrete else cartpole_reward,
        None,
        codec,
        torch.Generator().manual_seed(0),
        horizon=5,
        n_particles=1,
        options=options,
    )


@pytest.mark.parametrize("name", ["cem", "icem", "mppi", "shooting", "ilqr", "mcts"])
def test_the_planner_option_path_sets_the_budget_of_every_planner(name):
    """``--planner-opt plan_budget_ms=80`` reaches the planner (JSON reads 80 as an int)."""
    options = {"plan_budget_ms": 80}
    if name == "mcts":
        options |= {"widening_k": 1.0, "num_simulations": 8}
    pendulum = ActionCodec.from_space(gym.spaces.Box(-2.0, 2.0, (1,)))
    planner = build_planner(name, _context(KnownPendulum(), pendulum, options))
    assert planner.plan_budget_ms == 80
    planner.plan(torch.tensor([1.0, 0.0, 0.0]))
    assert planner.plan_stats.last.budget_ms == 80.0


def test_gpmpc_takes_the_budget_option_as_its_builder_reads_it():
    cfg = config_from_options(GPMPCConfig, {"plan_budget_ms": "80"}, source="--planner-opt")
    assert cfg.plan_budget_ms == 80.0


def test_agent_exposes_the_planners_record_and_counts_misses(point_mass):
    planner = _sampling(point_mass, CEMOptimizer, CEMConfig(population=32, plan_budget_ms=TINY))
    agent = MPCAgent(planner, BOX1, obs_dim=2, replan_every=2)
    agent.reset()
    for _ in range(4):  # replans at steps 0 and 2
        agent.act(np.array([1.0, 0.0], np.float32))
    assert agent.plan_stats is planner.plan_stats
    summary = agent.plan_stats.summary()
    assert summary["plan_calls"] == 2 and summary["deadline_misses"] == 2
    assert summary["stopped_early"] == 2 and summary["plan_budget_ms"] == TINY
    assert summary["plan_ms_p99"] >= summary["plan_ms_median"] > 0
    agent.plan_stats.clear()
    assert agent.plan_stats.summary()["plan_calls"] == 0


def test_plan_stats_quantiles_are_nearest_rank():
    stats = PlanStats()
    for ms in range(1, 101):  # 1 ... 100 ms, budget 50 ms
        stats.add(PlanRecord(ms / 1e3, 50.0, 1, False))
    summary = stats.summary()
    assert summary["plan_ms_median"] == pytest.approx(50.0)
    assert summary["plan_ms_p99"] == pytest.approx(99.0)
    assert summary["plan_ms_max"] == pytest.approx(100.0)
    assert summary["deadline_misses"] == 50  # 51 ... 100 ms
    empty = PlanStats().summary()
    assert empty["plan_calls"] == 0 and math.isnan(empty["plan_ms_p99"])
