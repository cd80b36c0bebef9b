"""The one transition primitive and the rollout core: the divergence rule, terminal values,
policies, per-row step counts."""

from __future__ import annotations

import pytest
import torch
from conftest import LinearModel, quadratic_reward

from mbrl.models.base import DynamicsModel
from mbrl.rollout import rollout, simulate, transition


class BlowUp(DynamicsModel):
    """``x' = x + 1`` except rows whose first coordinate reaches ``at``: those become NaN."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.at = 2, 1, at

    def step(self, state, action, generator=None):
        nxt = state + 1.0
        bad = nxt[:, :1] >= self.at
        return torch.where(bad, torch.full_like(nxt, float("nan")), nxt)


def ones(o, a, n):
    return torch.ones(o.shape[0])


def minus_ones(o, a, n):
    return -torch.ones(o.shape[0])


def test_diverged_rows_end_keep_their_observation_and_pay_nothing():
    model = BlowUp(at=2.0)
    obs = torch.tensor([[0.0, 0.0], [1.0, 5.0]])
    tr = transition(model, obs, obs, torch.zeros(2, 1), ones)
    assert tr.finite.tolist() == [True, False]
    assert torch.equal(tr.obs[1], obs[1])  # last finite observation, never NaN
    assert torch.isfinite(tr.state).all()  # observation-space model: the state too
    assert tr.reward.tolist() == [1.0, 0.0]
    assert tr.end.tolist() == [0.0, 1.0] and tr.done.tolist() == [False, True]


def test_a_diverging_candidate_ranks_last_even_when_rewards_are_negative():
    # With reward -1 per step, ending early would look attractive; divergence must not.
    model = BlowUp(at=7.0)
    obs = torch.tensor([[0.0, 0.0], [5.5, 0.0]])  # row 1 diverges on step 2
    res = simulate(model, obs, minus_ones, actions=torch.zeros(2, 4, 1))
    assert res.returns[0] == pytest.approx(-4.0)
    assert res.returns[1] == -torch.inf
    assert res.diverged.tolist() == [[False, True]]
    # The finite reading counts the diverging step as an ending that pays nothing.
    assert res.finite_returns[0].tolist() == [-4.0, -1.0]


def test_nan_after_termination_adds_exactly_nothing():
    model = BlowUp(at=3.0)

    def end_at_once(o, a, n):
        return torch.ones(o.shape[0], dtype=torch.bool)

    res = simulate(model, torch.zeros(1, 2), ones, end_at_once, actions=torch.zeros(1, 5, 1))
    assert res.returns.item() == 1.0 and not res.diverged.any()


def test_terminal_value_enters_as_documented(point_mass):
    obs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    actions = torch.randn(2, 3, 1, generator=torch.Generator().manual_seed(0))
    gamma = 0.9

    def value(o):
        return 10.0 * o[:, 0] + o[:, 1]

    res = simulate(
        point_mass, obs, quadratic_reward, actions=actions, gamma=gamma, terminal_value=value
    )
    expected = torch.zeros(2)
    for n in range(2):
        x = obs[n].clone()
        for t in range(3):
            nx = point_mass.a @ x + point_mass.b @ actions[n, t]
            expected[n] += gamma**t * -(nx.square().sum() + 0.01 * actions[n, t].square().sum())
            x = nx
        expected[n] += gamma**3 * (10.0 * x[0] + x[1])
    assert torch.allclose(res.returns, expected, atol=1e-5)


def test_terminal_value_is_not_paid_after_an_ending(point_mass):
    def ends(o, a, n):
        return torch.ones(o.shape[0], dtype=torch.bool)

    def value(o):
        return torch.full((o.shape[0],), 100.0)

    res = simulate(
        point_mass,
        torch.zeros(1, 2),
        ones,
        ends,
        actions=torch.zeros(1, 3, 1),
        terminal_value=value,
    )
    assert res.returns.item() == 1.0


def test_policy_and_action_sequences_give_the_same_rollout(point_mass):
    actions = torch.randn(3, 5, 1, generator=torch.Generator().manual_seed(1))
    obs = torch.randn(3, 2, generator=torch.Generator().manual_seed(2))
    by_actions = simulate(point_mass, obs, quadratic_reward, actions=actions, record=True)

    def policy(t, state, o):
        return actions[:, t]

    by_policy = simulate(point_mass, obs, quadratic_reward, policy=policy, horizon=5, record=True)
    assert torch.equal(by_actions.returns, by_policy.returns)
    assert torch.equal(by_actions.observations, by_policy.observations)
    assert by_policy.actions.shape == (5, 1, 3, 1) and len(by_policy.states) == 6


def test_per_row_step_counts_and_bootstrap_at_each_rows_end(point_mass):
    obs = torch.zeros(3, 2)
    steps = torch.tensor([0, 2, 4])

    def value(o):
        return torch.full((o.shape[0],), 5.0)

    res = simulate(
        point_mass,
        obs,
        ones,
        policy=lambda t, s, o: torch.zeros(o.shape[0], 1),
        horizon=4,
        steps=steps,
        gamma=0.5,
        terminal_value=value,
    )
    expected = [5.0, 1 + 0.5 + 0.25 * 5, 1 + 0.5 + 0.25 + 0.125 + 0.0625 * 5]
    assert res.returns.tolist() == pytest.approx(expected)


def test_public_rollout_is_the_core_plus_validation(point_mass):
    actions = torch.randn(4, 6, 1, generator=torch.Generator().manual_seed(0))
    obs = torch.tensor([1.0, 0.0])
    a = rollout(point_mass, obs, actions, quadratic_reward, gamma=0.9).returns
    b = simulate(
        point_mass, obs.expand(4, -1), quadratic_reward, actions=actions, gamma=0.9
    ).returns
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="actions must have shape"):
        rollout(point_mass, obs, actions[..., :0], quadratic_reward)
    with pytest.raises(ValueError, match="obs"):
        rollout(point_mass, torch.tensor([1.0, float("nan")]), actions, quadratic_reward)


def test_simulate_refuses_both_or_neither_of_actions_and_policy(point_mass):
    with pytest.raises(ValueError, match="exactly one"):
        simulate(point_mass, torch.zeros(1, 2), ones)
    with pytest.raises(ValueError, match="horizon"):
        simulate(point_mass, torch.zeros(1, 2), ones, policy=lambda t, s, o: o[:, :1])


def test_uncertainty_penalty_needs_an_ensemble():
    model = LinearModel(torch.eye(2), torch.ones(2, 1))
    x = torch.zeros(2, 2)
    with pytest.raises(TypeError, match="ensemble"):
        transition(model, x, x, torch.zeros(2, 1), ones, uncertainty_penalty=1.0)
