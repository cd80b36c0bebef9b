"""Which runs get their sampling planner sized to the machine, and the measurement itself.

A run whose planner population nobody chose (no ``population`` in the planner options, from
the user or an env preset) and whose ``auto_size_ms`` is set has its planner sized at set-up
by :func:`size_run_planner` (:mod:`mbrl.planners.sizing` does the arithmetic). The choice is
printed with the resolved configuration and written into ``config.json`` (key
:data:`PLAN_SIZE_KEY`), which a resumed run reads back instead of measuring again.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from mbrl.planners.base import Planner
from mbrl.planners.optimizer import SamplingConfig
from mbrl.planners.sampling import SamplingPlanner
from mbrl.planners.sizing import ObjectiveCost, PlanSize, choose_plan_size, measure_objective_cost

BUDGET_SHARE = 0.85
"""Share of ``plan_budget_ms`` a sized planner aims at (the pacer's own safety margin)."""

PLAN_SIZE_KEY = "plan_size"
"""The ``config.json`` entry holding the sized planner's options (absent when not sized)."""

MeasureCost = Callable[
    [Callable[[Tensor], Tensor], Tensor, Tensor, int, torch.Generator], ObjectiveCost
]
"""``measure(score, low (A,), high (A,), horizon, generator) -> ObjectiveCost``
(:func:`~mbrl.planners.sizing.measure_objective_cost`)."""


def sizing_target_ms(auto_size_ms: float | None, plan_budget_ms: float | None) -> float | None:
    """The target per plan call: :data:`BUDGET_SHARE` of the budget when there is one, else
    ``auto_size_ms`` (None: no sizing)."""
    if auto_size_ms is None:
        return None
    return BUDGET_SHARE * plan_budget_ms if plan_budget_ms is not None else auto_size_ms


def _sizable(config: Any) -> bool:
    """A sampling optimiser's config with a ``population`` that counts its candidates."""
    if not isinstance(config, SamplingConfig):
        return False
    counts = type(config).candidates_per_call is not SamplingConfig.candidates_per_call
    return counts and "population" in {f.name for f in dataclasses.fields(config)}


def size_run_planner(
    planner: Planner,
    options: Mapping[str, Any],
    target_ms: float | None,
    seed: int,
    measure: MeasureCost = measure_objective_cost,
) -> PlanSize | None:
    """Measure ``planner``'s objective and choose its sizes for ``target_ms`` per call.

    Args:
        planner: the run's planner; only a :class:`SamplingPlanner` whose optimiser config
            has a ``population`` and counts its candidates is sized.
        options: the planner options someone chose (the user's, and the preset's when no
            budget is set): a ``population`` there means nothing is sized; ``iterations``
            there is kept. Sizes start from the planner's config (a preset's sizes too) and
            only shrink.
        target_ms: :func:`sizing_target_ms` (None: no sizing).
        seed: seeds the measurement's candidates. The planner's own generator (its particle
            noise) is restored afterwards, so measuring changes none of the run's numbers.
        measure: the timing function (tests pass a fake one).

    Returns:
        :class:`PlanSize`, or None where nothing was sized.
    """
    if target_ms is None or not isinstance(planner, SamplingPlanner):
        return None
    # Optimisers keep their settings as ``config`` (custom ones may have none: not sized).
    config: Any = getattr(planner.optimizer, "config", None)
    if not _sizable(config) or "population" in options:
        return None
    has_iterations = "iterations" in {f.name for f in dataclasses.fields(config)}
    iterations = config.iterations if has_iterations else 1

    def rows(population: int, its: int) -> int:
        sizes = {"population": population, **({"iterations": its} if has_iterations else {})}
        return dataclasses.replace(config, **sizes).candidates_per_call()

    low, high = planner.optimizer.low, planner.optimizer.high
    gen = torch.Generator(device=low.device).manual_seed(seed)
    obs = torch.zeros(planner.model.obs_dim, device=low.device)
    saved = planner.generator.get_state()
    try:
        cost = measure(planner.objective(obs), low, high, planner.horizon, gen)
        single = _one_thread_cost(planner, obs, gen, measure) if low.device.type == "cpu" else None
    finally:
        planner.generator.set_state(saved)
    size = choose_plan_size(
        cost,
        config.population,
        iterations,
        target_ms,
        rows,
        fixed_iterations=not has_iterations or "iterations" in options,
    )
    if single is not None and single.per_row_s * THREAD_WARNING < cost.per_row_s:
        speedup = cost.per_row_s / single.per_row_s
        note = (
            f"planning measured {speedup:.1f}x faster on 1 torch thread than on "
            f"{torch.get_num_threads()} (other processes compete for the cores): set "
            "OMP_NUM_THREADS=1 (or torch.set_num_threads(1)) for this run"
        )
        warnings.warn(note, RuntimeWarning, stacklevel=2)
        size = dataclasses.replace(size, reason=f"{size.reason}; {note}")
    return size


THREAD_WARNING = 1.5
"""Warn when one torch thread scores candidates this many times faster than the current
count: on a CPU whose cores are busy with other processes, threads that wait for each other
at every operator can make planning 10-25x slower (measured on 2 shared cores)."""


def _one_thread_cost(
    planner: SamplingPlanner, obs: Tensor, gen: torch.Generator, measure: MeasureCost
) -> ObjectiveCost | None:
    """The objective's cost on one torch thread (None when already on one)."""
    threads = torch.get_num_threads()
    if threads <= 1:
        return None
    low, high = planner.optimizer.low, planner.optimizer.high
    torch.set_num_threads(1)
    try:
        return measure(planner.objective(obs), low, high, planner.horizon, gen)
    finally:
        torch.set_num_threads(threads)


def size_options(size: PlanSize, planner: Planner) -> dict[str, int]:
    """The planner options that rebuild ``planner`` at ``size`` (no ``iterations`` for an
    optimiser that has none)."""
    config: Any = getattr(planner, "optimizer", None)
    names = {f.name for f in dataclasses.fields(config.config)}
    return {k: v for k, v in size.options().items() if k in names}


def resolved_sizes(size: PlanSize, options: Mapping[str, Any]) -> dict[str, int]:
    """The sizing's entries of the resolved planner ``options`` (for ``config.json``)."""
    return {k: options[k] for k in size.options() if k in options}


def resumed_sizing(cfg: Any, document: Mapping[str, Any]) -> Any:
    """``cfg`` (a run's saved ``RunConfig``) with the planner sizes its ``config.json``
    ``document`` recorded, so a resumed run plans exactly as the original did; a run
    started before sizing existed (no ``auto_size_ms`` saved) resumes unsized."""
    sizes = document.get(PLAN_SIZE_KEY)
    if isinstance(sizes, Mapping) and sizes:
        return dataclasses.replace(cfg, planner_options={**cfg.planner_options, **sizes})
    if "auto_size_ms" not in document.get("config", {}):
        return dataclasses.replace(cfg, auto_size_ms=None)
    return cfg
