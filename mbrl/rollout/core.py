"""The rollout core: ``M = P * N`` rows stepped ``H`` times through :func:`transition`.

:func:`simulate` is the one loop over the horizon. It takes start observations ``(N, O)``
(or a start state), either action sequences ``(N, H, A)`` or a policy, an optional terminal
value, and optional per-row step counts; it returns discounted returns per candidate.
:func:`mbrl.rollout.rollout` (sampling planners), the compiled / CUDA-graph path, iLQR's
forward pass and MCTS's leaf rollouts are all this function; the surrogate envs and branched
rollouts use :func:`~mbrl.rollout.transition.transition` directly.

Row layout: particle-major, as everywhere (:mod:`mbrl.models.base`): row ``p * N + n`` is
particle ``p`` of candidate ``n``. Only the horizon is a Python loop; there is no host/device
synchronisation inside it, so the whole call can be captured as a CUDA graph.

Accounting, per row (``alive`` is the probability of not having ended before the step; 1 or 0
with boolean termination):

- ``return = sum_t gamma^t * alive_t * r_t  +  gamma^S * alive_S * V(obs_S)`` where ``S`` is
  the row's step count (``H`` unless ``steps`` is given) and ``V`` the terminal value (none:
  0). The ending step's reward still counts, as in gymnasium; later rewards do not.
- A row that diverges (see :mod:`mbrl.rollout.transition`) ends there; ``finite_returns`` count
  it as an ending that pays nothing, ``returns`` / ``particle_returns`` score it ``-inf``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel, ModelState
from mbrl.rollout.transition import transition
from mbrl.task_fns import RewardFn, TerminationFn

Policy = Callable[[int, ModelState, Tensor], Tensor]
"""``policy(t, state, obs (M, O)) -> actions (M, A)``: the action of every row at step ``t``."""
ValueFn = Callable[[Tensor], Tensor]
"""``value(obs (M, O)) -> (M,)``: the value of the state reached after the last step."""


@dataclass(frozen=True)
class RolloutResult:
    """Output of :func:`simulate` (and :func:`mbrl.rollout.rollout`).

    Attributes:
        returns: ``(N,)`` discounted return per candidate, averaged over particles; ``-inf``
            for a candidate with a diverged particle.
        particle_returns: ``(P, N)`` per particle (``-inf`` where it diverged).
        alive: ``(P, N)`` bool, particles that never ended.
        finite_returns: ``(P, N)`` per particle, a diverged step counted as an ending that pays
            nothing (finite wherever rewards and values are).
        diverged: ``(P, N)`` bool, particles that diverged before ending.
        observations: ``(H + 1, P, N, O)`` observed trajectories (``record=True``; row 0 is the
            start observation).
        rewards: ``(H, P, N)`` per-step rewards as counted (discount excluded; ``record``).
        actions: ``(H, P, N, A)`` the actions taken (``record``).
        weights: ``(H, P, N)`` the weight ``gamma^t * alive_t`` of each step's reward
            (``record``).
        states: the ``H + 1`` model states of the trajectory (``record``).
    """

    returns: Tensor
    particle_returns: Tensor
    alive: Tensor
    finite_returns: Tensor
    diverged: Tensor
    observations: Tensor | None = None
    rewards: Tensor | None = None
    actions: Tensor | None = None
    weights: Tensor | None = None
    states: list[ModelState] | None = None


def tile_actions(actions: Tensor, n_particles: int) -> Tensor:
    """Candidate sequences ``(N, H, A)`` -> per-step particle-major rows ``(H, P * N, A)``."""
    n, horizon, a_dim = actions.shape
    return (
        actions.transpose(0, 1)
        .unsqueeze(1)
        .expand(horizon, n_particles, n, a_dim)
        .reshape(horizon, n_particles * n, a_dim)
    )


def simulate(
    model: DynamicsModel,
    obs: Tensor,
    reward_fn: RewardFn,
    termination_fn: TerminationFn | None = None,
    *,
    actions: Tensor | None = None,
    policy: Policy | None = None,
    horizon: int | None = None,
    n_particles: int = 1,
    gamma: float = 1.0,
    generator: torch.Generator | None = None,
    terminal_value: ValueFn | None = None,
    steps: Tensor | None = None,
    soft_termination: bool = False,
    start_state: ModelState | None = None,
    record: bool = False,
) -> RolloutResult:
    """Roll ``N`` candidates (``P`` particles each) through ``model`` from ``obs (N, O)``.

    Args:
        model: any :class:`DynamicsModel`.
        obs: start observations ``(N, O)``, one per candidate (already validated: this is an
            internal hot path and checks nothing).
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``.
        actions: candidate sequences ``(N, H, A)``; or
        policy: ``(t, state, obs (M, O)) -> (M, A)`` acting at every step (with ``horizon``).
        horizon: steps with a policy (default ``actions.shape[1]``).
        n_particles: ``P`` particles per candidate (sampling models).
        gamma: discount per step.
        generator: randomness of sampling models.
        terminal_value: ``V(obs (M, O)) -> (M,)`` added at each row's last step as
            ``gamma^S * alive * V``; non-finite values count as 0.
        steps: ``(N,)`` per-candidate step counts ``<= horizon`` (default: all ``horizon``).
        soft_termination: ``alive`` multiplies by ``1 - termination_fn.probability(...)``.
        start_state: the model state of the ``P * N`` rows (default
            ``model.initial_state(obs, P)``); ``obs`` must then be ``model.observe`` of it,
            folded to ``(N, O)`` (only its first ``N`` rows are read when ``P > 1``).
        record: also return the trajectories (observations, rewards, actions, weights, states).

    Returns:
        :class:`RolloutResult`.
    """
    if (actions is None) == (policy is None):
        raise ValueError("simulate needs exactly one of actions or policy")
    n = obs.shape[0]
    p = n_particles
    m = p * n
    if actions is not None:
        horizon = actions.shape[1]
        tiled = tile_actions(actions, p)
    elif horizon is None:
        raise ValueError("simulate with a policy needs horizon")
    state = model.initial_state(obs, p, generator) if start_state is None else start_state
    current = model.observe(state)
    device, dtype = current.device, current.dtype
    total = torch.zeros(m, dtype=dtype, device=device)
    alive = torch.ones(m, dtype=dtype, device=device)
    diverged = torch.zeros(m, dtype=torch.bool, device=device)
    limit = steps.repeat(p) if steps is not None else None
    last = current
    discount = 1.0
    trace: dict[str, list] = {"obs": [current], "rew": [], "act": [], "w": [], "state": [state]}
    for t in range(horizon):
        act = tiled[t] if actions is not None else policy(t, state, current)
        tr = transition(
            model,
            state,
            current,
            act,
            reward_fn,
            termination_fn,
            generator,
            soft_termination=soft_termination,
        )
        weight = discount * alive
        if limit is not None:
            within = limit > t
            weight = torch.where(within, weight, torch.zeros_like(weight))
            alive = torch.where(within, alive * (1.0 - tr.end), alive)
            last = torch.where(within.unsqueeze(1), tr.obs, last)
            diverged = diverged | (within & ~tr.finite & (weight > 0))
        else:
            alive = alive * (1.0 - tr.end)
            last = tr.obs
            diverged = diverged | (~tr.finite & (weight > 0))
        # ``where``, not a product: a step after the end must add exactly 0 whatever it holds.
        total = total + torch.where(weight > 0, weight * tr.reward, torch.zeros_like(weight))
        if record:
            trace["obs"].append(tr.obs)
            trace["rew"].append(torch.where(weight > 0, tr.reward, torch.zeros_like(tr.reward)))
            trace["act"].append(act)
            trace["w"].append(weight)
            trace["state"].append(tr.state)
        state, current = tr.state, tr.obs
        discount *= gamma
    if terminal_value is not None:
        count = limit.to(dtype) if limit is not None else torch.full_like(total, horizon)
        value = torch.nan_to_num(terminal_value(last).reshape(-1).to(dtype), 0.0, 0.0, 0.0)
        boot = torch.pow(torch.full_like(total, gamma), count) * alive * value
        total = total + torch.where(alive > 0, boot, torch.zeros_like(boot))
    finite_returns = total.view(p, n)
    scored = torch.where(diverged | ~torch.isfinite(total), -torch.inf, total).view(p, n)
    out = RolloutResult(
        returns=scored.mean(0),
        particle_returns=scored,
        alive=(alive > 0).view(p, n),
        finite_returns=finite_returns,
        diverged=diverged.view(p, n),
    )
    if not record:
        return out
    return RolloutResult(
        returns=out.returns,
        particle_returns=out.particle_returns,
        alive=out.alive,
        finite_returns=out.finite_returns,
        diverged=out.diverged,
        observations=torch.stack(trace["obs"]).view(horizon + 1, p, n, -1),
        rewards=torch.stack(trace["rew"]).view(horizon, p, n),
        actions=torch.stack(trace["act"]).view(horizon, p, n, -1),
        weights=torch.stack(trace["w"]).view(horizon, p, n),
        states=trace["state"],
    )
