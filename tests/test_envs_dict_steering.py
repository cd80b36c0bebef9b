"""mbrl/DictSteering-v0: a Dict-observation env, flattened, learned end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mbrl
from mbrl.agents.config import RunConfig
from mbrl.agents.setup import build_run
from mbrl.envs.dict_steering import RESPONSE, DictSteeringEnv
from mbrl.models.training import FitConfig


def test_obs_is_a_dict_of_bpm_readings_and_setpoints():
    env = DictSteeringEnv(max_steps=3, noise=0.0)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"bpm", "setpoint"} and env.observation_space.contains(obs)
    np.testing.assert_allclose(obs["bpm"], RESPONSE @ env._kicks, rtol=1e-6)
    nxt, reward, terminated, truncated, _ = env.step(np.zeros(3, np.float32))
    np.testing.assert_allclose(nxt["setpoint"], obs["setpoint"])  # fixed per episode
    assert reward == pytest.approx(-np.linalg.norm(obs["bpm"] - obs["setpoint"]), rel=1e-5)
    assert not terminated and not truncated
    env.step(np.zeros(3)), env.step(np.zeros(3))
    assert env._t == 3 and env.step(np.zeros(3))[3]
    with pytest.raises(ValueError, match="max_steps"):
        DictSteeringEnv(max_steps=0)


def test_a_learned_reward_run_sees_the_flat_observation():
    cfg = RunConfig(
        env_id="mbrl/DictSteering-v0",
        reward="learned",
        seed_episodes=1,
        min_seed_transitions=10,
        episodes=1,
        max_episode_steps=15,
        horizon=3,
        n_particles=1,
        model_options={"ensemble_size": 2, "hidden_size": 16, "num_layers": 2},
        planner_options={"population": 16, "iterations": 2},
        fit=FitConfig(max_steps=20, eval_every=10),
        progress=False,
    )
    setup = build_run(cfg, dry=True)
    layout = setup.env_info.observation_layout
    assert layout.to_json()["size"] == 6 and layout.slice("setpoint") == slice(3, 6)
    result = mbrl.run(cfg)
    assert [r.steps for r in result.records] == [15, 15]
    assert result.model.obs_dim == 6
    obs = result.buffer.all().obs
    assert obs.shape == (30, 6)
    # The set-point block is constant within an episode and inside its sampling range.
    setpoints = obs[:, layout.slice("setpoint")]
    assert torch.equal(setpoints[:15], setpoints[:1].expand(15, -1))
    assert bool((setpoints.abs() <= 0.5).all())
    # The learned reward scores flat (M, 6) observations.
    actions = torch.zeros(4, 3)
    assert result.reward_fn(obs[:4], actions, obs[1:5]).shape == (4,)
