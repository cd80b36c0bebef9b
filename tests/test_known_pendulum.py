"""Known Pendulum-v1 model: exact match with the env, gradients, registry, checkpoints."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.data.buffer import TransitionBuffer
from mbrl.models.base import DIFFERENTIABLE, DynamicsModel
from mbrl.models.checkpoint import load_checkpoint, save_checkpoint
from mbrl.models.known import (
    build_known_model,
    known_model_class,
    known_model_env_ids,
    register_known_model,
)
from mbrl.models.known.pendulum import KnownPendulum, PendulumConfig
from mbrl.models.registry import build_model
from mbrl.models.training import fit
from mbrl.planners.ilqr_derivatives import dynamics_jacobians
from mbrl.util.clip import clip


def test_matches_env_step_exactly() -> None:
    """300 steps per seed, actions beyond the torque limit and long pushes that hit the speed
    clip: the model's next observation equals the env's to 1e-5."""
    model = KnownPendulum()
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    worst, clipped_speed = 0.0, False
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for t in range(300):
            # Alternate long constant pushes (reach |thdot| = 8) with random out-of-range torques.
            a = np.array([3.0 if (t // 60) % 2 == 0 else -3.0], np.float32)
            if t % 7 == 0:
                a = rng.uniform(-4.0, 4.0, size=1).astype(np.float32)
            nxt, _, _, _, _ = env.step(a)
            pred = model.step(torch.as_tensor(obs)[None], torch.as_tensor(a)[None])[0]
            worst = max(worst, float(np.abs(pred.numpy() - nxt).max()))
            clipped_speed |= abs(float(nxt[2])) >= 8.0 - 1e-6
            obs = nxt
    env.close()
    assert clipped_speed, "the test never exercised the speed clip"
    assert worst < 1e-5


def test_batched_rows_and_dtype() -> None:
    model = KnownPendulum()
    gen = torch.Generator().manual_seed(0)
    th = (torch.rand(64, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    obs = torch.stack([th.cos(), th.sin(), torch.randn(64, generator=gen, dtype=torch.float64)], 1)
    act = torch.randn(64, 1, generator=gen, dtype=torch.float64)
    nxt = model.step(obs, act)
    assert nxt.shape == (64, 3) and nxt.dtype == torch.float64
    for i in (0, 17, 63):  # rows are independent
        torch.testing.assert_close(model.step(obs[i : i + 1], act[i : i + 1])[0], nxt[i])
    torch.testing.assert_close(
        nxt[:, 0].square() + nxt[:, 1].square(), torch.ones(64, dtype=torch.float64)
    )


def test_step_is_differentiable() -> None:
    """Gradients w.r.t. observation and action agree with finite differences (away from clips)."""
    model = KnownPendulum()
    assert DIFFERENTIABLE in model.capabilities
    obs = torch.tensor([[math.cos(0.7), math.sin(0.7), 0.3]], dtype=torch.float64)
    act = torch.tensor([[0.5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda o, a: model.step(o, a), (obs.requires_grad_(), act.requires_grad_())
    )


def test_config_overrides_physics() -> None:
    obs = torch.tensor([[0.0, 1.0, 0.0]])  # horizontal, at rest
    act = torch.zeros(1, 1)
    default = KnownPendulum().step(obs, act)
    heavy = KnownPendulum(PendulumConfig(g=20.0)).step(obs, act)
    # thdot' = 3 g / 2 * dt: doubling g doubles the acceleration.
    assert float(heavy[0, 2]) == pytest.approx(2 * float(default[0, 2]))
    with pytest.raises(ValueError, match="dt"):
        PendulumConfig(dt=0.0)
    with pytest.raises(TypeError, match="PendulumConfig"):
        KnownPendulum(config={"g": 10.0})


def test_registry_builds_known_model_by_env_id() -> None:
    assert "Pendulum-v1" in known_model_env_ids()
    model = build_model("known", 3, 1, env_id="Pendulum-v1")
    assert isinstance(model, KnownPendulum)
    custom = build_model("known", 3, 1, {"g": 9.81}, env_id="Pendulum-v1")
    assert custom.config.g == 9.81
    with pytest.raises(
        ValueError, match=r"no known dynamics model for env 'Acrobot-v1'.*Pendulum-v1"
    ):
        build_model("known", 6, 3, env_id="Acrobot-v1")
    with pytest.raises(ValueError, match="unknown option"):
        build_model("known", 3, 1, {"mass": 2.0}, env_id="Pendulum-v1")
    with pytest.raises(ValueError, match="obs_dim=3, but the env has 4"):
        build_known_model("Pendulum-v1", obs_dim=4, action_dim=1)


def test_register_known_model_validates() -> None:
    with pytest.raises(TypeError, match="DynamicsModel subclass"):
        register_known_model("Foo-v0", dict)  # type: ignore[arg-type]

    class Other(KnownPendulum):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_known_model("Pendulum-v1", Other)
    register_known_model("Pendulum-v1", KnownPendulum)  # re-registering the same class is fine
    assert known_model_class("Pendulum-v1") is KnownPendulum
    assert issubclass(known_model_class("Pendulum-v1"), DynamicsModel)


def test_fit_leaves_it_untouched_and_checkpoint_roundtrip(tmp_path) -> None:
    model = KnownPendulum(PendulumConfig(m=2.0))
    buf = TransitionBuffer(3, 1, capacity=10)
    for _ in range(5):
        buf.add(
            np.zeros(3, np.float32),
            np.zeros(1, np.float32),
            0.0,
            np.zeros(3, np.float32),
            False,
            False,
        )
    report = fit(model, buf)
    assert report.steps == 0
    save_checkpoint(tmp_path / "m.pt", model, {"env": "Pendulum-v1"})
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert isinstance(loaded, KnownPendulum) and loaded.config == model.config
    assert meta == {"env": "Pendulum-v1"}


def test_clip_keeps_a_unit_derivative_on_the_bounds() -> None:
    # torch >= 2.14 gives clamp a zero derivative at the bounds; iLQR needs 1 there.
    x = torch.tensor([-3.0, -2.0, 0.5, 2.0, 3.0], requires_grad=True)
    y = clip(x, -2.0, 2.0)
    y.sum().backward()
    assert torch.equal(y.detach(), torch.tensor([-2.0, -2.0, 0.5, 2.0, 2.0]))
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))


def test_torque_on_its_limit_still_moves_the_pendulum() -> None:
    obs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    _, _, f_u = dynamics_jacobians(KnownPendulum(), obs, torch.tensor([[2.0], [-2.0]]))
    assert torch.all(f_u[:, 2, 0] > 0.1), f_u[:, 2, 0]
