"""DomainRandomization: per-episode physics draws, seeding, both setter paths, bad ranges."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mbrl.envs  # noqa: F401  (registers the envs)
from mbrl.envs import AwakeSteeringEnv, DomainRandomization

PENDULUM_RANGES = {"m": (0.5, 1.5), "l": (0.8, 1.2), "g": (8.0, 12.0)}
AWAKE_RANGES = {"response_scale": (0.8, 1.2), "monitor_gains": (0.9, 1.1), "noise_mm": (0.0, 0.2)}


def test_pendulum_parameters_are_redrawn_every_episode_within_ranges() -> None:
    env = DomainRandomization(gym.make("Pendulum-v1"), PENDULUM_RANGES)
    draws = []
    for episode in range(6):
        _, info = env.reset(seed=0 if episode == 0 else None)
        unwrapped = env.unwrapped
        assert info["physics"] == {"m": unwrapped.m, "l": unwrapped.l, "g": unwrapped.g}
        for name, (low, high) in PENDULUM_RANGES.items():
            value = getattr(unwrapped, name)
            assert type(value) is float and low <= value <= high
        draws.append(tuple(info["physics"].values()))
    assert len(set(draws)) == len(draws)


def test_randomised_physics_changes_the_dynamics() -> None:
    def next_obs(g: float) -> np.ndarray:
        env = DomainRandomization(gym.make("Pendulum-v1"), {"g": (g, g)})
        env.reset(seed=1)
        return env.step(np.zeros(1, dtype=np.float32))[0]

    assert not np.allclose(next_obs(5.0), next_obs(15.0))
    np.testing.assert_array_equal(next_obs(5.0), next_obs(5.0))


def test_seeded_reset_reproduces_parameters_and_start_state() -> None:
    runs = []
    for _ in range(2):
        env = DomainRandomization(gym.make("Pendulum-v1"), PENDULUM_RANGES)
        obs, info = env.reset(seed=42)
        obs2, info2 = env.reset()
        runs.append((obs, info["physics"], obs2, info2["physics"]))
    (o_a, p_a, o2_a, p2_a), (o_b, p_b, o2_b, p2_b) = runs
    np.testing.assert_array_equal(o_a, o_b)
    np.testing.assert_array_equal(o2_a, o2_b)
    assert p_a == p_b and p2_a == p2_b and p_a != p2_a
    plain_obs, _ = gym.make("Pendulum-v1").reset(seed=42)
    np.testing.assert_array_equal(o_a, plain_obs)  # the env's own stream is untouched


def test_awake_uses_set_physics_with_per_monitor_gain_draws() -> None:
    env = DomainRandomization(gym.make("mbrl/AwakeSteering-v0"), AWAKE_RANGES)
    obs, info = env.reset(seed=0)
    awake = env.unwrapped
    assert isinstance(awake, AwakeSteeringEnv)
    gains = info["physics"]["monitor_gains"]
    assert gains.shape == (10,) and len(np.unique(gains)) == 10
    assert np.all((gains >= 0.9) & (gains <= 1.1))
    np.testing.assert_array_equal(awake.monitor_gains, gains)
    assert awake.response_scale == info["physics"]["response_scale"]
    expected = gains[:, None] * info["physics"]["response_scale"] * awake.response_matrix
    np.testing.assert_allclose(awake.effective_response_matrix, expected)
    _, info2 = env.reset()
    assert not np.array_equal(info2["physics"]["monitor_gains"], gains)
    assert env.observation_space.contains(obs)


def test_wrapped_awake_passes_sb3_env_checker() -> None:
    sb3_check_env(DomainRandomization(AwakeSteeringEnv(), AWAKE_RANGES))


def test_array_bounds_are_broadcast_per_element() -> None:
    low, high = np.linspace(0.5, 0.95, 10), np.linspace(0.55, 1.0, 10)
    env = DomainRandomization(AwakeSteeringEnv(), {"monitor_gains": (low, high)})
    _, info = env.reset(seed=3)
    gains = info["physics"]["monitor_gains"]
    assert np.all((gains >= low) & (gains <= high))


@pytest.mark.parametrize(
    ("make", "ranges", "match"),
    [
        (lambda: gym.make("Pendulum-v1"), {"mass": (0.5, 1.5)}, "unknown parameter 'mass'"),
        (lambda: gym.make("Pendulum-v1"), {"g": (12.0, 8.0)}, "'g' has low > high"),
        (lambda: gym.make("Pendulum-v1"), {"g": (np.nan, 8.0)}, "'g' must be finite"),
        (lambda: gym.make("Pendulum-v1"), {"g": (1.0,)}, "'g' must be a \\(low, high\\) pair"),
        (lambda: gym.make("Pendulum-v1"), {"np_random": (0, 1)}, "'np_random' .* not numeric"),
        (AwakeSteeringEnv, {"kick_scale_mrad": (0.1, 1.0)}, "not a keyword of .*set_physics"),
        (AwakeSteeringEnv, {"monitor_gains": (np.ones(3), np.ones(3))}, "broadcast to its shape"),
    ],
)
def test_bad_ranges_raise_value_error_naming_the_parameter(make, ranges, match) -> None:
    with pytest.raises(ValueError, match=match):
        DomainRandomization(make(), ranges)
