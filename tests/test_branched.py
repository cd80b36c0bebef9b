"""Branched model rollouts: k * B transitions, termination, random members, the k schedule."""

from __future__ import annotations

import pytest
import torch

from mbrl.data import TransitionBuffer
from mbrl.dyna import RolloutSchedule, branched_rollouts
from mbrl.models import DeltaModelConfig, GaussianEnsemble
from mbrl.models.base import DynamicsModel
from mbrl.models.delta_model import DeltaModel


class CounterModel(DynamicsModel):
    """``next = obs + [1, action]``: the first coordinate counts steps."""

    def __init__(self):
        super().__init__()
        self.obs_dim, self.action_dim = 2, 1

    def step(self, state, action, generator=None):
        return state + torch.cat([torch.ones_like(action), action], dim=1)


def zero_policy(obs):
    return torch.zeros(obs.shape[0], 1)


def reward_first(obs, action, next_obs):
    return next_obs[:, 0]


def test_writes_k_times_batch_transitions_into_the_model_buffer():
    gen = torch.Generator().manual_seed(0)
    buf = TransitionBuffer(2, 1, capacity=100)
    start = torch.zeros(6, 2)
    batch = branched_rollouts(
        CounterModel(), start, zero_policy, reward_first, None, 4, gen, buffer=buf
    )
    assert len(batch) == 24 and len(buf) == 24
    # step-major: rows 0..5 are step 1, 6..11 step 2, ...
    assert torch.equal(batch.obs[:, 0], torch.arange(4.0).repeat_interleave(6))
    assert torch.equal(batch.reward, batch.next_obs[:, 0])
    assert not batch.terminated.any() and not batch.truncated.any()
    assert torch.equal(buf.all().next_obs, batch.next_obs)


def test_rows_stop_at_termination():
    gen = torch.Generator().manual_seed(0)
    start = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])

    def term(obs, action, next_obs):
        return next_obs[:, 0] >= 3

    batch = branched_rollouts(CounterModel(), start, zero_policy, reward_first, term, 5, gen)
    # start 2 ends after 1 step, start 1 after 2, start 0 after 3: the terminating step is kept
    assert len(batch) == 6
    assert int(batch.terminated.sum()) == 3
    assert (batch.next_obs[:, 0] <= 3).all()
    assert sorted(batch.obs[:, 0].tolist()) == [0.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_policy_sees_the_rolled_states_and_actions_are_recorded():
    gen = torch.Generator().manual_seed(0)
    seen = []

    def policy(obs):
        seen.append(obs.clone())
        return obs[:, :1] * 0.5

    batch = branched_rollouts(CounterModel(), torch.ones(2, 2), policy, reward_first, None, 2, gen)
    assert torch.equal(seen[1], batch.next_obs[:2])
    assert torch.equal(batch.action, torch.cat(seen)[:, :1] * 0.5)


def test_each_row_gets_a_random_ensemble_member_every_step():
    torch.manual_seed(0)
    cfg = DeltaModelConfig(ensemble_size=2, hidden_size=8, num_layers=1, probabilistic=False)
    model = DeltaModel(2, 1, cfg)
    gen = torch.Generator().manual_seed(0)
    start = torch.ones(8, 2)
    firsts = []
    for _ in range(6):
        batch = branched_rollouts(model, start, zero_policy, reward_first, None, 1, gen)
        assert len({tuple(r) for r in batch.next_obs.tolist()}) == 2  # both members in use
        firsts.append(tuple(batch.next_obs[0].tolist()))
    assert len(set(firsts)) == 2  # row 0 is not pinned to one member


def test_obs_bounds_and_bad_policy_output():
    gen = torch.Generator().manual_seed(0)
    bounds = (torch.tensor([-1.0, -1.0]), torch.tensor([1.5, 1.0]))
    batch = branched_rollouts(
        CounterModel(),
        torch.zeros(2, 2),
        zero_policy,
        reward_first,
        None,
        3,
        gen,
        obs_bounds=bounds,
    )
    assert batch.next_obs[:, 0].max() == 1.5
    with pytest.raises(ValueError, match=r"policy must return actions of shape \(2, 1\)"):
        branched_rollouts(
            CounterModel(),
            torch.zeros(2, 2),
            lambda o: torch.zeros(2, 3),
            reward_first,
            None,
            1,
            gen,
        )
    with pytest.raises(ValueError, match="start_obs"):
        branched_rollouts(
            CounterModel(), torch.zeros(2, 5), zero_policy, reward_first, None, 1, gen
        )


def test_penalty_lowers_model_rewards():
    model = GaussianEnsemble(2, 1, DeltaModelConfig(ensemble_size=3, hidden_size=8, num_layers=1))
    start = torch.randn(5, 2)
    plain = branched_rollouts(
        model, start, zero_policy, reward_first, None, 1, torch.Generator().manual_seed(1)
    )
    pen = branched_rollouts(
        model,
        start,
        zero_policy,
        reward_first,
        None,
        1,
        torch.Generator().manual_seed(1),
        uncertainty_penalty=1.0,
    )
    assert (pen.reward < plain.reward).all()


def test_rollout_schedule():
    s = RolloutSchedule(min_length=1, max_length=5, start_step=1000, end_step=3000)
    assert [s.length(t) for t in (0, 1000, 2000, 3000, 10_000)] == [1, 1, 3, 5, 5]
    assert RolloutSchedule().length(123) == 1
    with pytest.raises(ValueError, match="end_step"):
        RolloutSchedule(1, 3, 100, 50)
    with pytest.raises(ValueError, match="min_length"):
        RolloutSchedule(min_length=0)
