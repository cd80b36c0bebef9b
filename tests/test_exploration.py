"""Exploration by ensemble disagreement while a learned reward has no signal."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.agents import RunConfig, run
from mbrl.agents.exploration import (
    ExplorationReward,
    can_explore,
    reward_scale,
    sparse_reward,
)
from mbrl.agents.learned import TaskModels
from mbrl.agents.setup import build_run
from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.models import FitConfig
from mbrl.models.delta_model import DeltaModel, DeltaModelConfig

GOAL = 1.5
"""|x| the sparse chain's goal lies beyond: 10 full steps out, far past a random walk."""


class SparseChain(gym.Env):
    """``x' = x + 0.15 a``; reward -1 per step until ``|x'| >= GOAL``, which ends the episode
    with reward 0. A 40-step random walk (step std 0.087) stays within about +-0.5."""

    observation_space = gym.spaces.Box(-3.0, 3.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.05, 0.05))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.15 * float(np.clip(action[0], -1, 1)), -3, 3))
        reached = abs(self.x) >= GOAL
        return np.array([self.x], np.float32), 0.0 if reached else -1.0, reached, False, {}


if "SparseChain-v0" not in gym.registry:
    gym.register("SparseChain-v0", entry_point=SparseChain, max_episode_steps=40)

SMALL = dict(
    env_id="SparseChain-v0",
    reward="learned",
    episodes=2,
    horizon=10,
    n_particles=2,
    planner_options={"population": 100, "iterations": 3},
    model_options={"hidden_size": 32, "num_layers": 2},
    fit=FitConfig(max_steps=300, eval_every=100),
    use_preset=False,
    auto_size_ms=None,
    progress=False,
)


@pytest.mark.parametrize("explore", ["auto", "off"])
def test_exploring_finds_a_sparse_goal_that_random_steps_never_reach(explore: str) -> None:
    # Same seed, same seed episode: only what MPC plans for differs.
    if explore == "off":
        with pytest.warns(RuntimeWarning, match="no reward signal and acts at random"):
            result = run(RunConfig(**SMALL, explore=explore))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # exploring: nothing to warn of
            result = run(RunConfig(**SMALL, explore=explore))
    seed, *mpc = result.records
    assert not seed.terminated  # the random seed episode never reaches the goal
    if explore == "off":
        # A flat learned reward scores every plan alike: MPC never gets there either.
        assert not any(r.terminated for r in mpc)
        assert not any(r.exploring for r in mpc)
    else:
        assert mpc[0].exploring and mpc[0].terminated
        assert mpc[0].steps <= 20  # the fewest is 10
        # The goal reached once leaves the reward -1 on every other step: still sparse.
        assert mpc[1].exploring


def _episodes(*episodes: tuple[list[float], bool]) -> TransitionBatch:
    """Transitions in time order from ``(rewards, ended)`` per episode (time-limited if not
    ended)."""
    rewards, term, trunc = [], [], []
    for rew, ended in episodes:
        rewards += rew
        term += [False] * (len(rew) - 1) + [ended]
        trunc += [False] * (len(rew) - 1) + [not ended]
    n = len(rewards)
    return TransitionBatch(
        torch.zeros(n, 1),
        torch.zeros(n, 1),
        torch.tensor(rewards),
        torch.zeros(n, 1),
        torch.tensor(term),
        torch.tensor(trunc),
    )


@pytest.mark.parametrize(
    "episodes, sparse",
    [
        # Random seed data that never reached a sparse goal.
        ([([-1.0] * 5, False)], True),
        # The goal reached once (reward 0 on the ending step): still -1 on every other step.
        ([([-1.0] * 5, False), ([-1.0] * 2 + [0.0], True), ([-1.0] * 5, False)], True),
        # A constant alive bonus (CartPole's +1) says nothing but where episodes end.
        ([([1.0] * 3, True), ([1.0] * 6, False)], True),
        # Two constant episodes at different levels: the reward varies, not sparse.
        ([([0.0] * 3, False), ([1.0] * 3, False)], False),
        # A dense reward.
        ([([-3.0, -2.0, -1.0], False), ([-2.5, -2.0, -0.5], False)], False),
    ],
)
def test_a_reward_is_sparse_when_it_varies_only_where_episodes_end(episodes, sparse) -> None:
    assert sparse_reward(_episodes(*episodes)) is sparse


def _ensemble(members: int = 3) -> DeltaModel:
    torch.manual_seed(0)
    return DeltaModel(2, 1, DeltaModelConfig(ensemble_size=members, hidden_size=16))


def test_the_bonus_is_the_weighted_standardised_disagreement_and_off_is_the_task_reward() -> None:
    model = _ensemble()
    task = lambda o, a, n: -o.square().sum(-1)  # noqa: E731
    obs, act = torch.randn(7, 2), torch.rand(7, 1)
    nxt = obs + 0.1
    explorer = ExplorationReward(task, model, weight=0.5)
    explorer.update(sparse=False)
    assert not explorer.exploring
    assert torch.equal(explorer(obs, act, nxt), task(obs, act, nxt))
    explorer.update(sparse=True, scale=3.0)
    spread = model.member_disagreement(obs, act, normalised=True)
    assert spread.shape == (7,) and bool((spread > 0).all())
    expected = task(obs, act, nxt) + 0.5 * 3.0 * torch.tanh(spread)
    torch.testing.assert_close(explorer(obs, act, nxt), expected)
    assert explorer.capture_key[:2] == (True, 3.0)


def test_under_a_constant_negative_reward_no_step_that_goes_on_scores_above_zero() -> None:
    model = _ensemble()
    with torch.no_grad():  # members far apart: a huge disagreement everywhere
        for param in model.parameters():
            param.mul_(50.0)
    rewards = -torch.ones(20)
    explorer = ExplorationReward(lambda o, a, n: -torch.ones(o.shape[0]), model)
    explorer.update(sparse=True, scale=reward_scale(rewards))
    obs, act = torch.randn(64, 2), torch.rand(64, 1)
    with torch.no_grad():
        assert float(model.member_disagreement(obs, act, normalised=True).min()) > 5.0
        scored = explorer(obs, act, obs)
    # The bonus stays below the reward's one level: ending (reward 0 after it) is never worse.
    assert bool((scored <= 0).all())


@pytest.mark.parametrize(
    "rewards, scale",
    [([-1.0, -1.0], 1.0), ([-1.0, 0.0, -1.0], 1.0), ([0.0, 0.0], 1.0), ([2.0, 5.0], 3.0)],
)
def test_reward_scale_is_the_range_or_the_one_level(rewards, scale) -> None:
    assert reward_scale(torch.tensor(rewards)) == pytest.approx(scale)


def test_standardised_disagreement_ignores_each_dimension_s_scale() -> None:
    model = _ensemble()
    obs, act = torch.randn(5, 2), torch.rand(5, 1)
    before = model.member_disagreement(obs, act, normalised=True)
    raw_before = model.member_disagreement(obs, act)
    model.output_norm.std.mul_(1000.0)  # an env whose deltas are 1000 times larger
    torch.testing.assert_close(model.member_disagreement(obs, act, normalised=True), before)
    assert bool((model.member_disagreement(obs, act) > 100 * raw_before).all())


def test_identical_members_give_no_bonus() -> None:
    model = _ensemble()
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 1 and param.shape[0] == model.ensemble_size:
                param.copy_(param[:1].expand_as(param))
    obs, act = torch.randn(4, 2), torch.rand(4, 1)
    assert torch.allclose(model.member_disagreement(obs, act, normalised=True), torch.zeros(4))


def test_always_explores_and_auto_follows_the_data() -> None:
    model = _ensemble()
    task = lambda o, a, n: torch.zeros(o.shape[0])  # noqa: E731
    assert ExplorationReward(task, model, mode="always").update(sparse=False)
    auto = ExplorationReward(task, model, mode="auto")
    assert not auto.update(sparse=False) and auto.update(sparse=True)


def _buffer(rewards: torch.Tensor, ended: bool) -> TransitionBuffer:
    gen = torch.Generator().manual_seed(0)
    buf = TransitionBuffer(2, 1)
    n = rewards.shape[0]
    obs = torch.randn(n, 2, generator=gen)
    done = torch.zeros(n, dtype=torch.bool)
    done[-1] = ended
    buf.add(obs, torch.rand(n, 1, generator=gen), rewards, obs + 0.1, done, torch.zeros_like(done))
    return buf


@pytest.mark.parametrize(
    "rewards, ended, explores",
    [
        (-torch.ones(32), False, True),
        (torch.cat([-torch.ones(31), torch.zeros(1)]), True, True),  # the goal reached once
        (torch.linspace(-1.0, 0.0, 32), False, False),
    ],
)
def test_task_models_explore_exactly_while_the_reward_is_sparse(rewards, ended, explores) -> None:
    models = TaskModels(2, 1, torch.device("cpu"), "mlp")
    models.explorer = ExplorationReward(models.reward, _ensemble())
    fast = FitConfig(max_steps=4, eval_every=2, batch_size=16)
    models.fit(_buffer(rewards, ended), fast, torch.Generator().manual_seed(0))
    assert models.exploring is explores


def test_only_ensembles_that_can_disagree_explore() -> None:
    assert can_explore(_ensemble(2))
    assert not can_explore(_ensemble(1))
    with pytest.raises(ValueError, match="two or more members"):
        ExplorationReward(lambda o, a, n: o[:, 0], _ensemble(1))
    with pytest.raises(ValueError, match="explore_weight"):
        ExplorationReward(lambda o, a, n: o[:, 0], _ensemble(), weight=0.0)


def test_build_run_wraps_the_learned_reward_only_where_it_can_explore() -> None:
    acro = dict(env_id="Acrobot-v1", reward="learned", progress=False)
    setup = build_run(RunConfig(**acro), dry=True)
    assert isinstance(setup.reward_fn, ExplorationReward)
    assert setup.state.task_models.explorer is setup.reward_fn
    assert not isinstance(
        build_run(RunConfig(**acro, explore="off"), dry=True).reward_fn, ExplorationReward
    )
    single = build_run(RunConfig(**acro, model="mlp"), dry=True)
    assert single.state.task_models.explorer is None  # auto: one member cannot disagree
    known = build_run(RunConfig(env_id="Pendulum-v1", progress=False), dry=True)
    assert known.state.task_models is None


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(explore="sometimes"), ValueError, "explore must be one of"),
        (dict(explore_weight=0.0), ValueError, "explore_weight must be > 0"),
        (dict(explore_weight="big"), TypeError, "explore_weight must be a number"),
    ],
)
def test_run_config_rejects_bad_exploration_settings(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        RunConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(env_id="Pendulum-v1"), "add --reward learned"),
        (dict(env_id="Acrobot-v1", reward="learned", model="mlp"), "--model mlp cannot disagree"),
        (dict(env_id="mbrl/PendulumNoVel-v0", model="rssm"), "not supported with --model rssm"),
    ],
)
def test_always_is_refused_where_there_is_nothing_to_add_a_bonus_to(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        build_run(RunConfig(**kwargs, explore="always", progress=False), dry=True)
