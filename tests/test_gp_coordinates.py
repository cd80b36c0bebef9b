"""GP dynamics in model coordinates: phasors as Cartesian pairs, angles as (sin, cos)."""

from __future__ import annotations

import math

import pytest
import torch

from mbrl.models import load_checkpoint, save_checkpoint
from mbrl.models.gp.belief import BeliefDynamics
from mbrl.models.gp.model import GPConfig, GPDynamics
from mbrl.models.gp.moments import GaussianState

torch.set_num_threads(1)
F64 = torch.float64


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def _phasor_system(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ripple phasor ``(A, phi)`` that an action adds to in Cartesian coordinates:
    ``x' = 0.8 x + 0.4 a`` -- linear as vectors, strongly nonlinear in (A, phi) near A = 0."""
    gen = torch.Generator().manual_seed(seed)
    amp = torch.rand(n, generator=gen, dtype=F64) * 1.2
    phase = (torch.rand(n, generator=gen, dtype=F64) * 2 - 1) * math.pi
    act = torch.rand(n, 2, generator=gen, dtype=F64) * 2 - 1
    x = torch.stack([amp * torch.cos(phase), amp * torch.sin(phase)], 1)
    nxt = 0.8 * x + 0.4 * act
    obs = torch.stack([amp, phase], 1)
    next_obs = torch.stack([nxt.norm(dim=1), torch.atan2(nxt[:, 1], nxt[:, 0])], 1)
    return obs, act, next_obs


def _cartesian(obs: torch.Tensor) -> torch.Tensor:
    return torch.stack([obs[:, 0] * torch.cos(obs[:, 1]), obs[:, 0] * torch.sin(obs[:, 1])], 1)


def test_phasor_coordinates_predict_a_phasor_system_better() -> None:
    obs, act, nxt = _phasor_system(60, seed=0)
    test_obs, test_act, test_nxt = _phasor_system(300, seed=1)
    errors = {}
    for name, dims in (("phasor", ((0, 1),)), ("raw", ())):
        model = GPDynamics(2, 2, GPConfig(phasor_dims=dims))
        model.fit_data(obs, act, nxt)
        mean, _ = model.predict(test_obs, test_act)
        errors[name] = (_cartesian(mean) - _cartesian(test_nxt)).norm(dim=1).mean().item()
    assert errors["phasor"] < 0.05  # nearly exact: the system is linear in these coordinates
    assert errors["phasor"] < 0.2 * errors["raw"]


def _rotor(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An angle turned by ``0.4 + 0.3 a + 0.2 sin(theta)`` per step, observed in [-pi, pi)."""
    gen = torch.Generator().manual_seed(seed)
    theta = (torch.rand(n, 1, generator=gen, dtype=F64) * 2 - 1) * math.pi
    act = torch.rand(n, 1, generator=gen, dtype=F64) * 2 - 1
    nxt = _wrap(theta + 0.4 + 0.3 * act + 0.2 * torch.sin(theta))
    return theta, act, nxt


def test_angle_coordinates_learn_across_the_wrap() -> None:
    obs, act, nxt = _rotor(40, seed=0)
    test_obs, test_act, test_nxt = _rotor(300, seed=1)
    errors = {}
    for name, dims in (("angle", (0,)), ("raw", ())):
        model = GPDynamics(1, 1, GPConfig(angle_dims=dims))
        model.fit_data(obs, act, nxt)
        mean, _ = model.predict(test_obs, test_act)
        assert bool(((mean >= -math.pi) & (mean <= math.pi)).all()) or name == "raw"
        errors[name] = _wrap(mean - test_nxt).abs().mean().item()
    assert errors["angle"] < 0.02
    assert errors["angle"] < 0.1 * errors["raw"]


def _angle_model() -> GPDynamics:
    """A GP over ``[theta, omega]`` (theta an angle) of a damped pendulum-like system."""
    gen = torch.Generator().manual_seed(3)
    n = 60
    theta = (torch.rand(n, generator=gen, dtype=F64) * 2 - 1) * math.pi
    omega = torch.rand(n, generator=gen, dtype=F64) * 2 - 1
    act = torch.rand(n, 1, generator=gen, dtype=F64) * 2 - 1
    obs = torch.stack([theta, omega], 1)
    new_omega = 0.9 * omega - 0.4 * torch.sin(theta) * torch.cos(2 * omega) + 0.2 * act[:, 0]
    nxt = torch.stack([_wrap(theta + 0.2 * new_omega), new_omega], 1)
    nxt = nxt + 0.02 * torch.randn(n, 2, generator=gen, dtype=F64)
    model = GPDynamics(2, 1, GPConfig(angle_dims=(0,)))
    model.fit_data(obs, act, nxt)
    return model


def test_moment_matching_through_angle_features_matches_sampling() -> None:
    model = _angle_model()
    state = GaussianState(
        torch.tensor([[0.8, -0.2]], dtype=F64),
        torch.tensor([[[0.09, 0.01], [0.01, 0.04]]], dtype=F64),
    )
    action = torch.tensor([[0.3]], dtype=F64)
    nxt, cross = model.propagate(state, action, "moment_matching")
    gen = torch.Generator().manual_seed(4)
    n = 100_000
    s = (
        state.mean
        + torch.randn(n, 2, generator=gen, dtype=F64) @ torch.linalg.cholesky(state.cov[0]).T
    )
    pm, pv = model.predict(s, action.expand(n, -1))
    s_next = pm + pv.sqrt() * torch.randn(n, 2, generator=gen, dtype=F64)
    # the belief stays far from the wrap, so sample moments need no unwrapping
    torch.testing.assert_close(nxt.mean[0], s_next.mean(0), atol=5e-3, rtol=0)
    mc_cov = torch.cov(s_next.T)
    torch.testing.assert_close(nxt.cov[0], mc_cov, atol=0.05 * float(mc_cov.max()), rtol=0)
    mc_cross = (s - s.mean(0)).T @ (s_next - s_next.mean(0)) / (n - 1)
    torch.testing.assert_close(cross[0], mc_cross, atol=0.05 * float(mc_cov.max()), rtol=0)
    # linearisation agrees for a narrow belief
    narrow = GaussianState(state.mean, state.cov * 1e-3)
    mm, _ = model.propagate(narrow, action, "moment_matching")
    lin, _ = model.propagate(narrow, action, "linearization")
    torch.testing.assert_close(mm.mean, lin.mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(mm.cov, lin.cov, atol=1e-5, rtol=0.02)


@pytest.mark.parametrize("method", ["moment_matching", "linearization"])
def test_propagation_gradients_through_angle_features_are_exact(method: str) -> None:
    model = _angle_model()
    cov = torch.tensor([[[0.05, 0.01], [0.01, 0.08]]], dtype=F64)

    def outputs(mean: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        nxt, cross = model.propagate(GaussianState(mean, cov), action, method)
        return nxt.mean, nxt.cov, cross

    mean = torch.tensor([[0.3, -0.5]], dtype=F64, requires_grad=True)
    action = torch.tensor([[0.4]], dtype=F64, requires_grad=True)
    # eps 1e-3: moment matching carries rounding noise that smaller steps amplify
    assert torch.autograd.gradcheck(outputs, (mean, action), eps=1e-3, atol=1e-6, rtol=1e-4)


def test_phasor_beliefs_live_in_cartesian_coordinates_and_rewards_see_observations() -> None:
    obs, act, nxt = _phasor_system(60, seed=0)
    model = GPDynamics(2, 2, GPConfig(phasor_dims=((0, 1),), propagation="moment_matching"))
    model.fit_data(obs, act, nxt)
    start = torch.tensor([[1.0, math.pi / 2]], dtype=F64)  # the phasor (0, 1)
    state = model.initial_state(start)
    assert isinstance(state, GaussianState)
    torch.testing.assert_close(
        state.mean, torch.tensor([[0.0, 1.0]], dtype=F64), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(model.observe(state), start)
    # cancel the phasor: a = -2 x gives x' = 0.8 x - 0.8 x = 0; amplitude reward -A
    action = torch.tensor([[0.0, -2.0]], dtype=F64)
    belief = BeliefDynamics(model, "moment_matching")
    reward = belief.expected_reward(lambda o, a, n: -n[:, 0])
    first = belief.initial_state(start)
    second = belief.step(first, action)
    value = reward(belief.observe(first), action, belief.observe(second))
    # E[-|x'|] over the (small, nearly isotropic) predictive spread around 0: order -std
    std = second.belief.cov[0].diagonal().sqrt()
    assert -3 * float(std.max()) < float(value) < 0
    torch.testing.assert_close(second.belief.mean[0], torch.zeros(2, dtype=F64), atol=0.02, rtol=0)


def test_coordinates_survive_checkpoints_and_stay_out_of_the_state_dict(tmp_path) -> None:
    obs, act, nxt = _phasor_system(40, seed=0)
    model = GPDynamics(2, 2, GPConfig(phasor_dims=[[0, 1]]))  # lists, as from JSON
    model.fit_data(obs, act, nxt)
    assert model.config.phasor_dims == ((0, 1),)
    assert not any(key.startswith("coords.") for key in model.state_dict())
    save_checkpoint(tmp_path / "gp.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "gp.pt")
    mean, var = model.predict(obs[:5], act[:5])
    mean2, var2 = loaded.predict(obs[:5], act[:5])
    torch.testing.assert_close(mean2, mean)
    torch.testing.assert_close(var2, var)
    with pytest.raises(ValueError, match="phasor_dims"):
        GPDynamics(2, 2, GPConfig(phasor_dims=((0, 2),)))
    with pytest.raises(ValueError, match="must not repeat"):
        GPDynamics(2, 2, GPConfig(angle_dims=(1,), phasor_dims=((0, 1),)))
