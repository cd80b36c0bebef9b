"""Which rollout backend a run's sampling planner scores candidates with (measured, not assumed).

On a CUDA device :func:`choose_rollout_backend` times every backend of
:mod:`mbrl.rollout.compiled` once at the planner's own shape (population x horizon x action
size, its particles) and switches the planner to the fastest with
:func:`~mbrl.rollout.compiled.compile_planner`; elsewhere, and for planners that are not
:class:`~mbrl.planners.sampling.SamplingPlanner`s, planning stays eager.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mbrl.planners.base import Planner
from mbrl.planners.sampling import SamplingPlanner
from mbrl.rollout.compiled import CompiledRollout, compile_planner, pick_fastest_backend

Measure = Callable[[CompiledRollout, Tensor, Tensor], Mapping[str, float]]
"""``measure(rollout_fn, obs (O,), candidates (N, H, A)) -> {backend: seconds per call}``
(:func:`~mbrl.rollout.compiled.pick_fastest_backend`)."""


@dataclass(frozen=True)
class BackendChoice:
    """The rollout backend in use and why.

    Attributes:
        backend: ``eager``, ``graph`` or ``compile``.
        reason: how it was chosen (measured, forced, or why eager).
        seconds: median seconds per objective call of each backend measured (empty when
            nothing was measured).
    """

    backend: str
    reason: str
    seconds: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON object for ``summary.json``."""
        return {"backend": self.backend, "reason": self.reason, "seconds": dict(self.seconds)}


def _population(planner: SamplingPlanner) -> int:
    """Candidates the planner scores per call (its optimiser's ``population``)."""
    config = getattr(planner.optimizer, "config", None)
    return int(getattr(config, "population", 500))


def choose_rollout_backend(
    planner: Planner,
    requested: str,
    device: torch.device,
    seed: int = 0,
    measure: Measure = pick_fastest_backend,
) -> BackendChoice:
    """Choose the backend ``planner`` scores with and switch it to that backend.

    Args:
        planner: the run's planner (only a :class:`SamplingPlanner` is switched).
        requested: ``auto`` (measure on CUDA, eager elsewhere) or a backend to force.
        device: the run's device.
        seed: seeds the measurement's own generator (the planner's is not drawn from, so a
            measured run plans with the same random numbers as an eager one).
        measure: the timing function (default :func:`pick_fastest_backend`).

    Returns:
        :class:`BackendChoice`.
    """
    if not isinstance(planner, SamplingPlanner):
        return BackendChoice("eager", f"{type(planner).__name__} has no rollout objective")
    if requested != "auto":
        if requested != "eager":
            fast = compile_planner(planner, mode=requested)
            return BackendChoice(fast.backend, fast.fallback_reason or f"forced ({requested})")
        return BackendChoice("eager", "forced (eager)")
    if device.type != "cuda":
        return BackendChoice("eager", f"{device.type} device: eager (nothing measured)")
    low, high = planner.optimizer.low, planner.optimizer.high
    gen = torch.Generator(device=low.device).manual_seed(seed)
    shape = (_population(planner), planner.horizon, low.shape[0])
    candidates = low + (high - low) * torch.rand(shape, generator=gen, device=low.device)
    obs = torch.zeros(planner.model.obs_dim, device=low.device)
    probe = CompiledRollout(
        planner.model,
        planner.reward_fn,
        planner.termination_fn,
        n_particles=planner.n_particles,
        gamma=planner.gamma,
        generator=gen,
        mode="eager",
    )
    try:
        with torch.no_grad():
            seconds = dict(measure(probe, obs, candidates))
    except Exception as err:  # a model that cannot roll out yet (e.g. a GP before any data)
        return BackendChoice("eager", f"measuring failed ({type(err).__name__}: {err}): eager")
    best = min(seconds, key=seconds.__getitem__)
    size = "x".join(map(str, shape))
    if best != "eager":
        fast = compile_planner(planner, mode=best)
        if fast.backend != best:
            return BackendChoice(
                fast.backend, f"{best} measured fastest but {fast.fallback_reason}", seconds
            )
    return BackendChoice(best, f"fastest measured at {size} candidates", seconds)
