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

    Raises:
        ValueError: wrong shape or non-finite values.
    """
    obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
    if obs.shape != (obs_dim,):
        raise ValueError(f"obs must have shape ({obs_dim},), got {tuple(obs.shape)}")
    if not bool(torch.isfinite(obs).all()):
        raise ValueError(f"obs contains NaN or inf: {obs.tolist()}")
    return obs
