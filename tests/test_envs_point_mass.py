"""mbrl/PointMassGoal-v0: the goal-reaching test env without a preset or known task functions."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.agents.env_factory import make_env
from mbrl.agents.presets import PRESETS
from mbrl.envs.point_mass import POINT_MASS_ENV_ID, PointMassGoalEnv
from mbrl.task_fns import get_task_fns


def test_spaces_and_no_known_task_functions_or_preset() -> None:
    env = make_env(f"mbrl.envs.point_mass:{POINT_MASS_ENV_ID}")
    assert env.observation_space.shape == (6,)
    assert env.action_space.shape == (2,)
    assert get_task_fns(POINT_MASS_ENV_ID) is None
    assert POINT_MASS_ENV_ID not in PRESETS


def test_pushing_towards_the_goal_reaches_it_and_truncates_at_max_steps() -> None:
    env = PointMassGoalEnv(max_steps=60)
    obs, _ = env.reset(seed=3)
    goal = obs[4:].copy()
    rewards, truncated = [], False
    for _ in range(60):
        pos, vel = obs[:2], obs[2:4]
        action = np.clip(4.0 * (goal - pos) - 2.0 * vel, -1, 1)
        obs, r, terminated, truncated, _ = env.step(action)
        assert not terminated
        assert np.array_equal(obs[4:], goal)  # the goal never moves
        rewards.append(r)
    assert truncated
    assert rewards[-1] > -0.05 > rewards[0]
    assert np.isclose(rewards[-1], -np.linalg.norm(obs[:2] - goal), atol=0.02)


def test_walls_clip_position_and_stop_velocity() -> None:
    env = PointMassGoalEnv()
    env.reset(seed=0)
    for _ in range(100):
        obs, *_ = env.step(np.array([1.0, -1.0]))
    assert obs[0] == pytest.approx(1.0) and obs[1] == pytest.approx(-1.0)
    assert abs(obs[2]) < 0.11 and abs(obs[3]) < 0.11


@pytest.mark.parametrize("bad", [np.zeros(3), np.array([np.nan, 0.0])])
def test_bad_actions_raise(bad) -> None:
    env = PointMassGoalEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)
    with pytest.raises(ValueError, match="max_steps"):
        PointMassGoalEnv(max_steps=0)
