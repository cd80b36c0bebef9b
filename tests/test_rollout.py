import pytest
import torch
from conftest import LinearModel, quadratic_reward

from mbrl.models import DeltaModelConfig, GaussianEnsemble
from mbrl.rollout import rollout


def test_returns_match_a_hand_computed_rollout(point_mass):
    obs = torch.tensor([1.0, 0.0])
    actions = torch.randn(4, 6, 1, generator=torch.Generator().manual_seed(0))
    res = rollout(point_mass, obs, actions, quadratic_reward, gamma=0.9, return_trajectories=True)
    expected = torch.zeros(4)
    for n in range(4):
        x = obs.clone()
        for t in range(6):
            nx = point_mass.a @ x + point_mass.b @ actions[n, t]
            expected[n] += 0.9**t * -(nx.square().sum() + 0.01 * actions[n, t].square().sum())
            x = nx
    assert torch.allclose(res.returns, expected, atol=1e-5)
    assert res.returns.shape == (4,) and res.particle_returns.shape == (1, 4)
    assert res.observations.shape == (7, 1, 4, 2) and res.rewards.shape == (6, 1, 4)
    assert torch.equal(res.observations[0, 0, 2], obs)


def test_terminated_particles_stop_earning_reward(point_mass):
    def reward(o, a, n):
        return torch.ones(o.shape[0])

    def terminated(o, a, n):
        return n[:, 0] > 1.25  # position passes 1.25

    obs = torch.tensor([1.0, 1.0])  # moves +0.1 per step with zero force
    res = rollout(
        point_mass, obs, torch.zeros(1, 10, 1), reward, terminated, return_trajectories=True
    )
    # positions 1.1, 1.2, 1.3 -> terminates on step 3, whose reward still counts
    assert res.returns.item() == pytest.approx(3.0)
    assert not res.alive.item()


def test_particles_average_and_layout_with_ensemble():
    model = GaussianEnsemble(2, 1, DeltaModelConfig(ensemble_size=2, hidden_size=16, num_layers=1))
    obs = torch.zeros(3, 2)
    actions = torch.zeros(3, 5, 1)
    res = rollout(
        model,
        obs,
        actions,
        quadratic_reward,
        n_particles=4,
        generator=torch.Generator().manual_seed(0),
    )
    assert res.particle_returns.shape == (4, 3)
    assert torch.allclose(res.returns, res.particle_returns.mean(0))
    again = rollout(
        model,
        obs,
        actions,
        quadratic_reward,
        n_particles=4,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(res.returns, again.returns)


def test_diverging_particles_score_minus_infinity():
    model = LinearModel(torch.tensor([[1e30]]), torch.tensor([[1.0]]))
    res = rollout(model, torch.tensor([1e30]), torch.zeros(2, 3, 1), quadratic_reward)
    assert torch.isneginf(res.returns).all()


def test_bad_shapes_are_rejected(point_mass):
    with pytest.raises(ValueError, match=r"actions must have shape \(N, H, 1\)"):
        rollout(point_mass, torch.zeros(2), torch.zeros(4, 5), quadratic_reward)
    with pytest.raises(ValueError, match=r"obs must have shape \(B, 2\)"):
        rollout(point_mass, torch.zeros(3), torch.zeros(4, 5, 1), quadratic_reward)
    with pytest.raises(ValueError, match="NaN"):
        rollout(
            point_mass, torch.tensor([0.0, float("nan")]), torch.zeros(4, 5, 1), quadratic_reward
        )
    with pytest.raises(ValueError, match="actions contains NaN"):
        rollout(point_mass, torch.zeros(2), torch.full((4, 5, 1), float("nan")), quadratic_reward)
