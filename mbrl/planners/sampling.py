"""Sampling-based MPC planners: a trajectory optimiser scoring candidates by model rollouts.

Value and policy (TD-MPC's recipe, Hansen et al. 2022): a :class:`SamplingPlanner` may score
each candidate as

    return = sum_{t < H} gamma^t * alive_t * r_t  +  gamma^H * alive_H * V(s_H)

with a terminal value ``V`` (a :class:`~mbrl.models.value_model.LearnedValue`: an ensemble
read as ``mean - pessimism * std``, clipped to the range of its targets), so a short horizon
sees past its end; the sum is exactly :func:`~mbrl.rollout.core.simulate`'s. A rollout policy
(a :class:`~mbrl.models.policy_model.LearnedPolicy`) is rolled through the model from each
start state, and its action sequences join every optimiser iteration as proposals (a
fraction of the population, :class:`SearchAidsConfig`) and warm-start the optimiser's mean
where there is no previous plan to shift. The optimiser stays model-free: it gets the
proposals as tensors (:meth:`~mbrl.planners.optimizer.TrajectoryOptimizer.optimize`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel, ModelState
from mbrl.planners.base import Planner, as_obs_batch
from mbrl.planners.noise import Generators
from mbrl.planners.optimizer import TrajectoryOptimizer, shift_sequences
from mbrl.rollout.core import ValueFn, simulate
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.util.configs import bounded, check_config
from mbrl.validation import check_positive_int

PolicyFn = Callable[[Tensor, "torch.Generator | None"], Tensor]
"""``policy(obs (M, O), generator) -> encoded actions (M, A)``: a rollout policy's sample
(e.g. :meth:`LearnedPolicy.sample <mbrl.models.policy_model.LearnedPolicy.sample>`)."""
PolicyModeFn = Callable[[Tensor], Tensor]
"""``mode(obs (M, O)) -> (M, A)``: the policy's most likely action (its deterministic form)."""


@dataclass(frozen=True)
class SearchAidsConfig:
    """How a :class:`SamplingPlanner` uses a learned value and policy (planner options next
    to the optimiser's: ``--planner-opt policy_fraction=0.1``).

    Attributes:
        policy_fraction: share of each optimiser iteration's population taken by the
            policy's proposals, ``J = round(policy_fraction * population)`` sequences per
            start state (default 0.05: TD-MPC's 24 of 512). Needs a policy; 0 keeps only the
            warm start.
        policy_warm_start: start the optimiser's mean from the policy's sequence where there
            is no previous plan (the first plan of an episode) and fill the tail that
            shifting the previous plan opens with it (default True). Needs a policy.
        value_pessimism: standard deviations a :class:`~mbrl.models.value_model.LearnedValue`
            terminal value subtracts for this planner (default None: the value's own, 1.0).
            Needs a ``LearnedValue``.
    """

    policy_fraction: float = bounded(0.05, ge=0.0, lt=1.0)
    policy_warm_start: bool = True
    value_pessimism: float | None = bounded(None, ge=0.0)

    def __post_init__(self) -> None:
        check_config(self)


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
    (sampling models) and the policy's samples come from ``generator`` and are drawn for the
    whole batch in one call.

    Terminal value and policy prior: see the module docstring. With ``terminal_value`` every
    particle's return gains ``gamma^H * alive_H * V(obs_H)`` (non-finite values count as 0);
    with ``policy`` each plan first rolls ``J`` policy sequences per start state through the
    model (one particle each; the first from ``policy_mode`` when given, the others sampled)
    and hands them to the optimiser as proposals.

    Args:
        model: dynamics model.
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``.
        optimizer: CEM, MPPI, random shooting, or any :class:`TrajectoryOptimizer`.
        horizon: planning horizon ``H``.
        n_particles: particles ``P`` per candidate (default 1).
        gamma: discount (default 1).
        generator: randomness of the rollouts (default: the optimiser's).
        warm_start: start from the shifted previous solution (default True).
        terminal_value: ``V(obs (M, O)) -> (M,)`` added after the last step (default None);
            it is an infinite-horizon discounted value, so it needs ``0 < gamma < 1``.
        policy: ``sample(obs (M, O), generator) -> (M, A)`` proposing action sequences
            (default None).
        policy_mode: ``mode(obs (M, O)) -> (M, A)`` of the same policy: its deterministic
            sequence is the first proposal and the warm start (default: a sampled one).
        aids: :class:`SearchAidsConfig` (default ``SearchAidsConfig()``).

    Raises:
        ValueError: bad horizon / particles, optimiser bounds that do not match the model, a
            terminal value with ``gamma`` outside ``(0, 1)``, ``policy_mode`` without
            ``policy``, or a policy fraction that leaves no sampled candidate (or needs an
            optimiser config with a ``population``).
    """

    accepts_value_fn = True
    accepts_policy_fn = True

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
        terminal_value: ValueFn | None = None,
        policy: PolicyFn | None = None,
        policy_mode: PolicyModeFn | None = None,
        aids: SearchAidsConfig | None = None,
    ) -> None:
        check_positive_int(horizon, "horizon")
        check_positive_int(n_particles, "n_particles")
        if optimizer.low.shape != (model.action_dim,):
            raise ValueError(
                f"optimizer bounds have shape {tuple(optimizer.low.shape)}, but the model's action "
                f"size is {model.action_dim}"
            )
        aids = SearchAidsConfig() if aids is None else aids
        if terminal_value is not None and not 0.0 < gamma < 1.0:
            raise ValueError(
                "terminal_value is an infinite-horizon discounted value: the planner's gamma "
                f"must be the discount it was fitted with, in (0, 1); got gamma={gamma}"
            )
        if policy_mode is not None and policy is None:
            raise ValueError("policy_mode needs the policy's sample function as policy")
        self.terminal_value = terminal_value
        self.policy = policy
        self.policy_mode = policy_mode
        self.aids = aids
        self.n_proposals = _proposal_count(optimizer, aids) if policy is not None else 0
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
        self._padded = 0  # trailing steps of _previous that advance() padded

    @property
    def plan_budget_ms(self) -> float | None:
        """The optimiser config's ``plan_budget_ms`` (None: no budget)."""
        return self.optimizer.plan_budget_ms

    def reset(self) -> None:
        """Forget the warm start and the optimiser's carried state."""
        self._previous = None
        self._padded = 0
        self.optimizer.reset()

    def advance(self, steps: int) -> None:
        """Shift the warm start (and the optimiser's carried state) by ``steps`` executed steps,
        padding with the middle of the action box."""
        if self._previous is None or steps <= 0:
            return
        self._previous = shift_sequences(self._previous, steps, self.optimizer.middle)
        self._padded = min(self._padded + steps, self.horizon)
        self.optimizer.shift(steps)

    def _initial(self, rows: int, policy_plan: Tensor | None = None) -> Tensor:
        """Warm start ``(B, H, A)``: the previous plan as shifted, or the middle of the box;
        with ``policy_plan (B, H, A)`` (``policy_warm_start``), the policy's sequence instead
        of the middle, wherever that would have been used."""
        if self._previous is not None and self._previous.shape[0] != rows:
            self.reset()  # the rows are other problems now: nothing to warm-start from
        if self._previous is None or not self.warm_start:
            if policy_plan is not None:
                return policy_plan
            mid = self.optimizer.middle
            return mid.expand(rows, self.horizon, -1).clone()
        if policy_plan is None or self._padded == 0:
            return self._previous
        # The policy's own continuation is a better guess for the steps the shift opened
        # than the middle of the box.
        head = self.horizon - self._padded
        return torch.cat([self._previous[:, :head], policy_plan[:, head:]], dim=1)

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
            terminal_value=self.terminal_value,
        ).returns

    def policy_sequences(self, starts: Tensor, count: int) -> Tensor:
        """``count`` action sequences per start ``(B, O)`` -> ``(B, count, H, A)``, made by
        rolling the policy through the model (one particle each, the planner's generator).

        Sequence 0 of each start follows ``policy_mode`` when the planner has one; the others
        are the policy's samples.

        Raises:
            ValueError: the planner has no policy, or ``count < 1``.
        """
        if self.policy is None:
            raise ValueError("policy_sequences needs a planner built with a policy")
        check_positive_int(count, "count")
        policy, mode, gen = self.policy, self.policy_mode, self.generator
        rows = starts.shape[0]

        def act(t: int, state: ModelState, obs: Tensor) -> Tensor:
            if mode is None:
                return policy(obs, gen)
            grouped = obs.view(rows, count, -1)
            first = mode(grouped[:, 0])
            if count == 1:
                return first
            rest = policy(grouped[:, 1:].reshape(rows * (count - 1), -1), gen)
            rest = rest.view(rows, count - 1, -1)
            return torch.cat([first.unsqueeze(1), rest], dim=1).reshape(rows * count, -1)

        out = simulate(
            self.model,
            starts.repeat_interleave(count, dim=0),
            self.reward_fn,
            self.termination_fn,
            policy=act,
            horizon=self.horizon,
            generator=gen,
            record=True,
        )
        assert out.actions is not None
        # (H, 1, B * count, A) -> (B, count, H, A)
        seqs = out.actions[:, 0].transpose(0, 1).reshape(rows, count, self.horizon, -1)
        return self.optimizer.clamp(seqs.to(torch.float32))

    def _policy_prior(self, starts: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The proposals ``(B, J, H, A)`` and the warm-start sequence ``(B, H, A)`` of the
        policy (each None where not used)."""
        if self.policy is None:
            return None, None
        count = max(self.n_proposals, 1)
        if self.n_proposals == 0 and not self.aids.policy_warm_start:
            return None, None
        seqs = self.policy_sequences(starts, count)
        proposals = seqs if self.n_proposals > 0 else None
        warm = seqs[:, 0] if self.aids.policy_warm_start else None
        return proposals, warm

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
        if self.terminal_value is not None and "objective" in self.__dict__:
            raise RuntimeError(
                "this planner's objective was replaced (compile_planner), and the compiled "
                "rollout has no terminal value: plan with the eager rollout "
                "(rollout_backend='eager') or without terminal_value"
            )
        rows = starts.shape[0]
        proposals, policy_plan = self._policy_prior(starts)
        initial = self._initial(rows, policy_plan)
        opt = self.optimizer
        if rows == 1:
            # The single-start objective: what compile_planner replaces.
            single = self.objective(starts[0])
            extra = None if proposals is None else proposals[0]
            plan = opt.optimize(single, initial[0], generators, deadline, extra).unsqueeze(0)
        else:
            plan = opt.optimize(self.objective(starts), initial, generators, deadline, proposals)
        self._previous = plan
        self._padded = 0
        self.finish_plan(deadline, opt.last_run.iterations, opt.last_run.stopped_early)
        return plan[0] if _single(obs) else plan


def _proposal_count(optimizer: TrajectoryOptimizer, aids: SearchAidsConfig) -> int:
    """``J = round(policy_fraction * population)`` of the optimiser's config, checked."""
    if aids.policy_fraction == 0:
        return 0
    population = getattr(getattr(optimizer, "config", None), "population", None)
    if not isinstance(population, int):
        raise ValueError(
            f"policy_fraction={aids.policy_fraction} needs an optimiser whose config has a "
            f"population; {type(optimizer).__name__} has none (use policy_fraction=0)"
        )
    count = round(aids.policy_fraction * population)
    if count >= population:
        raise ValueError(
            f"policy_fraction={aids.policy_fraction} of population {population} leaves no "
            "sampled candidate; use a smaller fraction"
        )
    return count


def _single(obs: object) -> bool:
    """Whether validated ``obs`` was one observation ``(O,)`` rather than a batch."""
    ndim = getattr(obs, "ndim", None)
    return (ndim if ndim is not None else torch.as_tensor(obs).ndim) == 1
