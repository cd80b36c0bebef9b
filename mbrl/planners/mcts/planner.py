"""Monte-Carlo tree search over any :class:`~mbrl.models.base.DynamicsModel` (``--planner mcts``).

UCT (Kocsis & Szepesvari 2006) or PUCT (AlphaZero / MuZero) selection, expansion through one
batched model step per round, evaluation by rollouts through the model and/or a value function
(:mod:`~mbrl.planners.mcts.evaluation`), and discounted backup with MuZero's min-max
normalisation of Q-values, so rewards of any scale work (:mod:`~mbrl.planners.mcts.search`,
:mod:`~mbrl.planners.mcts.tree`). Continuous ``Box`` actions use progressive widening over
sampled actions. This module wires them into the :class:`MCTS` planner.

Models: the tree treats ``model.step`` as deterministic. The search steps
``model.propagating(config.propagation)`` (default ``"expectation"``: an ensemble's mean over
members, no sampling; a GP's posterior mean), a view sharing the model's parameters; the model
itself is never changed.

Tree reuse (``reuse``): after acting, the chosen child's subtree is kept. ``"match"`` (default)
reuses it only while the child's predicted observation equals the next real one within
``reuse_tolerance``: exact known models reuse their tree until the tree's own predicted
trajectory drifts from the env's by more than the tolerance (float32 vs the env's float64
state: every ~100-200 steps on CartPole), learned models practically never. ``"always"``
reuses the statistics regardless, with the root's state replaced by the real observation;
measured, it hurts: kept values were computed for horizons counted from older roots
(``rollout_from_root``) and go stale (known CartPole: 244 and 225 steps instead of 500 and 500;
learned CartPole: about 100 steps instead of about 300). ``"off"`` never reuses (known CartPole:
500 steps in 3 of 3 episodes, as ``"match"``).

Randomness comes only from the planner's ``generator``: rollouts, widening, root noise,
temperature sampling, and per-node random tie-breakers (so equal scores do not always favour
slot 0, which on CartPole made the cart drift to one side).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel
from mbrl.planners.base import Planner, as_float_obs, as_obs_tensor
from mbrl.planners.deadline import Deadline
from mbrl.planners.mcts.config import MCTSConfig
from mbrl.planners.mcts.evaluation import Evaluator, PriorFn, RolloutFn, ValueFn
from mbrl.planners.mcts.numpy_descent import SelectParams
from mbrl.planners.mcts.search import (
    ProposalFn,
    SearchOutput,
    SearchSpec,
    add_root_noise,
    choose_root_slots,
    run_simulations,
    slot_actions,
    widened_actions,
)
from mbrl.planners.mcts.tree import Tree, node_values, subtree
from mbrl.planners.registry import PlannerContext, register_planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.util.configs import config_from_options


class _InstanceAwareMethod:
    """Descriptor binding a function to the instance when there is one, else to the class."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[..., Any]:
        return types.MethodType(self.func, obj if obj is not None else owner)


class MCTS(Planner):
    """Batched Monte-Carlo tree search planner: ``plan(obs (O,)) -> (H, A)``.

    ``plan`` returns the principal variation (the most-visited path, ``H >= 1`` rows) starting
    with the chosen action; :meth:`search` runs ``B`` independent searches at once and returns
    a :class:`SearchOutput`. Discrete actions are one-hot rows; Box actions need progressive
    widening (``config.widening_k``).

    Args:
        model: dynamics model; the search calls ``initial_state(obs, 1)``, ``step`` and
            ``observe`` (any state that is a tensor or a dataclass of tensors).
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``; a
            terminated node is terminal (value 0 after it).
        codec: the env's :class:`~mbrl.spaces.ActionCodec`.
        config: :class:`MCTSConfig`.
        generator: all randomness (rollouts, widening, noise, acting); seed 0 when omitted.
        value_fn: optional value network ``(M, O) -> (M,)``: the leaf value when
            ``rollout_depth == 0``, else the bootstrap at each rollout's end.
        prior_fn: optional policy network ``(M, O) -> logits (M, K)`` for PUCT priors
            (uniform without one; Discrete spaces only).
        proposal_fn: optional ``(obs (M, O), generator) -> (M, A)`` sampling widened
            actions (Box spaces; uniform/local sampling without one).
        rollout_fn: optional rollout policy ``(obs (M, O), generator) -> encoded actions
            (M, A)`` (one-hot rows for Discrete spaces; Box actions are clipped to the bounds),
            e.g. :meth:`~mbrl.models.policy_model.LearnedPolicy.sample`; replaces
            ``config.rollout_policy``'s random actions.

    Raises:
        TypeError: a Box action space without progressive widening configured, or a prior
            for a Box space; ValueError: sizes of model and action space disagree, or the model
            lacks ``config.propagation``.

    Attributes:
        supports_continuous: instances: whether widening is configured. The class itself
            says True because continuous spaces are possible *with* widening; the check that
            matters runs in the constructor (and so in the ``mcts`` registry builder).
        stats: counters: ``searches``, ``simulations``, ``descents``, ``collisions``,
            ``reused`` (plans that kept a subtree), ``reuse_misses``.
    """

    supports_discrete: ClassVar[bool] = True
    supports_continuous: ClassVar[bool] = True
    accepts_value_fn: ClassVar[bool] = True
    accepts_policy_fn: ClassVar[bool] = True

    def __init__(
        self,
        model: DynamicsModel,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None,
        codec: ActionCodec,
        config: MCTSConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        value_fn: ValueFn | None = None,
        prior_fn: PriorFn | None = None,
        proposal_fn: ProposalFn | None = None,
        rollout_fn: RolloutFn | None = None,
    ) -> None:
        self.config = config if config is not None else MCTSConfig()
        self._check_arguments(
            model,
            reward_fn,
            codec,
            termination_fn=termination_fn,
            value_fn=value_fn,
            prior_fn=prior_fn,
            proposal_fn=proposal_fn,
            rollout_fn=rollout_fn,
        )
        cfg = self.config
        self.model, self.codec = model, codec
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.value_fn, self.prior_fn, self.proposal_fn = value_fn, prior_fn, proposal_fn
        self.rollout_fn = rollout_fn
        self.device = model.device
        self.generator = (
            generator if generator is not None else torch.Generator(self.device).manual_seed(0)
        )
        low, high = codec.bounds(self.device)
        self.low, self.high = low.float(), high.float()
        if codec.discrete:
            self.num_slots = codec.dim
        else:
            assert cfg.widening_k is not None
            self.num_slots = cfg.max_children or math.ceil(
                cfg.widening_k * (cfg.num_simulations + 1) ** cfg.widening_alpha
            )
        self.selection = cfg.selection
        if self.selection == "auto":
            self.selection = "puct" if codec.discrete else "uct"
        self.max_depth = cfg.max_depth if cfg.max_depth is not None else 1 << 30
        use_numpy = cfg.backend == "numpy" or (cfg.backend == "auto" and self.device.type == "cpu")
        if use_numpy and self.device.type != "cpu":
            raise ValueError(f"backend='numpy' needs a CPU model, the model is on {self.device}")
        self._spec = SearchSpec(
            num_simulations=cfg.num_simulations,
            leaves_per_batch=cfg.leaves_per_batch,
            collision_limit=max(1, cfg.leaves_per_batch // 4),
            select=SelectParams(
                puct=self.selection == "puct",
                pb_c_init=float(cfg.pb_c_init),
                pb_c_base=float(cfg.pb_c_base),
                uct_c=float(cfg.uct_c),
                widening_k=None if codec.discrete else float(cfg.widening_k),  # type: ignore[arg-type]
                widening_alpha=float(cfg.widening_alpha),
                num_slots=self.num_slots,
            ),
            use_numpy=use_numpy,
        )
        has_prob = callable(getattr(termination_fn, "probability", None))
        if cfg.termination == "soft" and not has_prob:
            raise TypeError(
                "termination='soft' needs a termination_fn with a probability(obs, action, "
                "next_obs) method (e.g. LearnedTermination)"
            )
        self._evaluator = Evaluator(
            model=model.propagating(cfg.propagation),
            reward_fn=reward_fn,
            termination_fn=termination_fn,
            config=cfg,
            generator=self.generator,
            low=self.low,
            high=self.high,
            num_slots=self.num_slots,
            discrete=codec.discrete,
            max_depth=self.max_depth,
            soft_termination=cfg.termination == "soft" or (cfg.termination == "auto" and has_prob),
            value_fn=value_fn,
            prior_fn=prior_fn,
            rollout_fn=rollout_fn,
        )
        self._last: tuple[Tree, int] | None = None
        self.stats: dict[str, int] = dict.fromkeys(
            ("searches", "simulations", "descents", "collisions", "reused", "reuse_misses"), 0
        )

    def _check_arguments(self, model: Any, reward_fn: Any, codec: Any, **hooks: Any) -> None:
        """Raise ``TypeError``/``ValueError`` for arguments of the wrong kind or size."""
        if not isinstance(model, DynamicsModel):
            raise TypeError(f"model must be a DynamicsModel, got {type(model).__name__}")
        if not isinstance(codec, ActionCodec):
            raise TypeError(f"codec must be an ActionCodec, got {type(codec).__name__}")
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        for name, fn in hooks.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        if not isinstance(self.config, MCTSConfig):
            raise TypeError(f"config must be an MCTSConfig, got {type(self.config).__name__}")
        self.supports_continuous = self.config.widening  # type: ignore[misc]
        self.check_action_space(codec)
        if codec.dim != model.action_dim:
            raise ValueError(
                f"the action space encodes actions with {codec.dim} numbers but the model's "
                f"action_dim is {model.action_dim}"
            )
        if hooks["prior_fn"] is not None and not codec.discrete:
            raise TypeError("prior_fn gives logits over discrete actions; use proposal_fn for Box")
        if hooks["rollout_fn"] is not None and self.config.rollout_policy != "uniform":
            raise ValueError(
                f"rollout_fn replaces the random rollout actions; it cannot be combined with "
                f"rollout_policy={self.config.rollout_policy!r}"
            )

    # ------------------------------------------------------------------ action space
    @_InstanceAwareMethod
    def check_action_space(self_or_cls: Any, codec: ActionCodec) -> None:  # noqa: N805
        """Raise ``TypeError`` if this planner cannot act in ``codec``'s action space.

        Discrete spaces are always supported. Box spaces need progressive widening: an
        instance without ``widening_k`` raises; the class alone cannot know and accepts them.
        """
        if codec.discrete:
            return
        if isinstance(self_or_cls, MCTS) and not self_or_cls.config.widening:
            raise TypeError(
                f"MCTS needs progressive widening for the continuous action space {codec.space}: "
                "set widening_k (and optionally widening_alpha), e.g. "
                "--planner-opt widening_k=1.0 --planner-opt widening_alpha=0.5"
            )

    # ----------------------------------------------------------------------- planning
    def reset(self) -> None:
        """Forget the kept subtree (call at the start of each episode)."""
        self._last = None

    @torch.no_grad()
    def plan(self, obs: Tensor) -> Tensor:
        """Search from ``obs (O,)``; returns the principal variation ``(H, A)``, ``H >= 1``.

        Row 0 is the chosen action (one-hot for Discrete spaces); further rows follow the
        most-visited children.

        With ``config.plan_budget_ms`` the search stops simulating when the budget is spent
        (after its first round); the call is recorded in :attr:`plan_stats` (work =
        simulations run).

        Raises:
            TypeError: ``obs`` is not numeric.
            ValueError: ``obs`` is not ``(O,)``, holds NaN/inf, or the model rejects it.
        """
        deadline = self.start_plan(self.device)
        obs = as_obs_tensor(obs, self.model.obs_dim, self.device)
        tree = self._reused_tree(obs)
        if tree is None:
            tree = self._evaluator.root(obs.unsqueeze(0), self.config.num_simulations + 1)
        out = self._run(tree, deadline)
        child = int(tree.children[0, 0, int(out.slot[0])])
        rows = [out.action[0]]
        node = child
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        while node != tree.null and not bool(tree.terminal[0, node]):
            visits = tree.visit_count[0, tree.children[0, node]]
            if not bool((visits > 0).any()):
                break
            s = int(torch.argmax(visits))
            rows.append(slot_actions(tree, zero, torch.tensor([node]), torch.tensor([s]))[0])
            node = int(tree.children[0, node, s])
        self._last = (tree, child)
        plan = torch.stack(rows)
        simulations = int(out.simulations[0])
        self.finish_plan(deadline, simulations, simulations < self.config.num_simulations)
        return plan

    @torch.no_grad()
    def search(self, obs: Tensor) -> SearchOutput:
        """Run ``B`` independent searches from ``obs (B, O)`` (no tree reuse), each stopping
        early when ``config.plan_budget_ms`` is spent (not recorded in :attr:`plan_stats`).

        Raises:
            TypeError: ``obs`` is not numeric.
            ValueError: ``obs`` is not ``(B, O)`` or is non-finite (the model's check).
        """
        deadline = self.start_plan(self.device)
        obs = as_float_obs(obs, f"(B, {self.model.obs_dim})").to(self.device)
        self.model.check_obs(obs)
        return self._run(self._evaluator.root(obs, self.config.num_simulations + 1), deadline)

    # ------------------------------------------------------------------- internals
    def _reused_tree(self, obs: Tensor) -> Tree | None:
        """The kept subtree of the last plan, if ``reuse`` allows it for ``obs (O,)``."""
        cfg, ev = self.config, self._evaluator
        last, self._last = self._last, None
        if cfg.reuse == "off" or last is None:
            return None
        tree, child = last
        if child == tree.null or bool(tree.terminal[0, child]):
            return None
        if float(tree.visit_count[0, child]) < 1:
            return None
        if cfg.reuse == "match":
            err = float((tree.obs[0, child] - obs).abs().max())
            if not err <= cfg.reuse_tolerance:
                self.stats["reuse_misses"] += 1
                return None
        new = subtree(tree, torch.tensor([child], device=self.device), cfg.num_simulations + 1)
        new.stop = new.pending | new.terminal | (new.depth >= self.max_depth)
        if cfg.reuse == "always":
            state = ev.model.initial_state(obs.unsqueeze(0), 1, self.generator)
            zero = torch.zeros(1, dtype=torch.long, device=self.device)
            new.states.write(zero, zero, state)
            new.obs[0, 0] = ev.model.observe(state)[0]
            if ev.prior_fn is not None:
                new.prior[:, 0] = ev.prior(new.obs[:, 0])
        self.stats["reused"] += 1
        return new

    def _draw(self, tree: Tree, b: Tensor, parent: Tensor) -> tuple[Tensor, Tensor | None]:
        """Random numbers for children being created under ``(b (R,), parent (R,))``: their
        tie-breakers ``(R, K)`` and, with widening, their actions ``(R, A)`` (else None)."""
        tie = torch.rand((b.shape[0], self.num_slots), generator=self.generator, device=self.device)
        if self.codec.discrete:
            return tie, None
        cfg = self.config
        actions = widened_actions(
            tree,
            b,
            parent,
            self.low,
            self.high,
            self.generator,
            local_prob=cfg.widening_local_prob,
            std=cfg.widening_std,
            proposal_fn=self.proposal_fn,
        )
        return tie, actions

    def _run(self, tree: Tree, deadline: Deadline) -> SearchOutput:
        """Simulate until every root got ``num_simulations`` simulations (or ``deadline``
        expired); pick actions."""
        cfg = self.config
        bsz = tree.batch_size
        if self.codec.discrete and cfg.dirichlet_fraction > 0:
            add_root_noise(tree, cfg.dirichlet_alpha, cfg.dirichlet_fraction, self.generator)
        counted, descents, collisions = run_simulations(
            tree, self._spec, partial(self._draw, tree), self._evaluator.expand, deadline
        )
        slot, visits, q = choose_root_slots(tree, cfg.temperature, self.generator)
        ar = torch.arange(bsz, device=self.device)
        action = slot_actions(tree, ar, torch.zeros_like(ar), slot)
        if not self.codec.discrete:
            action = torch.minimum(torch.maximum(action, self.low), self.high)
        self.stats["searches"] += bsz
        self.stats["simulations"] += int(counted.sum())
        self.stats["descents"] += descents
        self.stats["collisions"] += collisions
        return SearchOutput(
            slot=slot,
            action=action,
            visit_counts=visits,
            policy=visits / visits.sum(dim=1, keepdim=True).clamp(min=1.0),
            q_values=q,
            root_value=node_values(tree)[:, 0],
            simulations=counted,
            descents=descents,
            collisions=collisions,
            tree=tree,
        )


def _build_mcts(ctx: PlannerContext) -> Planner:
    """Registry builder: the run's ``gamma`` and ``horizon`` (as ``rollout_depth``) are the
    defaults, ``ctx.options`` override :class:`MCTSConfig` fields; ``ctx.value_fn`` (a learned
    value) bootstraps the leaf rollouts and ``ctx.policy_fn`` (a learned policy) draws their
    actions."""
    base = MCTSConfig(gamma=ctx.gamma, rollout_depth=ctx.horizon)
    cfg = config_from_options(MCTSConfig, ctx.options, base)
    return MCTS(
        ctx.model,
        ctx.reward_fn,
        ctx.termination_fn,
        ctx.codec,
        cfg,
        generator=ctx.generator,
        value_fn=ctx.value_fn,
        rollout_fn=ctx.policy_fn,
    )


register_planner(
    "mcts",
    MCTS,
    _build_mcts,
    "Monte-Carlo tree search (PUCT/UCT, batched leaves; progressive widening for Box actions)",
)
