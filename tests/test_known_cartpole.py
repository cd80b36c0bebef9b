"""The known CartPole-v1 model reproduces gymnasium's dynamics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.models.base import DETERMINISTIC
from mbrl.models.checkpoint import load_checkpoint, save_checkpoint
from mbrl.models.known import build_known_model, known_model_class
from mbrl.models.known.cartpole import CartPoleConfig, KnownCartPole
from mbrl.models.registry import build_model
from mbrl.spaces import ActionCodec


def _one_hot(actions: np.ndarray | list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(actions), 2).to(torch.float64)


def test_one_step_matches_env_on_random_states() -> None:
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    states = rng.uniform([-2.4, -3.0, -0.25, -3.5], [2.4, 3.0, 0.25, 3.5], size=(200, 4))
    actions = rng.integers(0, 2, size=200)
    expected = []
    for s, a in zip(states, actions, strict=True):
        env.state = s.copy()
        env.steps_beyond_terminated = None  # states past the limits are fine for physics
        env.step(int(a))
        expected.append(env.state.copy())  # the env's float64 state after the step
    model = KnownCartPole()
    pred = model.step(torch.as_tensor(states), _one_hot(actions)).numpy()
    np.testing.assert_allclose(pred, np.stack(expected), rtol=0, atol=1e-10)


def test_float32_observation_trajectory_matches_env_to_1e5() -> None:
    env = gym.make("CartPole-v1")
    codec = ActionCodec.from_space(env.action_space)
    obs, _ = env.reset(seed=3)
    model = KnownCartPole()
    rng = np.random.default_rng(3)
    steps = 0
    for _ in range(200):
        a = int(rng.integers(0, 2))
        pred = model.step(torch.as_tensor(obs).unsqueeze(0), torch.as_tensor(codec.encode(a))[None])
        obs, _, terminated, truncated, _ = env.step(a)
        np.testing.assert_allclose(pred[0].numpy(), obs, rtol=0, atol=1e-5)
        steps += 1
        if terminated or truncated:
            obs, _ = env.reset(seed=3 + steps)
    assert steps == 200


def test_open_loop_rollout_in_float64_tracks_env() -> None:
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=1)
    state = torch.as_tensor(env.state, dtype=torch.float64).unsqueeze(0)
    model = KnownCartPole()
    # Alternate pushes keep the pole up long enough for a long comparison.
    for t in range(60):
        a = t % 2
        env.steps_beyond_terminated = None
        env.step(a)
        state = model.step(state, _one_hot([a]))
        np.testing.assert_allclose(state[0].numpy(), env.state, rtol=0, atol=1e-10)


def test_action_is_decoded_by_argmax() -> None:
    model = KnownCartPole()
    s = torch.zeros(3, 4)
    left = model.step(s, torch.tensor([[1.0, 0.0], [0.7, 0.2], [0.5, 0.5]]))
    right = model.step(s, torch.tensor([[0.0, 1.0], [0.2, 0.7], [0.0, 1.0]]))
    assert torch.all(left[:, 1] < 0)  # pushed left: x_dot decreases
    assert torch.all(right[:, 1] > 0)
    assert torch.equal(left[0], left[2])  # a tie decodes to index 0 like argmax


def test_bad_action_shape_and_config_raise() -> None:
    model = KnownCartPole()
    with pytest.raises(ValueError, match=r"action must have shape \(2, 2\)"):
        model.step(torch.zeros(2, 4), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="obs must have shape"):
        model.check_obs(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="masspole"):
        CartPoleConfig(masspole=-0.1)
    with pytest.raises(TypeError, match="CartPoleConfig"):
        KnownCartPole(config={"tau": 0.01})  # type: ignore[arg-type]


def test_registered_as_known_model_and_checkpointable(tmp_path) -> None:
    assert known_model_class("CartPole-v1") is KnownCartPole
    model = build_model("known", 4, 2, {"tau": 0.01}, env_id="CartPole-v1")
    assert isinstance(model, KnownCartPole) and model.config.tau == 0.01
    assert DETERMINISTIC in model.capabilities
    with pytest.raises(ValueError, match="obs_dim"):
        build_known_model("CartPole-v1", obs_dim=5)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert isinstance(loaded, KnownCartPole) and loaded.config == model.config
