"""The optimiser interface: maximise any objective over action-sequence tensors.

Optimisers never see a model (as mbrl-lib's): ``optimize(objective, initial (H, A)) -> (H, A)``
where ``objective(candidates (K, H, A)) -> (K,)`` scores to maximise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

Objective = Callable[[Tensor], Tensor]
"""``objective(candidates (K, H, A)) -> scores (K,)``, higher is better."""


class TrajectoryOptimizer(ABC):
    """Box-bounded maximiser over ``(H, A)`` action sequences.

    Args:
        low: lower action bounds ``(A,)``; high: upper bounds ``(A,)``.
        generator: the only source of randomness.
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

    def clamp(self, actions: Tensor) -> Tensor:
        """Clip ``actions (..., A)`` into the box."""
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    @abstractmethod
    def optimize(self, objective: Objective, initial: Tensor) -> Tensor:
        """Maximise ``objective`` starting from ``initial (H, A)``; returns the best ``(H, A)``."""

    def reset(self) -> None:
        """Forget state carried between calls (e.g. kept elites)."""

    def shift(self, steps: int = 1) -> None:
        """Advance carried state by ``steps`` time steps (after the agent executed them)."""
