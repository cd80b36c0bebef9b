"""Roots, expansion and leaf evaluation of :mod:`mbrl.planners.mcts` (mctx's ``root_fn`` and
``recurrent_fn``).

:meth:`Evaluator.root` starts the trees from observations; :meth:`Evaluator.expand` steps the
model into a round's new leaves with one :func:`~mbrl.rollout.transition.transition` call and
values them by rollouts through the rollout core (:func:`~mbrl.rollout.core.simulate`: random actions, held random actions, or a
rollout policy such as a learned imitation of the agent, as AlphaGo's) and/or a value function.

Non-finite predictions follow the rollout layer's one divergence rule
(:mod:`mbrl.rollout.transition`): an expansion that diverges makes a terminal node that pays
nothing, and a leaf rollout that diverges counts as an ending that pays nothing (the tree reads
``finite_returns``: its backups need finite numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mbrl.models.base import DynamicsModel, ModelState
from mbrl.planners.mcts.config import MCTSConfig
from mbrl.planners.mcts.search import slot_actions
from mbrl.planners.mcts.tree import (
    DISCOUNT,
    REWARD,
    Tree,
    backup,
    empty_tree,
    index_state,
    tile_state,
)
from mbrl.rollout.core import ValueFn, simulate
from mbrl.rollout.transition import transition
from mbrl.task_fns import RewardFn, TerminationFn

PriorFn = Callable[[Tensor], Tensor]
"""``prior_fn(obs (M, O)) -> logits (M, K)`` over the ``K`` discrete actions (policy network)."""
RolloutFn = Callable[[Tensor, torch.Generator], Tensor]
"""``rollout_fn(obs (M, O), generator) -> actions (M, A)``: the leaf rollouts' policy."""

__all__ = ["Evaluator", "PriorFn", "RolloutFn", "ValueFn"]


@dataclass(frozen=True, eq=False)  # holds tensors and callables: compared by identity
class Evaluator:
    """Steps the model into new nodes and values them (one batch of leaves per call).

    Attributes:
        model: the dynamics model (as the search propagates it).
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``.
        config: the planner's :class:`MCTSConfig`.
        generator: all randomness of rollouts.
        low / high: ``(A,)`` action bounds (Box rollouts and clipping).
        num_slots: ``K``, the discrete actions (or child slots with widening).
        discrete: Discrete action space (one-hot actions).
        max_depth: tree depth from which nodes are not descended below.
        soft_termination: read ``termination_fn.probability`` as the chance of ending.
        value_fn / prior_fn / rollout_fn: the optional hooks of :class:`MCTS`.
    """

    model: DynamicsModel
    reward_fn: RewardFn
    termination_fn: TerminationFn | None
    config: MCTSConfig
    generator: torch.Generator
    low: Tensor
    high: Tensor
    num_slots: int
    discrete: bool
    max_depth: int
    soft_termination: bool
    value_fn: ValueFn | None = None
    prior_fn: PriorFn | None = None
    rollout_fn: RolloutFn | None = None

    def root(self, obs: Tensor, capacity: int) -> Tree:
        """A tree of ``capacity`` nodes per row of ``obs (B, O)``, its root evaluated (one
        visit; mctx's ``root_fn``)."""
        state = self.model.initial_state(obs, 1, self.generator)
        root_obs = self.model.observe(state)
        bsz, device = obs.shape[0], self.low.device
        action_dim = None if self.discrete else self.low.shape[0]
        tree = empty_tree(
            bsz, capacity, self.num_slots, root_obs.shape[1], state, action_dim, device=device
        )
        b = torch.arange(bsz, device=device)
        zero = torch.zeros(bsz, dtype=torch.long, device=device)
        tree.states.write(b, zero, state)
        tree.obs[:, 0] = root_obs
        tree.num_nodes.fill_(1)
        tree.tie[:, 0] = torch.rand((bsz, self.num_slots), generator=self.generator, device=device)
        if self.prior_fn is not None:
            tree.prior[:, 0] = self.prior(root_obs)
        value = self.evaluate(state, root_obs, zero)
        tree.raw_value[:, 0] = value
        backup(tree, b, zero, value)
        return tree

    def expand(self, tree: Tree, b: Tensor, nodes: Tensor) -> None:
        """Step the model into pending nodes ``(b (R,), nodes (R,))`` and evaluate them."""
        cfg = self.config
        parent, slot = tree.parent[b, nodes], tree.slot[b, nodes]
        action = slot_actions(tree, b, parent, slot)
        tr = transition(
            self.model,
            tree.states.read(b, parent),
            tree.obs[b, parent],
            action,
            self.reward_fn,
            self.termination_fn,
            self.generator,
            soft_termination=self.soft_termination,
        )
        term = tr.done  # a diverged step is a certain ending that pays nothing
        tree.states.write(b, nodes, tr.state)
        tree.obs[b, nodes] = tr.obs
        tree.stats[b, nodes, REWARD] = tr.reward.to(tree.stats.dtype)
        tree.stats[b, nodes, DISCOUNT] = cfg.gamma * (1.0 - tr.end.to(tree.stats.dtype))
        tree.terminal[b, nodes] = term
        tree.pending[b, nodes] = False
        tree.stop[b, nodes] = term | (tree.depth[b, nodes] >= self.max_depth)
        value = torch.zeros_like(tr.reward)
        alive = (~term).nonzero(as_tuple=True)[0]
        if alive.numel():
            if self.prior_fn is not None:
                tree.prior[b[alive], nodes[alive]] = self.prior(tr.obs[alive])
            value[alive] = self.evaluate(
                index_state(tr.state, alive), tr.obs[alive], tree.depth[b[alive], nodes[alive]]
            )
        tree.raw_value[b, nodes] = value

    def evaluate(self, state: ModelState, obs: Tensor, depth: Tensor) -> Tensor:
        """Leaf values ``(R,)`` of states with observations ``obs (R, O)`` at ``depth (R,)``.

        Rollouts of ``rollout_depth`` steps (minus the depth with ``rollout_from_root``),
        averaged over ``num_rollouts``, stopping at termination, plus ``gamma^steps *
        value_fn`` at the end when a value function is given, mixed with ``value_fn(obs)`` by
        ``value_weight``; ``value_fn`` alone when there is no rollout.
        """
        cfg = self.config
        rows = obs.shape[0]
        if cfg.rollout_from_root:
            steps = (cfg.rollout_depth - depth).clamp(min=0)
        else:
            steps = torch.full_like(depth, cfg.rollout_depth)
        horizon = int(steps.max()) if rows else 0
        if horizon == 0:
            if self.value_fn is None:
                return torch.zeros(rows, device=obs.device)
            return self.value(obs)
        rolled = self.rollout_value(state, obs, steps, horizon)
        if self.value_fn is None or cfg.value_weight == 0.0:
            return rolled
        return (1.0 - cfg.value_weight) * rolled + cfg.value_weight * self.value(obs)

    def rollout_value(self, state: ModelState, obs: Tensor, steps: Tensor, horizon: int) -> Tensor:
        """Mean discounted return ``(R,)`` of ``num_rollouts`` rollouts of ``steps (R,)`` steps
        (at most ``horizon``) from ``state`` / ``obs (R, O)`` through the rollout core, plus the
        ``value_fn`` bootstrap weighted by the probability of not having ended; a diverged
        step ends its rollout and pays nothing."""
        cfg = self.config
        p = cfg.num_rollouts
        if cfg.rollout_policy == "hold":
            # Drawn before the first step, one action per rollout, held throughout.
            held = self.random_actions(p * obs.shape[0])

            def policy(t: int, state: ModelState, cur: Tensor) -> Tensor:
                return held

        else:

            def policy(t: int, state: ModelState, cur: Tensor) -> Tensor:
                return self.rollout_actions(cur)

        result = simulate(
            self.model,
            obs,
            self.reward_fn,
            self.termination_fn,
            policy=policy,
            horizon=horizon,
            n_particles=p,
            gamma=cfg.gamma,
            generator=self.generator,
            terminal_value=self.value if self.value_fn is not None else None,
            steps=steps,
            soft_termination=self.soft_termination,
            start_state=tile_state(state, p),
        )
        return result.finite_returns.mean(dim=0)

    def random_actions(self, rows: int) -> Tensor:
        """Uniformly random encoded actions ``(rows, A)`` (one-hot for Discrete spaces)."""
        device = self.low.device
        if self.discrete:
            idx = torch.randint(0, self.num_slots, (rows,), generator=self.generator, device=device)
            return F.one_hot(idx, self.num_slots).to(torch.float32)
        u = torch.rand((rows, self.low.shape[0]), generator=self.generator, device=device)
        return self.low + u * (self.high - self.low)

    def rollout_actions(self, obs: Tensor) -> Tensor:
        """Rollout actions ``(M, A)`` for ``obs (M, O)``: ``rollout_fn``'s, else random."""
        if self.rollout_fn is None:
            return self.random_actions(obs.shape[0])
        act = self.rollout_fn(obs, self.generator).float()
        dim = self.num_slots if self.discrete else self.low.shape[0]
        if act.shape != (obs.shape[0], dim):
            raise ValueError(
                f"rollout_fn must return shape ({obs.shape[0]}, {dim}), got {tuple(act.shape)}"
            )
        if self.discrete:
            return act
        return torch.minimum(torch.maximum(act, self.low), self.high)

    def prior(self, obs: Tensor) -> Tensor:
        """Prior probabilities ``(R, K)`` from ``prior_fn`` logits on ``obs (R, O)``."""
        assert self.prior_fn is not None
        logits = self.prior_fn(obs)
        if logits.shape != (obs.shape[0], self.num_slots):
            raise ValueError(
                f"prior_fn must return logits of shape ({obs.shape[0]}, {self.num_slots}), "
                f"got {tuple(logits.shape)}"
            )
        return torch.softmax(logits.float(), dim=1)

    def value(self, obs: Tensor) -> Tensor:
        """``value_fn(obs (R, O)) -> (R,)`` with its shape checked (non-finite -> 0)."""
        assert self.value_fn is not None
        v = self.value_fn(obs).float()
        if v.shape != (obs.shape[0],):
            raise ValueError(f"value_fn must return shape ({obs.shape[0]},), got {tuple(v.shape)}")
        return torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
