"""Warm starts that follow what the agent executed, and sampling planners over batched starts."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.agents.belief import BeliefAgent
from mbrl.agents.mpc import MPCAgent
from mbrl.models.known.pendulum import KnownPendulum
from mbrl.models.mlp import MLPDynamics
from mbrl.models.rssm.model import RSSM
from mbrl.models.rssm.networks import RSSMConfig
from mbrl.planners import (
    ICEM_DEFAULTS,
    CEMConfig,
    CEMOptimizer,
    MPPIConfig,
    MPPIOptimizer,
    RandomShootingConfig,
    RandomShootingOptimizer,
    SamplingPlanner,
)
from mbrl.planners import sampling as sampling_module
from mbrl.planners.base import Planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns.classic import pendulum_reward

BOX1 = ActionCodec.from_space(gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
PENDULUM_BOX = ActionCodec.from_space(gym.spaces.Box(-2.0, 2.0, (1,), np.float32))
OPTIMIZERS = {
    "cem": lambda g: CEMOptimizer(CEMConfig(population=60, iterations=3), *_bounds(), g),
    "icem": lambda g: CEMOptimizer(replace(ICEM_DEFAULTS, population=60), *_bounds(), g),
    "mppi": lambda g: MPPIOptimizer(MPPIConfig(population=60, iterations=3), *_bounds(), g),
    "shooting": lambda g: RandomShootingOptimizer(RandomShootingConfig(100), *_bounds(), g),
}


def _bounds() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([-2.0]), torch.tensor([2.0])


def _starts(rows: int) -> torch.Tensor:
    theta = torch.linspace(-3.0, 3.0, rows)
    return torch.stack([theta.cos(), theta.sin(), torch.linspace(-1.0, 1.0, rows)], dim=1)


def _planner(name: str, seed: int) -> SamplingPlanner:
    opt = OPTIMIZERS[name](torch.Generator().manual_seed(seed))
    return SamplingPlanner(KnownPendulum(), pendulum_reward, None, opt, horizon=8)


class _Recorder(Planner):
    """Plans ``(H, 1)`` ramps and records every call, to check what the agent tells it."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.calls: list[tuple[str, int]] = []

    def plan(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls.append(("plan", 0))
        return torch.linspace(-0.9, 0.9, self.horizon).unsqueeze(1)

    def advance(self, steps: int) -> None:
        self.calls.append(("advance", steps))

    def reset(self) -> None:
        self.calls.append(("reset", 0))


def test_mpc_agent_advances_the_planner_by_the_steps_it_executed():
    planner = _Recorder(horizon=5)
    agent = MPCAgent(planner, BOX1, obs_dim=2, replan_every=3)
    agent.reset()
    actions = [float(agent.act(np.zeros(2, np.float32))[0]) for _ in range(7)]
    # Replans at steps 0, 3, 6; advances by the 3 executed actions, never before the first plan.
    assert planner.calls == [
        ("reset", 0),
        ("plan", 0),
        ("advance", 3),
        ("plan", 0),
        ("advance", 3),
        ("plan", 0),
    ]
    ramp = torch.linspace(-0.9, 0.9, 5).tolist()
    np.testing.assert_allclose(actions, ramp[:3] * 2 + ramp[:1], rtol=1e-6)
    agent.reset()
    agent.act(np.zeros(2, np.float32))
    assert planner.calls[-2:] == [("reset", 0), ("plan", 0)]  # a new episode: no advance


# ---------------------------------------------------------------- warm start after replan_every
def _recording_cem(keep: float = 0.5) -> CEMOptimizer:
    """CEM that records, at each call, the warm start and the kept elites it starts from."""
    opt = CEMOptimizer(
        CEMConfig(population=40, iterations=2, keep_elites_frac=keep),
        torch.tensor([-2.0]),
        torch.tensor([2.0]),
        torch.Generator().manual_seed(0),
    )
    opt.seen = []
    inner = opt.optimize_batch

    def record(objective, initial, generators, deadline):
        kept = None if opt._kept is None else opt._kept.clone()
        opt.seen.append((initial.clone(), kept))
        out = inner(objective, initial, generators, deadline)
        opt.seen[-1] += (out.clone(), None if opt._kept is None else opt._kept.clone())
        return out

    opt.optimize_batch = record
    return opt


def test_replan_every_3_warm_starts_from_step_3_of_the_last_plan():
    opt = _recording_cem()
    planner = SamplingPlanner(KnownPendulum(), pendulum_reward, None, opt, horizon=6)
    agent = MPCAgent(planner, PENDULUM_BOX, obs_dim=3, replan_every=3)
    agent.reset()
    obs = np.array([np.cos(2.0), np.sin(2.0), 0.5], np.float32)
    for _ in range(4):  # plans at steps 0 and 3
        agent.act(obs)
    assert len(opt.seen) == 2
    (_, _, first_plan, first_kept), (initial, kept, _, _) = opt.seen
    assert first_kept is not None and first_kept.shape == (1, 2, 6, 1)
    # The mean starts at step 3 of the last plan, then the middle of the box (0) for 3 steps.
    assert torch.equal(initial[:, :3], first_plan[:, 3:])
    assert torch.equal(initial[:, 3:], torch.zeros(1, 3, 1))
    # CEM's kept elites are shifted by the same 3 steps.
    assert torch.equal(kept[:, :, :3], first_kept[:, :, 3:])
    assert torch.equal(kept[:, :, 3:], torch.zeros(1, 2, 3, 1))


def test_a_new_batch_size_starts_cold():
    opt = _recording_cem()
    planner = SamplingPlanner(KnownPendulum(), pendulum_reward, None, opt, horizon=4)
    planner.plan(_starts(8))
    planner.advance(1)
    planner.plan(_starts(8))
    planner.advance(1)
    assert planner.plan(_starts(4)).shape == (4, 4, 1)
    (_, _, first, _), (warm, kept, _, _), (cold, cold_kept, _, _) = opt.seen
    assert torch.equal(warm[:, :3], first[:, 1:]) and kept is not None
    assert torch.equal(cold, torch.zeros(4, 4, 1)) and cold_kept is None


# ------------------------------------------------------------------------ batched start states
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_batched_plan_equals_single_row_plans_with_the_same_seeds(name):
    obs = _starts(8)
    seeds = [11 * b + 3 for b in range(8)]
    batched = _planner(name, seed=999)  # its own generator is not used: per-row ones are
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    plans = [batched.plan(obs, generators=gens)]
    batched.advance(2)
    plans.append(batched.plan(obs, generators=gens))  # warm-started per row
    for b, seed in enumerate(seeds):
        single = _planner(name, seed)
        first = single.plan(obs[b])
        single.advance(2)
        second = single.plan(obs[b])
        assert first.shape == (8, 1)
        torch.testing.assert_close(plans[0][b], first, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(plans[1][b], second, rtol=1e-5, atol=1e-6)
    # Rows are different problems: the plans differ from row to row.
    assert not torch.allclose(plans[1][0], plans[1][5])


def test_one_start_gives_the_same_plan_as_a_batch_of_one():
    single, batch = _planner("cem", 5), _planner("cem", 5)
    obs = _starts(1)
    torch.testing.assert_close(single.plan(obs[0]).unsqueeze(0), batch.plan(obs), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_batched_planning_is_one_rollout_per_iteration(name, monkeypatch):
    calls = []
    real = sampling_module.simulate

    def counting(model, obs, *args, **kwargs):
        calls.append(obs.shape[0])
        return real(model, obs, *args, **kwargs)

    monkeypatch.setattr(sampling_module, "simulate", counting)
    planner = _planner(name, 0)
    plan = planner.plan(_starts(8))
    assert plan.shape == (8, 8, 1)
    iterations = getattr(planner.optimizer.config, "iterations", 1)
    assert len(calls) == iterations
    # Each call scores all B * K candidates (K = 60 at first; 100 + the warm start for shooting).
    assert all(n % 8 == 0 for n in calls) and calls[0] >= 8 * 60


def test_batched_plan_improves_every_row_over_the_box_middle():
    planner = _planner("cem", 0)
    obs = _starts(6)
    plan = planner.plan(obs)
    score = planner.objective(obs)
    planned = score(plan.unsqueeze(1))[:, 0]
    idle = score(torch.zeros(6, 1, 8, 1))[:, 0]
    assert (planned > idle).all()


def test_plan_rejects_bad_starts_and_generator_lists():
    planner = _planner("cem", 0)
    with pytest.raises(ValueError, match=r"obs must have shape \(3,\) or \(B, 3\)"):
        planner.plan(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"obs must have shape"):
        planner.plan(torch.zeros(2, 3, 3))
    bad = _starts(3)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        planner.plan(bad)
    with pytest.raises(ValueError, match="one generator per problem"):
        planner.plan(_starts(3), generators=[torch.Generator()] * 2)


def test_batched_cem_through_a_network_equals_single_row_plans():
    torch.manual_seed(0)
    model = MLPDynamics(3, 1).eval()
    seeds = [4, 8, 15, 16]

    def planner(seed: int = 0) -> SamplingPlanner:
        opt = OPTIMIZERS["cem"](torch.Generator().manual_seed(seed))
        return SamplingPlanner(model, pendulum_reward, None, opt, horizon=6)

    obs = _starts(4)
    batched = planner().plan(obs, generators=[torch.Generator().manual_seed(s) for s in seeds])
    for b, seed in enumerate(seeds):
        torch.testing.assert_close(batched[b], planner(seed).plan(obs[b]), rtol=1e-5, atol=1e-5)


def test_belief_agent_advances_by_one_between_plans():
    torch.manual_seed(0)
    model = RSSM((3,), 1, RSSMConfig(deter_size=8, stoch_size=2, hidden_size=8, embed_size=4))
    planner = _Recorder(horizon=3)
    agent = BeliefAgent(model, planner, PENDULUM_BOX, torch.Generator().manual_seed(0))
    for _ in range(3):
        agent.act(np.array([1.0, 0.0, 0.5], np.float32))
    agent.reset()
    agent.act(np.array([1.0, 0.0, 0.5], np.float32))
    assert [c for c, _ in planner.calls] == [
        "reset", "plan", "advance", "plan", "advance", "plan", "reset", "plan",
    ]  # fmt: skip
    assert all(steps == 1 for call, steps in planner.calls if call == "advance")
