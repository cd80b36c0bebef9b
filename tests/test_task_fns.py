"""Known task functions must pay exactly what the env's own step pays."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.spaces import ActionCodec
from mbrl.task_fns import get_task_fns, known_env_ids, register_task_fns

ENVS = ["Pendulum-v1", "MountainCarContinuous-v0", "CartPole-v1", "InvertedPendulum-v5"]


@pytest.mark.parametrize("env_id", ENVS)
def test_known_functions_match_env_step(env_id):
    env = gym.make(env_id)
    codec = ActionCodec.from_space(env.action_space)
    fns = get_task_fns(env_id)
    assert fns is not None and env_id in known_env_ids()
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(300):
        action = env.action_space.sample()
        if not codec.discrete:
            action = action * 1.3  # out-of-bound actions: the env clips before paying
        nxt, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, codec.encode(action), reward, nxt, terminated))
        obs = nxt
        if terminated or truncated:
            obs, _ = env.reset()
    o, a, r, n, d = (
        torch.as_tensor(np.array(x), dtype=torch.float32) for x in zip(*rows, strict=True)
    )
    pred_r = fns.reward(o, a, n)
    assert pred_r.shape == (300,)
    assert torch.allclose(pred_r, r, atol=1e-4), (pred_r - r).abs().max()
    if fns.termination is not None:
        pred_d = fns.termination(o, a, n)
        assert pred_d.dtype == torch.bool and torch.equal(pred_d, d.bool())
    else:
        assert not d.any()


def test_mountain_car_goal_bonus_and_termination():
    fns = get_task_fns("MountainCarContinuous-v0")
    obs = torch.tensor([[0.44, 0.02], [0.44, -0.01]])
    nxt = torch.tensor([[0.46, 0.02], [0.46, -0.01]])
    act = torch.tensor([[0.5], [0.5]])
    assert fns.termination(obs, act, nxt).tolist() == [True, False]
    assert fns.reward(obs, act, nxt).tolist() == pytest.approx([100 - 0.025, -0.025])


def test_registry_refuses_duplicates_and_non_callables():
    with pytest.raises(ValueError, match="already registered"):
        register_task_fns("Pendulum-v1", lambda o, a, n: o[:, 0])
    with pytest.raises(TypeError, match="callable"):
        register_task_fns("Foo-v0", 3)
    assert get_task_fns("NoSuchEnv-v0") is None


def test_planning_reward_keeps_survival_ranking_and_breaks_ties():
    fns = get_task_fns("InvertedPendulum-v5")
    assert fns.planner_reward is fns.planning_reward
    assert get_task_fns("Pendulum-v1").planner_reward is get_task_fns("Pendulum-v1").reward
    obs = torch.zeros(3, 4)
    nxt = torch.tensor([[0.0, 0.01, 0, 0], [0.0, 0.15, 0, 0], [0.0, 0.3, 0, 0]])
    r = fns.planning_reward(obs, torch.zeros(3, 1), nxt)
    assert r[0] > r[1] > r[2] == 0.0  # upright beats tilted; a terminating step earns nothing
    assert r[1] >= 0.5  # any surviving step is worth more than the shaping can take away
    off_centre = nxt[:1].clone()
    off_centre[0, 0] = 0.6  # same pole, cart drifting towards the slider stop at |x| = 1
    assert fns.planning_reward(obs[:1], torch.zeros(1, 1), off_centre) < r[0]
