"""Cross-entropy method with the iCEM improvements (Pinneri et al. 2020) as options."""

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
    shift_sequences,
)
from mbrl.validation import check_fraction, check_positive_int


@dataclass(frozen=True)
class CEMConfig(SamplingConfig):
    """Settings of :class:`CEMOptimizer` (and, keyword-only, ``plan_budget_ms`` /
    ``on_nonfinite`` of :class:`~mbrl.planners.optimizer.SamplingConfig`).

    Attributes:
        population: candidates per iteration (default 500, PETS).
        elite_frac: fraction of the population refitted to (default 0.1 -> 50 elites).
        iterations: refits per call (default 5, PETS).
        momentum: weight of the old mean/std in each update (default 0.1).
        init_std: initial std as a fraction of half the action range (default 0.5).
        noise_beta: coloured-noise exponent along the horizon; 0 = white (default), iCEM ~2.
        keep_elites_frac: fraction of elites carried into the next iteration and, shifted, into
            the next call (iCEM; default 0).
        population_decay: population shrinks by this factor every iteration (iCEM; default 1).
        return_best: return the best candidate seen (iCEM) instead of the final mean (PETS).

    With ``plan_budget_ms`` the iterations are paced to the budget by
    :class:`~mbrl.planners.deadline.BudgetPacer` (after the first call, the population
    shrinks when one iteration would not fit): the mean so far (PETS) or the best candidate
    so far (``return_best``) is returned.
    """

    population: int = 500
    elite_frac: float = 0.1
    iterations: int = 5
    momentum: float = 0.1
    init_std: float = 0.5
    noise_beta: float = 0.0
    keep_elites_frac: float = 0.0
    population_decay: float = 1.0
    return_best: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.population, "population", minimum=2)
        check_positive_int(self.iterations, "iterations")
        check_fraction(self.elite_frac, "elite_frac")
        check_fraction(self.keep_elites_frac, "keep_elites_frac", allow_zero=True)
        check_fraction(self.population_decay, "population_decay")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")
        if self.noise_beta < 0:
            raise ValueError(f"noise_beta must be >= 0, got {self.noise_beta}")

    @property
    def num_elites(self) -> int:
        """Elites per iteration: ``max(1, round(elite_frac * population))``."""
        return max(1, round(self.elite_frac * self.population))

    def candidates_per_call(self) -> int:
        """Candidates one unbudgeted plan call scores: the (decaying) populations, never
        below twice the elites, plus the kept elites and iCEM's final mean."""
        elites = self.num_elites
        kept = round(self.keep_elites_frac * elites)
        sampled = sum(
            max(2 * elites, round(self.population * self.population_decay**it))
            for it in range(self.iterations)
        )
        return sampled + kept * self.iterations + int(self.return_best)


class CEMOptimizer(TrajectoryOptimizer):
    """Maximise an objective by refitting a diagonal Gaussian to the elite candidates.

    Each of the ``B`` problems of a batch has its own mean, std, elites and kept elites.

    Args:
        config: :class:`CEMConfig`; low/high: action bounds ``(A,)``; generator: randomness.
    """

    def __init__(
        self, config: CEMConfig, low: Tensor, high: Tensor, generator: torch.Generator
    ) -> None:
        super().__init__(low, high, generator)
        self.config = config
        self._kept: Tensor | None = None  # (B, n_keep, H, A)
        self.pacer = BudgetPacer()

    def reset(self) -> None:
        """Drop kept elites."""
        self._kept = None

    def shift(self, steps: int = 1) -> None:
        """Shift kept elites ``(B, k, H, A)`` by ``steps``, padding with the middle of the box."""
        if self._kept is not None and steps > 0:
            self._kept = shift_sequences(self._kept, steps, self.middle)

    def optimize_batch(
        self,
        objective: BatchObjective,
        initial: Tensor,
        generators: Generators,
        deadline: Deadline,
        proposals: Tensor | None = None,
    ) -> Tensor:
        """CEM from means ``initial (B, H, A)``; returns ``(B, H, A)`` inside the bounds.

        Kept elites from the previous call join the population only if they were made for
        the same ``B`` and ``H``. ``proposals (B, J, H, A)`` join every iteration's population
        in place of ``J`` Gaussian samples (TD-MPC's policy samples); they compete for the
        elites like any candidate.
        """
        cfg = self.config
        rows, horizon, a_dim = initial.shape
        mean = initial.clone()
        std = (cfg.init_std * (self.high - self.low) / 2).expand(rows, horizon, a_dim).clone()
        # Under a tight budget the population shrinks (fewest: 4), the elites with it.
        population = self.pacer.population(deadline, rows, cfg.population, 4)
        n_elite = cfg.num_elites
        if population < cfg.population:
            n_elite = max(1, round(cfg.elite_frac * population))
        n_keep = round(cfg.keep_elites_frac * n_elite)
        kept = self._kept if n_keep > 0 else None
        if kept is not None and (kept.shape[0], kept.shape[2]) != (rows, horizon):
            kept = None
        best = mean.clone()
        best_score = torch.full((rows,), -torch.inf, device=self.device)
        index = torch.arange(rows, device=self.device).unsqueeze(1)
        done = 0

        def size(it: int) -> int:
            k = max(2 * n_elite, round(population * cfg.population_decay**it))
            return sampled_count(k, proposals)

        for it in range(cfg.iterations):
            k = size(it)
            self.pacer.start(deadline)
            noise = sample_rows(self._noise, rows, (k, horizon, a_dim), generators)
            samples = self.clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise)
            extras = [e for e in (proposals, kept) if e is not None]
            if cfg.return_best and it == cfg.iterations - 1:
                extras.append(mean.unsqueeze(1))  # iCEM also scores the final mean
            if extras:
                samples = torch.cat([samples, *extras], dim=1)
            scores = objective(samples)
            top = torch.topk(scores, min(n_elite, samples.shape[1]), dim=1)
            elites = samples[index, top.indices]  # (B, n_elite, H, A)
            mean = cfg.momentum * mean + (1 - cfg.momentum) * elites.mean(1)
            std = cfg.momentum * std + (1 - cfg.momentum) * elites.std(1, unbiased=False)
            better = top.values[:, 0] > best_score
            best = torch.where(better[:, None, None], elites[:, 0], best)
            best_score = torch.maximum(best_score, top.values[:, 0])
            kept = elites[:, :n_keep] if n_keep > 0 else None
            self.pacer.finish(deadline, rows * samples.shape[1])
            done = it + 1
            if done < cfg.iterations and self.pacer.stop_before(
                deadline, rows * (size(done) + samples.shape[1] - k)
            ):
                break
        self._kept = kept
        self.last_run = OptimizerRun(done, done < cfg.iterations or population < cfg.population)
        return best if cfg.return_best else self.clamp(mean)

    def _noise(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return colored_noise(shape, self.config.noise_beta, generator, self.device)
