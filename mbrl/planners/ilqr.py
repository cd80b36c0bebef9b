"""Control-limited iterative LQR through any differentiable dynamics model.

The planner minimises the model's discounted cost (minus the reward) over ``H`` actions:

* **Local models** at the nominal trajectory: dynamics Jacobians and the stage cost's gradient
  and Hessian by autograd, vectorised over all ``B * H`` points at once
  (:mod:`mbrl.planners.ilqr_derivatives`).
* **Backward pass** (control-limited DDP, Tassa et al. 2014): the feedforward step solves a
  box-constrained QP (:func:`mbrl.planners.ilqr_boxqp.box_qp`) so ``u_bar + k`` stays inside the
  action bounds; feedback gains are zero on the clamped action dimensions. Levenberg-Marquardt
  regularisation ``Q_uu + mu I`` grows on failure and shrinks on success, per problem.
* **Forward pass**: all line-search step sizes are rolled out in one batched pass and the largest
  step with sufficient decrease is taken; actions are clamped into the bounds, so no returned
  action ever leaves the box.
* **Stopping**: relative cost change (or expected decrease) below ``tol``, or ``max_iterations``.

Everything is batched over ``B`` problems (start states and/or initial action sequences).
:class:`ILQR` is the MPC planner (warm start from the previous solution shifted by the steps
reported through :meth:`ILQR.advance`, random restarts, fallback to the last good plan when a
plan hits non-finite values); it returns the feedback gains too (:meth:`ILQR.plan_with_gains`)
so an agent can apply ``u = u_bar + K (x - x_bar)``.

Every model is planned through its mean, ``model.propagating("expectation")``: ensembles
through the member mean, GPs through the posterior mean (whatever their configured
propagation, belief propagation included), never through samples, so the same inputs give the
same plan. Rollouts (nominal trajectory and line search) are the rollout core
(:func:`mbrl.rollout.core.simulate` with the feedback policy as its policy), so rewards,
termination and divergence follow its rule; a rollout that diverges costs ``+inf``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.models.base import DIFFERENTIABLE, EXPECTATION, DynamicsModel
from mbrl.planners.base import Planner, PlanningNonFiniteError, as_obs_tensor
from mbrl.planners.deadline import AnytimeConfig, Deadline
from mbrl.planners.ilqr_boxqp import box_qp
from mbrl.planners.ilqr_derivatives import (
    Derivatives,
    NotDifferentiableError,
    cost_derivatives,
    dynamics_jacobians,
)
from mbrl.planners.optimizer import shift_sequences
from mbrl.planners.registry import PlannerContext, register_planner
from mbrl.rollout.core import simulate
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.util.configs import config_from_options
from mbrl.validation import check_positive_int

__all__ = [
    "ILQR",
    "ILQRConfig",
    "ILQRNonFiniteError",
    "ILQRSolution",
    "NotDifferentiableError",
]


class ILQRNonFiniteError(PlanningNonFiniteError):
    """A plan hit a non-finite cost or dynamics Jacobian and was aborted."""


@dataclass(frozen=True)
class ILQRConfig(AnytimeConfig):
    """Settings of :class:`ILQR` (and, keyword-only, ``plan_budget_ms`` of
    :class:`~mbrl.planners.deadline.AnytimeConfig`: :meth:`ILQR.plan` stops iterating once it
    is spent, after the first iteration, and returns the trajectory so far).

    Attributes:
        max_iterations: iLQR iterations per warm-started plan (default 10).
        cold_iterations: iterations of a plan without a warm start, i.e. the first plan of an
            episode or a batched :meth:`ILQR.solve` without ``u_init`` (default 50).
        tol: stop when the relative cost decrease of an accepted step, or the expected decrease
            of the next one, falls below ``tol`` (default 1e-4).
        reg_init: initial Levenberg-Marquardt regularisation ``mu`` added to ``Q_uu``
            (default 1e-6).
        reg_min: ``mu`` never shrinks below this (default 1e-6).
        reg_max: a problem whose ``mu`` exceeds this stops, unconverged (default 1e10).
        reg_factor: ``mu`` is multiplied by this on failure and divided on success (default 10).
        line_search_steps: step sizes ``10**linspace(0, -3, n)`` tried at once (default 10).
        armijo: minimum ratio of actual to expected cost decrease to accept a step
            (default 1e-4).
        restarts: extra random initial action sequences solved alongside the middle of the box
            in a cold plan (no warm start); the lowest-cost result wins (default 3; 0 disables).
            Warm-started plans do not restart: comparing local optima by their truncated-horizon
            cost at every step favours myopic plans (on Pendulum, staying at the bottom).
        restart_knots: random restarts are piecewise-linear through this many uniformly drawn
            knots in the action box (default 4).
        boxqp_iterations: projected-Newton iterations of the feedforward QP (default 50).
        on_nonfinite: what :meth:`ILQR.plan` does when a plan hits a non-finite cost or Jacobian:
            ``"warn"`` (default) warns and returns the warm start (the last good plan, shifted
            by :meth:`ILQR.advance`); ``"raise"`` raises :class:`ILQRNonFiniteError` (the last good plan is kept as warm
            start either way).
    """

    max_iterations: int = 10
    cold_iterations: int = 50
    tol: float = 1e-4
    reg_init: float = 1e-6
    reg_min: float = 1e-6
    reg_max: float = 1e10
    reg_factor: float = 10.0
    line_search_steps: int = 10
    armijo: float = 1e-4
    restarts: int = 3
    restart_knots: int = 4
    boxqp_iterations: int = 50
    on_nonfinite: str = "warn"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.max_iterations, "max_iterations")
        check_positive_int(self.cold_iterations, "cold_iterations")
        check_positive_int(self.line_search_steps, "line_search_steps")
        check_positive_int(self.restarts, "restarts", minimum=0)
        check_positive_int(self.restart_knots, "restart_knots", minimum=2)
        check_positive_int(self.boxqp_iterations, "boxqp_iterations")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol}")
        if not 0 < self.reg_min <= self.reg_init <= self.reg_max:
            raise ValueError(
                "need 0 < reg_min <= reg_init <= reg_max, got "
                f"{self.reg_min}, {self.reg_init}, {self.reg_max}"
            )
        if not self.reg_factor > 1:
            raise ValueError(f"reg_factor must be > 1, got {self.reg_factor}")
        if not 0 <= self.armijo < 1:
            raise ValueError(f"armijo must lie in [0, 1), got {self.armijo}")
        if self.on_nonfinite not in ("warn", "raise"):
            raise ValueError(f"on_nonfinite must be 'warn' or 'raise', got {self.on_nonfinite!r}")


@dataclass(frozen=True)
class ILQRSolution:
    """An iLQR plan with its local feedback policy ``u_t = u_bar_t + K_t (x_t - x_bar_t)``.

    Shapes are given for the batched :meth:`ILQR.solve` (leading ``B``);
    :meth:`ILQR.plan_with_gains` returns one problem without the leading dim.

    Attributes:
        x_bar: nominal model states ``(B, H + 1, S)`` (observations for observation-space
            models); ``x_bar[:, 0]`` is the start.
        u_bar: nominal actions ``(B, H, A)``, inside the action bounds.
        K: feedback gains ``(B, H, A, S)`` (zero rows on action dims clamped at a bound), from
            the last backward pass.
        cost: model cost (minus the discounted return) of the nominal trajectory ``(B,)``.
        iterations: iLQR iterations run ``(B,)`` (int64).
        converged: bool ``(B,)``: stopped by the tolerance, not by the iteration or
            regularisation limit.
    """

    x_bar: Tensor
    u_bar: Tensor
    K: Tensor
    cost: Tensor
    iterations: Tensor
    converged: Tensor

    def __getitem__(self, index: int | slice | Tensor) -> ILQRSolution:
        """Select problems of a batched solution (``int`` drops the batch dim)."""
        return ILQRSolution(*(t[index] for t in self.__dict__.values()))

    def action(self, t: int, state: Tensor, low: Tensor, high: Tensor) -> Tensor:
        """Feedback action ``clamp(u_bar_t + K_t (state - x_bar_t), low, high)``.

        Args:
            t: time step ``0 <= t < H``; state: ``(S,)`` for an unbatched solution or ``(B, S)``.
            low / high: action bounds ``(A,)``.

        Returns:
            ``(A,)`` or ``(B, A)``.
        """
        dx = state.to(self.x_bar.dtype) - self.x_bar[..., t, :]
        u = self.u_bar[..., t, :] + (self.K[..., t, :, :] @ dx.unsqueeze(-1)).squeeze(-1)
        return torch.maximum(torch.minimum(u, high), low)


@dataclass(frozen=True)
class _Trajectory:
    x: Tensor  # (B, H + 1, S)
    u: Tensor  # (B, H, A)
    cost: Tensor  # (B,)
    weights: Tensor  # (B, H): gamma^t * alive_t


class ILQR(Planner):
    """Control-limited iLQR MPC planner over any differentiable :class:`DynamicsModel`.

    ``plan(obs (O,)) -> (H, A)`` minimises ``-sum_t gamma^t r(x_t, u_t, x_{t+1})`` (rewards
    after a predicted termination do not count, as in :func:`mbrl.rollout.rollout`) through the
    model's deterministic mean dynamics (``model.propagating("expectation")``), warm-started
    from the previous plan shifted by :meth:`advance` and, without a warm start, restarted from
    ``config.restarts`` random sequences. :meth:`plan_with_gains` also returns the
    feedback gains; :meth:`solve` is the batched solver over ``B`` start states.

    Args:
        model: a model whose mean (``model.propagating("expectation")``) declares the
            ``differentiable`` capability and has tensor states.
        reward_fn: ``(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``, differentiable.
        low / high: action bounds ``(A,)`` (finite, ``low < high``).
        horizon: planning horizon ``H``.
        config: :class:`ILQRConfig` (defaults documented there).
        termination_fn: optional ``(obs, action, next_obs) -> bool (M,)``.
        gamma: discount per step (default 1).
        generator: randomness of the restarts (default: a CPU-seeded generator on the bounds'
            device, seed 0).

    Raises:
        TypeError: the model's mean does not declare the ``differentiable`` capability (the
            message names it).
        ValueError: bad bounds, horizon or gamma.
    """

    supports_continuous = True
    supports_discrete = False

    def __init__(
        self,
        model: DynamicsModel,
        reward_fn: RewardFn,
        low: Tensor,
        high: Tensor,
        horizon: int,
        config: ILQRConfig | None = None,
        *,
        termination_fn: TerminationFn | None = None,
        gamma: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(model, DynamicsModel):
            raise TypeError(f"model must be a DynamicsModel, got {type(model).__name__}")
        mean = model.propagating(EXPECTATION)
        caps = mean.capabilities
        if DIFFERENTIABLE not in caps:
            raise TypeError(
                f"ILQR differentiates through the dynamics model's mean, but "
                f"{type(model).__name__} does not declare the {DIFFERENTIABLE!r} capability "
                f"(it has {sorted(caps)}); use a differentiable model (ensemble, mlp, gp, "
                "known pendulum) or a sampling planner (cem, mppi)"
            )
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        check_positive_int(horizon, "horizon")
        low = torch.as_tensor(low, dtype=torch.float32)
        high = torch.as_tensor(high, dtype=torch.float32, device=low.device)
        if low.shape != (model.action_dim,) or high.shape != (model.action_dim,):
            raise ValueError(
                f"low and high must have shape ({model.action_dim},) for {type(model).__name__}, "
                f"got {tuple(low.shape)} and {tuple(high.shape)}"
            )
        if not bool(torch.isfinite(low).all() & torch.isfinite(high).all() & (low < high).all()):
            raise ValueError(
                f"action bounds must be finite with low < high, got low={low.tolist()} "
                f"high={high.tolist()}"
            )
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        self.model = model
        self.dynamics = mean  # what every rollout and derivative steps: the model's mean
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.horizon = horizon
        self.config = config if config is not None else ILQRConfig()
        self.gamma = float(gamma)
        self.low, self.high = low, high
        if generator is None:
            generator = torch.Generator(device=low.device).manual_seed(0)
        self.generator = generator
        self._previous: Tensor | None = None
        self._cut_short = False

    # ------------------------------------------------------------------ planner API
    def reset(self) -> None:
        """Forget the warm start (call at the start of each episode)."""
        self._previous = None

    def advance(self, steps: int) -> None:
        """``steps`` actions of the last plan were executed: the warm start becomes that plan
        from step ``steps`` on, padded by repeating its last action."""
        if self._previous is None or steps <= 0:
            return
        self._previous = shift_sequences(self._previous, steps, self._previous[-1])

    def plan(self, obs: Tensor) -> Tensor:
        """Plan from ``obs (O,)``: ``(H, A)`` actions inside the bounds.

        Raises:
            ValueError: ``obs`` of the wrong shape or non-finite.
            ILQRNonFiniteError: only with ``on_nonfinite="raise"``.
        """
        return self.plan_with_gains(obs).u_bar

    def plan_with_gains(self, obs: Tensor) -> ILQRSolution:
        """Plan from ``obs (O,)`` and return the unbatched :class:`ILQRSolution`.

        ``x_bar (H + 1, S)``, ``u_bar (H, A)``, ``K (H, A, S)``, scalar ``cost``,
        ``iterations``, ``converged``. The plan becomes the next call's warm start (shifted by
        :meth:`advance` when the agent executed some of it).

        When the solve hits a non-finite cost or Jacobian, the warm start (the previous good
        plan as shifted, or the middle of the box if there is none) is returned with zero gains,
        ``iterations == 0`` and ``converged == False``, after a warning (or
        :class:`ILQRNonFiniteError` with ``on_nonfinite="raise"``).
        """
        deadline = self.start_plan(self.low.device)
        obs = as_obs_tensor(obs, self.model.obs_dim, self.low.device)
        warm = self._previous is not None
        u_init = self._previous if warm else self._mid_sequence(1)[0]
        iterations = self.config.max_iterations if warm else self.config.cold_iterations
        try:
            sol = self._solve(
                obs.unsqueeze(0),
                u_init.unsqueeze(0),
                iterations,
                0 if warm else self.config.restarts,
                deadline,
            )[0]
        except ILQRNonFiniteError as err:
            fallback = u_init
            self._previous = fallback
            self.finish_plan(deadline, 0, False)
            if self.config.on_nonfinite == "raise":
                raise
            warnings.warn(
                f"{err}; keeping the last good plan (the warm start)",
                RuntimeWarning,
                stacklevel=2,
            )
            with torch.no_grad():
                x0 = self._initial_state(obs.unsqueeze(0))[0]
            return ILQRSolution(
                x_bar=x0.expand(self.horizon + 1, -1).clone(),
                u_bar=fallback,
                K=fallback.new_zeros(self.horizon, self.model.action_dim, x0.shape[0]),
                cost=torch.tensor(float("nan")),
                iterations=torch.tensor(0),
                converged=torch.tensor(False),
            )
        self._previous = sol.u_bar
        self.finish_plan(deadline, int(sol.iterations), self._cut_short)
        return sol

    # ------------------------------------------------------------------ batched solver
    def solve(
        self,
        obs: Tensor,
        u_init: Tensor | None = None,
        *,
        max_iterations: int | None = None,
        restarts: int = 0,
        deadline: Deadline | None = None,
    ) -> ILQRSolution:
        """Solve ``B`` problems at once from start observations ``obs (B, O)``.

        Args:
            obs: start observations ``(B, O)``.
            u_init: initial action sequences ``(B, H, A)`` (default: the middle of the box);
                clamped into the bounds.
            max_iterations: iteration limit (default ``config.cold_iterations``).
            restarts: extra random initial sequences per problem, solved in the same batch;
                each problem keeps its lowest-cost result.
            deadline: stop iterating when it expires, after the first iteration (default: no
                deadline; the config's ``plan_budget_ms`` applies to :meth:`plan` only).

        Returns:
            :class:`ILQRSolution` with leading dim ``B``.

        Raises:
            ValueError: bad shapes or non-finite ``obs`` / ``u_init``.
            NotDifferentiableError: the model or the reward cannot be differentiated.
            ILQRNonFiniteError: a non-finite cost (initial trajectory) or dynamics/cost
                derivative; the message names the model and the time step.
        """
        self.model.check_obs(obs)
        b, h, a = obs.shape[0], self.horizon, self.model.action_dim
        if u_init is None:
            u_init = self._mid_sequence(b)
        u_init = torch.as_tensor(u_init, dtype=torch.float32, device=self.low.device)
        if u_init.shape != (b, h, a):
            raise ValueError(f"u_init must have shape ({b}, {h}, {a}), got {tuple(u_init.shape)}")
        if not bool(torch.isfinite(u_init).all()):
            raise ValueError("u_init contains NaN or inf")
        check_positive_int(restarts, "restarts", minimum=0)
        iters = self.config.cold_iterations if max_iterations is None else max_iterations
        check_positive_int(iters, "max_iterations")
        return self._solve(obs, u_init, iters, restarts, deadline or Deadline(None))

    # ------------------------------------------------------------------ internals
    def _solve(
        self, obs: Tensor, u_init: Tensor, iters: int, restarts: int, deadline: Deadline
    ) -> ILQRSolution:
        """:meth:`solve` on validated ``obs (B, O)`` and ``u_init (B, H, A)``."""
        b = obs.shape[0]
        obs = obs.to(self.low.device, torch.float32)
        if restarts:
            u_init = torch.cat([u_init, self._random_sequences(restarts * b)])
            obs = obs.repeat(restarts + 1, 1)
        with torch.no_grad():
            sol = self._optimise(obs, self._clamp(u_init), iters, deadline)
        if restarts:
            best = sol.cost.view(restarts + 1, b).argmin(0) * b + torch.arange(b, device=obs.device)
            sol = sol[best]
        return sol

    def _clamp(self, u: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(u, self.high), self.low)

    def _mid_sequence(self, b: int) -> Tensor:
        mid = (self.low + self.high) / 2
        return mid.expand(b, self.horizon, -1).clone()

    def _random_sequences(self, n: int) -> Tensor:
        """``n`` piecewise-linear sequences ``(n, H, A)`` through random knots in the box."""
        k, h = self.config.restart_knots, self.horizon
        knots = torch.rand(
            n, k, self.model.action_dim, generator=self.generator, device=self.generator.device
        ).to(self.low.device)
        knots = self.low + (self.high - self.low) * knots
        pos = torch.linspace(0, k - 1, h, device=self.low.device)
        i0 = pos.floor().long().clamp(max=k - 2)
        w = (pos - i0).view(1, h, 1)
        return knots[:, i0] * (1 - w) + knots[:, i0 + 1] * w

    def _initial_state(self, obs: Tensor) -> Tensor:
        state = self.dynamics.initial_state(obs, 1)
        if not isinstance(state, Tensor) or state.ndim != 2:
            raise TypeError(
                f"ILQR needs a model whose mean has tensor states (M, S); "
                f"{type(self.model).__name__}.propagating('expectation').initial_state returned "
                f"{type(state).__name__}"
            )
        return state

    def _stage_cost(self, x: Tensor, u: Tensor, x_next: Tensor) -> Tensor:
        """Per-row cost ``-r (M,)`` of states ``x, x_next (M, S)`` and actions ``u (M, A)``."""
        model = self.dynamics
        return -self.reward_fn(model.observe(x), u, model.observe(x_next))

    def _rollout(self, x0: Tensor, policy) -> _Trajectory:
        """Roll ``policy(t, x (M, S)) -> u (M, A)`` (clamped into the bounds) from ``x0 (M, S)``
        through the rollout core; the cost per row is minus its return (``+inf`` diverged)."""
        res = simulate(
            self.dynamics,
            self.dynamics.observe(x0),
            self.reward_fn,
            self.termination_fn,
            policy=lambda t, x, _obs: self._clamp(policy(t, x)),
            horizon=self.horizon,
            gamma=self.gamma,
            start_state=x0,
            record=True,
        )
        assert res.states is not None and res.actions is not None and res.weights is not None
        return _Trajectory(
            torch.stack(res.states, 1),
            res.actions[:, 0].transpose(0, 1),
            -res.returns,
            res.weights[:, 0].transpose(0, 1),
        )

    def _derivatives(self, traj: _Trajectory, active: Tensor) -> Derivatives:
        b, h = traj.u.shape[:2]
        s = traj.x.shape[-1]
        x = traj.x[:, :-1].reshape(b * h, s)
        u = traj.u.reshape(b * h, -1)
        nxt, f_x, f_u = dynamics_jacobians(self.dynamics, x, u, type(self.model).__name__)
        l_x, l_u, l_xx, l_uu, l_ux = cost_derivatives(self._stage_cost, x, u, nxt, f_x, f_u)
        w = traj.weights.reshape(b * h)
        d = Derivatives(
            f_x,
            f_u,
            w[:, None] * l_x,
            w[:, None] * l_u,
            w[:, None, None] * l_xx,
            w[:, None, None] * l_uu,
            w[:, None, None] * l_ux,
        ).view(b, h)
        name = type(self.model).__name__
        for field, what in (
            ("f_x", f"dynamics Jacobian d{name}.step/dstate"),
            ("f_u", f"dynamics Jacobian d{name}.step/daction"),
            ("l_x", "cost gradient"),
            ("l_u", "cost gradient"),
            ("l_xx", "cost Hessian"),
            ("l_uu", "cost Hessian"),
            ("l_ux", "cost Hessian"),
        ):
            t = getattr(d, field)
            bad = ~torch.isfinite(t.flatten(2)).all(-1) & active.unsqueeze(1)
            if bool(bad.any()):
                prob, step = (int(i) for i in torch.nonzero(bad)[0])
                raise ILQRNonFiniteError(
                    f"iLQR aborted: the {what} ({field}) is non-finite at time step {step} of "
                    f"problem {prob} (model {name})"
                )
        return d

    def _backward(
        self, d: Derivatives, u: Tensor, mu: Tensor, k_prev: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Control-limited Riccati pass over ``d (B, H, ...)`` at actions ``u (B, H, A)``.

        Returns ``k (B, H, A)``, ``K (B, H, A, S)``, the expected-decrease terms
        ``dV1, dV2 (B,)`` (decrease ``-(alpha dV1 + alpha^2 dV2)`` for step size ``alpha``) and
        ``ok (B,)`` (``Q_uu + mu I`` positive definite everywhere and everything finite).
        Problems are independent: a failure in one never touches another's numbers.
        """
        b, h, a = u.shape
        s = d.f_x.shape[-1]
        # Stacked local models: z = (x, u), F = [f_x, f_u] (B, H, S, S + A).
        F = torch.cat([d.f_x, d.f_u], dim=3)
        Ft = F.transpose(2, 3)
        l_z = torch.cat([d.l_x, d.l_u], dim=2)
        l_zz = torch.cat(
            [
                torch.cat([d.l_xx, d.l_ux.transpose(2, 3)], dim=3),
                torch.cat([d.l_ux, d.l_uu], dim=3),
            ],
            dim=2,
        )
        lo_all, hi_all = self.low - u, self.high - u
        reg = mu.view(b, 1, 1) * torch.eye(a, dtype=u.dtype, device=u.device)
        eye_s = torch.eye(s, dtype=u.dtype, device=u.device).expand(b, s, s)
        v_x = u.new_zeros(b, s, 1)
        v_xx = u.new_zeros(b, s, s)
        ok = torch.ones(b, dtype=torch.bool, device=u.device)
        ks, gains, q_us, q_uus = [], [], [], []
        for t in range(h - 1, -1, -1):
            q_z = l_z[:, t].unsqueeze(-1) + Ft[:, t] @ v_x  # (B, S + A, 1)
            q_zz = l_zz[:, t] + Ft[:, t] @ v_xx @ F[:, t]  # (B, S + A, S + A)
            q_zz = 0.5 * (q_zz + q_zz.transpose(1, 2))
            q_u, q_uu, q_ux = q_z[:, s:], q_zz[:, s:, s:], q_zz[:, s:, :s]
            chol, info = torch.linalg.cholesky_ex(q_uu + reg)
            pd = info == 0
            k = -torch.cholesky_solve(q_u, chol).squeeze(-1)
            lo, hi = lo_all[:, t], hi_all[:, t]
            inside = ((k >= lo) & (k <= hi)).all(-1)
            free_chol = chol
            if a == 1:
                # Scalar QP: the clamped Newton step is exact; the dim is free iff inside.
                k = torch.maximum(torch.minimum(k, hi), lo)
                free = inside.unsqueeze(-1)
            elif bool((inside | ~pd).all()):
                free = torch.ones_like(k, dtype=torch.bool)
            else:
                qp = box_qp(
                    q_uu + reg,
                    q_u.squeeze(-1),
                    lo,
                    hi,
                    torch.where(inside.unsqueeze(-1), k, k_prev[:, t]),
                    max_iterations=self.config.boxqp_iterations,
                )
                pd = pd & (qp.ok | inside)
                k = torch.where(inside.unsqueeze(-1), k, qp.x)
                free = torch.where(inside.unsqueeze(-1), True, qp.free)
                free_chol = torch.where(inside.view(b, 1, 1), chol, qp.free_hessian_cholesky)
            ok = ok & pd
            K = -torch.cholesky_solve(q_ux * free.unsqueeze(-1), free_chol)
            # V = G' Q G with G = [I; K] and the feedforward folded into the gradient.
            G = torch.cat([eye_s, K], dim=1)  # (B, S + A, S)
            Gt = G.transpose(1, 2)
            v_x = Gt @ (q_z + q_zz[:, :, s:] @ k.unsqueeze(-1))
            v_xx = Gt @ q_zz @ G
            v_xx = 0.5 * (v_xx + v_xx.transpose(1, 2))
            ks.append(k)
            gains.append(K)
            q_us.append(q_u.squeeze(-1))
            q_uus.append(q_uu)
        k = torch.stack(ks[::-1], 1)
        K = torch.stack(gains[::-1], 1)
        q_u = torch.stack(q_us[::-1], 1)
        q_uu = torch.stack(q_uus[::-1], 1)
        dv1 = (k * q_u).sum((1, 2))
        dv2 = 0.5 * (k.unsqueeze(-2) @ q_uu @ k.unsqueeze(-1)).sum((1, 2, 3))
        ok = ok & torch.isfinite(K).flatten(1).all(-1) & torch.isfinite(k).flatten(1).all(-1)
        ok = ok & torch.isfinite(dv1) & torch.isfinite(dv2)
        return k, K, dv1, dv2, ok

    def _optimise(
        self, obs: Tensor, u_init: Tensor, max_iterations: int, deadline: Deadline
    ) -> ILQRSolution:
        cfg = self.config
        x0 = self._initial_state(obs)
        b, h, a = u_init.shape
        s = x0.shape[1]
        traj = self._rollout(x0, lambda t, _x: u_init[:, t])
        if not bool(torch.isfinite(traj.cost).all()):
            bad = torch.nonzero(~torch.isfinite(traj.cost)).flatten().tolist()
            raise ILQRNonFiniteError(
                f"iLQR aborted: the cost of the initial trajectory is non-finite for problem(s) "
                f"{bad} (model {type(self.model).__name__})"
            )
        dtype, dev = traj.x.dtype, traj.x.device
        alphas = torch.logspace(0, -3, cfg.line_search_steps, dtype=dtype, device=dev)
        n_alpha = alphas.shape[0]
        mu = torch.full((b,), cfg.reg_init, dtype=dtype, device=dev)
        active = torch.ones(b, dtype=torch.bool, device=dev)
        converged = torch.zeros_like(active)
        iterations = torch.zeros(b, dtype=torch.long, device=dev)
        k_prev = torch.zeros(b, h, a, dtype=dtype, device=dev)
        gains = torch.zeros(b, h, a, s, dtype=dtype, device=dev)
        derivs: Derivatives | None = None
        self._cut_short = False  # set when the deadline ends the iterations
        for it in range(max_iterations):
            if not bool(active.any()):
                break
            if derivs is None:
                derivs = self._derivatives(traj, active)
            iterations = iterations + active.long()
            k, K, dv1, dv2, ok = self._backward(derivs, traj.u, mu, k_prev)
            ok = ok & active
            mu = torch.where(active & ~ok, mu * cfg.reg_factor, mu)
            k_prev = torch.where(ok.view(b, 1, 1), k, k_prev)
            gains = torch.where(ok.view(b, 1, 1, 1), K, gains)
            expected = -(dv1 + dv2)
            scale = traj.cost.abs().clamp_min(1e-8)
            small = ok & (expected <= cfg.tol * scale)
            step = ok & ~small
            if bool(step.any()):
                trial = self._line_search(x0, traj, k, K, alphas)
                actual = traj.cost.unsqueeze(0) - trial.cost.view(n_alpha, b)
                exp_a = -(alphas.view(-1, 1) * dv1 + alphas.view(-1, 1) ** 2 * dv2)
                accept = (actual > 0) & (actual >= cfg.armijo * exp_a)
                accept = accept & torch.isfinite(trial.cost.view(n_alpha, b))
                took = accept.any(0) & step
                pick = accept.to(torch.int8).argmax(0) * b + torch.arange(b, device=dev)
                new_cost = trial.cost[pick]
                rel = (traj.cost - new_cost) / scale
                traj = _Trajectory(
                    torch.where(took.view(b, 1, 1), trial.x[pick], traj.x),
                    torch.where(took.view(b, 1, 1), trial.u[pick], traj.u),
                    torch.where(took, new_cost, traj.cost),
                    torch.where(took.view(b, 1), trial.weights[pick], traj.weights),
                )
                mu = torch.where(took, (mu / cfg.reg_factor).clamp_min(cfg.reg_min), mu)
                mu = torch.where(step & ~took, mu * cfg.reg_factor, mu)
                converged = converged | (took & (rel < cfg.tol))
                if bool(took.any()):
                    derivs = None
            converged = converged | small
            active = active & ~converged & (mu <= cfg.reg_max)
            if it + 1 < max_iterations and deadline.expired() and bool(active.any()):
                self._cut_short = True
                break
        return ILQRSolution(
            x_bar=traj.x,
            u_bar=traj.u,
            K=gains,
            cost=traj.cost,
            iterations=iterations,
            converged=converged,
        )

    def _line_search(
        self, x0: Tensor, traj: _Trajectory, k: Tensor, K: Tensor, alphas: Tensor
    ) -> _Trajectory:
        """Roll out every step size at once: rows ``alpha_index * B + b``."""
        n = alphas.shape[0]
        b = x0.shape[0]
        x_bar = traj.x.repeat(n, 1, 1)
        u_ff = traj.u.repeat(n, 1, 1) + alphas.repeat_interleave(b).view(-1, 1, 1) * k.repeat(
            n, 1, 1
        )
        gains = K.repeat(n, 1, 1, 1)

        def policy(t: int, x: Tensor) -> Tensor:
            dx = (x - x_bar[:, t]).unsqueeze(-1)
            return u_ff[:, t] + (gains[:, t] @ dx).squeeze(-1)

        return self._rollout(x0.repeat(n, 1), policy)


def _build_ilqr(ctx: PlannerContext) -> ILQR:
    """``--planner ilqr``: options override :class:`ILQRConfig` fields; ``ctx.n_particles`` is
    not used (iLQR plans through the model's deterministic mean dynamics)."""
    cfg = config_from_options(ILQRConfig, ctx.options)
    low, high = ctx.codec.bounds(ctx.device)
    return ILQR(
        ctx.model,
        ctx.reward_fn,
        low,
        high,
        ctx.horizon,
        cfg,
        termination_fn=ctx.termination_fn,
        gamma=ctx.gamma,
        generator=ctx.generator,
    )


register_planner(
    "ilqr", ILQR, _build_ilqr, "control-limited iLQR through a differentiable model (mean dynamics)"
)
