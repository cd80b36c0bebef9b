"""Monte-Carlo tree search over any :class:`~mbrl.models.base.DynamicsModel` (``--planner mcts``).

UCT (Kocsis & Szepesvari 2006) or PUCT (AlphaZero / MuZero) selection, expansion through one
batched model call per round, evaluation by rollouts through the model (random actions, or a
rollout policy such as a learned imitation of the agent, as AlphaGo's) and/or a value function, and discounted backup with MuZero's min-max normalisation of Q-values (so rewards of
any scale work). Continuous ``Box`` actions use progressive widening over sampled actions.

Batching, two ways:

* within one search, each *round* runs ``leaves_per_batch`` descents one after the other; each
  descent adds a virtual loss along its path so the next goes elsewhere, and the new leaves of
  the round are expanded in one ``model.step`` call and evaluated by one batched rollout;
* ``B`` independent searches (``search(obs (B, O))``) advance together: every array of the
  tree (:mod:`mbrl.planners.mcts.tree`) has a leading ``B``.

A descent that reaches a node allocated earlier in the same round (a *collision*) is dropped:
its virtual loss stays until the round ends and it counts as no simulation. Each root stops
descending for the round after ``max(1, leaves_per_batch // 4)`` collisions.

Models: the tree treats ``model.step`` as deterministic. For an ensemble with a
``propagation`` attribute (:class:`~mbrl.models.delta_model.DeltaModel`) the search runs with
``propagation = config.propagation`` (default ``"expectation"``: the mean over members, no
sampling) and restores the model's own setting afterwards.

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
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mbrl.models.base import DynamicsModel, propagation_mode
from mbrl.planners.base import Planner, as_obs_tensor
from mbrl.planners.mcts.numpy_descent import SelectParams, descend_numpy
from mbrl.planners.mcts.select import (
    dirichlet_noise,
    puct_scores,
    uct_scores,
    virtual_loss_q,
    visit_policy,
    widening_limit,
)
from mbrl.planners.mcts.tree import (
    DISCOUNT,
    REWARD,
    VALUE_SUM,
    VIRTUAL,
    VISITS,
    Tree,
    backup,
    child_q,
    children_stats,
    empty_tree,
    index_state,
    min_max,
    node_values,
    normalize_q,
    normalizer,
    subtree,
    tile_state,
)
from mbrl.planners.registry import PlannerContext, register_planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.util.configs import config_from_options
from mbrl.validation import check_positive_int

PriorFn = Callable[[Tensor], Tensor]
"""``prior_fn(obs (M, O)) -> logits (M, K)`` over the ``K`` discrete actions (policy network)."""
ValueFn = Callable[[Tensor], Tensor]
"""``value_fn(obs (M, O)) -> (M,)`` state-value estimates (value network)."""
ProposalFn = Callable[[Tensor, torch.Generator], Tensor]
"""``proposal_fn(obs (M, O), generator) -> actions (M, A)``: widening proposals (Box spaces)."""
RolloutFn = Callable[[Tensor, torch.Generator], Tensor]
"""``rollout_fn(obs (M, O), generator) -> actions (M, A)``: the leaf rollouts' policy."""

_SELECTIONS = ("auto", "puct", "uct")
_REUSE = ("off", "match", "always")
_BACKENDS = ("auto", "torch", "numpy")
_PROPAGATIONS = ("ts_inf", "ts1", "expectation")

_TERMINATIONS = ("auto", "hard", "soft")
_ROLLOUT_POLICIES = ("uniform", "hold")
_CERTAIN_END = 0.999
"""Ending probability from which a node counts as terminal (no further search below it)."""

# Descent outcomes.
_INACTIVE, _NEW, _TERMINAL, _DEPTH, _COLLISION = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class MCTSConfig:
    """Settings of :class:`MCTS` (``mbrl run --planner mcts --planner-opt KEY=VALUE``).

    Attributes:
        num_simulations: simulations (leaf evaluations) per search (default 100).
        leaves_per_batch: descents per round, expanded and evaluated in one model call
            (default 16; 1 = classic one-leaf-at-a-time MCTS).
        selection: ``"puct"`` (AlphaZero/MuZero), ``"uct"`` (UCB1), or ``"auto"`` (default:
            PUCT for Discrete spaces, UCT over progressively widened Box actions, as
            Couetoux et al. 2011).
        pb_c_init / pb_c_base: PUCT exploration constants (MuZero's 1.25 / 19652).
        uct_c: UCB1 exploration constant on normalised Q (default sqrt(2)).
        dirichlet_alpha: concentration of the root noise (default 0.3, AlphaZero's chess).
        dirichlet_fraction: weight of the noise in the root prior (default 0: pure planning;
            0.25 for AlphaZero-style self-play).
        temperature: acting temperature on root visit counts (0 = most visited, default).
        gamma: discount of backups and rollouts (default 1.0; the ``--planner mcts`` builder
            uses the run's ``gamma``).
        rollout_depth: random-rollout evaluation length (default 20; the builder uses the
            run's ``horizon``). 0 evaluates with ``value_fn`` only (or 0 without one).
        rollout_from_root: count ``rollout_depth`` from the root, so a leaf at depth ``d``
            rolls out ``rollout_depth - d`` steps and every value covers the same horizon (a
            depth-limited "steps survived" value for CartPole); False rolls every leaf out
            ``rollout_depth`` steps (default True).
        num_rollouts: rollouts averaged per leaf (default 1).
        value_weight: with a ``value_fn`` and rollouts, a leaf's value is
            ``(1 - value_weight) * rollout + value_weight * value_fn(leaf)`` (AlphaGo's mix,
            where it was 0.5); the rollout part still ends with the ``value_fn`` bootstrap.
            Default 0: the value enters only at the rollouts' ends, where it counts only for
            rollouts that survive (random rollouts of a balancing task rarely do).
        rollout_policy: ``"uniform"`` (default): a fresh uniformly random action every step;
            ``"hold"``: one uniformly random action per rollout, held throughout (on Pendulum
            with the known model it did worse than ``"uniform"``: -606 / -773 vs -370 / -369
            on two bottom starts). A ``rollout_fn`` given to :class:`MCTS` replaces the
            uniform actions (and cannot be combined with ``"hold"``).
        max_depth: tree depth limit (None: unlimited); leaves at the limit are re-used with
            their first evaluation.
        widening_k / widening_alpha: progressive widening for Box actions: a node with ``n``
            visits has at most ``ceil(k n^alpha)`` children. ``widening_k=None`` (default)
            disables widening, and with it continuous action spaces.
        max_children: cap on children per node with widening (default
            ``ceil(k (num_simulations + 1)^alpha)``).
        widening_local_prob: probability that a widened action is sampled around the node's
            most visited child's action instead of uniformly (default 0.5).
        widening_std: std of those local samples as a fraction of the action range (0.1).
        reuse: tree reuse between steps: ``"off"``, ``"match"`` (default) or ``"always"``.
        reuse_tolerance: max abs difference of predicted vs real observation for ``"match"``
            (default 1e-4).
        propagation: ensemble propagation during search (``"expectation"`` default,
            ``"ts1"``, ``"ts_inf"``, or None to leave the model's setting).
        backend: how descents run: ``"torch"`` (any device), ``"numpy"`` (CPU trees through
            zero-copy numpy views: several times less overhead per tiny operation) or
            ``"auto"`` (default: numpy on CPU, torch elsewhere). Both give the same search.
        termination: ``"hard"`` (default): a transition the termination function flags is
            terminal (a learned classifier's thresholded decision); ``"soft"``: use the
            function's ``probability(obs, action, next_obs) -> (M,)`` (e.g.
            :class:`~mbrl.models.task_models.LearnedTermination`) as the chance ``p`` of
            ending, so values are discounted by ``gamma * (1 - p)`` (a learned continuation
            probability, as Dreamer's); ``"auto"``: soft when the function has a
            ``probability`` method. Nodes with ``p >= 0.999`` are terminal either way. Hard is
            the default because a classifier fitted to a handful of endings gives ordinary
            states small, spurious and lopsided ending chances (1-6% per step, more on one
            side of the track on CartPole), which soft values accumulate over every rollout
            step: the search then steers away from phantom risks, and learned-model CartPole
            drifted off its track (seed 2 with the learned value, last-3 mean: 321 soft, 245
            soft with calibrated probabilities, 500 hard).
    """

    num_simulations: int = 100
    leaves_per_batch: int = 16
    selection: str = "auto"
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    uct_c: float = math.sqrt(2.0)
    dirichlet_alpha: float = 0.3
    dirichlet_fraction: float = 0.0
    temperature: float = 0.0
    gamma: float = 1.0
    rollout_depth: int = 20
    rollout_from_root: bool = True
    num_rollouts: int = 1
    value_weight: float = 0.0
    rollout_policy: str = "uniform"
    max_depth: int | None = None
    widening_k: float | None = None
    widening_alpha: float = 0.5
    max_children: int | None = None
    widening_local_prob: float = 0.5
    widening_std: float = 0.1
    reuse: str = "match"
    reuse_tolerance: float = 1e-4
    propagation: str | None = "expectation"
    backend: str = "auto"
    termination: str = "hard"

    def __post_init__(self) -> None:
        check_positive_int(self.num_simulations, "num_simulations")
        check_positive_int(self.leaves_per_batch, "leaves_per_batch")
        check_positive_int(self.rollout_depth, "rollout_depth", minimum=0)
        check_positive_int(self.num_rollouts, "num_rollouts")
        if self.max_depth is not None:
            check_positive_int(self.max_depth, "max_depth")
        if self.max_children is not None:
            check_positive_int(self.max_children, "max_children")
        if self.selection not in _SELECTIONS:
            raise ValueError(f"selection must be one of {_SELECTIONS}, got {self.selection!r}")
        if self.rollout_policy not in _ROLLOUT_POLICIES:
            raise ValueError(
                f"rollout_policy must be one of {_ROLLOUT_POLICIES}, got {self.rollout_policy!r}"
            )
        if self.termination not in _TERMINATIONS:
            raise ValueError(
                f"termination must be one of {_TERMINATIONS}, got {self.termination!r}"
            )
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.reuse not in _REUSE:
            raise ValueError(f"reuse must be one of {_REUSE}, got {self.reuse!r}")
        if self.propagation is not None and self.propagation not in _PROPAGATIONS:
            raise ValueError(
                f"propagation must be None or one of {_PROPAGATIONS}, got {self.propagation!r}"
            )
        _check_real(self.pb_c_init, "pb_c_init", low=0.0)
        _check_real(self.pb_c_base, "pb_c_base", low=0.0, strict=True)
        _check_real(self.uct_c, "uct_c", low=0.0)
        _check_real(self.dirichlet_alpha, "dirichlet_alpha", low=0.0, strict=True)
        _check_real(self.dirichlet_fraction, "dirichlet_fraction", low=0.0, high=1.0)
        _check_real(self.temperature, "temperature", low=0.0)
        _check_real(self.gamma, "gamma", low=0.0, high=1.0, strict=True)
        _check_real(self.widening_alpha, "widening_alpha", low=0.0, high=1.0, strict=True)
        _check_real(self.value_weight, "value_weight", low=0.0, high=1.0)
        _check_real(self.widening_local_prob, "widening_local_prob", low=0.0, high=1.0)
        _check_real(self.widening_std, "widening_std", low=0.0, strict=True)
        _check_real(self.reuse_tolerance, "reuse_tolerance", low=0.0)
        if self.widening_k is not None:
            _check_real(self.widening_k, "widening_k", low=0.0, strict=True)

    @property
    def widening(self) -> bool:
        """True when progressive widening is configured (``widening_k`` set)."""
        return self.widening_k is not None


def _check_real(
    value: Any, name: str, *, low: float, high: float | None = None, strict: bool = False
) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``value`` is a finite number in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < low or (strict and value == low) or (high is not None and value > high):
        lo_b = "(" if strict else "["
        hi_b = f"{high}]" if high is not None else "inf)"
        raise ValueError(f"{name} must be in {lo_b}{low}, {hi_b}, got {value}")


@dataclass(frozen=True)
class SearchOutput:
    """Result of :meth:`MCTS.search` for ``B`` roots with ``K`` child slots.

    Attributes:
        slot: ``(B,)`` chosen root slot (the discrete action index, or the widened child).
        action: ``(B, A)`` encoded chosen action (one-hot for Discrete spaces).
        visit_counts: ``(B, K)`` visits of the root's children.
        policy: ``(B, K)`` normalised root visit counts (an AlphaZero policy target).
        q_values: ``(B, K)`` root children's Q (``reward + gamma * value``; 0 where unvisited).
        root_value: ``(B,)`` mean backed-up value of the root.
        simulations: ``(B,)`` simulations run by this search.
        descents: descents made (all roots together), collisions: descents dropped.
        tree: the search tree (:class:`~mbrl.planners.mcts.tree.Tree`).
    """

    slot: Tensor
    action: Tensor
    visit_counts: Tensor
    policy: Tensor
    q_values: Tensor
    root_value: Tensor
    simulations: Tensor
    descents: int
    collisions: int
    tree: Tree


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
            for a Box space; ValueError: sizes of model and action space disagree.

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
        if not isinstance(model, DynamicsModel):
            raise TypeError(f"model must be a DynamicsModel, got {type(model).__name__}")
        if not isinstance(codec, ActionCodec):
            raise TypeError(f"codec must be an ActionCodec, got {type(codec).__name__}")
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        for name, fn in (
            ("termination_fn", termination_fn),
            ("value_fn", value_fn),
            ("prior_fn", prior_fn),
            ("proposal_fn", proposal_fn),
            ("rollout_fn", rollout_fn),
        ):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        self.config = config if config is not None else MCTSConfig()
        if not isinstance(self.config, MCTSConfig):
            raise TypeError(f"config must be an MCTSConfig, got {type(self.config).__name__}")
        self.supports_continuous = self.config.widening  # type: ignore[misc]
        self.check_action_space(codec)
        if codec.dim != model.action_dim:
            raise ValueError(
                f"the action space encodes actions with {codec.dim} numbers but the model's "
                f"action_dim is {model.action_dim}"
            )
        if prior_fn is not None and not codec.discrete:
            raise TypeError("prior_fn gives logits over discrete actions; use proposal_fn for Box")
        if rollout_fn is not None and self.config.rollout_policy != "uniform":
            raise ValueError(
                f"rollout_fn replaces the random rollout actions; it cannot be combined with "
                f"rollout_policy={self.config.rollout_policy!r}"
            )
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
        cfg = self.config
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
        self.collision_limit = max(1, cfg.leaves_per_batch // 4)
        self._numpy = cfg.backend == "numpy" or (
            cfg.backend == "auto" and self.device.type == "cpu"
        )
        if self._numpy and self.device.type != "cpu":
            raise ValueError(f"backend='numpy' needs a CPU model, the model is on {self.device}")
        self._params = SelectParams(
            puct=self.selection == "puct",
            pb_c_init=float(cfg.pb_c_init),
            pb_c_base=float(cfg.pb_c_base),
            uct_c=float(cfg.uct_c),
            widening_k=None if codec.discrete else float(cfg.widening_k),
            widening_alpha=float(cfg.widening_alpha),
            num_slots=self.num_slots,
        )
        has_prob = callable(getattr(termination_fn, "probability", None))
        if cfg.termination == "soft" and not has_prob:
            raise TypeError(
                "termination='soft' needs a termination_fn with a probability(obs, action, "
                "next_obs) method (e.g. LearnedTermination)"
            )
        self._soft_termination = cfg.termination == "soft" or (
            cfg.termination == "auto" and has_prob
        )
        self._last: tuple[Tree, int] | None = None
        self.stats: dict[str, int] = dict.fromkeys(
            ("searches", "simulations", "descents", "collisions", "reused", "reuse_misses"), 0
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

        Raises:
            ValueError: ``obs`` is not ``(O,)``, holds NaN/inf, or the model rejects it.
        """
        obs = as_obs_tensor(obs, self.model.obs_dim, self.device)
        with propagation_mode(self.model, self.config.propagation):
            tree = self._reused_tree(obs)
            if tree is None:
                tree = self._new_tree(obs.unsqueeze(0), self.config.num_simulations + 1)
            out = self._run(tree)
        child = int(tree.children[0, 0, int(out.slot[0])])
        rows = [out.action[0]]
        node = child
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        while node != tree.null and not bool(tree.terminal[0, node]):
            visits = tree.visit_count[0, tree.children[0, node]]
            if not bool((visits > 0).any()):
                break
            s = int(torch.argmax(visits))
            rows.append(self._slot_actions(tree, zero, torch.tensor([node]), torch.tensor([s]))[0])
            node = int(tree.children[0, node, s])
        self._last = (tree, child)
        return torch.stack(rows)

    @torch.no_grad()
    def search(self, obs: Tensor) -> SearchOutput:
        """Run ``B`` independent searches from ``obs (B, O)`` (no tree reuse).

        Raises:
            ValueError: ``obs`` is not ``(B, O)`` or is non-finite (the model's check).
        """
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        self.model.check_obs(obs)
        with propagation_mode(self.model, self.config.propagation):
            return self._run(self._new_tree(obs, self.config.num_simulations + 1))

    # ------------------------------------------------------------------- internals
    def _slot_actions(self, tree: Tree, b: Tensor, node: Tensor, slot: Tensor) -> Tensor:
        """Encoded actions ``(R, A)`` of slots ``slot (R,)`` at nodes ``(b (R,), node (R,))``."""
        if self.codec.discrete:
            return F.one_hot(slot, self.num_slots).to(torch.float32)
        assert tree.child_action is not None
        return tree.child_action[b, node, slot]

    def _new_tree(self, obs: Tensor, capacity: int) -> Tree:
        """A tree per row of ``obs (B, O)`` with its root evaluated (one visit)."""
        state = self.model.initial_state(obs, 1, self.generator)
        root_obs = self.model.observe(state)
        bsz = obs.shape[0]
        tree = empty_tree(
            bsz,
            capacity,
            self.num_slots,
            root_obs.shape[1],
            state,
            None if self.codec.discrete else self.codec.dim,
            device=self.device,
        )
        b = torch.arange(bsz, device=self.device)
        zero = torch.zeros(bsz, dtype=torch.long, device=self.device)
        tree.states.write(b, zero, state)
        tree.obs[:, 0] = root_obs
        tree.num_nodes.fill_(1)
        tree.tie[:, 0] = torch.rand(
            (bsz, self.num_slots), generator=self.generator, device=self.device
        )
        if self.prior_fn is not None:
            tree.prior[:, 0] = self._prior(root_obs)
        value = self._evaluate(state, root_obs, zero)
        tree.raw_value[:, 0] = value
        backup(tree, b, zero, value)
        return tree

    def _reused_tree(self, obs: Tensor) -> Tree | None:
        """The kept subtree of the last plan, if ``reuse`` allows it for ``obs (O,)``."""
        cfg = self.config
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
            state = self.model.initial_state(obs.unsqueeze(0), 1, self.generator)
            zero = torch.zeros(1, dtype=torch.long, device=self.device)
            new.states.write(zero, zero, state)
            new.obs[0, 0] = self.model.observe(state)[0]
            if self.prior_fn is not None:
                new.prior[:, 0] = self._prior(new.obs[:, 0])
        self.stats["reused"] += 1
        return new

    def _prior(self, obs: Tensor) -> Tensor:
        """Prior probabilities ``(R, K)`` from ``prior_fn`` logits on ``obs (R, O)``."""
        assert self.prior_fn is not None
        logits = self.prior_fn(obs)
        if logits.shape != (obs.shape[0], self.num_slots):
            raise ValueError(
                f"prior_fn must return logits of shape ({obs.shape[0]}, {self.num_slots}), "
                f"got {tuple(logits.shape)}"
            )
        return torch.softmax(logits.float(), dim=1)

    def _run(self, tree: Tree) -> SearchOutput:
        """Simulate until every root got ``num_simulations`` simulations; pick actions."""
        cfg = self.config
        bsz = tree.batch_size
        ar = torch.arange(bsz, device=self.device)
        if self.codec.discrete and cfg.dirichlet_fraction > 0:
            noise = dirichlet_noise(
                (bsz, self.num_slots), cfg.dirichlet_alpha, self.generator, self.device
            )
            frac = cfg.dirichlet_fraction
            tree.prior[:, 0] = (1 - frac) * tree.prior[:, 0] + frac * noise
        counted = torch.zeros(bsz, dtype=torch.long, device=self.device)
        descents = collisions = 0
        while bool((counted < cfg.num_simulations).any()):
            d, c = self._round(tree, counted)
            descents, collisions = descents + d, collisions + c
        zero = torch.zeros(bsz, dtype=torch.long, device=self.device)
        _, cstats = children_stats(tree, ar, zero)
        visits = cstats[..., VISITS]
        q = torch.where(visits > 0, child_q(cstats), torch.zeros_like(visits))
        lo, hi = min_max(tree)
        tie = 0.99 * normalize_q(q, lo, hi) * (visits > 0) + 0.01 * tree.tie[:, 0]
        slot, _ = visit_policy(visits, cfg.temperature, self.generator, tie)
        action = self._slot_actions(tree, ar, zero, slot)
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

    def _round(self, tree: Tree, counted: Tensor) -> tuple[int, int]:
        """One round: up to ``leaves_per_batch`` descents per root, one batched expansion and
        evaluation of the new leaves, one backup. Updates ``counted (B,)`` in place.

        Returns:
            ``(descents, collisions)`` made this round.
        """
        cfg = self.config
        lo, scale, offset = normalizer(*min_max(tree))
        budget = cfg.num_simulations - counted
        taken = torch.zeros_like(counted)
        clashes = torch.zeros_like(counted)
        leaves, kinds = [], []
        for _ in range(cfg.leaves_per_batch):
            active = (taken < budget) & (clashes < self.collision_limit)
            if not bool(active.any()):
                break
            leaf, kind = self._descend(tree, active, lo, scale, offset)
            taken += ((kind == _NEW) | (kind == _TERMINAL) | (kind == _DEPTH)).long()
            clashes += (kind == _COLLISION).long()
            leaves.append(leaf)
            kinds.append(kind)
        leaf_t, kind_t = torch.stack(leaves), torch.stack(kinds)  # (J, B)
        is_new = kind_t == _NEW
        _, nb = is_new.nonzero(as_tuple=True)
        if nb.numel():
            self._expand(tree, nb, leaf_t[is_new])
        use = is_new | (kind_t == _TERMINAL) | (kind_t == _DEPTH)
        _, ub = use.nonzero(as_tuple=True)
        nodes = leaf_t[use]
        backup(tree, ub, nodes, tree.raw_value[ub, nodes])
        tree.stats[..., VIRTUAL] = 0.0
        counted += taken
        return int((kind_t != _INACTIVE).sum()), int((kind_t == _COLLISION).sum())

    def _descend(
        self, tree: Tree, active: Tensor, lo: Tensor, scale: Tensor, offset: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One descent in every tree where ``active (B,)``, adding virtual visits on the way.

        ``lo, scale, offset (B, 1)`` normalise Q-values (:func:`normalizer`).

        Returns:
            ``(leaf (B,), kind (B,))``: the node reached and how the descent ended (a new node
            allocated for expansion, a terminal node, the depth limit, or a collision).
        """
        if self._numpy:
            node, grown = descend_numpy(
                tree,
                active,
                lo,
                scale,
                offset,
                self._params,
                lambda b, parent: self._draw(tree, b, parent),
            )
        else:
            node, grown = self._descend_torch(tree, active, lo, scale, offset)
        # How each descent ended, read once at its last node.
        flat = tree.node_offsets() + node
        pend = tree.pending.view(-1)[flat] & ~grown
        term = tree.terminal.view(-1)[flat]
        kind = torch.full_like(node, _DEPTH)
        kind = torch.where(term, torch.full_like(kind, _TERMINAL), kind)
        kind = torch.where(pend, torch.full_like(kind, _COLLISION), kind)
        kind = torch.where(grown, torch.full_like(kind, _NEW), kind)
        kind = torch.where(active, kind, torch.full_like(kind, _INACTIVE))
        return node, kind

    def _descend_torch(
        self, tree: Tree, active: Tensor, lo: Tensor, scale: Tensor, offset: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The descent in torch (any device): ``(leaf (B,), grown (B,) bool)``."""
        bsz = tree.batch_size
        null = tree.null
        base = tree.node_offsets()
        virtual = tree.stats.view(-1, 5)[:, VIRTUAL]
        stop = tree.stop.view(-1)
        children = tree.children.view(bsz * (null + 1), -1)
        node = torch.zeros(bsz, dtype=torch.long, device=self.device)
        grown = torch.zeros(bsz, dtype=torch.bool, device=self.device)
        virtual.index_add_(0, base, active.to(virtual.dtype))
        live = active
        while True:
            flat = base + node
            live = live & ~stop[flat]
            if not bool(live.any()):
                return node, grown
            slot = self._select(tree, flat, lo, scale, offset)
            child = children[flat].gather(1, slot.unsqueeze(1)).squeeze(1)
            expand = live & (child == null)
            if bool(expand.any()):
                new = self._allocate(tree, expand, node, slot)
                node = torch.where(expand, new, node)
                grown = grown | expand
            move = live & ~expand
            node = torch.where(move, child, node)
            virtual.index_add_(0, base + node, move.to(virtual.dtype))
            live = move

    def _select(
        self, tree: Tree, flat: Tensor, lo: Tensor, scale: Tensor, offset: Tensor
    ) -> Tensor:
        """Slot ``(B,)`` to follow at flat node indices ``flat (B,)`` (PUCT/UCT), or a new slot
        when progressive widening allows one more child."""
        cfg = self.config
        bsz, entries = tree.batch_size, tree.capacity + 1
        flat_stats = tree.stats.view(-1, 5)
        child = tree.children.view(bsz * entries, -1)[flat]
        cstats = flat_stats[child + (flat - flat % entries).unsqueeze(1)]  # (B, K, 5)
        pstats = flat_stats[flat]  # (B, 5)
        visits, virtual = cstats[..., VISITS], cstats[..., VIRTUAL]
        pvis = pstats[:, VISITS]
        parent_value = (pstats[:, VALUE_SUM] / pvis.clamp(min=1.0)).unsqueeze(1)
        # Unvisited children start at the parent's value ("first-play urgency" as mctx).
        q = torch.where(visits > 0, child_q(cstats), parent_value)
        q_norm = ((q - lo) * scale + offset).clamp(0.0, 1.0)
        edge = visits + virtual
        q_norm = virtual_loss_q(q_norm, visits, edge)
        parent_visits = pvis + pstats[:, VIRTUAL]
        if self.codec.discrete:
            prior = tree.prior.view(bsz * entries, -1)[flat]
        else:
            nch = tree.num_children.view(-1)[flat]
            filled = torch.arange(self.num_slots, device=self.device) < nch.unsqueeze(1)
            prior = filled / nch.clamp(min=1).unsqueeze(1)
        if self.selection == "puct":
            scores = puct_scores(q_norm, prior, edge, parent_visits, cfg.pb_c_init, cfg.pb_c_base)
        else:
            scores = uct_scores(q_norm, edge, parent_visits, cfg.uct_c)
        # Ties (e.g. fresh nodes) are broken at random, not towards slot 0.
        scores = scores + 1e-6 * tree.tie.view(bsz * entries, -1)[flat]
        if self.codec.discrete:
            return torch.argmax(scores, dim=1)
        assert cfg.widening_k is not None
        scores = torch.where(filled, scores, torch.full_like(scores, -torch.inf))
        allowed = widening_limit(parent_visits, cfg.widening_k, cfg.widening_alpha, self.num_slots)
        return torch.where(nch < allowed, nch, torch.argmax(scores, dim=1))

    def _allocate(self, tree: Tree, grow: Tensor, node: Tensor, slot: Tensor) -> Tensor:
        """Allocate a pending child at ``(node, slot)`` in trees ``grow (B,)``; its index ``(B,)``."""
        b = grow.nonzero(as_tuple=True)[0]
        parent, s = node[b], slot[b]
        new = tree.num_nodes[b]
        if bool((new >= tree.capacity).any()):
            raise RuntimeError("MCTS tree capacity exhausted (internal error)")
        tree.num_nodes[b] += 1
        tree.parent[b, new] = parent
        tree.slot[b, new] = s
        tree.depth[b, new] = tree.depth[b, parent] + 1
        tree.pending[b, new] = True
        tree.stop[b, new] = True
        tree.stats[b, new, VIRTUAL] = 1.0
        tree.children[b, parent, s] = new
        tree.num_children[b, parent] += 1
        tie, actions = self._draw(tree, b, parent)
        tree.tie[b, new] = tie
        if actions is not None:
            assert tree.child_action is not None
            tree.child_action[b, parent, s] = actions
        out = torch.full_like(node, tree.null)
        out[b] = new
        return out

    def _draw(self, tree: Tree, b: Tensor, parent: Tensor) -> tuple[Tensor, Tensor | None]:
        """Random numbers for children being created under ``(b (R,), parent (R,))``: their
        tie-breakers ``(R, K)`` and, with widening, their actions ``(R, A)`` (else None)."""
        tie = torch.rand((b.shape[0], self.num_slots), generator=self.generator, device=self.device)
        if self.codec.discrete:
            return tie, None
        return tie, self._widened_actions(tree, b, parent)

    def _widened_actions(self, tree: Tree, b: Tensor, parent: Tensor) -> Tensor:
        """New actions ``(R, A)`` for widening nodes ``(b, parent)``: proposals, or uniform /
        Gaussian around the most visited existing child."""
        cfg = self.config
        rows = b.shape[0]
        span = self.high - self.low
        if self.proposal_fn is not None:
            acts = self.proposal_fn(tree.obs[b, parent], self.generator).float()
            return torch.minimum(torch.maximum(acts, self.low), self.high)
        u = torch.rand((rows, self.codec.dim), generator=self.generator, device=self.device)
        acts = self.low + u * span
        if cfg.widening_local_prob > 0:
            older_n = tree.num_children[b, parent] - 1  # excluding the slot being filled
            _, cstats = children_stats(tree, b, parent)
            slots = torch.arange(self.num_slots, device=self.device)
            older = slots < older_n.unsqueeze(1)
            # The best child so far: highest Q among visited ones (else the first).
            visited = older & (cstats[..., VISITS] > 0)
            score = torch.where(
                visited, child_q(cstats), torch.full_like(visited, -torch.inf, dtype=cstats.dtype)
            )
            best = torch.argmax(score, dim=1)
            assert tree.child_action is not None
            centre = tree.child_action[b, parent, best]
            noise = torch.randn(
                (rows, self.codec.dim), generator=self.generator, device=self.device
            )
            local = centre + cfg.widening_std * span * noise
            local = torch.minimum(torch.maximum(local, self.low), self.high)
            pick = (
                torch.rand(rows, generator=self.generator, device=self.device)
                < cfg.widening_local_prob
            )
            acts = torch.where((pick & (older_n > 0)).unsqueeze(1), local, acts)
        return acts

    def _expand(self, tree: Tree, b: Tensor, nodes: Tensor) -> None:
        """Step the model into pending nodes ``(b (R,), nodes (R,))`` and evaluate them."""
        cfg = self.config
        parent, slot = tree.parent[b, nodes], tree.slot[b, nodes]
        action = self._slot_actions(tree, b, parent, slot)
        pobs = tree.obs[b, parent]
        state = self.model.step(tree.states.read(b, parent), action, self.generator)
        obs = self.model.observe(state)
        reward = self.reward_fn(pobs, action, obs).to(tree.stats.dtype)
        end = self._end_probability(pobs, action, obs)
        # A non-finite prediction ends the branch: it is terminal and pays nothing.
        bad = ~torch.isfinite(obs).all(dim=1) | ~torch.isfinite(reward)
        reward = torch.where(bad, torch.zeros_like(reward), reward)
        end = torch.where(bad, torch.ones_like(end), end)
        term = end >= _CERTAIN_END
        tree.states.write(b, nodes, state)
        tree.obs[b, nodes] = torch.where(bad.unsqueeze(1), pobs, obs)
        tree.stats[b, nodes, REWARD] = reward
        tree.stats[b, nodes, DISCOUNT] = cfg.gamma * (1.0 - end)
        tree.terminal[b, nodes] = term
        tree.pending[b, nodes] = False
        tree.stop[b, nodes] = term | (tree.depth[b, nodes] >= self.max_depth)
        value = torch.zeros_like(reward)
        alive = (~term).nonzero(as_tuple=True)[0]
        if alive.numel():
            if self.prior_fn is not None:
                tree.prior[b[alive], nodes[alive]] = self._prior(obs[alive])
            value[alive] = self._evaluate(
                index_state(state, alive), obs[alive], tree.depth[b[alive], nodes[alive]]
            )
        tree.raw_value[b, nodes] = value

    def _random_actions(self, rows: int) -> Tensor:
        """Uniformly random encoded actions ``(rows, A)`` (one-hot for Discrete spaces)."""
        if self.codec.discrete:
            idx = torch.randint(
                0, self.num_slots, (rows,), generator=self.generator, device=self.device
            )
            return F.one_hot(idx, self.num_slots).to(torch.float32)
        u = torch.rand((rows, self.codec.dim), generator=self.generator, device=self.device)
        return self.low + u * (self.high - self.low)

    def _rollout_actions(self, obs: Tensor) -> Tensor:
        """Rollout actions ``(M, A)`` for ``obs (M, O)``: ``rollout_fn``'s, else random."""
        if self.rollout_fn is None:
            return self._random_actions(obs.shape[0])
        act = self.rollout_fn(obs, self.generator).float()
        if act.shape != (obs.shape[0], self.codec.dim):
            raise ValueError(
                f"rollout_fn must return shape ({obs.shape[0]}, {self.codec.dim}), "
                f"got {tuple(act.shape)}"
            )
        if self.codec.discrete:
            return act
        return torch.minimum(torch.maximum(act, self.low), self.high)

    def _evaluate(self, state: Any, obs: Tensor, depth: Tensor) -> Tensor:
        """Leaf values ``(R,)`` of states with observations ``obs (R, O)`` at ``depth (R,)``.

        Rollouts (random, or from ``rollout_fn``) of ``rollout_depth`` steps (minus the depth with
        ``rollout_from_root``), averaged over ``num_rollouts``, stopping at termination, plus
        ``gamma^steps * value_fn`` at the end when a value function is given, mixed with
        ``value_fn(obs)`` by ``value_weight``; ``value_fn`` alone when there is no rollout.
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
                return torch.zeros(rows, device=self.device)
            return self._value(obs)
        rolled = self._rollout_value(state, obs, steps, horizon)
        if self.value_fn is None or cfg.value_weight == 0.0:
            return rolled
        return (1.0 - cfg.value_weight) * rolled + cfg.value_weight * self._value(obs)

    def _rollout_value(self, state: Any, obs: Tensor, steps: Tensor, horizon: int) -> Tensor:
        """Mean discounted return ``(R,)`` of ``num_rollouts`` rollouts (random actions, or
        ``rollout_fn``'s) of ``steps (R,)`` steps (at most ``horizon``) from ``state`` /
        ``obs (R, O)``, plus the ``value_fn`` bootstrap weighted by the probability of not
        having ended."""
        cfg = self.config
        rows = obs.shape[0]
        p = cfg.num_rollouts
        st = tile_state(state, p)
        cur = obs.repeat(p, 1)
        steps = steps.repeat(p)
        total = torch.zeros(p * rows, device=self.device)
        alive = torch.ones(p * rows, device=self.device)  # probability of not having ended
        last = cur
        disc = 1.0
        held = self._random_actions(p * rows) if cfg.rollout_policy == "hold" else None
        for t in range(horizon):
            act = held if held is not None else self._rollout_actions(cur)
            st = self.model.step(st, act, self.generator)
            nxt = self.model.observe(st)
            reward = self.reward_fn(cur, act, nxt).to(total.dtype)
            within = steps > t
            ok = torch.isfinite(nxt).all(dim=1) & torch.isfinite(reward)
            count = within & ok
            # The ending step's reward still counts (as in gymnasium); later ones do not.
            total = total + torch.where(count, disc * alive * reward, torch.zeros_like(reward))
            end = torch.where(ok, self._end_probability(cur, act, nxt), torch.ones_like(reward))
            alive = torch.where(within, alive * (1.0 - end), alive)
            if self.value_fn is not None:
                last = torch.where(within.unsqueeze(1), nxt, last)
            cur = nxt
            disc *= cfg.gamma
        if self.value_fn is not None:
            boot = cfg.gamma ** steps.to(total.dtype) * self._value(last)
            total = total + torch.where(alive > 0, alive * boot, torch.zeros_like(boot))
        return total.view(p, rows).mean(dim=0)

    def _end_probability(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Probability ``(M,)`` that a transition ends the episode: 0/1 from a boolean
        termination function, or its ``probability`` with soft termination."""
        if self.termination_fn is None:
            return torch.zeros(obs.shape[0], device=obs.device)
        if self._soft_termination:
            prob = self.termination_fn.probability(obs, action, next_obs)  # type: ignore[union-attr]
        else:
            prob = self.termination_fn(obs, action, next_obs)
        return torch.nan_to_num(prob.float(), nan=1.0).clamp(0.0, 1.0)

    def _value(self, obs: Tensor) -> Tensor:
        """``value_fn(obs (R, O)) -> (R,)`` with its shape checked (non-finite -> 0)."""
        assert self.value_fn is not None
        v = self.value_fn(obs).float()
        if v.shape != (obs.shape[0],):
            raise ValueError(f"value_fn must return shape ({obs.shape[0]},), got {tuple(v.shape)}")
        return torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)


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
