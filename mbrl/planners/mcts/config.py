"""Settings of :class:`~mbrl.planners.mcts.MCTS` and their validation.

:class:`MCTSConfig` is what ``mbrl run --planner mcts --planner-opt KEY=VALUE`` fills in; every
field is checked when the config is built, so a bad option fails before any search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mbrl.planners.deadline import AnytimeConfig
from mbrl.validation import check_positive_int

_SELECTIONS = ("auto", "puct", "uct")
_REUSE = ("off", "match", "always")
_BACKENDS = ("auto", "torch", "numpy")
_PROPAGATIONS = ("ts_inf", "ts1", "expectation")
_TERMINATIONS = ("auto", "hard", "soft")
_ROLLOUT_POLICIES = ("uniform", "hold")


@dataclass(frozen=True)
class MCTSConfig(AnytimeConfig):
    """Settings of :class:`MCTS` (``mbrl run --planner mcts --planner-opt KEY=VALUE``), and,
    keyword-only, ``plan_budget_ms`` of :class:`~mbrl.planners.deadline.AnytimeConfig`: a
    search stops simulating once it is spent, after its first round of ``leaves_per_batch``
    simulations, and acts on the visits so far.

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
        propagation: the mode the search steps the model with,
            ``model.propagating(propagation)``: ``"expectation"`` (default; every model has
            it), ``"ts1"`` or ``"ts_inf"`` (ensembles), or None for the model's own mode. A mode
            the model lacks raises ``ValueError`` when the planner is built.
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
        super().__post_init__()
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
