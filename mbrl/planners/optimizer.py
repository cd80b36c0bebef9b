"""The optimiser interface: maximise any objective over batches of action-sequence tensors.

Optimisers never see a model (as mbrl-lib's). They solve ``B`` independent problems at once:
``optimize(objective, initial (B, H, A)) -> (B, H, A)`` where ``objective(candidates (B, K, H,
A)) -> (B, K)`` scores every row's ``K`` candidates (higher is better) in one call. Elites,
weights and the argmax are per row. The single-problem form ``optimize(objective, initial (H,
A)) -> (H, A)`` with ``objective((K, H, A)) -> (K,)`` is the same optimiser with ``B = 1``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from mbrl.planners.noise import Generators

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
    ) -> Tensor:
        """Maximise ``objective`` from ``initial``: ``(H, A)`` for one problem, ``(B, H, A)``
        for a batch (then ``objective`` is a :data:`BatchObjective`).

        Args:
            objective: :data:`Objective` for ``(H, A)``, :data:`BatchObjective` for ``(B, H, A)``.
            initial: starting mean / warm start, ``(H, A)`` or ``(B, H, A)``.
            generators: randomness: one generator for all rows or one per row (default: this
                optimiser's ``generator``). Row ``b`` with ``generators[b]`` gives what a
                single-problem call with that generator gives.

        Returns:
            The best sequences, shaped like ``initial``, inside the bounds.

        Raises:
            ValueError: ``initial`` not ``(H, A)`` / ``(B, H, A)`` with this optimiser's ``A``, or
                a generator list of the wrong length.
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
        start = initial.to(self.device, torch.float32)
        if initial.ndim == 3:
            return self.optimize_batch(objective, start, gens)
        single = objective
        return self.optimize_batch(lambda c: single(c[0]).unsqueeze(0), start.unsqueeze(0), gens)[0]

    @abstractmethod
    def optimize_batch(
        self, objective: BatchObjective, initial: Tensor, generators: Generators
    ) -> Tensor:
        """Maximise ``B`` problems at once from ``initial (B, H, A)``; returns ``(B, H, A)``.

        ``generators``: one generator for all rows (one draw for the batch) or one per row.
        Called by :meth:`optimize`, which checks the shapes.
        """

    def reset(self) -> None:
        """Forget state carried between calls (e.g. kept elites)."""

    def shift(self, steps: int = 1) -> None:
        """Advance carried state by ``steps`` time steps (after the agent executed them)."""


def shift_sequences(seqs: Tensor, steps: int, pad: Tensor) -> Tensor:
    """Drop the first ``steps`` time steps of ``seqs (..., H, A)`` and pad the end with
    ``pad (A,)``: the warm start for a plan made ``steps`` env steps later."""
    horizon = seqs.shape[-2]
    steps = min(max(steps, 0), horizon)
    tail = pad.to(seqs.dtype).expand(*seqs.shape[:-2], steps, seqs.shape[-1])
    return torch.cat([seqs[..., steps:, :], tail], dim=-2)
