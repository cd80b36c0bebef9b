"""Shared fixtures: small models and a linear toy system with a known optimum."""

from __future__ import annotations

import pytest
import torch

from mbrl.models.base import DIFFERENTIABLE, DynamicsModel
from mbrl.models.training import FitConfig

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_CARTPOLE = dict(
    env_id="CartPole-v1",
    planner="mcts",
    seed_episodes=1,
    episodes=1,
    max_episode_steps=30,
    horizon=5,
    model_options={"ensemble_size": 2, "hidden_size": 32, "num_layers": 2},
    planner_options={"num_simulations": 8, "leaves_per_batch": 4},
    fit=FitConfig(max_steps=50, eval_every=25),
    progress=False,
)
"""``RunConfig`` keywords of a CartPole MCTS run that takes about a second (loop tests)."""


class LinearModel(DynamicsModel):
    """Known linear dynamics ``x' = A x + B u`` for tests: ``state (M, O)``, ``action (M, A)``."""

    capabilities = frozenset({DIFFERENTIABLE})

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = a.shape[0], b.shape[1]
        self.register_buffer("a", a)
        self.register_buffer("b", b)

    def step(self, state, action, generator=None):
        return state @ self.a.T + action @ self.b.T


@pytest.fixture
def point_mass() -> LinearModel:
    """1-D point mass (position, velocity), dt = 0.1, force in [-1, 1]."""
    dt = 0.1
    return LinearModel(torch.tensor([[1.0, dt], [0.0, 1.0]]), torch.tensor([[0.0], [dt]]))


def quadratic_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Minus squared distance of the next state from the origin, minus a small action cost."""
    return -(next_obs.square().sum(-1) + 0.01 * action.square().sum(-1))


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
