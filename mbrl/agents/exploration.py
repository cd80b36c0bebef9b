"""Exploration by ensemble disagreement: what MPC plans for while the reward is sparse.

A learned reward fitted to data in which every reward is the same and no episode ended (a
sparse goal that random steps never reached, such as Acrobot's -1 per step) is a constant:
every plan scores alike and MPC acts at random, so the goal may never be found. Reaching it
once does not fix that: the reward then differs only at the ending, which a planner sees
only within its horizon. With ``RunConfig.explore = "auto"`` (the default) the planner
scores a step by the task reward plus the ensemble members' disagreement about it (the
spread of their predicted next states, in the standardised units the members are trained
in) while :func:`sparse_reward` holds for the data, so it steers towards the states the
model knows least (a plan-time version of Plan2Explore's / MAX's novelty bonus); the bonus
fades where the members have learned to agree. The bonus is ``explore_weight * scale *
tanh(d)`` (:class:`ExplorationReward`), ``scale`` the range of the rewards seen. A reward that
varies along an episode is planned for alone. ``"always"`` adds the bonus to every step of
any learned reward (an optimism bonus), ``"off"`` never does.

Only ensembles of two or more members disagree; other models never explore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mbrl.data.buffer import TransitionBatch
from mbrl.models.base import ENSEMBLE, DynamicsModel

EXPLORE_MODES = ("auto", "off", "always")
"""Accepted values of ``RunConfig.explore``."""


def flat_rewards(rewards: Tensor) -> bool:
    """Whether ``rewards (N,)`` are all equal up to float32 rounding (a sparse reward never
    reached, a constant alive bonus)."""
    if rewards.numel() == 0:
        return False
    spread = float(rewards.max() - rewards.min())
    return spread <= 1e-6 * (1.0 + float(rewards.abs().max()))


def sparse_reward(data: TransitionBatch) -> bool:
    """Whether the rewards of ``data`` say nothing except where episodes ended: every
    reward of a transition that did not end its episode is the same (or there is none).

    True for random data that never reached a sparse goal (Acrobot's -1 per step, with or
    without the goal reached since), for a constant alive bonus (CartPole's +1); False for
    any reward that varies along an episode. ``explore="auto"`` plans with the disagreement
    bonus exactly while this holds: a goal reached a few times is not yet a reward the
    model can steer by from afar, and the bonus fades by itself where the members agree.
    """
    steps = data.reward[~data.terminated]
    return steps.numel() == 0 or flat_rewards(steps)


def can_explore(model: DynamicsModel) -> bool:
    """Whether ``model`` is an ensemble with two or more members (one that can disagree)."""
    return ENSEMBLE in model.capabilities and int(getattr(model, "ensemble_size", 1)) > 1


def reward_scale(rewards: Tensor) -> float:
    """The unit of the exploration bonus for ``rewards (N,)``: their range (max - min), or
    the magnitude of their one value when all are equal, or 1 when that is 0 too."""
    if rewards.numel() == 0:
        return 1.0
    if not flat_rewards(rewards):
        return float(rewards.max() - rewards.min())
    level = abs(float(rewards[0]))
    return level if level > 0 else 1.0


class ExplorationReward(nn.Module):
    """``task_reward`` plus a disagreement bonus while :attr:`exploring`.

    ``__call__(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``: the task reward alone
    when not exploring (no extra model call), else task reward plus
    ``weight * scale * tanh(d)``, where ``d (M,)`` is the members' standardised
    disagreement about ``(obs, action)`` and ``scale`` the reward's range in the data
    (:func:`reward_scale`, set by :meth:`update`). The bound matters with endings: under a
    constant negative step reward (Acrobot's -1) and ``weight <= 1`` a step that goes on
    never scores above 0 (0 only where the members disagree without bound), so lingering
    where the model is unsure never beats ending the episode at the goal.

    Args:
        task_reward: the reward the planner would use otherwise (a learned reward).
        model: an ensemble (:func:`can_explore`); it is referenced, not owned (its
            parameters stay out of this module's state dict).
        weight: bonus in units of ``scale``, > 0 (default 1).
        mode: ``"auto"`` (explore while :meth:`update` is told the reward is sparse) or
            ``"always"``.

    Raises:
        ValueError: a model that cannot disagree, a weight <= 0 or an unknown mode.
    """

    def __init__(
        self,
        task_reward: Callable[[Tensor, Tensor, Tensor], Tensor],
        model: DynamicsModel,
        weight: float = 1.0,
        mode: str = "auto",
    ) -> None:
        super().__init__()
        if not can_explore(model):
            raise ValueError(
                f"exploration needs an ensemble of two or more members (capability "
                f"{ENSEMBLE!r}, ensemble_size >= 2); {type(model).__name__} cannot disagree"
            )
        if not weight > 0:
            raise ValueError(f"explore_weight must be > 0, got {weight}")
        if mode not in ("auto", "always"):
            raise ValueError(f"mode must be 'auto' or 'always', got {mode!r}")
        self.task_reward = task_reward
        self._model = (model,)  # a tuple: referenced, not registered as a submodule
        self.weight = float(weight)
        self.mode = mode
        self.exploring = mode == "always"
        self.scale = 1.0

    @property
    def capture_key(self) -> tuple[Any, ...]:
        """What a captured rollout graph depends on besides tensors (see
        :mod:`mbrl.rollout.compiled`): the branch taken, the scale baked into it and the
        task reward's own key."""
        return (self.exploring, self.scale, getattr(self.task_reward, "capture_key", None))

    def update(self, sparse: bool, scale: float = 1.0) -> bool:
        """After a fit: explore when ``sparse`` (:func:`sparse_reward` of the data; ``auto``)
        or always (``always``), with the bonus in units of ``scale`` (> 0,
        :func:`reward_scale` of the data's rewards). Returns :attr:`exploring`."""
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.exploring = self.mode == "always" or sparse
        self.scale = float(scale)
        return self.exploring

    def bonus(self, obs: Tensor, action: Tensor) -> Tensor:
        """``weight * scale * tanh(d)`` for the members' standardised disagreement ``d (M,)``
        about ``obs (M, O), action (M, A)``."""
        model = self._model[0]
        spread = model.member_disagreement(obs, action, normalised=True)  # type: ignore[attr-defined]
        return (self.weight * self.scale) * torch.tanh(spread.to(obs.dtype))

    def forward(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Reward ``(M,)`` the planner scores a step with."""
        reward = self.task_reward(obs, action, next_obs).reshape(-1)
        if not self.exploring:
            return reward
        return reward + self.bonus(obs, action).to(reward.dtype)
