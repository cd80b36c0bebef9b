"""Model-predictive path integral control (Williams et al. 2017) as a trajectory optimiser."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.planners.noise import colored_noise
from mbrl.planners.optimizer import Objective, TrajectoryOptimizer
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class MPPIConfig:
    """Settings of :class:`MPPIOptimizer`.

    Attributes:
        population: sampled perturbations per iteration (default 500).
        iterations: weighted-average updates per call (default 3).
        temperature: softmax temperature ``lambda`` on scores (default 0.1); with
            ``normalize_scores`` it is in units of the candidates' score std, so one value
            fits rewards of any scale.
        noise_std: perturbation std as a fraction of half the action range (default 0.5).
        noise_beta: coloured-noise exponent along the horizon (default 0: white).
        normalize_scores: divide score gaps by their std before the softmax (default True).
    """

    population: int = 500
    iterations: int = 3
    temperature: float = 0.1
    noise_std: float = 0.5
    noise_beta: float = 0.0
    normalize_scores: bool = True

    def __post_init__(self) -> None:
        check_positive_int(self.population, "population")
        check_positive_int(self.iterations, "iterations")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.noise_std <= 0:
            raise ValueError(f"noise_std must be > 0, got {self.noise_std}")


class MPPIOptimizer(TrajectoryOptimizer):
    """Exponentially weighted average of perturbed action sequences.

    Args:
        config: :class:`MPPIConfig`; low/high: action bounds ``(A,)``; generator: randomness.
    """

    def __init__(
        self, config: MPPIConfig, low: Tensor, high: Tensor, generator: torch.Generator
    ) -> None:
        super().__init__(low, high, generator)
        self.config = config

    def optimize(self, objective: Objective, initial: Tensor) -> Tensor:
        """MPPI updates from ``initial (H, A)``; returns ``(H, A)`` inside the bounds."""
        cfg = self.config
        horizon, a_dim = initial.shape
        mean = initial.to(self.device, torch.float32).clone()
        std = cfg.noise_std * (self.high - self.low) / 2
        for _ in range(cfg.iterations):
            noise = colored_noise(
                (cfg.population, horizon, a_dim), cfg.noise_beta, self.generator, self.device
            )
            samples = self.clamp(mean + std * noise)
            scores = torch.nan_to_num(objective(samples), nan=-torch.inf)
            top = scores.max()
            gap = scores - top  # -inf for diverged candidates; NaN everywhere if all diverged
            if cfg.normalize_scores:
                finite = torch.where(torch.isfinite(scores), scores, top)
                gap = gap / finite.std(unbiased=False).clamp_min(1e-8)
            weights = torch.softmax(gap / cfg.temperature, dim=0)
            update = (weights[:, None, None] * samples).sum(0)
            # If every candidate diverged the update is NaN: keep the current mean instead.
            mean = torch.where(torch.isfinite(update), update, mean)
        return self.clamp(mean)
