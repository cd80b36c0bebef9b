"""Registry mapping gymnasium env ids to known vectorised reward/termination functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``reward(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` float rewards."""

TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``terminated(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` bool flags."""


@dataclass(frozen=True)
class TaskFns:
    """The known task functions of one env.

    Attributes:
        reward: vectorised reward, ``(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``.
        termination: vectorised termination with the same signature returning bool ``(M,)``;
            ``None`` means the task never terminates (only truncation by time limit).
        planning_reward: optional shaped reward that planners maximise instead of ``reward``.
            It must rank trajectories as the task does while breaking the ties a sparse or
            constant reward leaves (e.g. "alive" bonuses, where every candidate that survives
            the horizon scores the same). Reported returns always use the env's own reward.
    """

    reward: RewardFn
    termination: TerminationFn | None = None
    planning_reward: RewardFn | None = None

    @property
    def planner_reward(self) -> RewardFn:
        """The reward planners should maximise: ``planning_reward`` if given, else ``reward``."""
        return self.planning_reward if self.planning_reward is not None else self.reward


_REGISTRY: dict[str, TaskFns] = {}


def register_task_fns(
    env_id: str,
    reward: RewardFn,
    termination: TerminationFn | None = None,
    *,
    planning_reward: RewardFn | None = None,
    overwrite: bool = False,
) -> None:
    """Register known reward/termination functions for ``env_id`` (e.g. ``"Pendulum-v1"``).

    Raises:
        ValueError: if ``env_id`` is already registered and ``overwrite`` is False.
        TypeError: if ``reward`` or ``termination`` is not callable.
    """
    if not callable(reward):
        raise TypeError(f"reward for {env_id!r} must be callable, got {type(reward).__name__}")
    if termination is not None and not callable(termination):
        raise TypeError(
            f"termination for {env_id!r} must be callable or None, got {type(termination).__name__}"
        )
    if planning_reward is not None and not callable(planning_reward):
        raise TypeError(f"planning_reward for {env_id!r} must be callable or None")
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(
            f"task functions for {env_id!r} are already registered (pass overwrite=True)"
        )
    _REGISTRY[env_id] = TaskFns(
        reward=reward, termination=termination, planning_reward=planning_reward
    )


def get_task_fns(env_id: str) -> TaskFns | None:
    """The registered :class:`TaskFns` for ``env_id``, or ``None`` when none is known."""
    return _REGISTRY.get(env_id)


def known_env_ids() -> list[str]:
    """Sorted env ids that have known task functions."""
    return sorted(_REGISTRY)
