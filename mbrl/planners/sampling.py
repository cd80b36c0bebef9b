"""Sampling-based MPC planners: a trajectory optimiser scoring candidates by model rollouts."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel
from mbrl.planners.base import Planner, as_obs_batch
from mbrl.planners.noise import Generators
from mbrl.planners.optimizer import TrajectoryOptimizer, shift_sequences
from mbrl.rollout.core import simulate
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.validation import check_positive_int


class SamplingPlanner(Planner):
    """MPC planner = :class:`TrajectoryOptimizer` + the rollout core as its objective.

    ``plan(obs (B, O)) -> (B, H, A)`` optimises ``B`` independent problems at once (one rollout
    call of ``B * K`` candidates per optimiser iteration); ``plan(obs (O,)) -> (H, A)`` is the
    same with ``B = 1``. Each maximises the mean discounted model return of ``K`` candidates
    over ``n_particles`` particles, warm-started from its row of the previous plan, shifted by
    the steps the agent reported through :meth:`advance`. The warm start is kept per row, so
    ``B`` must stay the same between calls: a call with another ``B`` starts cold (as after
    :meth:`reset`). Works with any :class:`DynamicsModel` (the optimiser never sees it).

    Randomness: the optimiser's sampling comes from ``generators`` given to :meth:`plan` (one
    per row: row ``b`` then plans exactly as a single-row call with ``generators[b]`` would) or
    by default from the optimiser's generator (all rows drawn at once). The model's own noise
    (sampling models) comes from ``generator`` and is drawn for the whole batch in one call.

    Args:
        model: dynamics model.
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``.
        optimizer: CEM, MPPI, random shooting, or any :class:`TrajectoryOptimizer`.
        horizon: planning horizon ``H``.
        n_particles: particles ``P`` per candidate (default 1).
        gamma: discount (default 1).
        generator: randomness of the rollouts (default: the optimiser's).
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
        self._previous: Tensor | None = None  # (B, H, A), already shifted by advance()

    @property
    def plan_budget_ms(self) -> float | None:
        """The optimiser config's ``plan_budget_ms`` (None: no budget)."""
        return self.optimizer.plan_budget_ms

    def reset(self) -> None:
        """Forget the warm start and the optimiser's carried state."""
        self._previous = None
        self.optimizer.reset()

    def advance(self, steps: int) -> None:
        """Shift the warm start (and the optimiser's carried state) by ``steps`` executed steps,
        padding with the middle of the action box."""
        if self._previous is None or steps <= 0:
            return
        self._previous = shift_sequences(self._previous, steps, self.optimizer.middle)
        self.optimizer.shift(steps)

    def _initial(self, rows: int) -> Tensor:
        """Warm start ``(B, H, A)``: the previous plan as shifted, or the middle of the box."""
        if self._previous is not None and self._previous.shape[0] != rows:
            self.reset()  # the rows are other problems now: nothing to warm-start from
        if self._previous is None or not self.warm_start:
            mid = self.optimizer.middle
            return mid.expand(rows, self.horizon, -1).clone()
        return self._previous

    def _returns(self, starts: Tensor, candidates: Tensor) -> Tensor:
        """Mean discounted returns ``(N,)`` of ``candidates (N, H, A)`` from ``starts (N, O)``."""
        return simulate(
            self.model,
            starts,
            self.reward_fn,
            self.termination_fn,
            actions=candidates,
            n_particles=self.n_particles,
            gamma=self.gamma,
            generator=self.generator,
        ).returns

    def objective(self, obs: Tensor) -> Callable[[Tensor], Tensor]:
        """The function the optimiser maximises, for validated start observations.

        ``obs (O,)``: ``candidates (K, H, A) -> (K,)``; ``obs (B, O)``: ``candidates (B, K, H,
        A) -> (B, K)``, all ``B * K`` candidates in one rollout (row ``b``'s start repeated for
        its candidates).
        """
        if obs.ndim == 1:
            return lambda cands: self._returns(obs.expand(cands.shape[0], -1), cands)

        def score(cands: Tensor) -> Tensor:
            rows, k = cands.shape[:2]
            starts = obs.unsqueeze(1).expand(rows, k, -1).reshape(rows * k, -1)
            return self._returns(starts, cands.reshape(rows * k, *cands.shape[2:])).view(rows, k)

        return score

    @torch.no_grad()
    def plan(self, obs: Tensor, generators: Generators | None = None) -> Tensor:
        """Optimised action sequences from ``obs (B, O)`` -> ``(B, H, A)``, or ``(O,)`` -> ``(H, A)``.

        Args:
            obs: start observations, validated here once (the optimisation loop does not
                re-check them).
            generators: the optimiser's randomness, one generator per row (or one for all);
                default: the optimiser's generator.

        With the optimiser config's ``plan_budget_ms`` the optimiser stops iterating when the
        budget is spent (:mod:`mbrl.planners.deadline`); each call is recorded in
        :attr:`plan_stats`.

        Raises:
            TypeError: ``obs`` is not numeric (e.g. a string).
            ValueError: ``obs`` not ``(O,)`` / ``(B, O)``, or holding NaN/inf; a list of
                ``generators`` whose length is not ``B``.
            PlanningNonFiniteError: every candidate scored non-finite, with the optimiser
                config's ``on_nonfinite="raise"`` (by default a ``RuntimeWarning``).
        """
        deadline = self.start_plan(self.optimizer.device)
        starts = as_obs_batch(obs, self.model.obs_dim, self.optimizer.device)
        rows = starts.shape[0]
        initial = self._initial(rows)
        opt = self.optimizer
        if rows == 1:
            # The single-start objective: what compile_planner replaces.
            single = self.objective(starts[0])
            plan = opt.optimize(single, initial[0], generators, deadline).unsqueeze(0)
        else:
            plan = opt.optimize(self.objective(starts), initial, generators, deadline)
        self._previous = plan
        self.finish_plan(deadline, opt.last_run.iterations, opt.last_run.stopped_early)
        return plan[0] if _single(obs) else plan


def _single(obs: object) -> bool:
    """Whether validated ``obs`` was one observation ``(O,)`` rather than a batch."""
    ndim = getattr(obs, "ndim", None)
    return (ndim if ndim is not None else torch.as_tensor(obs).ndim) == 1
