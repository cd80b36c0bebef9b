"""The planner interface every planner implements, the action-space support check, and the
checks of the observations handed to ``plan``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mbrl.planners.deadline import Deadline, PlanRecord, PlanStats
from mbrl.spaces import ActionCodec


class PlanningNonFiniteError(RuntimeError):
    """Every candidate (or the whole plan) of a planner scored a non-finite return, and the
    planner's ``on_nonfinite`` setting is ``"raise"``."""


class Planner(ABC):
    """Maps an observation to a planned action sequence.

    ``plan(obs (O,)) -> actions (H, A)`` (encoded actions; the agent executes the first row);
    ``reset()`` forgets the warm start at an episode boundary; ``advance(k)`` tells the planner
    that ``k`` env steps of its last plan were executed, before it replans. Planners declare which action
    spaces they support through ``supports_continuous`` / ``supports_discrete``, and whether
    they score states past their horizon with a learned value (``accepts_value_fn``; the
    builder then receives ``PlannerContext.value_fn``) or roll out with a learned policy
    (``accepts_policy_fn``; ``PlannerContext.policy_fn``). A planner that optimises a
    policy over a whole episode rather than replanning a short window (PILCO) sets
    ``horizon_is_episode``: ``mbrl run`` then gives it the episode length as its horizon
    when nobody chose one.

    Deadlines (:mod:`mbrl.planners.deadline`): a planner whose ``config`` has
    ``plan_budget_ms`` stops its work when that budget is spent; every ``plan`` call is
    recorded in :attr:`plan_stats` (wall time, work done, deadline missed) by
    :meth:`start_plan` / :meth:`finish_plan`, which planners call around their work.
    """

    supports_continuous: ClassVar[bool] = True
    supports_discrete: ClassVar[bool] = False
    accepts_value_fn: ClassVar[bool] = False
    accepts_policy_fn: ClassVar[bool] = False
    horizon_is_episode: ClassVar[bool] = False

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

    @property
    def plan_budget_ms(self) -> float | None:
        """Budget of one ``plan`` call in milliseconds (None: none): the ``plan_budget_ms`` of
        the planner's ``config``, if it has one."""
        return getattr(getattr(self, "config", None), "plan_budget_ms", None)

    @property
    def plan_stats(self) -> PlanStats:
        """Record of the ``plan`` calls since the last ``plan_stats.clear()``."""
        stats = self.__dict__.get("_plan_stats")
        if stats is None:  # subclasses need not call Planner.__init__
            stats = self.__dict__["_plan_stats"] = PlanStats()
        return stats

    def start_plan(self, device: torch.device | str | None) -> Deadline:
        """The deadline of a ``plan`` call starting now, with this planner's budget."""
        return Deadline(self.plan_budget_ms, device)

    def finish_plan(self, deadline: Deadline, work: int, stopped_early: bool) -> PlanRecord:
        """Record a finished ``plan`` call in :attr:`plan_stats` and return its record."""
        record = PlanRecord(deadline.elapsed_s(), deadline.budget_ms, int(work), stopped_early)
        self.plan_stats.add(record)
        return record

    @classmethod
    def check_action_space(cls, codec: ActionCodec) -> None:
        """Raise ``TypeError`` if this planner cannot act in ``codec``'s action space."""
        if codec.discrete and not cls.supports_discrete:
            raise TypeError(
                f"{cls.__name__} plans in continuous (Box) action spaces only; the env's action "
                f"space is {codec.space}. Use a planner that supports Discrete spaces (mcts)."
            )
        if not codec.discrete and not cls.supports_continuous:
            raise TypeError(
                f"{cls.__name__} plans in Discrete action spaces only; got {codec.space}"
            )


def as_float_obs(obs: Any, expected: str) -> Tensor:
    """``obs`` (tensor, array or nested sequence of numbers) as a float32 tensor, on the device
    it was on.

    Args:
        obs: the observation(s) handed to a planner.
        expected: the shapes accepted, for the message (e.g. ``"(3,) or (B, 3)"``).

    Raises:
        TypeError: ``obs`` is not numeric (a string, an object, a ragged list), naming
            ``obs``, what it is and ``expected``.
    """
    if isinstance(obs, Tensor):
        if obs.is_complex() or obs.dtype == torch.bool:
            raise TypeError(
                f"obs must be real numbers of shape {expected}, got a {obs.dtype} tensor"
            )
        return obs.to(torch.float32)
    if isinstance(obs, str | bytes):
        raise TypeError(
            f"obs must be numbers of shape {expected}, got {type(obs).__name__} {obs!r:.40}"
        )
    try:
        arr = np.asarray(obs)
        if arr.dtype.kind not in "fiu":  # strings, objects, booleans, complex
            raise TypeError(f"dtype {arr.dtype}")
        return torch.as_tensor(arr, dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"obs must be numbers of shape {expected} (a tensor or array), got "
            f"{type(obs).__name__} {obs!r:.40} ({err})"
        ) from err


def as_obs_tensor(obs: Tensor, obs_dim: int, device: torch.device) -> Tensor:
    """Validate and move a single observation: ``(O,)`` float32 on ``device``.

    Checked where it comes from, before the move (an observation from the env is on the host:
    no device synchronisation).

    Raises:
        TypeError: ``obs`` is not numeric; ValueError: wrong shape or non-finite values.
    """
    obs = as_float_obs(obs, f"({obs_dim},)")
    if obs.shape != (obs_dim,):
        raise ValueError(f"obs must have shape ({obs_dim},), got {tuple(obs.shape)}")
    _check_finite(obs)
    return obs.to(device)


def as_obs_batch(obs: Tensor, obs_dim: int, device: torch.device) -> Tensor:
    """Validate and move one observation ``(O,)`` or a batch ``(B, O)``: ``(B, O)`` float32 on
    ``device`` (``B = 1`` for a single observation). Checked before the move, as
    :func:`as_obs_tensor`.

    Raises:
        TypeError: ``obs`` is not numeric; ValueError: not ``(O,)`` / ``(B, O)`` with
            ``B >= 1``, or non-finite values.
    """
    obs = as_float_obs(obs, f"({obs_dim},) or (B, {obs_dim})")
    given = tuple(obs.shape)
    if obs.ndim == 1:
        obs = obs.unsqueeze(0)
    if obs.ndim != 2 or obs.shape[1] != obs_dim or obs.shape[0] == 0:
        raise ValueError(f"obs must have shape ({obs_dim},) or (B, {obs_dim}), got {given}")
    _check_finite(obs)
    return obs.to(device)


def _check_finite(obs: Tensor) -> None:
    if not bool(torch.isfinite(obs).all()):
        raise ValueError(f"obs contains NaN or inf: {obs.tolist()}")
