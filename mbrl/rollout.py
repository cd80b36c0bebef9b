"""The rollout engine: score ``N`` candidate action sequences by rolling a model forward.

This is the hot path. Only the horizon is a Python loop; each step is one batched model call
over all ``M = P * N`` particle rows (particle-major, see :mod:`mbrl.models.base`), one reward
call and one termination call. No host/device synchronisation happens inside the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel
from mbrl.task_fns import RewardFn, TerminationFn


@dataclass(frozen=True)
class RolloutResult:
    """Output of :func:`rollout`.

    Attributes:
        returns: ``(N,)`` discounted return per candidate, averaged over particles.
        particle_returns: ``(P, N)`` discounted return per particle.
        observations: ``(H + 1, P, N, O)`` observed trajectories (only with
            ``return_trajectories=True``; row 0 is the start observation).
        rewards: ``(H, P, N)`` per-step rewards, already masked after termination (only with
            ``return_trajectories=True``).
        alive: ``(P, N)`` bool, particles that never terminated.
    """

    returns: Tensor
    particle_returns: Tensor
    alive: Tensor
    observations: Tensor | None = None
    rewards: Tensor | None = None


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
        return_trajectories: also return observations ``(H + 1, P, N, O)`` and rewards.
        validate: check shapes/finiteness first (planners that already did can skip it).

    Returns:
        :class:`RolloutResult` with ``returns (N,)``.
    """
    if validate:
        check_actions(actions, model.action_dim)
        if obs.ndim == 1:
            model.check_obs(obs.unsqueeze(0))
        else:
            model.check_obs(obs)
            if obs.shape[0] != actions.shape[0]:
                raise ValueError(
                    f"obs must have shape ({model.obs_dim},) or ({actions.shape[0]}, {model.obs_dim}), got {tuple(obs.shape)}"
                )
        if n_particles < 1:
            raise ValueError(f"n_particles must be >= 1, got {n_particles}")
    n, horizon, a_dim = actions.shape
    start = obs.unsqueeze(0).expand(n, -1) if obs.ndim == 1 else obs
    p = n_particles
    m = p * n
    state = model.initial_state(start, p, generator)
    current = model.observe(state)
    # (H, P*N, A): every step's actions tiled particle-major, built once.
    tiled = (
        actions.transpose(0, 1).unsqueeze(1).expand(horizon, p, n, a_dim).reshape(horizon, m, a_dim)
    )
    total = torch.zeros(m, dtype=current.dtype, device=current.device)
    alive = torch.ones(m, dtype=current.dtype, device=current.device)
    discount = 1.0
    obs_traj = [current] if return_trajectories else None
    rew_traj = [] if return_trajectories else None
    for t in range(horizon):
        act = tiled[t]
        state = model.step(state, act, generator)
        nxt = model.observe(state)
        reward = reward_fn(current, act, nxt).to(total.dtype) * alive
        total = total + discount * reward
        if termination_fn is not None:
            alive = alive * (~termination_fn(current, act, nxt)).to(alive.dtype)
        if return_trajectories:
            obs_traj.append(nxt)
            rew_traj.append(reward)
        current = nxt
        discount *= gamma
    # A particle whose state went non-finite scores -inf rather than poisoning the mean with NaN.
    total = torch.where(torch.isfinite(total), total, torch.full_like(total, -torch.inf))
    per_particle = total.view(p, n)
    return RolloutResult(
        returns=per_particle.mean(0),
        particle_returns=per_particle,
        alive=alive.view(p, n) > 0,
        observations=torch.stack(obs_traj).view(horizon + 1, p, n, -1)
        if return_trajectories
        else None,
        rewards=torch.stack(rew_traj).view(horizon, p, n) if return_trajectories else None,
    )
