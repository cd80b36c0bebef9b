"""Sizing a sampling planner to a per-call time target on this machine.

An env nobody tuned has no preset population, and the PETS defaults (CEM 500 x 5, 5
particles) cost anything from 0.3 s to 3.5 s per step on a 2-core CPU, depending on the
dynamics model and the learned reward and termination models scored with it. Rather than
fixed sizes, a run can size its planner to a target time per plan call:

1. :func:`measure_objective_cost` times the planner's own objective (its rollout through the
   model, reward, termination and terminal value) at two candidate counts and fits
   ``t(n) = a + b n`` seconds per optimiser iteration over ``n`` candidates;
2. :func:`choose_plan_size` picks, from that cost, the largest population on
   :data:`POPULATION_GRID` (and, only where the population would otherwise fall below
   :data:`POPULATION_FLOOR`, fewer iterations) whose predicted plan call fits the target.

Sizes only shrink: a default that already fits is kept. The population snaps to a coarse grid
so that timing noise rarely changes the choice; the choice is written into the run's config,
so a resumed run (and a rerun from ``config.json``) plans with the same sizes. For a hard
per-call deadline use ``plan_budget_ms`` (:mod:`mbrl.planners.deadline`); sizing makes the
pacer's job easy (its budget is met by full iterations) but is not a guarantee.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

POPULATION_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
"""Populations a sized planner may get (a default population above the top stays allowed)."""

POPULATION_FLOOR = 64
"""Below this population the sizing removes iterations before candidates: a CEM of fewer
than ~64 candidates refits its Gaussian to a handful of elites, which costs more return than
one iteration less (Reacher-v5, docs/benchmarks.md)."""

MIN_ITERATIONS = 2
"""Fewest iterations a sizing leaves an iterative optimiser (one refit at least)."""

PROBE_SIZES = (32, 128)
"""Candidate counts the objective is timed at to separate overhead from per-candidate cost."""

RowsFn = Callable[[int, int], int]
"""``rows(population, iterations) -> candidates scored per plan call``."""


@dataclass(frozen=True)
class ObjectiveCost:
    """Seconds of one optimiser iteration over ``n`` candidates: ``overhead_s + per_row_s * n``.

    Attributes:
        overhead_s: fixed cost per iteration (>= 0).
        per_row_s: cost per candidate (> 0), all its particles and horizon steps included.
    """

    overhead_s: float
    per_row_s: float

    def seconds(self, rows: int, iterations: int) -> float:
        """Predicted seconds of ``iterations`` iterations scoring ``rows`` candidates in all."""
        return iterations * self.overhead_s + rows * self.per_row_s


@dataclass(frozen=True)
class PlanSize:
    """The sizes a planner was given and why.

    Attributes:
        population / iterations: the optimiser's sizes after sizing.
        default_population / default_iterations: its sizes before.
        predicted_ms: predicted ms per plan call at the chosen sizes.
        default_ms: predicted ms per plan call at the default sizes.
        target_ms: the target per plan call.
        reason: one line saying what was done.
    """

    population: int
    iterations: int
    default_population: int
    default_iterations: int
    predicted_ms: float
    default_ms: float
    target_ms: float
    reason: str

    @property
    def changed(self) -> bool:
        """True when the sizes differ from the defaults."""
        return (self.population, self.iterations) != (
            self.default_population,
            self.default_iterations,
        )

    def options(self) -> dict[str, int]:
        """The planner options that give these sizes."""
        return {"population": self.population, "iterations": self.iterations}

    def to_json(self) -> dict[str, Any]:
        """JSON object for ``summary.json``."""
        return {
            "population": self.population,
            "iterations": self.iterations,
            "default_population": self.default_population,
            "default_iterations": self.default_iterations,
            "predicted_ms": round(self.predicted_ms, 3),
            "default_ms": round(self.default_ms, 3),
            "target_ms": self.target_ms,
            "reason": self.reason,
        }


def choose_plan_size(
    cost: ObjectiveCost,
    population: int,
    iterations: int,
    target_ms: float,
    rows: RowsFn | None = None,
    *,
    fixed_iterations: bool = False,
) -> PlanSize:
    """The largest sizes whose predicted plan call fits ``target_ms``.

    Keeps ``population`` and ``iterations`` if they fit. Otherwise it shrinks the population
    along :data:`POPULATION_GRID` while it stays at least :data:`POPULATION_FLOOR`, then takes
    iterations away (down to :data:`MIN_ITERATIONS`), then shrinks the population below the
    floor. If nothing fits, the smallest sizes are returned, saying so.

    Args:
        cost: the measured :class:`ObjectiveCost`.
        population / iterations: the optimiser's default sizes (>= 1).
        target_ms: target per plan call in ms (> 0).
        rows: candidates scored per call at given sizes (default ``population *
            iterations``; CEM's decaying population and policy proposals differ).
        fixed_iterations: the user gave the iterations (or the optimiser has none to
            change): only the population shrinks.

    Raises:
        ValueError: a size below 1 or a target that is not a positive finite number.
    """
    if population < 1 or iterations < 1:
        raise ValueError(f"population and iterations must be >= 1, got {population}, {iterations}")
    if not (math.isfinite(target_ms) and target_ms > 0):
        raise ValueError(f"target_ms must be a positive finite number, got {target_ms}")
    count = rows if rows is not None else (lambda p, i: p * i)

    def ms(p: int, i: int) -> float:
        return 1000.0 * cost.seconds(count(p, i), i)

    default_ms = ms(population, iterations)

    def size(p: int, i: int, reason: str) -> PlanSize:
        return PlanSize(p, i, population, iterations, ms(p, i), default_ms, target_ms, reason)

    if default_ms <= target_ms:
        return size(population, iterations, f"the default size fits {target_ms:g} ms")
    grid = [p for p in reversed(POPULATION_GRID) if p < population]
    lowest = MIN_ITERATIONS if iterations > MIN_ITERATIONS and not fixed_iterations else iterations
    for its in range(iterations, lowest - 1, -1):
        floor = POPULATION_FLOOR if its > lowest else 1
        for p in grid:
            if p >= floor and ms(p, its) <= target_ms:
                return size(p, its, f"sized to {target_ms:g} ms per plan call")
    smallest = min(POPULATION_GRID[0], population)
    return size(
        smallest,
        lowest,
        f"even the smallest size misses {target_ms:g} ms per plan call on this machine",
    )


def measure_objective_cost(
    score: Callable[[Tensor], Tensor],
    low: Tensor,
    high: Tensor,
    horizon: int,
    generator: torch.Generator,
    *,
    sizes: tuple[int, int] = PROBE_SIZES,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> ObjectiveCost:
    """Time ``score(candidates (n, H, A)) -> (n,)`` at the two candidate counts ``sizes``
    (the fastest of ``repeats`` calls each, after one warm-up) and fit ``t = a + b n``.

    Args:
        score: the planner's objective for one start observation.
        low / high: action bounds ``(A,)`` (candidates are drawn uniformly between them).
        horizon: ``H``; generator: draws the candidates (on the bounds' device).
        sizes: two distinct candidate counts; repeats: timed calls per count (>= 1).
        clock: seconds (on CUDA the device is synchronised before each reading).

    Returns:
        :class:`ObjectiveCost` (overhead clamped at 0; the slope at least 1 ns).
    """
    small, large = sizes
    if not 0 < small < large:
        raise ValueError(f"sizes must be two increasing positive counts, got {sizes}")
    device = low.device

    def tick() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return clock()

    def fastest(n: int) -> float:
        shape = (n, horizon, low.shape[0])
        cands = low + (high - low) * torch.rand(shape, generator=generator, device=device)
        score(cands)
        best = math.inf
        for _ in range(repeats):
            start = tick()
            score(cands)
            best = min(best, tick() - start)
        return best

    with torch.no_grad():
        t_small, t_large = fastest(small), fastest(large)
    per_row = max((t_large - t_small) / (large - small), 1e-9)
    return ObjectiveCost(max(t_small - per_row * small, 0.0), per_row)
