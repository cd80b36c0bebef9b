"""Model-predictive path integral control (Williams et al. 2017) as a trajectory optimiser."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.planners.deadline import BudgetPacer, Deadline
from mbrl.planners.noise import Generators, colored_noise, sample_rows
from mbrl.planners.optimizer import (
    BatchObjective,
    OptimizerRun,
    SamplingConfig,
    TrajectoryOptimizer,
    sampled_count,
)
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class MPPIConfig(SamplingConfig):
    """Settings of :class:`MPPIOptimizer` (and, keyword-only, ``plan_budget_ms`` /
    ``on_nonfinite`` of :class:`~mbrl.planners.optimizer.SamplingConfig`).

    Attributes:
        population: sampled perturbations per iteration (default 500).
        iterations: weighted-average updates per call (default 3).
        temperature: softmax temperature ``lambda`` on scores (default 0.1); with
            ``normalize_scores`` it is in units of the candidates' score std, so one value
            fits rewards of any scale.
        noise_std: perturbation std as a fraction of half the action range (default 0.5).
        noise_beta: coloured-noise exponent along the horizon (default 0: white).
        normalize_scores: divide score gaps by their std before the softmax (default True).

    With ``plan_budget_ms`` the updates stop once the budget is spent (after the first); the
    mean so far is returned.
    """

    population: int = 500
    iterations: int = 3
    temperature: float = 0.1
    noise_std: float = 0.5
    noise_beta: float = 0.0
    normalize_scores: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.population, "population")
        check_positive_int(self.iterations, "iterations")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.noise_std <= 0:
            raise ValueError(f"noise_std must be > 0, got {self.noise_std}")

    def candidates_per_call(self) -> int:
        """Candidates one unbudgeted plan call scores: ``population * iterations``."""
        return self.population * self.iterations


class MPPIOptimizer(TrajectoryOptimizer):
    """Exponentially weighted average of perturbed action sequences (weights per problem).

    Args:
        config: :class:`MPPIConfig`; low/high: action bounds ``(A,)``; generator: randomness.
    """

    def __init__(
        self, config: MPPIConfig, low: Tensor, high: Tensor, generator: torch.Generator
    ) -> None:
        super().__init__(low, high, generator)
        self.config = config
        self.pacer = BudgetPacer()

    def optimize_batch(
        self,
        objective: BatchObjective,
        initial: Tensor,
        generators: Generators,
        deadline: Deadline,
        proposals: Tensor | None = None,
    ) -> Tensor:
        """MPPI updates from ``initial (B, H, A)``, weights per row; returns ``(B, H, A)``.

        ``proposals (B, J, H, A)`` are weighted with the perturbed samples in every update,
        in place of ``J`` of them.
        """
        cfg = self.config
        rows, horizon, a_dim = initial.shape
        mean = initial.clone()
        std = cfg.noise_std * (self.high - self.low) / 2
        population = self.pacer.population(deadline, rows, cfg.population, 2)
        k = sampled_count(population, proposals)
        n = rows * (k + (0 if proposals is None else proposals.shape[1]))
        done = 0
        while done < cfg.iterations:
            self.pacer.start(deadline)
            noise = sample_rows(self._noise, rows, (k, horizon, a_dim), generators)
            samples = self.clamp(mean.unsqueeze(1) + std * noise)
            if proposals is not None:
                samples = torch.cat([samples, proposals], dim=1)
            scores = objective(samples)
            top = scores.amax(1, keepdim=True)
            gap = scores - top  # -inf for diverged candidates; NaN in a row where all diverged
            if cfg.normalize_scores:
                finite = torch.where(torch.isfinite(scores), scores, top)
                gap = gap / finite.std(1, unbiased=False, keepdim=True).clamp_min(1e-8)
            weights = torch.softmax(gap / cfg.temperature, dim=1)
            update = (weights[:, :, None, None] * samples).sum(1)
            # A row whose candidates all diverged has a NaN update: it keeps its current mean.
            mean = torch.where(torch.isfinite(update), update, mean)
            self.pacer.finish(deadline, n)
            done += 1
            if done < cfg.iterations and self.pacer.stop_before(deadline, n):
                break
        self.last_run = OptimizerRun(done, done < cfg.iterations or population < cfg.population)
        return self.clamp(mean)

    def _noise(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return colored_noise(shape, self.config.noise_beta, generator, self.device)
