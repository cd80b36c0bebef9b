"""MCTS planner: correctness on tabular MDPs, batching, hooks, reuse, widening, errors."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor

from mbrl.agents.loop import RunConfig, run
from mbrl.models.base import DETERMINISTIC, DynamicsModel
from mbrl.models.delta_model import DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.known.cartpole import KnownCartPole
from mbrl.planners.mcts import MCTS, MCTSConfig
from mbrl.planners.mcts.select import dirichlet_noise, sample_gamma, visit_policy
from mbrl.planners.mcts.tree import backup, empty_tree, subtree
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns.classic import cartpole_reward, cartpole_termination

DISCRETE3 = ActionCodec.from_space(gym.spaces.Discrete(3))


class TabularModel(DynamicsModel):
    """Deterministic tabular MDP on one-hot states: ``next_state (S, A)`` table."""

    capabilities = frozenset({DETERMINISTIC})

    def __init__(self, next_state: Tensor) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = next_state.shape
        self.register_buffer("next_state", next_state)
        self.calls = 0

    def step(self, state, action, generator=None):
        self.calls += 1
        nxt = self.next_state[state.argmax(1), action.argmax(1)]
        return torch.nn.functional.one_hot(nxt, self.obs_dim).to(state.dtype)


def random_mdps(n_mdp: int, n_states: int, n_actions: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n_mdp`` random deterministic MDPs in one table: ``next (S, A)``, rewards ``(S, A)``."""
    g = torch.Generator().manual_seed(seed)
    nxt = torch.randint(0, n_states, (n_mdp, n_states, n_actions), generator=g)
    nxt = nxt + n_states * torch.arange(n_mdp).view(-1, 1, 1)
    return nxt.view(-1, n_actions), torch.rand(n_mdp * n_states, n_actions, generator=g)


def q_iteration(nxt: Tensor, rewards: Tensor, gamma: float) -> Tensor:
    """Optimal ``Q* (S, A)`` by value iteration."""
    v = torch.zeros(nxt.shape[0])
    for _ in range(500):
        v = (rewards + gamma * v[nxt]).amax(1)
    return rewards + gamma * v[nxt]


def table_reward(rewards: Tensor):
    def fn(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return rewards[obs.argmax(1), action.argmax(1)]

    return fn


def tabular_planner(
    seed: int = 0, mdp_seed: int = 0, gamma: float = 0.6, **cfg
) -> tuple[MCTS, TabularModel, Tensor]:
    nxt, rewards = random_mdps(5, 10, 3, mdp_seed)
    model = TabularModel(nxt)
    config = MCTSConfig(gamma=gamma, **cfg)
    planner = MCTS(
        model,
        table_reward(rewards),
        None,
        DISCRETE3,
        config,
        generator=torch.Generator().manual_seed(seed),
    )
    return planner, model, q_iteration(nxt, rewards, gamma)


TAB = {"num_simulations": 400, "leaves_per_batch": 16, "rollout_depth": 15, "num_rollouts": 4}


# ---------------------------------------------------------------- item 1: optimality
@pytest.mark.parametrize("selection", ["puct", "uct"])
def test_root_action_matches_value_iteration_in_95_percent_of_states(selection: str) -> None:
    extra = {"uct_c": 0.5} if selection == "uct" else {}
    planner, _, q_star = tabular_planner(selection=selection, **TAB, **extra)
    out = planner.search(torch.eye(50))  # 50 independent searches, one per state
    agreement = (out.slot == q_star.argmax(1)).float().mean().item()
    assert agreement >= 0.95, agreement
    assert torch.all(out.simulations == TAB["num_simulations"])


def test_too_few_simulations_do_not_reach_the_optimum() -> None:
    # The 95% check above is not met by chance: a starved search falls clearly short.
    planner, _, q_star = tabular_planner(num_simulations=3, leaves_per_batch=1, rollout_depth=15)
    out = planner.search(torch.eye(50))
    assert (out.slot == q_star.argmax(1)).float().mean().item() < 0.8


def test_perfect_value_function_needs_few_simulations() -> None:
    nxt, rewards = random_mdps(5, 10, 3, 0)
    q_star = q_iteration(nxt, rewards, 0.6)
    v_star = q_star.amax(1)
    planner = MCTS(
        TabularModel(nxt),
        table_reward(rewards),
        None,
        DISCRETE3,
        MCTSConfig(num_simulations=12, leaves_per_batch=4, rollout_depth=0, gamma=0.6, max_depth=1),
        generator=torch.Generator().manual_seed(0),
        value_fn=lambda obs: v_star[obs.argmax(1)],
    )
    out = planner.search(torch.eye(50))
    # One-step lookahead on V*: every child is visited and its Q is exactly Q*.
    assert torch.all(out.visit_counts > 0)
    torch.testing.assert_close(out.q_values, q_star, atol=1e-5, rtol=0)
    assert torch.equal(out.slot, q_star.argmax(1))


def test_value_weight_mixes_rollouts_with_the_leaf_value() -> None:
    nxt, rewards = random_mdps(5, 10, 3, 0)
    q_star = q_iteration(nxt, rewards, 0.6)
    v_star = q_star.amax(1)
    gaps = []
    for weight in (0.0, 0.25, 0.5, 1.0):
        cfg = MCTSConfig(
            num_simulations=12,
            leaves_per_batch=4,
            rollout_depth=6,
            rollout_from_root=False,
            gamma=0.6,
            max_depth=1,
            value_weight=weight,
        )
        planner = MCTS(
            TabularModel(nxt),
            table_reward(rewards),
            None,
            DISCRETE3,
            cfg,
            generator=torch.Generator().manual_seed(0),
            value_fn=lambda obs: v_star[obs.argmax(1)],
        )
        gaps.append((q_star - planner.search(torch.eye(50)).q_values).mean().item())
    # Random rollouts (bootstrapped with V*) under-estimate V*; the leaf value is the
    # (1 - w, w) mix, so the shortfall of Q against Q* shrinks linearly to 0 at w = 1.
    assert gaps[0] > 0.1
    expected = [gaps[0], 0.75 * gaps[0], 0.5 * gaps[0], 0.0]
    assert gaps == pytest.approx(expected, abs=1e-5)


def test_rollout_fn_replaces_random_rollout_actions() -> None:
    nxt, rewards = random_mdps(5, 10, 3, 0)
    q_star = q_iteration(nxt, rewards, 0.6)
    best = q_star.argmax(1)
    calls = []

    def optimal(obs: Tensor, generator: torch.Generator) -> Tensor:
        calls.append(obs.shape)
        return torch.nn.functional.one_hot(best[obs.argmax(1)], 3).float()

    def gap(rollout_fn) -> float:
        cfg = MCTSConfig(
            num_simulations=12, leaves_per_batch=4, rollout_depth=15, gamma=0.6, max_depth=1,
            rollout_from_root=False,
        )  # fmt: skip
        planner = MCTS(
            TabularModel(nxt), table_reward(rewards), None, DISCRETE3, cfg,
            generator=torch.Generator().manual_seed(0), rollout_fn=rollout_fn,
        )  # fmt: skip
        return float((q_star - planner.search(torch.eye(50)).q_values).abs().max())

    # Rollouts that follow the optimal policy make every child's Q exact (up to 0.6^16).
    assert gap(None) > 0.1 and gap(optimal) < 1e-3
    assert calls and all(shape[1] == 50 for shape in calls)  # obs (M, O)


def test_rollout_fn_output_is_checked_and_box_actions_clipped() -> None:
    def wrong(obs: Tensor, generator: torch.Generator) -> Tensor:
        return torch.zeros(obs.shape[0], 2)

    cfg = MCTSConfig(num_simulations=4, leaves_per_batch=2, rollout_depth=3, max_depth=1)
    planner = MCTS(TabularModel(torch.zeros(4, 3, dtype=torch.long)), lambda o, a, n: a.sum(1),
                   None, DISCRETE3, cfg, rollout_fn=wrong)  # fmt: skip
    with pytest.raises(ValueError, match=r"rollout_fn must return shape \(\d+, 3\), got"):
        planner.search(torch.eye(4)[:1])
    with pytest.raises(TypeError, match="rollout_fn must be callable"):
        MCTS(TabularModel(torch.zeros(4, 3, dtype=torch.long)), table_reward(torch.zeros(4, 3)),
             None, DISCRETE3, cfg, rollout_fn=3)  # type: ignore[arg-type]  # fmt: skip

    with pytest.raises(ValueError, match="cannot be combined with rollout_policy='hold'"):
        MCTS(
            TabularModel(torch.zeros(4, 3, dtype=torch.long)),
            table_reward(torch.zeros(4, 3)),
            None,
            DISCRETE3,
            MCTSConfig(rollout_policy="hold"),
            rollout_fn=wrong,
        )

    def far_out(obs: Tensor, generator: torch.Generator) -> Tensor:
        return torch.full((obs.shape[0], 1), 5.0)

    box_cfg = MCTSConfig(num_simulations=4, leaves_per_batch=2, rollout_depth=2, gamma=1.0,
                         max_depth=1, widening_k=1.0, rollout_from_root=False)  # fmt: skip
    box = MCTS(Bandit(), bandit_reward, None, BOX, box_cfg, rollout_fn=far_out)
    tree = box.search(torch.zeros(1, 1)).tree
    kids = tree.children[0, 0, : int(tree.num_children[0, 0])]
    # Every rollout step scores the clipped action 1.0: -(1 - 0.3)^2, twice.
    torch.testing.assert_close(tree.raw_value[0, kids], torch.full((len(kids),), -2 * 0.49))


def test_value_weight_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match=r"value_weight must be in \[0.0, 1.0\]"):
        MCTSConfig(value_weight=1.5)


# ------------------------------------------------------------ determinism, backends
def test_same_seed_same_search_and_backends_agree() -> None:
    results = []
    cfg = {**TAB, "num_simulations": 150}
    for seed, backend in ((0, "torch"), (0, "numpy"), (0, "numpy"), (1, "numpy")):
        planner, _, _ = tabular_planner(seed=seed, backend=backend, **cfg)
        results.append(planner.search(torch.eye(50)[:8]))
    torch_run, np_run, np_again, other_seed = results
    for out in (np_run, np_again):
        assert torch.equal(out.visit_counts, torch_run.visit_counts)
        torch.testing.assert_close(out.q_values, torch_run.q_values)
    assert not torch.equal(other_seed.root_value, torch_run.root_value)


# ------------------------------------------------------------------- item 5: batching
def test_batched_leaves_use_far_fewer_model_calls() -> None:
    calls = {}
    for leaves in (1, 16):
        planner, model, _ = tabular_planner(
            num_simulations=64, leaves_per_batch=leaves, rollout_depth=5, rollout_from_root=False
        )
        out = planner.search(torch.eye(50)[:1])
        assert int(out.simulations) == 64
        calls[leaves] = model.calls
    assert calls[1] == 5 + 6 * 64  # root rollout, then expansion + 5 rollout steps per leaf
    assert calls[16] * 4 < calls[1]
    assert calls[16] % 6 == 5  # whole rounds: one expansion call + one batched rollout


def test_virtual_loss_spreads_a_round_over_distinct_leaves() -> None:
    planner, _, _ = tabular_planner(num_simulations=200, leaves_per_batch=16, rollout_depth=3)
    out = planner.search(torch.eye(50)[:4])
    tree = out.tree
    # Every simulation but the revisits of the depth limit/terminals created one node.
    assert torch.all(tree.num_nodes == 201)
    assert out.collisions < 0.1 * out.descents


# ------------------------------------------------------------- rewards, termination
def test_terminal_nodes_have_zero_value_after_them() -> None:
    # State 0: action 0 pays 1 and terminates; action 1 pays 0.5 and loops forever.
    nxt = torch.tensor([[1, 0, 0], [1, 1, 1]])
    rewards = torch.tensor([[1.0, 0.5, 0.0], [5.0, 5.0, 5.0]])  # state 1 would pay if not terminal

    def terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return next_obs.argmax(1) == 1

    planner = MCTS(
        TabularModel(nxt),
        table_reward(rewards),
        terminated,
        DISCRETE3,
        MCTSConfig(num_simulations=300, rollout_depth=10, gamma=0.9, selection="uct"),
        generator=torch.Generator().manual_seed(0),
    )
    out = planner.search(torch.eye(2)[:1])
    assert out.q_values[0, 0].item() == pytest.approx(1.0)  # nothing earned after the end
    assert int(out.slot[0]) == 1  # 0.5 / (1 - 0.9) ~ 5 over the horizon beats 1 once


class HalfEnding:
    """A learned-termination stand-in: flags every transition, with probability 0.5."""

    def __call__(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return torch.ones(obs.shape[0], dtype=torch.bool)

    def probability(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return torch.full((obs.shape[0],), 0.5)


def test_soft_termination_discounts_by_the_continuation_probability() -> None:
    nxt, rewards = random_mdps(1, 4, 3, 0)
    outs = {}
    for mode in ("auto", "hard"):
        planner = MCTS(
            TabularModel(nxt),
            table_reward(rewards),
            HalfEnding(),
            DISCRETE3,
            MCTSConfig(num_simulations=30, rollout_depth=4, gamma=0.9, termination=mode),
            generator=torch.Generator().manual_seed(0),
        )
        outs[mode] = planner.search(torch.eye(4)[:1]).tree
    soft, hard = outs["auto"], outs["hard"]
    used = torch.arange(1, int(soft.num_nodes[0]))
    torch.testing.assert_close(soft.discount[0, used], torch.full((len(used),), 0.45))
    assert not soft.terminal[0, used].any() and soft.depth[0].max() > 1
    assert hard.terminal[0, 1 : int(hard.num_nodes[0])].all() and hard.depth[0].max() == 1
    with pytest.raises(TypeError, match="probability"):
        MCTS(
            TabularModel(nxt),
            table_reward(rewards),
            cartpole_termination,
            DISCRETE3,
            MCTSConfig(termination="soft"),
        )


class Diverging(DynamicsModel):
    """Counts steps in its one observation; a step reaching ``limit`` predicts NaN."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.limit = 1, 3, limit

    def step(self, state, action, generator=None):
        nxt = state + 1
        return torch.where(nxt >= self.limit, torch.full_like(nxt, float("nan")), nxt)


def test_a_diverging_model_ends_branches_paying_nothing() -> None:
    def one_per_step(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return next_obs[:, 0] * 0 + 1  # NaN wherever the prediction is

    def make(limit: int) -> MCTS:
        cfg = MCTSConfig(num_simulations=6, leaves_per_batch=3, rollout_depth=5, gamma=1.0,
                         rollout_from_root=False, max_depth=1, num_rollouts=2)  # fmt: skip
        return MCTS(Diverging(limit), one_per_step, None, DISCRETE3, cfg,
                    value_fn=lambda obs: torch.full((obs.shape[0],), 100.0))  # fmt: skip

    # Leaf rollouts: 0 -> 1 -> 2 earn 1 each, the step to 3 diverges: it ends the rollout, pays
    # nothing and takes no value bootstrap (5 steps and V = 100 would give 105).
    out = make(3).search(torch.zeros(1, 1))
    tree, used = out.tree, slice(0, int(out.tree.num_nodes[0]))
    assert torch.isfinite(tree.stats).all() and torch.isfinite(tree.obs).all()
    assert tree.raw_value[0, 0] == 2.0  # the root's rollout
    assert torch.all(tree.raw_value[0, 1:4] == 1.0)  # children at 1: one step, then the end
    torch.testing.assert_close(out.q_values, torch.full((1, 3), 2.0))
    assert not tree.terminal[0, used].any()
    # An expansion that diverges is terminal, pays nothing and keeps the parent's observation.
    out = make(1).search(torch.zeros(1, 1))
    kids = out.tree.children[0, 0]
    assert out.tree.terminal[0, kids].all() and torch.all(out.tree.discount[0, kids] == 0.0)
    assert torch.all(out.q_values == 0.0) and torch.all(out.tree.obs[0, kids] == 0.0)
    assert out.tree.raw_value[0, 0] == 0.0  # the root's rollout diverged at once


def test_selection_is_invariant_to_reward_scale() -> None:
    outs = []
    for scale in (1.0, 1000.0):
        nxt, rewards = random_mdps(5, 10, 3, 0)
        planner = MCTS(
            TabularModel(nxt),
            table_reward(rewards * scale),
            None,
            DISCRETE3,
            MCTSConfig(gamma=0.6, **{**TAB, "num_simulations": 120}),
            generator=torch.Generator().manual_seed(0),
        )
        outs.append(planner.search(torch.eye(50)[:10]))
    assert torch.equal(outs[0].visit_counts, outs[1].visit_counts)
    torch.testing.assert_close(outs[1].root_value, 1000.0 * outs[0].root_value, rtol=1e-4, atol=0)


# --------------------------------------------------------------------------- hooks
def test_prior_fn_steers_puct_and_noise_is_reproducible() -> None:
    nxt = torch.zeros(1, 3, dtype=torch.long)  # one state, every action pays the same
    rewards = torch.ones(1, 3)

    def prior(obs: Tensor) -> Tensor:
        return torch.tensor([[0.0, 4.0, 0.0]]).expand(obs.shape[0], -1)

    def make(fraction: float, seed: int) -> MCTS:
        return MCTS(
            TabularModel(nxt),
            table_reward(rewards),
            None,
            DISCRETE3,
            MCTSConfig(num_simulations=40, rollout_depth=3, dirichlet_fraction=fraction),
            generator=torch.Generator().manual_seed(seed),
            prior_fn=prior,
        )

    out = make(0.0, 0).search(torch.ones(1, 1))
    assert int(out.visit_counts.argmax()) == 1 and out.visit_counts[0, 1] > 25
    noisy = [make(0.5, s).search(torch.ones(1, 1)).tree.prior[0, 0] for s in (3, 3, 4)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.equal(noisy[0], noisy[2])
    torch.testing.assert_close(noisy[0].sum(), torch.tensor(1.0))
    assert not torch.allclose(noisy[0], torch.softmax(torch.tensor([0.0, 4.0, 0.0]), 0))


def test_gamma_and_dirichlet_samplers() -> None:
    g = torch.Generator().manual_seed(0)
    for alpha in (0.3, 2.5):
        x = sample_gamma(torch.full((20000,), alpha), g)
        assert abs(x.mean().item() - alpha) < 0.05 * alpha + 0.01
        assert abs(x.var().item() - alpha) < 0.1 * alpha + 0.01
    d = dirichlet_noise((5, 4), 0.3, g, torch.device("cpu"))
    torch.testing.assert_close(d.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="concentration"):
        sample_gamma(torch.tensor([0.0]), g)


def test_temperature_acting() -> None:
    visits = torch.tensor([[10.0, 30.0, 60.0], [5.0, 5.0, 0.0]])
    tie = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.9, 0.0]])
    slot, probs = visit_policy(visits, 0.0, None, tie)
    assert slot.tolist() == [2, 1]  # most visited; the tie goes to the better Q
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([visit_policy(visits, 1.0, g, tie)[0] for _ in range(2000)])
    freq = (draws[:, 0:1] == torch.arange(3)).float().mean(0)
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.3, 0.6]), atol=0.04, rtol=0)
    assert torch.all(draws[:, 1] != 2)  # never an unvisited action


# --------------------------------------------------------------------- tree reuse
def cartpole_planner(**cfg) -> MCTS:
    codec = ActionCodec.from_space(gym.spaces.Discrete(2))
    config = MCTSConfig(**{"num_simulations": 32, "leaves_per_batch": 8, **cfg})
    return MCTS(
        KnownCartPole(),
        cartpole_reward,
        cartpole_termination,
        codec,
        config,
        generator=torch.Generator().manual_seed(0),
    )


def test_tree_reuse_keeps_the_chosen_subtree_for_an_exact_model() -> None:
    planner = cartpole_planner()
    model = KnownCartPole()
    obs = torch.tensor([0.01, 0.0, 0.02, 0.0])
    plan = planner.plan(obs)
    assert plan.shape[1] == 2 and plan.shape[0] >= 1 and torch.all(plan.sum(1) == 1)
    tree, child = planner._last
    kept = float(tree.visit_count[0, child])
    nxt = model.step(obs[None], plan[:1])[0]
    planner.plan(nxt)
    assert planner.stats["reused"] == 1
    assert float(planner._last[0].visit_count[0, 0]) == kept + 32
    planner.plan(nxt + 0.01)  # not what the model predicted: a fresh tree
    assert planner.stats["reuse_misses"] == 1
    planner.reset()
    planner.plan(obs)
    assert planner.stats["reused"] == 1


def test_subtree_reindexes_and_keeps_statistics() -> None:
    tree = empty_tree(1, 6, 2, 1, torch.zeros(1, 1))
    # root 0 -> 1 (slot 0), 2 (slot 1); 2 -> 3 (slot 1); 3 -> 4 (slot 0)
    for new, parent, slot in ((1, 0, 0), (2, 0, 1), (3, 2, 1), (4, 3, 0)):
        tree.parent[0, new], tree.slot[0, new] = parent, slot
        tree.children[0, parent, slot] = new
        tree.depth[0, new] = int(tree.depth[0, parent]) + 1
        tree.obs[0, new, 0] = float(new)
    tree.num_nodes[0] = 5
    tree.stats[0, :5, 2] = torch.arange(5.0)  # rewards
    tree.stats[0, :5, 3] = 1.0  # discounts
    backup(tree, torch.tensor([0, 0]), torch.tensor([4, 1]), torch.tensor([1.0, 2.0]))
    sub = subtree(tree, torch.tensor([2]), extra=3)
    assert int(sub.num_nodes[0]) == 3 and sub.capacity == 6
    assert sub.obs[0, :3, 0].tolist() == [2.0, 3.0, 4.0]
    assert sub.children[0, 0].tolist() == [sub.null, 1] and sub.children[0, 1, 0] == 2
    assert sub.parent[0, :3].tolist() == [sub.null, 0, 1] and sub.depth[0, :3].tolist() == [0, 1, 2]
    assert sub.visit_count[0, :3].tolist() == [1.0, 1.0, 1.0]
    assert sub.value_sum[0, :3].tolist() == [8.0, 5.0, 1.0]  # 1 + reward 4, then + reward 3
    assert sub.reward[0, 0] == 0.0


# ---------------------------------------------------------------- learned ensembles
def test_ensemble_searches_in_expectation_without_changing_the_model() -> None:
    torch.manual_seed(0)
    model = GaussianEnsemble(4, 2, DeltaModelConfig(ensemble_size=3, hidden_size=8, num_layers=1))
    seen = []
    original_step_with = model.step_with

    def spy(state, action, generator, propagation):
        seen.append((propagation, model.propagation))
        return original_step_with(state, action, generator, propagation)

    model.step_with = spy  # type: ignore[method-assign]
    codec = ActionCodec.from_space(gym.spaces.Discrete(2))
    plans = []
    for _ in range(2):
        planner = MCTS(
            model,
            cartpole_reward,
            cartpole_termination,
            codec,
            MCTSConfig(num_simulations=16, leaves_per_batch=8, rollout_depth=4, reuse="always"),
            generator=torch.Generator().manual_seed(5),
        )
        plans.append(planner.plan(torch.zeros(4)))
    # Every step went through the expectation view while the model kept its own TS-infinity.
    assert seen and set(seen) == {("expectation", "ts_inf")}
    assert torch.equal(plans[0], plans[1])
    with pytest.raises(ValueError, match="propagation modes"):
        cartpole_planner(propagation="ts1")  # the known model has one behaviour, its mean


# -------------------------------------------------------------- item 4: widening
class Bandit(DynamicsModel):
    """One state; the reward only depends on the continuous action."""

    def __init__(self) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = 1, 1

    def step(self, state, action, generator=None):
        return state


def bandit_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return -((action[:, 0] - 0.3) ** 2)


BOX = ActionCodec.from_space(gym.spaces.Box(-1.0, 1.0, (1,)))


def test_progressive_widening_finds_a_continuous_optimum() -> None:
    cfg = dict(num_simulations=200, leaves_per_batch=8, rollout_depth=0, max_depth=1)
    outs = []
    for backend in ("torch", "numpy"):
        planner = MCTS(
            Bandit(),
            bandit_reward,
            None,
            BOX,
            MCTSConfig(widening_k=1.0, widening_alpha=0.5, backend=backend, **cfg),
            generator=torch.Generator().manual_seed(0),
        )
        outs.append(planner.search(torch.zeros(8, 1)))
    out = outs[0]
    assert torch.equal(out.visit_counts, outs[1].visit_counts)
    children = out.tree.num_children[:, 0]
    assert torch.all(children <= math.ceil(201**0.5))  # ceil(k n^alpha), n = root visits
    assert torch.all(children >= 10)
    chosen = bandit_reward(None, out.action, None)  # a uniform action averages -0.42
    assert chosen.mean() > -0.03 and chosen.min() > -0.1, out.action
    plan = planner.plan(torch.zeros(1))
    assert plan.shape == (1, 1) and -1.0 <= float(plan[0, 0]) <= 1.0


# ------------------------------------------------------------- item 6: bad input
def test_continuous_space_without_widening_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="progressive widening"):
        MCTS(Bandit(), bandit_reward, None, BOX, MCTSConfig())
    ctx = PlannerContext(Bandit(), bandit_reward, None, BOX, torch.Generator())
    with pytest.raises(TypeError, match="widening_k"):
        build_planner("mcts", ctx)
    ctx = PlannerContext(
        Bandit(), bandit_reward, None, BOX, torch.Generator(), options={"widening_k": 1.0}
    )
    assert build_planner("mcts", ctx).supports_continuous
    assert not cartpole_planner().supports_continuous  # no widening: Discrete only
    assert MCTS.supports_continuous  # the class alone cannot know the config


def test_run_rejects_box_env_without_widening_before_any_episode() -> None:
    with pytest.raises(TypeError, match="progressive widening"):
        run(
            RunConfig(env_id="MountainCarContinuous-v0", planner="mcts", episodes=1, progress=False)
        )


def test_bad_observations_and_options_raise_clear_errors() -> None:
    planner = cartpole_planner()
    with pytest.raises(ValueError, match=r"obs must have shape \(4,\)"):
        planner.plan(torch.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        planner.plan(torch.tensor([0.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        planner.search(torch.zeros(2, 3))
    codec = ActionCodec.from_space(gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="action_dim"):
        MCTS(KnownCartPole(), cartpole_reward, None, codec)
    ctx = PlannerContext(
        KnownCartPole(),
        cartpole_reward,
        None,
        ActionCodec.from_space(gym.spaces.Discrete(2)),
        torch.Generator(),
        options={"num_simulation": 5},
    )
    with pytest.raises(ValueError, match="num_simulation"):
        build_planner("mcts", ctx)
    for bad, match in (
        ({"num_simulations": 0}, "num_simulations"),
        ({"selection": "ucb"}, "selection"),
        ({"gamma": 1.5}, "gamma"),
        ({"widening_alpha": 0.0}, "widening_alpha"),
        ({"reuse": "sometimes"}, "reuse"),
        ({"dirichlet_fraction": -0.1}, "dirichlet_fraction"),
    ):
        with pytest.raises(ValueError, match=match):
            MCTSConfig(**bad)


def test_discrete_space_is_refused_by_continuous_only_planners() -> None:
    ctx = PlannerContext(
        KnownCartPole(),
        cartpole_reward,
        cartpole_termination,
        ActionCodec.from_space(gym.spaces.Discrete(2)),
        torch.Generator(),
    )
    with pytest.raises(TypeError, match="Discrete"):
        build_planner("cem", ctx)


# ------------------------------------------------------------- items 2/3: the loop
def test_mbrl_run_with_known_cartpole_and_mcts_balances() -> None:
    cfg = RunConfig(
        env_id="CartPole-v1",
        model="known",
        planner="mcts",
        episodes=1,
        seed_episodes=0,
        max_episode_steps=40,
        planner_options={"num_simulations": 16, "leaves_per_batch": 8},
        progress=False,
    )
    result = run(cfg)
    assert result.records[-1].steps == 40 and result.records[-1].truncated


@pytest.mark.slow
def test_known_cartpole_ten_seeded_episodes_reach_500() -> None:
    env = gym.make("CartPole-v1")
    codec = ActionCodec.from_space(env.action_space)
    planner = cartpole_planner(num_simulations=50, leaves_per_batch=16, rollout_depth=20)
    lengths = []
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        planner.reset()
        steps, done = 0, False
        while not done:
            action = codec.decode(planner.plan(torch.as_tensor(obs))[0])
            obs, _, terminated, truncated, _ = env.step(action)
            steps += 1
            done = terminated or truncated
        lengths.append(steps)
    assert lengths == [500] * 10, lengths


def test_numpy_reads_views_not_copies() -> None:
    tree = empty_tree(1, 3, 2, 1, torch.zeros(1, 1))
    view = tree.stats.numpy()
    view[0, 0, 0] = 7.0
    assert tree.visit_count[0, 0] == 7.0
    assert np.shares_memory(view, tree.stats.numpy())
