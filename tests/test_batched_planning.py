"""Warm starts that follow what the agent executed, and sampling planners over batched starts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from mbrl.agents.mpc import MPCAgent
from mbrl.planners.base import Planner
from mbrl.spaces import ActionCodec

BOX1 = ActionCodec.from_space(gym.spaces.Box(-1.0, 1.0, (1,), np.float32))


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
