"""Known task functions for gymnasium's classic-control and mujoco envs.

Each mirrors the env's own ``step`` exactly (same clipping, same order of reward vs termination),
so a planner scoring with them optimises what the env pays.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mbrl.task_fns.registry import register_task_fns
from mbrl.util.clip import clip


def angle_normalize(x: Tensor) -> Tensor:
    """Wrap angles ``x (...)`` to ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def pendulum_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Pendulum-v1: ``-(theta^2 + 0.1 thetadot^2 + 0.001 u^2)`` from ``obs (M, 3) = [cos, sin, thdot]``.

    The env clips ``u`` to [-2, 2] before paying for it; so do we.
    """
    theta = torch.atan2(obs[:, 1], obs[:, 0])
    u = clip(action[:, 0], -2.0, 2.0)
    return -(theta.square() + 0.1 * obs[:, 2].square() + 0.001 * u.square())


def mountain_car_continuous_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """MountainCarContinuous-v0: ``-0.1 a^2`` per step, ``+100`` on reaching the goal.

    The env charges the *unclipped* action (it clips only the force), so we do too.
    """
    power = action[:, 0]
    goal = mountain_car_continuous_termination(obs, action, next_obs)
    return 100.0 * goal.to(power.dtype) - 0.1 * power.square()


def mountain_car_continuous_termination(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """MountainCarContinuous-v0 terminates when ``position >= 0.45`` and ``velocity >= 0``."""
    return (next_obs[:, 0] >= 0.45) & (next_obs[:, 1] >= 0.0)


def cartpole_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """CartPole-v1 pays 1 for every step, the terminating one included."""
    return torch.ones(obs.shape[0], dtype=obs.dtype, device=obs.device)


def cartpole_termination(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """CartPole-v1 terminates when ``|x| > 2.4`` or ``|theta| > 12 deg`` (``next_obs (M, 4)``)."""
    theta_limit = 12 * 2 * math.pi / 360
    return (next_obs[:, 0].abs() > 2.4) | (next_obs[:, 2].abs() > theta_limit)


def inverted_pendulum_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5 pays 1 while alive and 0 on the terminating step."""
    alive = ~inverted_pendulum_termination(obs, action, next_obs)
    return alive.to(obs.dtype)


def inverted_pendulum_planning_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5 alive bonus minus a tie-breaking distance from failure.

    ``alive * (1 - 0.1 (angle / 0.2)^2 - 0.5 x^2)``: surviving a step is always worth more
    than any shaping term, so the ranking by survival is kept, and among candidates that all
    survive the horizon the one keeping the pole upright and the cart centred wins. The cart
    term matters: the slider stops at ``|x| = 1``, and a cart that drifts into the stop topples
    the pole a few hundred steps in, long after a short horizon could see it coming.
    """
    alive = inverted_pendulum_reward(obs, action, next_obs)
    shaping = 0.1 * (next_obs[:, 1] / 0.2).square() + 0.5 * next_obs[:, 0].square()
    return alive * (1.0 - shaping.clamp(max=0.5))


def inverted_pendulum_termination(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5 terminates when ``|angle| > 0.2`` or the state is non-finite."""
    return (next_obs[:, 1].abs() > 0.2) | ~torch.isfinite(next_obs).all(dim=1)


register_task_fns("Pendulum-v1", pendulum_reward)
register_task_fns(
    "MountainCarContinuous-v0", mountain_car_continuous_reward, mountain_car_continuous_termination
)
register_task_fns("CartPole-v1", cartpole_reward, cartpole_termination)
register_task_fns(
    "InvertedPendulum-v5",
    inverted_pendulum_reward,
    inverted_pendulum_termination,
    planning_reward=inverted_pendulum_planning_reward,
)
