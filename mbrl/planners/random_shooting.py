"""Random shooting: score uniform random action sequences, keep the best."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.planners.optimizer import Objective, TrajectoryOptimizer
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

    def optimize(self, objective: Objective, initial: Tensor) -> Tensor:
        """Best of ``population`` uniform samples and ``initial (H, A)``; returns ``(H, A)``."""
        horizon, a_dim = initial.shape
        u = torch.rand(
            (self.config.population, horizon, a_dim), generator=self.generator, device=self.device
        )
        samples = torch.cat(
            [
                self.low + u * (self.high - self.low),
                self.clamp(initial.to(self.device)).unsqueeze(0),
            ]
        )
        scores = torch.nan_to_num(objective(samples), nan=-torch.inf)
        return samples[torch.argmax(scores)]
