"""MBPO with stable-baselines3 SAC: the mixed replay buffer, a tiny end-to-end run, the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.cli import main as cli_main
from mbrl.data import TransitionBuffer
from mbrl.dyna import MBPOConfig, RolloutSchedule, run_mbpo
from mbrl.models import FitConfig

pytest.importorskip("stable_baselines3")

from mbrl.dyna.mbpo import mixed_replay_buffer_class, run_sac  # noqa: E402

OBS = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
ACT = gym.spaces.Box(np.array([0.0], np.float32), np.array([4.0], np.float32))

TINY = dict(
    total_steps=300,
    init_steps=100,
    utd=2,
    model_train_every=100,
    rollout_every=100,
    rollouts_per_step=5,
    rollout_schedule=RolloutSchedule(1, 2, 100, 300),
    eval_every=200,
    eval_episodes=1,
    final_eval_episodes=1,
    model_options={"ensemble_size": 2, "hidden_size": 16, "num_layers": 2},
    fit=FitConfig(max_steps=20, eval_every=10),
    net_arch=(16, 16),
    batch_size=32,
    progress=False,
)


def filled_mixed_buffer(real_ratio: float) -> tuple:
    model_buffer = TransitionBuffer(2, 1, capacity=100)
    n = 50
    model_buffer.add(
        torch.ones(n, 2),
        torch.full((n, 1), 3.0),
        torch.ones(n),
        torch.ones(n, 2),
        torch.ones(n, dtype=torch.bool),
        torch.zeros(n, dtype=torch.bool),
    )
    cls = mixed_replay_buffer_class()
    buf = cls(100, OBS, ACT, device="cpu", model_buffer=model_buffer, real_ratio=real_ratio, seed=0)
    for i in range(20):  # real rows: reward -1, scaled action -1 (= env action 0)
        buf.add(
            np.zeros((1, 2)),
            np.zeros((1, 2)),
            np.array([[-1.0]]),
            np.array([-1.0]),
            np.array([i == 5]),
            [{}],
        )
    return buf, model_buffer


def test_mixed_buffer_draws_the_real_ratio_and_scales_model_actions():
    buf, _ = filled_mixed_buffer(0.25)
    s = buf.sample(200)
    real = s.rewards[:, 0] < 0
    assert int(real.sum()) == 50 and s.observations.shape == (200, 2)
    # model action 3.0 in [0, 4] is 0.5 in SB3's [-1, 1]; model transitions are terminal here
    assert torch.allclose(s.actions[~real], torch.tensor(0.5))
    assert torch.equal(s.dones[~real], torch.ones(150, 1))
    assert s.rewards.shape == (200, 1) and s.dones.shape == (200, 1)


def test_mixed_buffer_is_all_real_while_the_model_buffer_is_empty_and_unscales_real_actions():
    buf, model_buffer = filled_mixed_buffer(0.05)
    model_buffer._size = 0
    s = buf.sample(64)
    assert bool((s.rewards < 0).all())
    real = buf.real_batch()
    assert len(real) == 20 and torch.equal(real.action, torch.zeros(20, 1))
    assert real.terminated.tolist() == [i == 5 for i in range(20)]


def test_tiny_mbpo_run_trains_the_model_fills_the_model_buffer_and_writes_outputs(tmp_path):
    out = tmp_path / "mbpo"
    result = run_mbpo(MBPOConfig(out=str(out), **TINY))
    assert [e["env_steps"] for e in result.evals] == [200, 300]
    last = result.evals[-1]
    assert np.isfinite(last["model_val"]) and last["rollout_length"] == 2
    # rollouts at 100 (k=1, 500 rows) and 200 (k=2, up to 1000 rows)
    assert last["model_buffer"] == 1500  # Pendulum never terminates
    assert (
        result.final_return == last["mean_return"]
        and result.return_at(250) == result.evals[0]["mean_return"]
    )
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["env_steps"] == 200
    assert {"summary.json", "sac.zip", "model.pt"} <= {p.name for p in out.iterdir()}
    from stable_baselines3 import SAC

    SAC.load(out / "sac.zip", device="cpu")


def test_sac_baseline_uses_real_data_only():
    result = run_sac(MBPOConfig(**{**TINY, "total_steps": 200}))
    assert result.model is None and result.config.algo == "sac"
    assert result.config.gradient_steps == 2  # utd given explicitly
    assert MBPOConfig(algo="sac").gradient_steps == 1 and MBPOConfig().gradient_steps == 10
    assert len(result.agent.replay_buffer.model_buffer) == 0


def test_bad_config_and_env():
    with pytest.raises(ValueError, match="algo"):
        MBPOConfig(algo="ppo")
    with pytest.raises(ValueError, match="real_ratio"):
        MBPOConfig(real_ratio=0.0)
    with pytest.raises(ValueError, match="model must be one of"):
        MBPOConfig(model="nope")
    with pytest.raises(ValueError, match="Box action space"):
        run_mbpo(MBPOConfig(env_id="CartPole-v1", **{k: v for k, v in TINY.items()}))


def test_cli_dyna_bad_env_exits_2(capsys):
    assert cli_main(["dyna", "--env", "CartPole-v1", "--steps", "10", "--quiet"]) == 2
    assert "Box action space" in capsys.readouterr().err


@pytest.mark.slow
def test_mbpo_reaches_minus_250_on_pendulum_by_5k_steps():
    result = run_mbpo(MBPOConfig(seed=0, progress=False))
    assert result.return_at(5000) >= -250
