"""Random shooting: score uniform random action sequences, keep the best."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.planners.noise import Generators, sample_rows
from mbrl.planners.optimizer import BatchObjective, TrajectoryOptimizer
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class RandomShootingConfig:
    """Settings of :class:`RandomShootingOptimizer`.

    Attributes:
        population: uniform random candidates per call (default 1000). The warm-start sequence
            passed as ``initial`` is scored too, so a good plan is never lost by bad luck.
    """

    population: int = 1000

    def __post_init__(self) -> None:
        check_positive_int(self.population, "population")


class RandomShootingOptimizer(TrajectoryOptimizer):
    """The seeds' "random sampling shooting method".

    Args:
        config: :class:`RandomShootingConfig`; low/high: action bounds ``(A,)``; generator.
    """

    def __init__(
        self, config: RandomShootingConfig, low: Tensor, high: Tensor, generator: torch.Generator
    ) -> None:
        super().__init__(low, high, generator)
        self.config = config

    def optimize_batch(
        self, objective: BatchObjective, initial: Tensor, generators: Generators
    ) -> Tensor:
        """Per row, the best of ``population`` uniform samples and ``initial (B, H, A)``."""
        rows, horizon, a_dim = initial.shape
        u = sample_rows(self._uniform, rows, (self.config.population, horizon, a_dim), generators)
        samples = torch.cat(
            [self.low + u * (self.high - self.low), self.clamp(initial).unsqueeze(1)], dim=1
        )
        scores = torch.nan_to_num(objective(samples), nan=-torch.inf)
        best = torch.argmax(scores, dim=1)
        return samples[torch.arange(rows, device=self.device), best]

    def _uniform(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return torch.rand(shape, generator=generator, device=self.device)
