"""Planning cost must not grow as a run refits its models (issue 15).

Adam with L2 weight decay drives weights that get no loss gradient (here: those of a feature
that is exactly zero in the data, the ``next_obs - obs`` of a constant goal) geometrically to
zero, into the subnormal range, where they stay; every refit adds more. On CPUs that handle
subnormal operands in microcode each multiplication with one costs ~100 cycles, so planning
slows down episode after episode at the same shapes. Wall time is not asserted (it depends on
the CPU and the load); the tests count subnormal operands instead.
"""

from __future__ import annotations

import pytest
import torch

import mbrl.models.training as training
from mbrl.data.buffer import TransitionBatch
from mbrl.models.delta_model import DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.layers import EnsembleLinear
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig, count_subnormals, fit, flush_subnormals_
from mbrl.rollout.core import simulate

TINY = torch.finfo(torch.float32).tiny
# Long enough for zero-gradient weights to decay past 1e-38 (about 1500 Adam steps).
FIT = FitConfig(max_steps=600, eval_every=100, batch_size=32, patience=100)


def _goal_data(n: int, seed: int) -> TransitionBatch:
    """Point-mass-like transitions ``obs (n, 4) = [pos 2, goal 2]``: the goal never changes
    within the data, so ``next_obs - obs`` is exactly 0 in its dimensions."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g) * 2 - 1
    goal = torch.tensor([0.3, -0.6]).expand(n, 2)
    action = torch.rand(n, 2, generator=g) * 2 - 1
    next_pos = pos + 0.1 * action
    obs, next_obs = torch.cat([pos, goal], 1), torch.cat([next_pos, goal], 1)
    reward = -(next_pos - goal).norm(dim=1)
    no = torch.zeros(n, dtype=torch.bool)
    return TransitionBatch(obs, action, reward, next_obs, no, no)


def _models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    cfg = DeltaModelConfig(ensemble_size=2, hidden_size=16, num_layers=2)
    return [
        GaussianEnsemble(4, 2, cfg),
        LearnedReward(4, 2, hidden_size=16, num_layers=2),
        LearnedTermination(4, 2, hidden_size=16, num_layers=2),
    ]


def _subnormal_mults(models: list[torch.nn.Module], obs: torch.Tensor) -> int:
    """Multiplications with a subnormal weight or input in one planning rollout from ``obs``."""
    dynamics, reward, termination = models
    count = torch.zeros((), dtype=torch.int64)

    def hook(layer: EnsembleLinear, args: tuple, out: torch.Tensor) -> None:
        nonlocal count
        x, w = args[0], layer.weight
        count = count + count_subnormals([x]) * layer.out_features
        count = count + count_subnormals([w]) * x.shape[1]

    handles = [
        layer.register_forward_hook(hook)
        for m in models
        for layer in m.modules()
        if isinstance(layer, EnsembleLinear)
    ]
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(obs.shape[0], 5, 2, generator=g) * 2 - 1
    try:
        with torch.no_grad():
            simulate(
                dynamics, obs, reward, termination, actions=actions, n_particles=2, generator=g
            )
    finally:
        for h in handles:
            h.remove()
    return int(count)


def _refit_run(models: list[torch.nn.Module], fits: int, config: FitConfig) -> list[int]:
    """Refit all models on growing data ``fits`` times (as a run does before each MPC
    episode); the subnormal multiplications of a fixed planning call after each refit."""
    gen = torch.Generator().manual_seed(0)
    starts = _goal_data(8, seed=99).obs
    mults = []
    for k in range(1, fits + 1):
        data = _goal_data(40 * k, seed=k)
        for m in models:
            fit(m, data, config, gen)
        mults.append(_subnormal_mults(models, starts))
    return mults


def _decayed_reward_fit(models: list[torch.nn.Module]) -> torch.Tensor:
    """Fit the reward model from subnormal weights (1e-39) of the always-zero goal features, as
    earlier fits leave them; return those weights ``(1, 2, hidden)`` after the fit. (Set by
    hand because a fresh Adam's first steps near 1e-38 are erratic: how many weights a given
    fit pushes below 1e-38 depends on the seed; that they then stay there does not.)"""
    reward = models[1]
    # Input features [obs 4, action 2, next_obs - obs 4]: 8 and 9 are the goal's delta.
    with torch.no_grad():
        reward.net.hidden[0].weight[:, 8:10] = 1e-39
    fit(reward, _goal_data(80, seed=1), FIT, torch.Generator().manual_seed(0))
    return reward.net.hidden[0].weight.detach()[:, 8:10]


def test_flush_and_count_subnormals() -> None:
    x = torch.tensor([1e-40, -3e-39, 0.0, 1.0, -TINY, 1e-30, float("inf")])
    ints = torch.tensor([0, 1])
    assert int(count_subnormals([x, ints])) == 2
    flush_subnormals_([x, ints])
    assert x.tolist() == [0.0, 0.0, 0.0, 1.0, -TINY, pytest.approx(1e-30), float("inf")]
    assert int(count_subnormals([x])) == 0
    assert int(count_subnormals([])) == 0


def test_zero_gradient_weights_decay_into_subnormals_without_the_flush(monkeypatch) -> None:
    """The set-up does produce the problem: with the flush disabled (the code before the fix)
    subnormal weights survive the fit (their updates underflow), and planning multiplies
    every rollout row by them."""
    monkeypatch.setattr(training, "flush_subnormals_", lambda tensors: None)
    models = _models()
    dead = _decayed_reward_fit(models)
    assert int(count_subnormals([dead])) == dead.numel()
    assert _subnormal_mults(models, _goal_data(8, seed=99).obs) > 0


def test_fit_leaves_planning_free_of_subnormal_operands() -> None:
    """With the fix the same fit leaves none, in any model, and the weights it set to zero
    stay exactly zero through the next fit (zero moments: ``0 / (0 + eps)`` is no update)."""
    models = _models()
    dead = _decayed_reward_fit(models)
    assert int(count_subnormals([dead])) == 0
    assert _subnormal_mults(models, _goal_data(8, seed=99).obs) == 0
    zero = dead == 0
    assert zero.any()
    fit(models[1], _goal_data(80, seed=2), FIT, torch.Generator().manual_seed(1))
    assert (models[1].net.hidden[0].weight.detach()[:, 8:10][zero] == 0).all()


@pytest.mark.slow
def test_refits_keep_planning_free_of_subnormal_operands() -> None:
    """A run's refits from a fresh start: after every one, no subnormal parameter, buffer or
    layer input in planning, so a planning call costs what it did after the first fit."""
    models = _models()
    assert _refit_run(models, 3, FIT) == [0, 0, 0]
    for m in models:
        assert int(count_subnormals([*m.parameters(), *m.buffers()])) == 0


@pytest.mark.slow
def test_refits_grow_subnormal_operands_without_the_flush(monkeypatch) -> None:
    """Without the flush the same refits make planning multiply by subnormals, more after
    later refits than after the first (the slowdown grows with the data)."""
    monkeypatch.setattr(training, "flush_subnormals_", lambda tensors: None)
    mults = _refit_run(_models(), 3, FIT)
    assert mults[-1] > mults[0]
