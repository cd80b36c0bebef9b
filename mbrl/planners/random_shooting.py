"""Random shooting: score uniform random action sequences, keep the best."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.planners.deadline import Deadline
from mbrl.planners.noise import Generators, sample_rows
from mbrl.planners.optimizer import (
    BatchObjective,
    OptimizerRun,
    SamplingConfig,
    TrajectoryOptimizer,
    sampled_count,
)
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class RandomShootingConfig(SamplingConfig):
    """Settings of :class:`RandomShootingOptimizer` (and, keyword-only, ``plan_budget_ms`` /
    ``on_nonfinite`` of :class:`~mbrl.planners.optimizer.SamplingConfig`).

    Attributes:
        population: uniform random candidates per call (default 1000). The warm-start sequence
            passed as ``initial`` is scored too, so a good plan is never lost by bad luck.
        budget_chunks: with ``plan_budget_ms``, the population is scored in this many chunks
            of equal size and scoring stops after the chunk that spends the budget (default
            8); the first chunk holds the warm start. Without a budget the whole population
            is scored in one call.
    """

    population: int = 1000
    budget_chunks: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.population, "population")
        check_positive_int(self.budget_chunks, "budget_chunks")

    def candidates_per_call(self) -> int:
        """Candidates one plan call scores: ``population``."""
        return self.population


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
        self,
        objective: BatchObjective,
        initial: Tensor,
        generators: Generators,
        deadline: Deadline,
        proposals: Tensor | None = None,
    ) -> Tensor:
        """Per row, the best of ``population`` uniform samples and ``initial (B, H, A)``.

        The samples are drawn at once, so a budgeted call scores a prefix of the same
        candidates an unbudgeted one would. ``proposals (B, J, H, A)`` take the place of
        ``J`` uniform samples and are scored first, with the warm start.
        """
        rows, horizon, a_dim = initial.shape
        k = sampled_count(self.config.population, proposals)
        u = sample_rows(self._uniform, rows, (k, horizon, a_dim), generators)
        uniform = self.low + u * (self.high - self.low)
        warm = self.clamp(initial).unsqueeze(1)
        if proposals is not None:
            warm = torch.cat([warm, proposals], dim=1)
        index = torch.arange(rows, device=self.device)
        if not deadline.limited:
            samples = torch.cat([uniform, warm], dim=1)
            self.last_run = OptimizerRun(samples.shape[1], False)
            return samples[index, torch.argmax(objective(samples), dim=1)]
        chunks = list(
            torch.tensor_split(uniform, min(self.config.budget_chunks, uniform.shape[1]), dim=1)
        )
        chunks[0] = torch.cat([warm, chunks[0]], dim=1)
        best = warm[:, 0]
        best_score = torch.full((rows,), -torch.inf, device=self.device)
        done = scored = 0
        for chunk in chunks:
            scores = objective(chunk)
            top, arg = scores.max(dim=1)
            better = top > best_score
            best = torch.where(better[:, None, None], chunk[index, arg], best)
            best_score = torch.maximum(best_score, top)
            done, scored = done + 1, scored + chunk.shape[1]
            if done < len(chunks) and deadline.expired():
                break
        self.last_run = OptimizerRun(scored, done < len(chunks))
        return best

    def _uniform(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return torch.rand(shape, generator=generator, device=self.device)
