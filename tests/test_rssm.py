"""RSSM: shapes end to end, free nats, latent planning view, checkpoints, reproducibility, errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mbrl.agents.belief import BeliefAgent
from mbrl.agents.planet_loop import PlanetConfig, run_planet
from mbrl.data.sequence_buffer import SequenceBatch, random_sequence_batch
from mbrl.models.checkpoint import load_checkpoint, save_checkpoint
from mbrl.models.rssm.latent import LatentDynamics, LatentReward
from mbrl.models.rssm.model import RSSM
from mbrl.models.rssm.networks import RSSMConfig
from mbrl.models.rssm.training import RSSMTrainConfig
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.rollout import rollout
from mbrl.spaces import ActionCodec

SMALL = RSSMConfig(deter_size=16, stoch_size=4, hidden_size=16, embed_size=8, cnn_depth=4)


def _batch(obs_shape, b=3, length=6, a_dim=2, seed=0) -> SequenceBatch:
    return random_sequence_batch(obs_shape, a_dim, b, length, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("obs_shape", [(3,), (16, 16, 3), (3, 32, 32)])
def test_shapes_through_the_whole_model(obs_shape, gen):
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL, overshooting_distance=3)
    model = RSSM(obs_shape, 2, cfg)
    batch = _batch(obs_shape)
    res = model.filter_sequence(batch.obs, batch.action, gen)
    assert res.h.shape == (3, 6, 16) and res.z.shape == (3, 6, 4)
    assert res.features.shape == (3, 6, 20)
    assert res.prior_mean.shape == res.post_std.shape == (3, 6, 4)
    assert bool((res.post_std >= cfg.min_std).all())
    loss, parts = model.loss(batch, gen)
    loss.backward()
    assert torch.isfinite(loss) and parts["overshooting"] > 0
    assert all(p.grad is not None for p in model.parameters())
    img_shape = obs_shape if len(obs_shape) == 1 else (3, obs_shape[1], obs_shape[1])  # CHW
    assert model.decode(res.features[:, 0]).shape == (3, *img_shape)
    assert model.reward(res.features).shape == (3, 6)
    pred = model.open_loop_prediction(batch.obs, batch.action, 2, gen)
    assert pred.shape == (3, 4, *img_shape)
    assert model.open_loop_error(batch.obs, batch.action, 2, gen).shape == (4,)
    # the planner's view: an ordinary DynamicsModel over features (F = 20)
    latent = LatentDynamics(model)
    assert latent.obs_dim == 20 and latent.action_dim == 2
    with torch.no_grad():
        out = rollout(
            latent, res.features[0, -1], torch.zeros(7, 5, 2), LatentReward(model),
            n_particles=3, generator=gen, return_trajectories=True,
        )  # fmt: skip
    assert out.returns.shape == (7,) and out.observations.shape == (6, 3, 7, 20)


def test_kl_below_free_nats_is_not_penalised(gen):
    torch.manual_seed(0)
    batch = _batch((3,))
    for free_nats, expect_grad in [(1e4, False), (0.0, True)]:
        model = RSSM((3,), 2, dataclasses.replace(SMALL, free_nats=free_nats))
        loss, parts = model.loss(batch, gen)
        loss.backward()
        # the prior head enters the loss only through the KL term
        grad = sum(p.grad.abs().sum() for p in model.prior_head.parameters())
        assert (float(grad) > 0) == expect_grad
        kl_term = parts["loss"] - parts["obs"] - parts["reward"]
        assert kl_term == pytest.approx(max(parts["kl"], free_nats), rel=1e-4)
        assert 0 < parts["kl"] < 1e4
    # default: 1 nat for vectors, PlaNet's 3 for images
    assert RSSM((3,), 2, SMALL).free_nats == 1.0
    assert RSSM((16, 16, 3), 2, SMALL).free_nats == 3.0


def test_save_load_round_trip_gives_identical_latent_rollouts(tmp_path):
    torch.manual_seed(1)
    model = RSSM((3,), 2, dataclasses.replace(SMALL, overshooting_distance=2))
    model.fit_normalizers(torch.randn(50, 3) * 3 + 1, torch.randn(50) - 4)
    save_checkpoint(tmp_path / "rssm.pt", model)
    back, _ = load_checkpoint(tmp_path / "rssm.pt", expected_class=RSSM)
    assert back.config == model.config and back.obs_shape == (3,)
    batch = _batch((3,))
    start = model.filter_sequence(batch.obs, batch.action, torch.Generator().manual_seed(0))
    actions = torch.rand(9, 6, 2, generator=torch.Generator().manual_seed(0))
    results = []
    for m in (model, back):
        with torch.no_grad():
            results.append(
                rollout(
                    LatentDynamics(m),
                    start.features[0, -1],
                    actions,
                    LatentReward(m),
                    n_particles=4,
                    generator=torch.Generator().manual_seed(5),
                    return_trajectories=True,
                )  # fmt: skip
            )
    assert torch.equal(results[0].observations, results[1].observations)
    assert torch.equal(results[0].returns, results[1].returns)


def test_bad_inputs_raise_clear_errors(gen):
    model = RSSM((16, 16, 3), 2, SMALL)
    batch = _batch((16, 16, 3))
    with pytest.raises(TypeError, match=r"uint8 images .*\(16, 16, 3\)"):
        model.filter_sequence(batch.obs.float(), batch.action, gen)
    with pytest.raises(ValueError, match=r"obs must have shape \(B, L, 16, 16, 3\)"):
        model.filter_sequence(batch.obs[..., :8, :8, :], batch.action, gen)
    with pytest.raises(ValueError, match=r"action must have shape \(3, 6, 2\)"):
        model.filter_sequence(batch.obs, batch.action[..., :1], gen)
    with pytest.raises(ValueError, match="power of two"):
        RSSM((24, 24, 3), 2, SMALL)
    with pytest.raises(ValueError, match="obs_shape"):
        RSSM((4, 4), 2, SMALL)
    with pytest.raises(ValueError, match="context must lie in"):
        model.open_loop_prediction(batch.obs, batch.action, 6, gen)
    with pytest.raises(ValueError, match="stoch_size must be a positive int"):
        RSSMConfig(stoch_size=0)


def test_belief_agent_filters_and_plans_within_bounds(gen):
    import gymnasium as gym

    torch.manual_seed(0)
    model = RSSM((3,), 1, SMALL)
    codec = ActionCodec.from_space(gym.spaces.Box(-2.0, 2.0, (1,)))
    ctx = PlannerContext(
        LatentDynamics(model), LatentReward(model), None, codec, gen, 4, 1, 1.0,
        {"population": 20, "iterations": 2},
    )  # fmt: skip
    agent = BeliefAgent(model, build_planner("cem", ctx), codec, gen, exploration_noise=1.0)
    before = agent.state.features.clone()
    actions = [agent.act(np.array([1.0, 0.0, 0.5])) for _ in range(5)]
    assert all(a.shape == (1,) and -2 <= a[0] <= 2 for a in actions)
    assert not torch.equal(before, agent.state.features) and len(agent.plan_seconds) == 5
    with pytest.raises(ValueError, match=r"obs must have shape \(B, 3\)"):
        agent.act(np.zeros(4))
    agent.reset()
    assert torch.equal(agent.state.features, before) and agent.plan_seconds == []


TINY_RUN = PlanetConfig(
    env_id="mbrl/PendulumNoVel-v0",
    episodes=1,
    seed_episodes=1,
    action_repeat=4,
    train_steps=2,
    horizon=3,
    max_episode_steps=12,
    model=SMALL,
    train=RSSMTrainConfig(batch_size=2, chunk_length=5),
    planner_options={"population": 16, "iterations": 2},
    eval_context=2,
    eval_horizon=3,
    progress=False,
)


def test_planet_loop_is_reproducible_from_its_seed(tmp_path):
    runs = [run_planet(dataclasses.replace(TINY_RUN, out=str(tmp_path / f"r{i}"))) for i in (0, 1)]
    a, b = (r.records for r in runs)
    assert [r.episode_return for r in a] == [r.episode_return for r in b]
    assert [r.losses for r in a] == [r.losses for r in b]
    assert a[1].kind == "plan" and a[1].steps == 48 and len(a[1].openloop_mse) == 3
    other = run_planet(dataclasses.replace(TINY_RUN, seed=1))
    assert other.records[1].episode_return != a[1].episode_return
    for name in ("metrics.jsonl", "summary.json", "model.pt", "buffer.pt"):
        assert (tmp_path / "r0" / name).exists()


def test_planet_crash_mid_run_saves_the_episodes_first(tmp_path, monkeypatch):
    from mbrl.data.sequence_buffer import SequenceBuffer
    from mbrl.models.rssm.training import RSSMTrainer

    def broken_train(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(RSSMTrainer, "train", broken_train)
    with pytest.raises(RuntimeError, match="simulated failure") as info:
        run_planet(dataclasses.replace(TINY_RUN, out=str(tmp_path)))
    assert SequenceBuffer.load(tmp_path / "buffer.pt").num_episodes == 1  # the seed episode
    assert any("1 episodes collected so far were saved to" in n for n in info.value.__notes__)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_planet_rejects_chunks_longer_than_an_episode():
    with pytest.raises(ValueError, match="chunk_length 20 is longer than an episode"):
        run_planet(dataclasses.replace(TINY_RUN, train=RSSMTrainConfig(chunk_length=20)))


def test_mbrl_run_flags_map_to_the_planet_config():
    import argparse

    from mbrl.agents.planet_config import planet_config
    from mbrl.commands import run as run_command

    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    to_planet = lambda argv: planet_config(run_command.config_from_args(parser.parse_args(argv)))  # noqa: E731
    opts = ["action_repeat=3", "batch_size=8", "stoch_size=8", "free_nats=0.5"]
    cfg = to_planet(
        ["run", "--model", "rssm", "--env", "mbrl/PendulumPixels-v0", "--planner", "mppi"]
        + [x for o in opts for x in ("--model-opt", o)]
    )
    assert cfg.env_id == "mbrl/PendulumPixels-v0" and cfg.planner == "mppi"
    assert cfg.action_repeat == 3 and cfg.train.batch_size == 8
    assert cfg.model.stoch_size == 8 and cfg.model.free_nats == 0.5
    # flags left at `mbrl run`'s defaults take the PlaNet defaults; typed ones win
    assert cfg.episodes == PlanetConfig().episodes and cfg.horizon == PlanetConfig().horizon
    assert cfg.seed_episodes == 5 and cfg.n_particles == 1
    typed = to_planet(["run", "--model", "rssm", "--episodes", "10", "--particles", "5"])
    assert (typed.episodes, typed.n_particles, typed.horizon) == (10, 5, PlanetConfig().horizon)
    with pytest.raises(ValueError, match="unknown model option.*bogus"):
        to_planet(["run", "--model", "rssm", "--model-opt", "bogus=1"])
    refused = {
        ("--value", "learned"): "needs a discount gamma < 1",
        ("--gamma", "0.9"): "used only by a learned latent value",
        ("--gamma", "1.0"): "used only by a learned latent value",
        ("--value", "learned", "--gamma", "1.0"): "needs a discount gamma < 1",
    }
    for flags, message in refused.items():
        with pytest.raises(ValueError, match=f"with --model rssm .*{message}|{message}"):
            to_planet(["run", "--model", "rssm", *flags])
    to_planet(["run", "--model", "rssm", "--value", "learned", "--gamma", "0.95"])  # accepted


def test_a_latent_value_reaches_the_planner_and_a_run_completes():
    from mbrl.agents import run
    from mbrl.agents.setup import build_run

    cfg = dataclasses.replace(TINY_RUN.to_run_config(), value="learned", gamma=0.95)
    setup = build_run(cfg, dry=True)
    assert setup.planet is not None and setup.planet.value is not None
    assert setup.planner.terminal_value is not None and setup.planner.gamma == 0.95
    assert setup.planet.trainer.value is setup.planet.value
    result = run(cfg)
    assert len(result.records) == 2
    assert all(math.isfinite(r.episode_return) for r in result.records)


def test_planet_config_round_trips_through_a_run_config():
    from mbrl.agents.planet_config import planet_config

    assert planet_config(TINY_RUN.to_run_config()) == TINY_RUN
    assert planet_config(PlanetConfig().to_run_config()) == PlanetConfig()


def test_mbrl_run_accepts_rssm_and_returns_a_run_result(tmp_path):
    import json

    from mbrl.agents import RunConfig, RunResult, run
    from mbrl.agents.planet_config import planet_config

    cfg = dataclasses.replace(TINY_RUN, out=str(tmp_path)).to_run_config()
    result = run(cfg)
    assert isinstance(result, RunResult) and isinstance(result.model, RSSM)
    assert [r.kind for r in result.records] == ["seed", "plan"]
    assert result.records[1].steps == 48 and len(result.mpc_returns) == 1
    # the same numbers as the PlaNet loop's own entry point
    direct = run_planet(TINY_RUN)
    assert [r.episode_return for r in direct.records] == [r.episode_return for r in result.records]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "rssm" and summary["config"]["action_repeat"] == 4
    assert summary["rollout_backend"]["backend"] == "eager"
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    # a plain RunConfig: untouched shared fields take the PlaNet defaults (1 particle, and 5
    # seed episodes unless seed_episodes=1 is marked explicit: 1 is also RunConfig's default)
    tiny = RunConfig(
        env_id="mbrl/PendulumNoVel-v0",
        model="rssm",
        episodes=1,
        seed_episodes=1,
        horizon=3,
        max_episode_steps=12,
        planner_options={"population": 16, "iterations": 2},
        model_options={
            **dataclasses.asdict(SMALL),
            "action_repeat": 4,
            "train_steps": 2,
            "batch_size": 2,
            "chunk_length": 5,
            "eval_context": 2,
            "eval_horizon": 3,
        },
        progress=False,
    )
    assert planet_config(tiny).seed_episodes == 5
    plain = run(dataclasses.replace(tiny, explicit={"seed_episodes"}))
    assert plain.config.n_particles == 1 and plain.config.seed_episodes == 1
    assert [r.episode_return for r in plain.records] == [r.episode_return for r in result.records]
    with pytest.raises(ValueError, match="with --model rssm is used only by a learned latent"):
        run(dataclasses.replace(tiny, gamma=0.9))
