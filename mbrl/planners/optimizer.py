"""The optimiser interface: maximise any objective over batches of action-sequence tensors.

Optimisers never see a model (as mbrl-lib's). They solve ``B`` independent problems at once:
``optimize(objective, initial (B, H, A)) -> (B, H, A)`` where ``objective(candidates (B, K, H,
A)) -> (B, K)`` scores every row's ``K`` candidates (higher is better) in one call. Elites,
weights and the argmax are per row. The single-problem form ``optimize(objective, initial (H,
A)) -> (H, A)`` with ``objective((K, H, A)) -> (K,)`` is the same optimiser with ``B = 1``.

Every optimiser is anytime (:mod:`mbrl.planners.deadline`): ``optimize`` takes a
:class:`~mbrl.planners.deadline.Deadline` (default: one started from the config's
``plan_budget_ms``) checked between iterations.

Proposals: ``optimize(..., proposals=(B, J, H, A))`` hands an optimiser ``J`` extra candidate
sequences per problem that it scores alongside its own samples in every iteration, in place
of as many of them (the population, and so the cost, stays the same; at least one candidate
is still sampled). They are plain tensors: a planner makes them (e.g. by rolling a learned
policy through its model, TD-MPC's policy samples), the optimiser never sees where they came
from. Non-finite scores (NaN, +-inf) rank last; a
problem whose every candidate scored non-finite gets its ``initial`` sequence back, after a
``RuntimeWarning`` (or :class:`~mbrl.planners.base.PlanningNonFiniteError` with the config's
``on_nonfinite="raise"``).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mbrl.planners.base import PlanningNonFiniteError
from mbrl.planners.deadline import AnytimeConfig, Deadline
from mbrl.planners.noise import Generators

NONFINITE_ACTIONS = ("warn", "raise")
"""Accepted values of ``on_nonfinite``."""


@dataclass(frozen=True)
class SamplingConfig(AnytimeConfig):
    """The settings every sampling optimiser's config shares (keyword-only, after its own).

    Attributes:
        plan_budget_ms: see :class:`~mbrl.planners.deadline.AnytimeConfig` (default None).
        on_nonfinite: what happens when every candidate of a problem scores a non-finite
            return (a model predicting NaN, a reward overflowing): ``"warn"`` (default) warns
            with a ``RuntimeWarning`` and returns the problem's initial sequence (the warm
            start); ``"raise"`` raises :class:`~mbrl.planners.base.PlanningNonFiniteError`.
    """

    on_nonfinite: str = field(default="warn", kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.on_nonfinite not in NONFINITE_ACTIONS:
            raise ValueError(
                f"on_nonfinite must be one of {NONFINITE_ACTIONS}, got {self.on_nonfinite!r}"
            )

    def candidates_per_call(self) -> int:
        """Candidates one unbudgeted plan call scores (what planner sizing,
        :mod:`mbrl.planners.sizing`, predicts the cost of); configs with a ``population``
        override it."""
        raise NotImplementedError(f"{type(self).__name__} does not count its candidates")


@dataclass(frozen=True)
class OptimizerRun:
    """What the last :meth:`TrajectoryOptimizer.optimize` call did.

    Attributes:
        iterations: iterations run (random shooting: candidates scored, the warm start
            included).
        stopped_early: the deadline ended it before the configured amount of work.
    """

    iterations: int
    stopped_early: bool


Objective = Callable[[Tensor], Tensor]
"""``objective(candidates (K, H, A)) -> scores (K,)``, higher is better (one problem)."""
BatchObjective = Callable[[Tensor], Tensor]
"""``objective(candidates (B, K, H, A)) -> scores (B, K)``: ``B`` problems scored at once."""


class TrajectoryOptimizer(ABC):
    """Box-bounded maximiser over action sequences, ``B`` independent problems at a time.

    Subclasses implement :meth:`optimize_batch`; :meth:`optimize` also accepts one problem.

    Args:
        low: lower action bounds ``(A,)``; high: upper bounds ``(A,)``.
        generator: the only source of randomness (default for every row of a batch).
    """

    def __init__(self, low: Tensor, high: Tensor, generator: torch.Generator) -> None:
        if low.shape != high.shape or low.ndim != 1:
            raise ValueError(
                f"low and high must both have shape (A,), got {tuple(low.shape)} and {tuple(high.shape)}"
            )
        if not bool((low < high).all()):
            raise ValueError(
                f"every low bound must be below its high bound, got low={low.tolist()} high={high.tolist()}"
            )
        self.low = low
        self.high = high
        self.generator = generator
        self.last_run = OptimizerRun(0, False)

    @property
    def device(self) -> torch.device:
        """Device of the bounds (and of all candidates produced)."""
        return self.low.device

    @property
    def middle(self) -> Tensor:
        """The middle of the box ``(A,)``: the neutral action sequences are padded with."""
        return (self.low + self.high) / 2

    def clamp(self, actions: Tensor) -> Tensor:
        """Clip ``actions (..., A)`` into the box."""
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    def optimize(
        self,
        objective: Objective | BatchObjective,
        initial: Tensor,
        generators: Generators | None = None,
        deadline: Deadline | None = None,
        proposals: Tensor | None = None,
    ) -> Tensor:
        """Maximise ``objective`` from ``initial``: ``(H, A)`` for one problem, ``(B, H, A)``
        for a batch (then ``objective`` is a :data:`BatchObjective`).

        Args:
            objective: :data:`Objective` for ``(H, A)``, :data:`BatchObjective` for ``(B, H, A)``.
            initial: starting mean / warm start, ``(H, A)`` or ``(B, H, A)``.
            generators: randomness: one generator for all rows or one per row (default: this
                optimiser's ``generator``). Row ``b`` with ``generators[b]`` gives what a
                single-problem call with that generator gives.
            deadline: checked between iterations (default: one started now from the config's
                ``plan_budget_ms``, if any). :attr:`last_run` says how much work was done.
            proposals: extra candidates scored in every iteration in place of as many
                sampled ones, ``(J, H, A)`` for one problem, ``(B, J, H, A)`` for a batch
                (clipped into the bounds; default none).

        Returns:
            The best sequences, shaped like ``initial``, inside the bounds.

        Raises:
            ValueError: ``initial`` not ``(H, A)`` / ``(B, H, A)`` with this optimiser's ``A``,
                ``proposals`` not shaped like ``initial`` with a candidate axis, or a generator
                list of the wrong length.
            PlanningNonFiniteError: every candidate of a problem scored non-finite, with
                ``on_nonfinite="raise"``.
        """
        a_dim = self.low.shape[0]
        if initial.ndim not in (2, 3) or initial.shape[-1] != a_dim:
            raise ValueError(
                f"initial must have shape (H, {a_dim}) or (B, H, {a_dim}), got {tuple(initial.shape)}"
            )
        gens = self.generator if generators is None else generators
        if not isinstance(gens, torch.Generator) and len(gens) != (
            1 if initial.ndim == 2 else initial.shape[0]
        ):
            raise ValueError(
                f"generators must hold one generator per problem, got {len(gens)} for initial "
                f"of shape {tuple(initial.shape)}"
            )
        if deadline is None:
            deadline = Deadline(self.plan_budget_ms, self.device)
        start = initial.to(self.device, torch.float32)
        batch = start if initial.ndim == 3 else start.unsqueeze(0)
        extra = self._check_proposals(proposals, batch, initial.ndim == 2)
        score = objective
        if initial.ndim == 2:
            single = objective
            score = lambda c: single(c[0]).unsqueeze(0)  # noqa: E731
        checked = _FiniteCheck(score, batch.shape[0], self.device)
        if extra is None:  # subclasses written before proposals keep their 4-argument form
            best = self.optimize_batch(checked, batch, gens, deadline)
        else:
            best = self.optimize_batch(checked, batch, gens, deadline, extra)
        best = self._keep_initial_where_nonfinite(best, batch, checked.seen_finite)
        return best if initial.ndim == 3 else best[0]

    def _check_proposals(
        self, proposals: Tensor | None, batch: Tensor, single: bool
    ) -> Tensor | None:
        """``proposals`` as ``(B, J, H, A)`` on the device, inside the box (None: none)."""
        if proposals is None:
            return None
        rows, horizon, a_dim = batch.shape
        want = f"(J, {horizon}, {a_dim})" if single else f"({rows}, J, {horizon}, {a_dim})"
        shape = tuple(proposals.shape)
        ok = shape[-2:] == (horizon, a_dim) and (
            (single and len(shape) == 3) or (not single and len(shape) == 4 and shape[0] == rows)
        )
        if not ok or shape[-3] < 1:
            raise ValueError(f"proposals must have shape {want} with J >= 1, got {shape}")
        extra = proposals.to(self.device, torch.float32)
        return self.clamp(extra.unsqueeze(0) if single else extra)

    @property
    def plan_budget_ms(self) -> float | None:
        """The config's ``plan_budget_ms`` (None: no budget, or a config without one)."""
        return getattr(getattr(self, "config", None), "plan_budget_ms", None)

    @abstractmethod
    def optimize_batch(
        self,
        objective: BatchObjective,
        initial: Tensor,
        generators: Generators,
        deadline: Deadline,
        proposals: Tensor | None = None,
    ) -> Tensor:
        """Maximise ``B`` problems at once from ``initial (B, H, A)``; returns ``(B, H, A)``.

        ``generators``: one generator for all rows (one draw for the batch) or one per row.
        ``deadline``: checked between iterations (after the first); set :attr:`last_run`.
        ``proposals``: ``(B, J, H, A)`` candidates (inside the box) scored in every iteration
        in place of ``J`` sampled ones (:func:`sampled_count`), or None.
        ``objective``'s scores come back with every non-finite score as ``-inf``.
        Called by :meth:`optimize`, which checks the shapes and handles problems whose every
        candidate scored non-finite.
        """

    def _keep_initial_where_nonfinite(self, best: Tensor, initial: Tensor, seen: Tensor) -> Tensor:
        """``best (B, H, A)``, with ``initial``'s row wherever no candidate scored finite."""
        bad = ~seen
        if not bool(bad.any()):  # one host sync per call, not per iteration
            return best
        rows = torch.nonzero(bad).flatten().tolist()
        which = (
            f"problem(s) {rows} of {initial.shape[0]}" if initial.shape[0] > 1 else "the problem"
        )
        message = (
            f"{type(self).__name__}: every candidate action sequence of {which} scored a "
            "non-finite return (NaN or inf), so the plan is no better than chance. Check the "
            "dynamics model (NaN/inf predictions: was it fitted, on finite data?), the reward "
            "and the termination functions."
        )
        if getattr(getattr(self, "config", None), "on_nonfinite", "warn") == "raise":
            raise PlanningNonFiniteError(message)
        warnings.warn(
            f"{message} Returning the initial sequence (the warm start) instead; "
            "on_nonfinite='raise' makes this an error.",
            RuntimeWarning,
            stacklevel=4,
        )
        return torch.where(bad[:, None, None], self.clamp(initial), best)

    def reset(self) -> None:
        """Forget state carried between calls (e.g. kept elites)."""

    def shift(self, steps: int = 1) -> None:
        """Advance carried state by ``steps`` time steps (after the agent executed them)."""


class _FiniteCheck:
    """Wraps a batch objective: every non-finite score becomes ``-inf`` (ranked last), and
    ``seen_finite (B,)`` (on the device, no sync) records which problems ever scored finite."""

    def __init__(self, objective: BatchObjective, rows: int, device: torch.device) -> None:
        self.objective = objective
        self.seen_finite = torch.zeros(rows, dtype=torch.bool, device=device)

    def __call__(self, candidates: Tensor) -> Tensor:
        scores = self.objective(candidates)
        finite = torch.isfinite(scores)
        self.seen_finite |= finite.any(1)
        return torch.where(finite, scores, torch.full_like(scores, -torch.inf))


def shift_sequences(seqs: Tensor, steps: int, pad: Tensor) -> Tensor:
    """Drop the first ``steps`` time steps of ``seqs (..., H, A)`` and pad the end with
    ``pad (A,)``: the warm start for a plan made ``steps`` env steps later."""
    horizon = seqs.shape[-2]
    steps = min(max(steps, 0), horizon)
    tail = pad.to(seqs.dtype).expand(*seqs.shape[:-2], steps, seqs.shape[-1])
    return torch.cat([seqs[..., steps:, :], tail], dim=-2)


def sampled_count(population: int, proposals: Tensor | None) -> int:
    """How many candidates to sample when ``proposals (B, J, H, A)`` fill part of a
    ``population``: ``population - J``, at least 1."""
    taken = 0 if proposals is None else proposals.shape[1]
    return max(1, population - taken)
