"""Lambda-returns of imagined trajectories (TD(lambda) targets, as in Dreamer)."""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_returns(
    rewards: Tensor, values: Tensor, continues: Tensor, gamma: float, lam: float
) -> Tensor:
    """TD(lambda) returns ``(H, N)`` of ``N`` trajectories of ``H`` steps.

    With ``r_t`` the reward of step ``t``, ``c_t`` the probability that step ``t`` did not end
    the episode and ``v_t`` the value of the state *before* step ``t`` (``v_H``: of the last
    state reached)::

        R_{H-1} = r_{H-1} + gamma * c_{H-1} * v_H
        R_t     = r_t + gamma * c_t * ((1 - lam) * v_{t+1} + lam * R_{t+1})

    ``lam = 1`` gives the discounted return bootstrapped with ``v_H`` at the end; ``lam = 0``
    the one-step TD target ``r_t + gamma * c_t * v_{t+1}``. Differentiable in every input.

    Args:
        rewards: ``(H, N)``; values: ``(H + 1, N)``; continues: ``(H, N)`` in ``[0, 1]``.
        gamma: discount in ``[0, 1]``; lam: ``lambda`` in ``[0, 1]``.

    Raises:
        ValueError: mismatched shapes, or ``gamma`` / ``lam`` outside ``[0, 1]``.
    """
    if rewards.ndim != 2 or continues.shape != rewards.shape:
        raise ValueError(
            f"rewards and continues must both be (H, N), got {tuple(rewards.shape)} and "
            f"{tuple(continues.shape)}"
        )
    h, n = rewards.shape
    if tuple(values.shape) != (h + 1, n):
        raise ValueError(f"values must be (H + 1, N) = ({h + 1}, {n}), got {tuple(values.shape)}")
    for name, value in (("gamma", gamma), ("lam", lam)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    out = []
    following = values[h]
    for t in range(h - 1, -1, -1):
        mixed = (1.0 - lam) * values[t + 1] + lam * following
        following = rewards[t] + gamma * continues[t] * mixed
        out.append(following)
    return torch.stack(out[::-1]) if out else rewards.new_zeros(0, n)
