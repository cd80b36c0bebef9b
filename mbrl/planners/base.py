"""The planner interface every planner implements, and the action-space support check."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from mbrl.spaces import ActionCodec


class Planner(ABC):
    """Maps an observation to a planned action sequence.

    ``plan(obs (O,)) -> actions (H, A)`` (encoded actions; the agent executes the first row);
    ``reset()`` forgets the warm start at an episode boundary; ``advance(k)`` tells the planner
    that ``k`` env steps of its last plan were executed, before it replans. Planners declare which action
    spaces they support through ``supports_continuous`` / ``supports_discrete``, and whether
    they score states past their horizon with a learned value (``accepts_value_fn``; the
    builder then receives ``PlannerContext.value_fn``) or roll out with a learned policy
    (``accepts_policy_fn``; ``PlannerContext.policy_fn``).
    """

    supports_continuous: ClassVar[bool] = True
    supports_discrete: ClassVar[bool] = False
    accepts_value_fn: ClassVar[bool] = False
    accepts_policy_fn: ClassVar[bool] = False

    @abstractmethod
    def plan(self, obs: Tensor) -> Tensor:
        """Plan from ``obs (O,)``: returns ``(H, A)`` encoded actions within the action bounds."""

    def reset(self) -> None:
        """Forget any warm-start state (call at the start of each episode)."""

    def advance(self, steps: int) -> None:
        """Record that ``steps`` env steps were executed since the last plan.

        Called by the agent with the number of actions of the previous plan it executed,
        before replanning (not before the first plan of an episode). Planners with a warm start
        shift it by ``steps``; the default does nothing.
        """

    @classmethod
    def check_action_space(cls, codec: ActionCodec) -> None:
        """Raise ``TypeError`` if this planner cannot act in ``codec``'s action space."""
        if codec.discrete and not cls.supports_discrete:
            raise TypeError(
                f"{cls.__name__} plans in continuous (Box) action spaces only; the env's action "
                f"space is {codec.space}. Use a planner that supports Discrete spaces."
            )
        if not codec.discrete and not cls.supports_continuous:
            raise TypeError(
                f"{cls.__name__} plans in Discrete action spaces only; got {codec.space}"
            )


def as_obs_tensor(obs: Tensor, obs_dim: int, device: torch.device) -> Tensor:
    """Validate and move a single observation: ``(O,)`` float32 on ``device``.

    Checked where it comes from, before the move (an observation from the env is on the host:
    no device synchronisation).

    Raises:
        ValueError: wrong shape or non-finite values.
    """
    obs = torch.as_tensor(obs, dtype=torch.float32)
    if obs.shape != (obs_dim,):
        raise ValueError(f"obs must have shape ({obs_dim},), got {tuple(obs.shape)}")
    _check_finite(obs)
    return obs.to(device)


def as_obs_batch(obs: Tensor, obs_dim: int, device: torch.device) -> Tensor:
    """Validate and move one observation ``(O,)`` or a batch ``(B, O)``: ``(B, O)`` float32 on
    ``device`` (``B = 1`` for a single observation). Checked before the move, as
    :func:`as_obs_tensor`.

    Raises:
        ValueError: not ``(O,)`` / ``(B, O)`` with ``B >= 1``, or non-finite values.
    """
    obs = torch.as_tensor(obs, dtype=torch.float32)
    if obs.ndim == 1:
        obs = obs.unsqueeze(0)
    if obs.ndim != 2 or obs.shape[1] != obs_dim or obs.shape[0] == 0:
        raise ValueError(
            f"obs must have shape ({obs_dim},) or (B, {obs_dim}), got {tuple(obs.shape)}"
        )
    _check_finite(obs)
    return obs.to(device)


def _check_finite(obs: Tensor) -> None:
    if not bool(torch.isfinite(obs).all()):
        raise ValueError(f"obs contains NaN or inf: {obs.tolist()}")
