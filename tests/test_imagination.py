"""Imagination actor-critic: lambda-returns by hand, the rollout core's accounting, the LQR
gain on a known linear system, and the whole loop (actor saved, exportable)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import LinearModel

from mbrl.export import export_run, load
from mbrl.imagination import (
    ActorCritic,
    ImaginationConfig,
    ImagineLoopConfig,
    imagine,
    imagine_and_learn,
    lambda_returns,
)
from mbrl.models.checkpoint import load_checkpoint
from mbrl.models.mlp import MLPDynamics
from mbrl.models.policy_model import LearnedPolicy
from mbrl.models.training import FitConfig
from mbrl.planners.lqr import LQR
from mbrl.rollout.core import simulate

DT = 0.1
A = torch.tensor([[1.0, DT], [0.0, 1.0]])
B = torch.tensor([[0.0], [DT]])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: the tensors are tiny, and on a loaded 2-core machine two
    threads' synchronisation makes each small op thousands of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def quadratic(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``-(|x'|^2 + |u|^2)``: LQR with Q = I on the next state and R = I."""
    return -(next_obs.square().sum(-1) + action.square().sum(-1))


def test_lambda_returns_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    values = torch.tensor([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [40.0, 40.0]])
    continues = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])  # column 0 ends at step 2
    got = lambda_returns(rewards, values, continues, gamma=0.5, lam=0.5)
    # Column 0: R2 = 3; R1 = 2 + 0.5 (0.5 * 30 + 0.5 * 3) = 10.25; R0 = 1 + 0.5 (10 + 5.125).
    # Column 1: R2 = 3 + 0.5 * 40 = 23; R1 = 2 + 0.5 (15 + 11.5) = 15.25; R0 = 1 + 0.5 (10 + 7.625).
    expected = torch.tensor([[8.5625, 9.8125], [10.25, 15.25], [3.0, 23.0]])
    assert torch.allclose(got, expected)
    # lam = 0: one-step TD targets; lam = 1: discounted rewards bootstrapped at the end.
    td = lambda_returns(rewards, values, continues, gamma=0.5, lam=0.0)
    assert torch.allclose(td[:, 1], rewards[:, 1] + 0.5 * values[1:, 1])
    mc = lambda_returns(rewards, values, continues, gamma=0.5, lam=1.0)
    assert torch.allclose(mc[0], torch.tensor([1 + 1 + 0.75, 1 + 1 + 0.75 + 0.125 * 40]))


def test_lambda_returns_checks_its_inputs() -> None:
    r = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"values must be \(H \+ 1, N\) = \(4, 2\)"):
        lambda_returns(r, torch.zeros(3, 2), r, 0.9, 0.9)
    with pytest.raises(ValueError, match="lam must lie in"):
        lambda_returns(r, torch.zeros(4, 2), r, 0.9, 1.5)
    with pytest.raises(ValueError, match="rewards and continues"):
        lambda_returns(r, torch.zeros(4, 2), torch.zeros(2, 2), 0.9, 0.9)


def test_imagined_returns_are_the_rollout_cores() -> None:
    """With lam = 1 the first lambda-return is what simulate scores the same actions with,
    the terminal value included, endings and all."""
    model = LinearModel(A, B)
    actor = LearnedPolicy(2, 1, False, [-1.0], [1.0])
    with torch.no_grad():
        for p in actor.parameters():
            p.normal_(0.0, 0.5)

    def ends(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return next_obs[:, 0].abs() > 0.6

    def value(obs: torch.Tensor) -> torch.Tensor:
        return -obs.square().sum(-1) * 3.0

    starts = (torch.rand(64, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.7
    gen = torch.Generator().manual_seed(1)
    im = imagine(model, actor, starts, quadratic, ends, horizon=6, gamma=0.9, generator=gen)
    assert 0 < float(im.continues[-1].mean()) < 1  # some rows ended, some did not
    returns = lambda_returns(im.rewards, value(im.obs), im.continues, 0.9, 1.0)
    core = simulate(
        model,
        starts,
        quadratic,
        ends,
        actions=im.actions.transpose(0, 1),
        gamma=0.9,
        terminal_value=value,
    )
    assert torch.allclose(returns[0], core.returns, atol=1e-5)


def _discounted_lqr_gain(gamma: float) -> torch.Tensor:
    """Gain of ``max sum gamma^t r`` for :func:`quadratic`: the cost on ``x' = A x + B u`` as
    ``x' Q x + u' R u + 2 u' N x``, the discount folded into ``sqrt(gamma) (A, B)``."""
    a, b = A.double(), B.double()
    s = math.sqrt(gamma)
    k, _ = LQR.infinite_horizon(
        s * a, s * b, 2 * a.T @ a, 2 * (b.T @ b + torch.eye(1, dtype=torch.float64)), 2 * b.T @ a
    )
    return k.float()


def test_actor_trained_in_imagination_approaches_the_lqr_gain() -> None:
    gamma = 0.9
    gain = _discounted_lqr_gain(gamma)  # about [[-0.38, -0.93]]
    cfg = ImaginationConfig(
        horizon=15,
        gamma=gamma,
        lam=0.95,
        batch_size=64,
        actor_lr=3e-3,
        critic_lr=3e-3,
        hidden_size=32,
        init_std=0.1,
    )
    ac = ActorCritic(2, torch.tensor([-3.0]), torch.tensor([3.0]), cfg)
    gen = torch.Generator().manual_seed(0)

    def starts(n: int) -> torch.Tensor:
        return torch.rand(n, 2, generator=gen) * 2 - 1

    model = LinearModel(A, B)
    assert ac.gradient_mode(model) == "dynamics"
    ac.fit_normalizers(starts(1000))
    for _ in range(300):
        ac.update(model, starts(64), quadratic, None, gen)
    jac = torch.autograd.functional.jacobian(ac.actor.mode, torch.zeros(1, 2)).reshape(1, 2)
    assert float((jac - gain).norm() / gain.norm()) < 0.1, (jac, gain)

    def discounted_return(policy) -> float:
        x = torch.rand(256, 2, generator=torch.Generator().manual_seed(5)) * 2 - 1
        total = torch.zeros(256)
        for t in range(150):
            u = policy(x)
            nxt = model.step(x, u)
            total += gamma**t * quadratic(x, u, nxt)
            x = nxt
        return float(total.mean())

    with torch.no_grad():
        learned, optimal = discounted_return(ac.actor.mode), discounted_return(lambda x: x @ gain.T)
    assert learned <= optimal + 1e-3 and learned >= 1.01 * optimal, (learned, optimal)


def test_updates_train_only_the_actor_and_the_critic() -> None:
    model = MLPDynamics(2, 1)
    before = [p.clone() for p in model.parameters()]
    ac = ActorCritic(2, torch.tensor([-1.0]), torch.tensor([1.0]), ImaginationConfig(horizon=3))
    actor_before = [p.clone() for p in ac.actor.parameters()]
    ac.update(model, torch.randn(8, 2), quadratic, None, torch.Generator().manual_seed(0))
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(actor_before, ac.actor.parameters(), strict=True)
    )


def test_reinforce_objective_for_models_without_gradients() -> None:
    class Opaque(LinearModel):
        capabilities = frozenset()

    model = Opaque(A, B)
    ac = ActorCritic(2, torch.tensor([-3.0]), torch.tensor([3.0]), ImaginationConfig(horizon=5))
    assert ac.gradient_mode(model) == "reinforce"
    stats = ac.update(model, torch.randn(16, 2), quadratic, None, torch.Generator())
    assert math.isfinite(stats["actor_loss"]) and math.isfinite(stats["critic_loss"])
    strict = ActorCritic(
        2, torch.tensor([-1.0]), torch.tensor([1.0]), ImaginationConfig(actor_grad="dynamics")
    )
    with pytest.raises(ValueError, match="Opaque is not differentiable"):
        strict.gradient_mode(model)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="actor_grad must be one of"):
        ImaginationConfig(actor_grad="magic")
    with pytest.raises(ValueError, match="eval_every needs eval_episodes"):
        ImagineLoopConfig(eval_every=100, eval_episodes=0)
    with pytest.raises(ValueError, match=r"seed_steps \(500\) must be below total_steps"):
        ImagineLoopConfig(total_steps=500)
    with pytest.raises(TypeError, match="needs a Box action space"):
        imagine_and_learn("CartPole-v1", total_steps=50, seed_steps=10, progress=False)


def test_loop_reports_real_returns_and_saves_an_exportable_actor(tmp_path) -> None:
    out = tmp_path / "imagine"
    result = imagine_and_learn(
        "Pendulum-v1",
        ImagineLoopConfig(
            total_steps=600,
            seed_steps=200,
            steps_per_round=200,
            updates_per_round=5,
            model_options={"ensemble_size": 2, "hidden_size": 32, "num_layers": 2},
            fit=FitConfig(max_steps=40, eval_every=20),
            imagination=ImaginationConfig(horizon=5, batch_size=32, hidden_size=32),
            eval_episodes=1,
            eval_every=200,
            out=str(out),
            progress=False,
        ),
    )
    # Evaluations after the first actor round and at the end; the last is the final one.
    assert [e["env_steps"] for e in result.evals] == [400, 600]
    assert result.evals[-1]["mean_return"] == pytest.approx(result.final_return)
    assert all(e["episodes"] == 1 for e in result.evals)
    assert json.loads((out / "summary.json").read_text())["evals"] == result.evals
    assert [e["kind"] for e in result.episodes] == ["seed", "actor", "actor"]
    assert [e["env_steps"] for e in result.episodes] == [200, 400, 600]
    assert all(-2000 < r <= 0 for r in result.returns)
    assert len(result.rounds) == 2 and len(result.eval_returns) == 1
    actor, meta = load_checkpoint(out / "actor.pt", expected_class=LearnedPolicy)
    assert meta["env"] == "Pendulum-v1"
    obs = torch.randn(20, 3)
    assert torch.allclose(actor.mode(obs), result.actor_critic.actor.mode(obs).detach())
    exported, _ = export_run(out, "policy", tmp_path / "actor.pt2")
    assert exported.spec["source"]["policy"] == "actor"
    assert (load(exported.path)(obs) - actor.mode(obs)).abs().max() <= 1e-5


def test_dyna_style_flags_map_onto_the_loop_config(monkeypatch, capsys) -> None:
    import argparse

    from mbrl.imagination import loop

    seen = {}

    def fake(config):
        seen["config"] = config
        return loop.ImagineResult(config, [{"return": -5.0}], [-1.0, -3.0], [], None, None, 1.0)

    monkeypatch.setattr(loop, "imagine_and_learn", lambda config: fake(config))
    args = argparse.Namespace(
        env="mbrl/AwakeSteering-v0",
        steps=800,
        seed=3,
        out=None,
        device="cpu",
        quiet=True,
        model_every=100,
    )
    assert loop.main_from_args(args) == 0
    cfg = seen["config"]
    assert (cfg.env_id, cfg.total_steps, cfg.seed, cfg.steps_per_round) == (
        "mbrl/AwakeSteering-v0",
        800,
        3,
        100,
    )
    assert cfg.seed_steps == 200 and not cfg.progress
    out = capsys.readouterr().out
    assert (
        "real returns per episode: -5.0" in out and "final eval return -2.0 over 2 episodes" in out
    )


def test_the_loop_takes_any_observation_space_model_with_its_own_defaults() -> None:
    from mbrl.models.registry import MBPO_ENSEMBLE_OPTIONS, options_or_defaults

    assert options_or_defaults("ensemble", None) == MBPO_ENSEMBLE_OPTIONS
    assert options_or_defaults("gp", None) == {} and options_or_defaults("mlp", {"a": 1}) == {
        "a": 1
    }
    result = imagine_and_learn(
        "Pendulum-v1",
        total_steps=60,
        seed_steps=20,
        steps_per_round=20,
        updates_per_round=2,
        model="known",
        imagination=ImaginationConfig(horizon=3, batch_size=8, hidden_size=16),
        eval_episodes=0,
        progress=False,
    )
    assert type(result.model).__name__ == "KnownPendulum" and len(result.rounds) == 2
