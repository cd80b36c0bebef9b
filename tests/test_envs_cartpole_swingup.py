"""mbrl/CartPoleSwingUp-v0: a swing-up without termination, no preset, no known task functions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mbrl.agents.presets import PRESETS
from mbrl.envs.cartpole_swingup import (
    CART_MASS,
    DT,
    GRAVITY,
    POLE_LENGTH,
    POLE_MASS,
    CartPoleSwingUpEnv,
    swing_up_reference,
    upright_gain,
)
from mbrl.gym_ids import CARTPOLE_SWINGUP_ENV_ID
from mbrl.task_fns import get_task_fns


def _episode(env: gym.Env, policy, seed: int) -> tuple[float, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        assert not terminated
        total += reward
        done = truncated
    return total, obs


def test_spaces_registration_and_no_preset() -> None:
    env = gym.make(CARTPOLE_SWINGUP_ENV_ID)
    assert env.observation_space.shape == (5,) and env.action_space.shape == (1,)
    assert env.spec.max_episode_steps == 200
    assert get_task_fns(CARTPOLE_SWINGUP_ENV_ID) is None
    assert CARTPOLE_SWINGUP_ENV_ID not in PRESETS
    check_env(CartPoleSwingUpEnv())
    obs, _ = env.reset(seed=0)
    assert obs[2] < -0.99  # hanging: cos theta = -1


def test_an_unforced_pole_keeps_its_energy_and_the_hanging_rest_is_still() -> None:
    env = CartPoleSwingUpEnv()
    env.reset(seed=0)
    env._state = np.array([0.0, 0.0, 2.0, 0.0])  # released from 2 rad, cart at rest

    def energy() -> float:
        # Cart and pole together: a wrong sign or factor in the dynamics would not keep it.
        _, v, theta, w = env._state
        kinetic = 0.5 * (CART_MASS + POLE_MASS) * v**2 + 0.5 * POLE_MASS * POLE_LENGTH**2 * w**2
        kinetic += POLE_MASS * POLE_LENGTH * v * w * np.cos(theta)
        return kinetic + POLE_MASS * GRAVITY * POLE_LENGTH * np.cos(theta)

    start, drained = energy(), 0.0
    for _ in range(20):
        env.step(np.zeros(1))
        drained += 0.1 * env._state[1] ** 2 * DT  # the cart friction's work, 0.1 x'^2 per s
    assert energy() + drained == pytest.approx(start, abs=0.08)  # Euler: ~0.06 J drift
    env._state = np.array([0.0, 0.0, np.pi, 0.0])
    for _ in range(50):
        obs, *_ = env.step(np.zeros(1))
    assert obs[2] == pytest.approx(-1.0, abs=1e-6) and abs(obs[4]) < 1e-6


def test_the_reference_swings_up_and_balances_where_random_does_not() -> None:
    assert upright_gain().shape == (1, 4)
    env = gym.make(CARTPOLE_SWINGUP_ENV_ID)
    env.action_space.seed(0)
    reference, last = _episode(env, swing_up_reference, seed=1)
    random, _ = _episode(env, lambda _obs: env.action_space.sample(), seed=1)
    assert reference > 120 and last[2] > 0.99 and abs(last[0]) < 0.5  # upright, centred
    assert random < 0


@pytest.mark.parametrize("bad", [np.zeros(2), np.array([np.nan])])
def test_bad_actions_and_lengths_raise(bad) -> None:
    env = CartPoleSwingUpEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)
    with pytest.raises(ValueError, match="max_steps"):
        CartPoleSwingUpEnv(max_steps=0)
