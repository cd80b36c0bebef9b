"""Model-predictive control agent: plan, execute the first action, replan."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from mbrl.planners.base import Planner, as_float_obs
from mbrl.planners.deadline import PlanStats
from mbrl.spaces import ActionCodec
from mbrl.validation import check_positive_int


class MPCAgent:
    """Acts in a gymnasium env by replanning with ``planner`` every ``replan_every`` steps.

    ``act(obs (O,) numpy) -> env action`` (a clipped Box array or a Discrete int). Between
    replans it executes the following actions of the last plan (open loop). Before each
    replan but the first of an episode it calls ``planner.advance(k)`` with the ``k`` actions
    of the previous plan it executed, so warm starts shift by what was actually executed.

    Args:
        planner: any :class:`~mbrl.planners.base.Planner`.
        codec: the env's :class:`~mbrl.spaces.ActionCodec`; checked against the planner's
            supported spaces here, before any interaction.
        obs_dim: observation size ``O`` (checked on every call).
        device: where observations go for planning.
        replan_every: steps between replans (default 1: full MPC).

    Attributes:
        plan_seconds: wall time of each replan so far (the planner's ``advance`` and ``plan``
            and the host copy of the first action; cleared by the run loop per episode).
        plan_stats: the planner's :class:`~mbrl.planners.deadline.PlanStats` (per ``plan``
            call: wall time, work done, deadline missed under ``plan_budget_ms``).
    """

    def __init__(
        self,
        planner: Planner,
        codec: ActionCodec,
        obs_dim: int,
        device: str | torch.device = "cpu",
        replan_every: int = 1,
    ) -> None:
        planner.check_action_space(codec)
        check_positive_int(replan_every, "replan_every")
        self.planner = planner
        self.codec = codec
        self.obs_dim = obs_dim
        self.device = torch.device(device)
        self.replan_every = replan_every
        self.plan_seconds: list[float] = []
        self._plan: Tensor | None = None
        self._step = 0
        self._executed = 0  # actions of the current plan executed so far

    @property
    def plan_stats(self) -> PlanStats:
        """The planner's record of its ``plan`` calls (see :mod:`mbrl.planners.deadline`)."""
        return self.planner.plan_stats

    def reset(self) -> None:
        """Start a new episode: drop the current plan and the planner's warm start."""
        self.planner.reset()
        self._plan = None
        self._step = 0
        self._executed = 0

    def act(self, obs: np.ndarray) -> np.ndarray | int:
        """Action for observation ``obs (O,)``.

        Raises:
            TypeError: ``obs`` is not numeric; ValueError: ``obs`` of the wrong shape or with
                NaN/inf (before any planning).
        """
        arr = as_float_obs(obs, f"({self.obs_dim},)").cpu().numpy()
        if arr.shape != (self.obs_dim,):
            raise ValueError(f"obs must have shape ({self.obs_dim},), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"obs contains NaN or inf: {arr.tolist()}")
        offset = self._step % self.replan_every
        if offset == 0 or self._plan is None or offset >= self._plan.shape[0]:
            start = time.perf_counter()
            if self._plan is not None:
                self.planner.advance(self._executed)
            self._plan = self.planner.plan(torch.as_tensor(arr, device=self.device))
            action = self.codec.decode(self._plan[0])  # the host copy also waits for the device
            self.plan_seconds.append(time.perf_counter() - start)
            self._executed = 0
        else:
            action = self.codec.decode(self._plan[self._executed])
        self._executed += 1
        self._step += 1
        return action
