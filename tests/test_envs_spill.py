"""SPS spill ripple env: gymnasium conformance, seeds' reward, drift, controllability, bad input."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mbrl.envs  # noqa: F401  (registers the envs and their task functions)
from mbrl.envs.spill import SpillControlEnv, ripple_amplitude, spill_reward, wrap_angle
from mbrl.task_fns import get_task_fns

ENV_ID = "mbrl/SpillControl-v0"


def phasor_controller(env: SpillControlEnv, obs: np.ndarray) -> np.ndarray:
    """Set the correction to minus the ripple inferred from ``obs`` (one-step cancellation)."""
    a_spill, phi_spill, a_corr, phi_corr = (float(v) for v in obs)
    noise = a_spill * np.exp(1j * phi_spill) - a_corr * np.exp(1j * phi_corr)
    d_amp = (abs(noise) - a_corr) / env.max_amplitude_step
    d_phase = float(wrap_angle(np.angle(-noise) - phi_corr)) / env.max_phase_step
    return np.clip([d_amp, d_phase], -1.0, 1.0)


def fraction_below_target(env: SpillControlEnv, policy, seed: int) -> float:
    """Fraction of the steps of one episode with ``A_spill < target``."""
    obs, _ = env.reset(seed=seed)
    below = []
    truncated = False
    while not truncated:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        assert not terminated
        below.append(info["below_target"])
    return float(np.mean(below))


def test_passes_gymnasium_and_sb3_env_checkers_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID).unwrapped)
        sb3_check_env(gym.make(ENV_ID).unwrapped)


def test_seeded_reset_and_drift_are_reproducible() -> None:
    env_a, env_b = SpillControlEnv(), SpillControlEnv()
    np.testing.assert_array_equal(env_a.reset(seed=3)[0], env_b.reset(seed=3)[0])
    for action in np.random.default_rng(0).uniform(-1, 1, (20, 2)):
        out_a, out_b = env_a.step(action), env_b.step(action)
        np.testing.assert_array_equal(out_a[0], out_b[0])
        assert out_a[1:] == out_b[1:]
    assert not np.array_equal(env_a.reset(seed=4)[0], env_b.reset(seed=3)[0])


def test_reward_is_the_seeds_formula_and_the_known_torch_reward() -> None:
    fns = get_task_fns(ENV_ID)
    assert fns is not None and fns.reward is spill_reward and fns.termination is None
    env = SpillControlEnv()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    obs_l, act_l, next_l, rew_l = [], [], [], []
    for _ in range(50):
        action = rng.uniform(-1.5, 1.5, 2)
        next_obs, reward, terminated, truncated, info = env.step(action)
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert env.observation_space.contains(next_obs)
        seeds = ripple_amplitude(info["A_noise"], info["phi_noise"], *next_obs[2:].tolist())
        assert reward == pytest.approx(-seeds, abs=1e-6)
        obs_l.append(obs), act_l.append(action), next_l.append(next_obs), rew_l.append(reward)
        obs = next_obs
    batch = [torch.as_tensor(np.array(x), dtype=torch.float32) for x in (obs_l, act_l, next_l)]
    torch.testing.assert_close(spill_reward(*batch), torch.tensor(rew_l, dtype=torch.float32))


def test_observation_determines_the_hidden_ripple() -> None:
    env = SpillControlEnv()
    obs, info = env.reset(seed=2)
    for _ in range(10):
        a_s, p_s, a_c, p_c = obs.astype(np.float64)
        noise = a_s * np.exp(1j * p_s) - a_c * np.exp(1j * p_c)
        expected = info["A_noise"] * np.exp(1j * info["phi_noise"])
        assert abs(noise - expected) < 1e-5
        obs, _, _, _, info = env.step(np.array([0.3, -0.4]))


def test_ripple_drifts_slowly_and_is_static_without_drift() -> None:
    static = SpillControlEnv(drift_scale=0.0)
    obs0, _ = static.reset(seed=0)
    for _ in range(20):
        obs, *_ = static.step(np.zeros(2))
    np.testing.assert_array_equal(obs, obs0)

    env = SpillControlEnv()
    _, info = env.reset(seed=0)
    phases, amps = [info["phi_noise"]], [info["A_noise"]]
    for _ in range(env.max_steps):
        _, _, _, _, info = env.step(np.zeros(2))
        phases.append(info["phi_noise"]), amps.append(info["A_noise"])
    step_change = np.abs(wrap_angle(np.diff(phases)))
    assert step_change.max() < 0.08  # slow enough to track from step to step ...
    assert np.abs(np.sum(wrap_angle(np.diff(phases)))) > 0.5  # ... but it must be tracked
    low, high = env.noise_amplitude_range
    assert low <= min(amps) and max(amps) <= high and np.abs(np.diff(amps)).max() < 0.05


def test_action_scaling_lets_a_good_controller_stay_below_target() -> None:
    env = SpillControlEnv()
    fractions = [
        fraction_below_target(env, lambda o: phasor_controller(env, o), s) for s in range(5)
    ]
    assert min(fractions) >= 0.9
    assert fraction_below_target(env, lambda o: np.zeros(2), 0) < 0.1


def test_out_of_bound_actions_are_clipped_and_correction_stays_in_range() -> None:
    env_a, env_b = SpillControlEnv(), SpillControlEnv()
    env_a.reset(seed=5), env_b.reset(seed=5)
    np.testing.assert_array_equal(
        env_a.step(np.array([9.0, -3.0]))[0], env_b.step(np.array([1.0, -1.0]))[0]
    )
    for _ in range(12):
        obs, *_ = env_a.step(np.array([1.0, 1.0]))
    assert obs[2] == pytest.approx(env_a.max_corr_amplitude)
    for _ in range(12):
        obs, *_ = env_a.step(np.array([-1.0, 1.0]))
    assert obs[2] == 0.0 and env_a.observation_space.contains(obs)


def test_truncates_after_max_steps_and_never_terminates() -> None:
    env = SpillControlEnv(max_steps=4)
    env.reset(seed=0)
    flags = [env.step(np.zeros(2))[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (np.zeros(3), ValueError, r"action must have shape \(2,\)"),
        (np.zeros((1, 2)), ValueError, r"action must have shape \(2,\)"),
        (np.array([np.nan, 0.0]), ValueError, "action must be finite"),
        (np.array([0.0, -np.inf]), ValueError, "action must be finite"),
        (None, TypeError, "action must be a numeric array"),
    ],
)
def test_bad_actions_raise_clear_errors(action, error, match) -> None:
    env = SpillControlEnv(drift_scale=0.0)
    obs, _ = env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)
    np.testing.assert_array_equal(env.step(np.zeros(2))[0], obs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_amplitude_range": (1.0, 0.5)}, "noise_amplitude_range"),
        ({"noise_amplitude_range": (0.0, 0.5)}, "noise_amplitude_range"),
        ({"max_phase_step": float("nan")}, "max_phase_step"),
        ({"amplitude_reversion": 1.5}, "amplitude_reversion"),
        ({"drift_scale": -1.0}, "drift_scale"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SpillControlEnv(**kwargs)
