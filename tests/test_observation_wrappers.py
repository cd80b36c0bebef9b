"""POMDP wrappers: dropped velocities, rendered pixels, action repeat, registered ids."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from mbrl.agents.env_factory import make_env
from mbrl.envs.observation_wrappers import (
    ActionRepeat,
    DropVelocity,
    PixelObservation,
    render_pendulum,
)


def test_drop_velocity_keeps_cos_sin_of_the_true_state():
    env = make_env("mbrl/PendulumNoVel-v0")
    obs, _ = env.reset(seed=1)
    theta = env.unwrapped.state[0]
    assert obs.shape == (2,) and env.observation_space.shape == (2,)
    np.testing.assert_allclose(obs, [np.cos(theta), np.sin(theta)], rtol=1e-6)
    with pytest.raises(ValueError, match="keep must be distinct indices"):
        DropVelocity(gym.make("Pendulum-v1"), keep=(0, 5))


def test_pixels_are_small_uint8_images_that_depend_on_the_angle():
    env = make_env("mbrl/PendulumPixels-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    env.unwrapped.state = np.array([0.0, 0.0])
    up = render_pendulum(env, 32)
    env.unwrapped.state = np.array([np.pi, 0.0])
    down = render_pendulum(env, 32)
    # upright: the rod is drawn in the top half; hanging: in the bottom half
    red = lambda img: (img[..., 0].astype(int) - img[..., 1]) > 60  # noqa: E731
    assert red(up)[:12].sum() > 20 and red(up)[20:].sum() == 0
    assert red(down)[20:].sum() > 20 and red(down)[:12].sum() == 0
    big = make_env("mbrl/PendulumPixels-v0", size=64)
    assert big.reset(seed=0)[0].shape == (64, 64, 3)


def test_channels_first_and_bad_renderer_output():
    env = PixelObservation(
        gym.make("Pendulum-v1"), 8, lambda e, s: np.zeros((s, s, 3), np.uint8), True
    )
    assert env.reset(seed=0)[0].shape == (3, 8, 8)
    bad = PixelObservation(gym.make("Pendulum-v1"), 8, lambda e, s: np.zeros((s, s, 3)))
    with pytest.raises(ValueError, match=r"\(8, 8, 3\) uint8"):
        bad.reset(seed=0)


def test_action_repeat_sums_rewards_and_counts_env_steps():
    plain, rep = gym.make("Pendulum-v1"), ActionRepeat(gym.make("Pendulum-v1"), 3)
    plain.reset(seed=4)
    rep.reset(seed=4)
    total = sum(plain.step(np.array([1.0]))[1] for _ in range(3))
    obs, reward, *_ = rep.step(np.array([1.0]))
    assert reward == pytest.approx(total) and rep.env_steps == 3
    np.testing.assert_allclose(obs, plain.unwrapped._get_obs())
    steps = 1
    while not any(rep.step(np.array([0.0]))[2:4]):
        steps += 1
    assert steps + 1 == 67 and rep.env_steps == 200  # 200-step limit: the last repeat is cut short
