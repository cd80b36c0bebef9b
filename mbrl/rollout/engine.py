"""The public rollout: score ``N`` candidate action sequences by rolling a model forward.

:func:`rollout` validates its inputs once and runs the rollout core
(:func:`mbrl.rollout.core.simulate`); planners that already validated their start state call
the core directly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel
from mbrl.rollout.core import RolloutResult, ValueFn, simulate
from mbrl.task_fns import RewardFn, TerminationFn


def check_actions(actions: Tensor, action_dim: int, name: str = "actions") -> None:
    """Raise ``ValueError`` unless ``actions`` is ``(N, H, action_dim)`` and finite."""
    if actions.ndim != 3 or actions.shape[2] != action_dim:
        raise ValueError(f"{name} must have shape (N, H, {action_dim}), got {tuple(actions.shape)}")
    if not bool(torch.isfinite(actions).all()):
        raise ValueError(f"{name} contains NaN or inf")


def rollout(
    model: DynamicsModel,
    obs: Tensor,
    actions: Tensor,
    reward_fn: RewardFn,
    termination_fn: TerminationFn | None = None,
    *,
    n_particles: int = 1,
    gamma: float = 1.0,
    generator: torch.Generator | None = None,
    terminal_value: ValueFn | None = None,
    return_trajectories: bool = False,
    validate: bool = True,
) -> RolloutResult:
    """Roll ``model`` forward from ``obs`` under each of ``N`` action sequences.

    Args:
        model: any :class:`DynamicsModel`.
        obs: start observation ``(O,)`` shared by all candidates, or one per candidate ``(N, O)``.
        actions: candidate action sequences ``(N, H, A)`` (encoded actions).
        reward_fn: ``(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``.
        termination_fn: same signature, bool ``(M,)``; ``None`` = never terminates. A particle
            stops earning reward after its terminating step (that step's reward still counts,
            as in gymnasium).
        n_particles: ``P`` particles per candidate (sampling models).
        gamma: discount per step.
        generator: randomness for sampling models.
        terminal_value: ``V(obs (M, O)) -> (M,)`` added as ``gamma^H * alive * V(obs_H)``.
        return_trajectories: also return observations ``(H + 1, P, N, O)``, rewards, actions.
        validate: check shapes/finiteness first (planners that already did can skip it).

    Returns:
        :class:`RolloutResult` with ``returns (N,)`` (``-inf`` for candidates whose model
        prediction diverged; see :mod:`mbrl.rollout.transition`).

    Raises:
        ValueError: ``actions`` not ``(N, H, A)`` or non-finite, ``obs`` of the wrong shape or
            non-finite, ``n_particles < 1``.
    """
    if validate:
        check_actions(actions, model.action_dim)
        if n_particles < 1:
            raise ValueError(f"n_particles must be >= 1, got {n_particles}")
        if obs.ndim == 1:
            model.check_obs(obs.unsqueeze(0))
        else:
            model.check_obs(obs)
            if obs.shape[0] != actions.shape[0]:
                raise ValueError(
                    f"obs must have shape ({model.obs_dim},) or ({actions.shape[0]}, "
                    f"{model.obs_dim}), got {tuple(obs.shape)}"
                )
    start = obs.unsqueeze(0).expand(actions.shape[0], -1) if obs.ndim == 1 else obs
    return simulate(
        model,
        start,
        reward_fn,
        termination_fn,
        actions=actions,
        n_particles=n_particles,
        gamma=gamma,
        generator=generator,
        terminal_value=terminal_value,
        record=return_trajectories,
    )
