"""Defaults that follow from the env's spaces, and the warning for a reward with no signal."""

from __future__ import annotations

import warnings

import pytest
import torch

from mbrl.agents.config import RunConfig
from mbrl.agents.exploration import flat_rewards
from mbrl.agents.learned import TaskModels
from mbrl.agents.setup import build_run
from mbrl.data.buffer import TransitionBuffer
from mbrl.models.training import FitConfig


def test_discrete_env_without_a_planner_gets_mcts() -> None:
    setup = build_run(RunConfig(env_id="Acrobot-v1", reward="learned", progress=False), dry=True)
    assert setup.config.planner == "mcts"
    assert setup.planner.supports_discrete


def test_discrete_env_with_cem_chosen_names_the_planner_that_fits() -> None:
    cfg = RunConfig(env_id="Acrobot-v1", planner="cem", explicit={"planner"}, progress=False)
    with pytest.raises(TypeError, match=r"Discrete\(3\).*mcts"):
        build_run(cfg, dry=True)


def test_box_env_keeps_cem() -> None:
    setup = build_run(RunConfig(env_id="Reacher-v5", reward="learned", progress=False), dry=True)
    assert setup.config.planner == "cem"


def _buffer(rewards: torch.Tensor, terminated: bool = False) -> TransitionBuffer:
    n = rewards.shape[0]
    buf = TransitionBuffer(2, 1, capacity=n)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(n, 2, generator=gen)
    done = torch.zeros(n, dtype=torch.bool)
    done[-1] = terminated
    buf.add(obs, torch.randn(n, 1, generator=gen), rewards, obs + 0.1, done, torch.zeros_like(done))
    return buf


FAST_FIT = FitConfig(max_steps=4, eval_every=2, batch_size=16)


def test_flat_rewards_and_no_endings_warn() -> None:
    models = TaskModels(2, 1, torch.device("cpu"), "mlp")
    with pytest.warns(RuntimeWarning, match="no reward signal"):
        models.fit(_buffer(-torch.ones(32)), FAST_FIT, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("terminated", [False, True])
def test_varied_rewards_or_an_ending_do_not_warn(terminated: bool) -> None:
    models = TaskModels(2, 1, torch.device("cpu"), "mlp")
    rewards = -torch.ones(32) if terminated else torch.linspace(-1.0, 0.0, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        models.fit(_buffer(rewards, terminated), FAST_FIT, torch.Generator().manual_seed(0))


def test_flat_rewards_tolerates_float32_rounding_only() -> None:
    assert flat_rewards(torch.full((5,), 9.9))
    assert flat_rewards(torch.tensor([10.0, 10.0 + 1e-6]))
    assert not flat_rewards(torch.tensor([10.0, 10.01]))
    assert not flat_rewards(torch.zeros(0))


def test_options_given_without_a_planner_keep_the_default_planner() -> None:
    cfg = RunConfig(env_id="Acrobot-v1", planner_options={"population": 64}, progress=False)
    with pytest.raises(TypeError, match="mcts"):
        build_run(cfg, dry=True)


def test_the_preset_of_the_planner_chosen_for_discrete_actions_applies() -> None:
    setup = build_run(RunConfig(env_id="CartPole-v1", progress=False), dry=True)
    assert setup.config.planner == "mcts"
    assert setup.config.planner_options["num_simulations"] == 64  # CartPole's mcts preset
