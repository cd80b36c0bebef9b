"""AWAKE steering env: optics, gymnasium conformance, known task fns, steering sanity, bad input."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mbrl.envs  # noqa: F401  (registers the envs and their task functions)
from mbrl.envs.awake import (
    DEFAULT_MAX_STEPS,
    AwakeSteeringEnv,
    awake_planning_reward,
    awake_reward,
    awake_termination,
    load_twiss,
    make_awake_task_fns,
    tt43_response_matrix,
)
from mbrl.task_fns import get_task_fns

ENV_ID = "mbrl/AwakeSteering-v0"


def run_episode(env: AwakeSteeringEnv, policy, seed: int) -> tuple[int, bool]:
    """Run one episode; returns (steps taken, reached success)."""
    obs, _ = env.reset(seed=seed)
    for step in range(1, env.max_steps + 1):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            return step, info["is_success"]
    raise AssertionError("episode did not end within max_steps")


def test_response_matrix_from_twiss_is_causal_and_ill_conditioned() -> None:
    r = tt43_response_matrix()
    monitors, correctors = load_twiss(prefix="BPM."), load_twiss(prefix="MCAWA.")
    assert r.shape == (10, 10)
    assert len(monitors.names) == len(correctors.names) == 10
    upstream = monitors.s[:, None] <= correctors.s[None, :]
    assert np.all(r[upstream] == 0.0)  # a kick never moves the beam upstream
    i, j = 6, 2  # BPM.412345 sees MCAWA.430104
    expected = np.sqrt(monitors.beta[i] * correctors.beta[j]) * np.sin(
        2 * np.pi * (monitors.mu[i] - correctors.mu[j])
    )
    assert r[i, j] == pytest.approx(expected)
    sv = np.linalg.svd(r, compute_uv=False)
    assert sv[0] == pytest.approx(50.5, abs=0.5)
    assert sv[-1] == pytest.approx(0.18, abs=0.01)


def test_env_exposes_response_in_mm_per_unit_action_and_follows_it() -> None:
    env = AwakeSteeringEnv(kick_scale_mrad=0.3)
    np.testing.assert_allclose(env.response_matrix, tt43_response_matrix() * 0.3)
    obs, _ = env.reset(seed=1)
    action = np.full(10, 0.05)
    next_obs, *_ = env.step(action)
    np.testing.assert_allclose(next_obs - obs, env.response_matrix @ action, atol=1e-4)


def test_passes_gymnasium_and_sb3_env_checkers_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID).unwrapped)
        sb3_check_env(gym.make(ENV_ID).unwrapped)
        sb3_check_env(AwakeSteeringEnv(noise_mm=0.1, drift_mrad=0.1))


def test_seeded_reset_and_steps_are_reproducible() -> None:
    env_a, env_b = AwakeSteeringEnv(noise_mm=0.1), AwakeSteeringEnv(noise_mm=0.1)
    obs_a, _ = env_a.reset(seed=7)
    obs_b, _ = env_b.reset(seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    actions = np.random.default_rng(0).uniform(-0.1, 0.1, (5, 10))
    for action in actions:
        out_a, out_b = env_a.step(action), env_b.step(action)
        np.testing.assert_array_equal(out_a[0], out_b[0])
        assert out_a[1:4] == out_b[1:4]
    assert not np.array_equal(env_a.reset(seed=8)[0], obs_a)


def test_step_types_and_bounds() -> None:
    env = AwakeSteeringEnv()
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (10,)
    assert env.observation_space.contains(obs)
    assert info["rms_mm"] >= env.success_rms_mm
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert env.observation_space.contains(obs)


def test_env_pays_exactly_the_known_task_functions() -> None:
    fns = get_task_fns(ENV_ID)
    assert fns is not None and fns.reward is awake_reward and fns.termination is awake_termination
    env = AwakeSteeringEnv()
    rng = np.random.default_rng(0)
    obs_l, act_l, next_l, rew_l, term_l = [], [], [], [], []
    for episode in range(30):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            # mix of large random steps (failures) and damped corrections (successes)
            if episode % 2:
                action = rng.uniform(-1.0, 1.0, 10)
            else:
                action = -0.7 * np.linalg.solve(env.response_matrix, obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            obs_l.append(obs), act_l.append(action), next_l.append(next_obs)
            rew_l.append(reward), term_l.append(terminated)
            obs, done = next_obs, terminated or truncated
    as_t = lambda xs: torch.as_tensor(np.array(xs), dtype=torch.float64)  # noqa: E731
    args = (as_t(obs_l), as_t(act_l), as_t(next_l))
    torch.testing.assert_close(awake_reward(*args), as_t(rew_l), rtol=1e-12, atol=1e-12)
    terms = awake_termination(*args)
    assert terms.tolist() == term_l
    assert 0 < sum(term_l) < len(term_l)


def test_task_fns_are_batched_and_follow_dtype() -> None:
    next_obs = torch.tensor([[1.0] * 10, [3.0] * 10, [30.0] + [0.0] * 9], dtype=torch.float32)
    obs, action = torch.zeros(3, 10), torch.zeros(3, 10)
    reward = awake_reward(obs, action, next_obs)
    assert reward.dtype == torch.float32 and reward.shape == (3,)
    torch.testing.assert_close(reward, torch.tensor([-1.0, -3.0, -(90.0**0.5)]))
    assert awake_termination(obs, action, next_obs).tolist() == [True, False, True]
    reward_fn, term_fn = make_awake_task_fns(success_rms_mm=0.5, aperture_mm=2.0)
    assert term_fn(obs, action, next_obs).tolist() == [False, True, True]
    assert reward_fn(obs.double(), action.double(), next_obs.double()).dtype == torch.float64


def test_clipped_pseudo_inverse_steers_to_success_and_random_actions_mostly_do_not() -> None:
    env = AwakeSteeringEnv()
    pinv = np.linalg.pinv(env.response_matrix)
    rng = np.random.default_rng(0)
    pinv_runs = [run_episode(env, lambda o: np.clip(-pinv @ o, -1, 1), s) for s in range(100)]
    random_runs = [run_episode(env, lambda o: rng.uniform(-1, 1, 10), s) for s in range(100)]
    assert all(success for _, success in pinv_runs)
    assert np.mean([steps for steps, _ in pinv_runs]) <= 3.0
    assert np.mean([success for _, success in random_runs]) < 0.5


def test_leaving_the_aperture_terminates_as_failure_with_clipped_obs() -> None:
    env = AwakeSteeringEnv()
    obs, _ = env.reset(seed=3)
    direction = np.sign(env.response_matrix[6] @ np.ones(10))
    obs, reward, terminated, truncated, info = env.step(direction * np.ones(10))
    assert terminated and not truncated and not info["is_success"]
    assert np.abs(obs).max() == env.aperture_mm
    assert env.observation_space.contains(obs) and reward <= -env.aperture_mm / np.sqrt(10)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(10))


def test_truncates_after_max_steps() -> None:
    env = AwakeSteeringEnv(max_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(10))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_out_of_bound_actions_are_clipped() -> None:
    env_a, env_b = AwakeSteeringEnv(), AwakeSteeringEnv()
    env_a.reset(seed=5), env_b.reset(seed=5)
    action = np.linspace(-0.3, 0.3, 10)
    action[0], action[9] = 7.0, -4.0
    np.testing.assert_array_equal(env_a.step(action)[0], env_b.step(np.clip(action, -1, 1))[0])


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (np.zeros(9), ValueError, r"action must have shape \(10,\)"),
        (np.zeros((10, 1)), ValueError, r"action must have shape \(10,\)"),
        (np.r_[np.nan, np.zeros(9)], ValueError, "action must be finite"),
        (np.r_[np.inf, np.zeros(9)], ValueError, "action must be finite"),
        ("left", TypeError, "action must be a numeric array"),
    ],
)
def test_bad_actions_raise_clear_errors(action, error, match) -> None:
    env = AwakeSteeringEnv()
    obs, _ = env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)
    next_obs, *_ = env.step(np.zeros(10))  # state untouched by the rejected action
    np.testing.assert_array_equal(next_obs, obs)


def test_noise_gains_and_drift() -> None:
    env = AwakeSteeringEnv(noise_mm=0.5)
    env.reset(seed=0)
    readings = np.array([env.step(np.zeros(10))[0] for _ in range(40)])
    assert 0.3 < readings.std(axis=0).mean() < 0.7
    env.set_physics(noise_mm=0.0, monitor_gains=np.full(10, 2.0), response_scale=0.5)
    np.testing.assert_allclose(env.effective_response_matrix, env.response_matrix)

    drifting = AwakeSteeringEnv(drift_mrad=0.2)
    drifting.reset(seed=1)
    assert not drifting.drift_offset_mrad.any()
    offsets = []
    for _ in range(20):
        obs, _ = drifting.reset()
        assert drifting.observation_space.contains(obs)
        offsets.append(drifting.drift_offset_mrad)
    steps = np.diff(np.array(offsets), axis=0)
    assert 0.1 < np.abs(steps).mean() < 0.3  # a slow random walk, seeded reset zeroes it
    assert np.abs(offsets).max() <= drifting.start_error_mrad
    drifting.reset(seed=1)
    assert not drifting.drift_offset_mrad.any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"aperture_mm": -1.0}, "aperture_mm"),
        ({"success_rms_mm": float("nan")}, "success_rms_mm"),
        ({"success_rms_mm": 10.0}, "success_rms_mm"),
        ({"kick_scale_mrad": 0.0}, "kick_scale_mrad"),
        ({"max_steps": 0}, "max_steps"),
        ({"noise_mm": -0.1}, "noise_mm"),
        ({"monitor_gains": np.ones(9)}, r"monitor_gains must have shape \(10,\)"),
        ({"response_scale": float("inf")}, "response_scale"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        AwakeSteeringEnv(**kwargs)


def test_planning_reward_makes_losing_the_beam_worse_than_any_kept_trajectory() -> None:
    task = get_task_fns("mbrl/AwakeSteering-v0")
    assert task.planner_reward is awake_planning_reward
    obs, action = torch.zeros(2, 10), torch.zeros(2, 10)
    kept = torch.full((2, 10), 29.9)  # worst reading that keeps the beam: RMS 29.9 mm
    lost = torch.tensor([[30.0] + [0.0] * 9, [0.0] * 9 + [-31.0]])
    torch.testing.assert_close(
        awake_planning_reward(obs, action, kept), awake_reward(obs, action, kept)
    )
    worst_kept_episode = DEFAULT_MAX_STEPS * awake_reward(obs, action, kept)
    assert (awake_planning_reward(obs, action, lost) < worst_kept_episode).all()
