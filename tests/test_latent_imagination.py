"""Dreamer on the RSSM latent (``policy="imagine"``): gradients through the latent prior, the
actor-critic's training from refiltered beliefs, the policy in the planner slot, the run's
settings, checkpoints and resume, and (slow) learning PendulumNoVel."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest
import torch
from test_rssm import SMALL, TINY_RUN

from mbrl.agents.config import RunConfig
from mbrl.agents.loop import resume, run
from mbrl.agents.planet_config import PlanetConfig, planet_config
from mbrl.agents.setup import build_run
from mbrl.data.sequence_buffer import SequenceBuffer
from mbrl.imagination import ImaginationConfig, imagine
from mbrl.imagination.latent import LatentActorCritic
from mbrl.models.base import DIFFERENTIABLE
from mbrl.models.checkpoint import load_checkpoint
from mbrl.models.policy_model import LearnedPolicy
from mbrl.models.rssm.latent import LatentDynamics
from mbrl.models.rssm.model import RSSM
from mbrl.planners.policy import PolicyPlanner

IMAGINE_RUN = dataclasses.replace(TINY_RUN, policy="imagine", planner_options={})


def _buffer(episodes: int = 3, length: int = 10, seed: int = 0) -> SequenceBuffer:
    gen = torch.Generator().manual_seed(seed)
    buf = SequenceBuffer((3,), 1)
    for _ in range(episodes):
        obs = torch.randn(length + 1, 3, generator=gen)
        act = torch.rand(length, 1, generator=gen) * 4 - 2
        buf.add_episode(obs.numpy(), act.numpy(), torch.randn(length, generator=gen).numpy(), False)
    return buf


def _rssm(seed: int = 0) -> RSSM:
    torch.manual_seed(seed)
    rssm = RSSM((3,), 1, SMALL)
    buf = _buffer()
    obs, reward = buf.observations_and_rewards()
    rssm.fit_normalizers(obs, reward)
    return rssm


def test_the_latent_prior_is_differentiable_in_state_and_action() -> None:
    rssm = _rssm()
    latent = LatentDynamics(rssm, sample=True)
    assert DIFFERENTIABLE in latent.capabilities
    assert DIFFERENTIABLE in latent.propagating("expectation").capabilities
    state = torch.randn(4, rssm.feature_dim, requires_grad=True)
    action = torch.zeros(4, 1, requires_grad=True)
    out = latent.step(state, action, torch.Generator().manual_seed(0))
    assert out.shape == (4, rssm.feature_dim)
    ds, da = torch.autograd.grad(rssm.reward(out).sum(), (state, action))
    assert torch.isfinite(ds).all() and ds.abs().sum() > 0 and da.abs().sum() > 0


def test_training_in_latent_imagination_raises_the_imagined_return_and_leaves_the_rssm() -> None:
    rssm = _rssm()
    before_rssm = {k: v.clone() for k, v in rssm.state_dict().items()}
    config = ImaginationConfig(horizon=5, batch_size=32, actor_lr=3e-3, critic_lr=3e-3)
    lac = LatentActorCritic(rssm, torch.tensor([-2.0]), torch.tensor([2.0]), config, updates=60)
    buf = _buffer()

    def imagined(seed: int = 7) -> float:
        starts = torch.randn(64, rssm.feature_dim, generator=torch.Generator().manual_seed(1))
        im = imagine(
            lac.dynamics, lac.actor, starts, lac.reward, None, horizon=5, gamma=0.99,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        return float((im.weights * im.rewards).sum(0).mean())

    assert lac.ac.gradient_mode(lac.dynamics) == "dynamics"  # Dreamer's dynamics backprop
    start = imagined()
    stats = lac.train(buf, torch.Generator().manual_seed(0))
    assert set(stats) == {
        "ac_actor_loss", "ac_critic_loss", "ac_imagined_return", "ac_entropy", "ac_action_std",
    }  # fmt: skip
    assert all(math.isfinite(v) for v in stats.values())
    assert lac.ac.updates == 60
    # The actor climbs the reward head's landscape through the latent prior.
    assert imagined() > start + 0.1 * abs(start) + 0.05
    for key, value in rssm.state_dict().items():
        assert torch.equal(value, before_rssm[key]), key
    # Input statistics are set once: a second phase keeps them.
    mean = lac.actor.input_norm.mean.clone()
    lac.train(_buffer(seed=5), torch.Generator().manual_seed(1))
    assert torch.equal(lac.actor.input_norm.mean, mean)


def test_latent_actor_critic_refuses_bad_input() -> None:
    rssm = _rssm()
    with pytest.raises(ValueError, match="updates"):
        LatentActorCritic(rssm, torch.tensor([-1.0]), torch.tensor([1.0]), updates=0)
    with pytest.raises(ValueError, match=r"low / high must have shape \(1,\)"):
        LatentActorCritic(rssm, torch.zeros(2), torch.ones(2))
    lac = LatentActorCritic(rssm, torch.tensor([-1.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="at least one stored episode"):
        lac.train(SequenceBuffer((3,), 1), torch.Generator())
    with pytest.raises(ValueError, match="saved state does not fit"):
        lac.load_state_dict({"actor_optimizer": {}})


def test_policy_planner_returns_the_policys_action_and_records_each_call() -> None:
    policy = LearnedPolicy(3, 2, False, [-1.0, 0.0], [1.0, 5.0])
    planner = PolicyPlanner(policy)
    obs = torch.randn(3)
    plan = planner.plan(obs)
    assert plan.shape == (1, 2) and plan.dtype == torch.float32
    assert torch.equal(plan, policy.mode(obs[None]).detach())
    assert len(planner.plan_stats.records) == 1
    with pytest.raises(ValueError, match=r"\(3,\)"):
        planner.plan(torch.zeros(4))
    with pytest.raises(TypeError, match="continuous"):
        PolicyPlanner(LearnedPolicy(3, 2, True))


def test_policy_imagine_settings_are_checked_before_any_work() -> None:
    base = dict(env_id="mbrl/PendulumNoVel-v0", model="rssm", policy="imagine")
    with pytest.raises(ValueError, match="mbrl dyna --algo imagine"):
        build_run(RunConfig(env_id="Pendulum-v1", policy="imagine"), dry=True)
    with pytest.raises(ValueError, match="cannot be combined"):
        build_run(RunConfig(**base, value="learned", gamma=0.9), dry=True)
    with pytest.raises(ValueError, match="no planner runs"):
        build_run(RunConfig(**base, planner_options={"population": 10}), dry=True)
    with pytest.raises(ValueError, match="gamma < 1"):
        build_run(RunConfig(**base, gamma=1.0, explicit=frozenset({"gamma"})), dry=True)
    with pytest.raises(ValueError, match="policy must be one of"):
        RunConfig(policy="dreamer")
    with pytest.raises(ValueError, match="policy must be 'none' or 'imagine'"):
        PlanetConfig(policy="learned")
    # The run's horizon, particles, discount and training steps reach the actor-critic.
    cfg = RunConfig(**base, horizon=7, gamma=0.9, model_options={"train_steps": 3})
    setup = build_run(cfg, dry=True)
    lac = setup.planet.actor_critic
    assert isinstance(setup.planner, PolicyPlanner) and setup.planner.policy is lac.actor
    assert (lac.ac.config.horizon, lac.ac.config.gamma, lac.updates) == (7, 0.9, 3)
    default = build_run(RunConfig(**base), dry=True).planet.actor_critic.ac.config
    assert default.gamma == ImaginationConfig().gamma and default.horizon == 12
    assert planet_config(IMAGINE_RUN.to_run_config()) == IMAGINE_RUN


def test_an_imagine_run_saves_its_actor_and_resumes_with_its_optimiser_state(
    tmp_path, monkeypatch
) -> None:
    cfg = dataclasses.replace(IMAGINE_RUN, episodes=2).to_run_config()
    ref = run(dataclasses.replace(cfg, out=str(tmp_path / "ref")))
    rows = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["seed", "plan", "plan"]
    assert all("ac_imagined_return" in r["losses"] for r in rows[1:])
    actor, _ = load_checkpoint(tmp_path / "ref" / "actor.pt", expected_class=LearnedPolicy)
    feats = torch.randn(5, SMALL.deter_size + SMALL.stoch_size)
    out = tmp_path / "run"
    calls = {"n": 0}
    real_train = LatentActorCritic.train

    def train(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(LatentActorCritic, "train", train)
    with pytest.raises(KeyboardInterrupt):
        run(dataclasses.replace(cfg, out=str(out)))
    monkeypatch.undo()
    state = torch.load(out / "loop_state.pt", weights_only=True)
    assert state["actor_critic"]["updates"] == IMAGINE_RUN.train_steps
    resumed = resume(out)
    returns = lambda r: [x.episode_return for x in r.records]  # noqa: E731
    assert returns(resumed) == returns(ref)
    assert [r.losses for r in resumed.records] == [r.losses for r in ref.records]
    again, _ = load_checkpoint(out / "actor.pt", expected_class=LearnedPolicy)
    assert torch.equal(again.mode(feats), actor.mode(feats))


@pytest.mark.slow
def test_dreamer_learns_pendulum_without_velocities() -> None:
    """10 actor episodes of ``mbrl run --model rssm --policy imagine`` on PendulumNoVel: the
    last three beat random actions (about -1,270 per episode) by a wide margin."""
    cfg = PlanetConfig(
        env_id="mbrl/PendulumNoVel-v0", policy="imagine", episodes=10, progress=False
    ).to_run_config()
    result = run(cfg)
    last = [r.episode_return for r in result.records if r.kind == "plan"][-3:]
    assert sum(last) / 3 > -900, last


@pytest.fixture(scope="module")
def imagine_run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dreamer") / "run"
    run(dataclasses.replace(IMAGINE_RUN, out=str(out)).to_run_config())
    return out


def test_a_dreamer_run_exports_its_belief_filter_with_the_actor(imagine_run_dir, tmp_path):
    from mbrl.export import DeployedBeliefPolicy, belief_policy_parity, export_run, load

    exported, (rssm, actor) = export_run(imagine_run_dir, "policy", tmp_path / "d.pt2")
    spec = exported.spec
    d, s = SMALL.deter_size, SMALL.stoch_size
    assert spec["kind"] == "belief_policy" and spec["belief"]["action_repeat"] == 4
    assert [(t["name"], t["shape"]) for t in spec["inputs"]] == [
        ("obs", ["B", 2]), ("h", ["B", d]), ("z", ["B", s]), ("last_action", ["B", 1]),
    ]  # fmt: skip
    deployed = load(exported.path)
    assert isinstance(deployed, DeployedBeliefPolicy)
    obs = torch.randn(15, 40, 2, generator=torch.Generator().manual_seed(3))
    assert belief_policy_parity(rssm, actor, deployed.step, obs) <= 1e-5
    # act() keeps the belief: the same observation twice gives the filter's two steps.
    first, second = deployed.act(obs[0, 0]), deployed.act(obs[0, 0])
    state = rssm.initial_state(1)
    with torch.no_grad():
        state = rssm.filter_step(state, torch.zeros(1, 1), obs[0, :1], None, sample=False)
        a1 = actor.mode(state.features)
        state = rssm.filter_step(state, a1, obs[0, :1], None, sample=False)
        a2 = actor.mode(state.features)
    assert torch.allclose(first, a1[0], atol=1e-6) and torch.allclose(second, a2[0], atol=1e-6)
    assert -2.0 <= float(first) <= 2.0
    deployed.reset()
    assert torch.allclose(deployed.act(obs[0, 0]), first, atol=1e-6)
    with pytest.raises(ValueError, match=r"obs must have shape \(2,\)"):
        deployed.act(torch.zeros(3))
    with pytest.raises(ValueError, match=r"h must have shape \(2, 16\)"):
        deployed.step(torch.zeros(2, 2), torch.zeros(2, 5), torch.zeros(2, s), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="actor.pt"):
        export_run(imagine_run_dir, "policy", tmp_path / "x.pt2", policy_source="distill")


def test_a_planet_run_without_an_actor_has_no_policy_to_export(imagine_run_dir, tmp_path):
    import shutil

    from mbrl.export import UnexportableError, export_run

    planet = tmp_path / "planet"
    shutil.copytree(imagine_run_dir, planet)
    (planet / "actor.pt").unlink()
    with pytest.raises(ValueError, match="only a run with --policy imagine has an actor"):
        export_run(planet, "policy", tmp_path / "x.pt2")
    with pytest.raises(UnexportableError, match="cannot be exported"):
        export_run(planet, "planner", tmp_path / "y.pt2")


def test_mbrl_export_checks_and_times_a_belief_policy(imagine_run_dir, tmp_path, capsys):
    from mbrl.cli import main as cli_main

    out = tmp_path / "d.pt2"
    argv = ["export", str(imagine_run_dir), "--what", "policy", "--out", str(out)]
    assert cli_main([*argv, "--check", "5", "--latency", "20"]) == 0
    text = capsys.readouterr().out
    assert "belief_policy of mbrl/PendulumNoVel-v0" in text and '"action_repeat": 4' in text
    diff = re.search(r"over 5 sequences of 20 observations \(actions and beliefs\) = (\S+)", text)
    assert diff is not None and float(diff.group(1)) <= 1e-5
    assert "latency: belief_policy artefact on cpu: median" in text
