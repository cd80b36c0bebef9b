"""Sampling-based MPC planners: a trajectory optimiser scoring candidates by model rollouts."""

from __future__ import annotations

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel
from mbrl.planners.base import Planner, as_obs_tensor
from mbrl.planners.optimizer import TrajectoryOptimizer
from mbrl.rollout import rollout
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.validation import check_positive_int


class SamplingPlanner(Planner):
    """MPC planner = :class:`TrajectoryOptimizer` + :func:`mbrl.rollout.rollout` objective.

    Each ``plan(obs (O,))`` maximises the mean discounted model return of ``(K, H, A)``
    candidates over ``n_particles`` particles, warm-started from the previous plan shifted by
    one step. Works with any :class:`DynamicsModel` (the optimiser never sees it).

    Args:
        model: dynamics model.
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``.
        optimizer: CEM, MPPI, random shooting, or any :class:`TrajectoryOptimizer`.
        horizon: planning horizon ``H``.
        n_particles: particles ``P`` per candidate (default 1).
        gamma: discount (default 1).
        generator: randomness of the rollouts (the optimiser has its own).
        warm_start: start from the shifted previous solution (default True).
    """

    def __init__(
        self,
        model: DynamicsModel,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None,
        optimizer: TrajectoryOptimizer,
        horizon: int,
        *,
        n_particles: int = 1,
        gamma: float = 1.0,
        generator: torch.Generator | None = None,
        warm_start: bool = True,
    ) -> None:
        check_positive_int(horizon, "horizon")
        check_positive_int(n_particles, "n_particles")
        if optimizer.low.shape != (model.action_dim,):
            raise ValueError(
                f"optimizer bounds have shape {tuple(optimizer.low.shape)}, but the model's action "
                f"size is {model.action_dim}"
            )
        self.model = model
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.optimizer = optimizer
        self.horizon = horizon
        self.n_particles = n_particles
        self.gamma = gamma
        self.generator = generator if generator is not None else optimizer.generator
        self.warm_start = warm_start
        self._previous: Tensor | None = None

    def reset(self) -> None:
        """Forget the warm start and the optimiser's carried state."""
        self._previous = None
        self.optimizer.reset()

    def _initial(self) -> Tensor:
        mid = (self.optimizer.low + self.optimizer.high) / 2
        if self._previous is None or not self.warm_start:
            return mid.expand(self.horizon, -1).clone()
        return torch.cat([self._previous[1:], mid.unsqueeze(0)])

    def objective(self, obs: Tensor) -> callable:
        """The function the optimiser maximises from ``obs (O,)``: ``(K, H, A) -> (K,)``."""

        def score(candidates: Tensor) -> Tensor:
            return rollout(
                self.model,
                obs,
                candidates,
                self.reward_fn,
                self.termination_fn,
                n_particles=self.n_particles,
                gamma=self.gamma,
                generator=self.generator,
                validate=False,
            ).returns

        return score

    @torch.no_grad()
    def plan(self, obs: Tensor) -> Tensor:
        """Optimised action sequence ``(H, A)`` from ``obs (O,)``.

        Raises:
            ValueError: if ``obs`` is not ``(O,)`` or holds NaN/inf.
        """
        obs = as_obs_tensor(obs, self.model.obs_dim, self.optimizer.device)
        initial = self._initial()
        if self._previous is not None:
            self.optimizer.shift(1)
        plan = self.optimizer.optimize(self.objective(obs), initial)
        self._previous = plan
        return plan
