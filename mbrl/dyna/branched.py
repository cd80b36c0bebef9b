"""Branched model rollouts (MBPO): short ``k``-step rollouts from real states into a model buffer.

From ``B`` states drawn from the real buffer, the current policy and the learned model generate
``k`` steps each (a random ensemble member per row and step), giving up to ``k * B`` synthetic
transitions; rows stop at the first predicted termination (the terminating transition is kept)
or at a non-finite prediction (dropped). ``k`` grows with the amount of real data on a
:class:`RolloutSchedule`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.models.base import ENSEMBLE, DynamicsModel
from mbrl.rollout.transition import transition
from mbrl.validation import check_positive_int

BatchPolicy = Callable[[Tensor], Tensor]
"""``policy(obs (B, O)) -> encoded actions (B, A)`` (within the action bounds)."""


@dataclass(frozen=True)
class RolloutSchedule:
    """Rollout length ``k`` as a function of real env steps (MBPO's ``[a, b, x, y]`` schedule).

    ``k = min_length`` up to ``start_step``, then grows linearly to ``max_length`` at
    ``end_step`` and stays there: ``k(t) = round(x + clip((t - a) / (b - a), 0, 1) * (y - x))``.

    Attributes:
        min_length: ``x``, the initial rollout length (default 1).
        max_length: ``y``, the final rollout length (default 1: constant ``k = 1``).
        start_step: ``a``, env step where growth starts (default 0).
        end_step: ``b``, env step where ``max_length`` is reached (default 1).
    """

    min_length: int = 1
    max_length: int = 1
    start_step: int = 0
    end_step: int = 1

    def __post_init__(self) -> None:
        check_positive_int(self.min_length, "min_length")
        check_positive_int(self.max_length, "max_length")
        check_positive_int(self.start_step, "start_step", minimum=0)
        check_positive_int(self.end_step, "end_step", minimum=0)
        if self.end_step <= self.start_step and self.max_length != self.min_length:
            raise ValueError(
                f"end_step ({self.end_step}) must be > start_step ({self.start_step}) "
                "for a growing schedule"
            )

    def length(self, env_step: int) -> int:
        """Rollout length ``k`` after ``env_step`` real steps."""
        if self.max_length == self.min_length or env_step <= self.start_step:
            return self.min_length
        frac = min(1.0, (env_step - self.start_step) / (self.end_step - self.start_step))
        return int(round(self.min_length + frac * (self.max_length - self.min_length)))


@torch.no_grad()
def branched_rollouts(
    model: DynamicsModel,
    start_obs: Tensor,
    policy: BatchPolicy,
    reward_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
    termination_fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None,
    length: int,
    generator: torch.Generator,
    *,
    buffer: TransitionBuffer | None = None,
    obs_bounds: tuple[Tensor, Tensor] | None = None,
    uncertainty_penalty: float = 0.0,
) -> TransitionBatch:
    """``length``-step rollouts of ``policy`` through ``model`` from ``start_obs (B, O)``.

    The model is treated as an observation-space model: each step starts from
    ``model.initial_state(obs)``. Ensemble members are assigned per row at random every step
    (rows are permuted before the model step).

    Args:
        model: the dynamics model (``obs_dim`` ``O``, ``action_dim`` ``A``).
        start_obs: ``(B, O)`` real states to branch from.
        policy: ``obs (b, O) -> actions (b, A)`` for the ``b`` rows still running.
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (b,)``;
            ``termination_fn=None`` never terminates.
        length: rollout length ``k >= 1``.
        generator: randomness of members, model noise (the policy uses its own).
        buffer: if given, every transition is appended to it (the model buffer).
        obs_bounds: optional ``(low (O,), high (O,))`` to clip predicted observations to.
        uncertainty_penalty: MOPO penalty ``lambda`` on the reward (needs
            ``model.member_disagreement``).

    Returns:
        The generated transitions: ``k * B`` rows without terminations (fewer with them),
        step-major (all rows of step 1, then step 2, ...); ``truncated`` is all False.

    Raises:
        ValueError: ``start_obs`` of the wrong shape, or actions of the wrong shape from the
            policy.
    """
    check_positive_int(length, "length")
    model.check_obs(start_obs, "start_obs")
    if uncertainty_penalty > 0 and ENSEMBLE not in model.capabilities:
        raise ValueError(f"uncertainty_penalty needs an ensemble; {type(model).__name__} has none")
    device = model.device
    obs = start_obs.to(device=device, dtype=torch.float32)
    parts: list[TransitionBatch] = []
    for _ in range(length):
        n = obs.shape[0]
        if n == 0:
            break
        action = policy(obs).to(device=device, dtype=torch.float32)
        if tuple(action.shape) != (n, model.action_dim):
            raise ValueError(
                f"policy must return actions of shape ({n}, {model.action_dim}), "
                f"got {tuple(action.shape)}"
            )
        state = model.initial_state(obs, 1, generator)
        tr = transition(
            model,
            state,
            obs,
            action,
            reward_fn,
            termination_fn,
            generator,
            obs_bounds=obs_bounds,
            uncertainty_penalty=uncertainty_penalty,
            shuffle_members=True,
        )
        # Diverged rows are dropped: synthetic data holds only transitions the model predicted.
        keep = tr.finite
        obs, action = obs[keep], action[keep]
        next_obs, reward, done = tr.obs[keep], tr.reward[keep].float(), tr.done[keep]
        n = obs.shape[0]
        if n == 0:
            break
        batch = TransitionBatch(
            obs, action, reward, next_obs, done, torch.zeros(n, dtype=torch.bool, device=device)
        )
        parts.append(batch)
        if buffer is not None:
            buffer.add(obs, action, reward, next_obs, done, batch.truncated)
        obs = next_obs[~done]
    if not parts:
        o, a = model.obs_dim, model.action_dim
        empty = torch.zeros(0, device=device)
        return TransitionBatch(
            empty.reshape(0, o),
            empty.reshape(0, a),
            empty,
            empty.reshape(0, o),
            empty.bool(),
            empty.bool(),
        )
    return TransitionBatch(
        *(torch.cat([getattr(p, f) for p in parts]) for f in TransitionBatch.__dataclass_fields__)
    )
