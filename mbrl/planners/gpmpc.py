"""GP-MPC: gradient-based trajectory optimisation through a propagated Gaussian belief.

Kamthe & Deisenroth (2018), arXiv:1706.06491. Every ``plan(obs)`` optimises the whole action
sequence ``(H, A)`` for the expected (discounted) cumulative reward of the belief
``N(mean, cov)`` that :meth:`~mbrl.models.gp.model.GPDynamics.propagate` pushes through the GP
(moment matching, linearisation or mean-only), by L-BFGS-B (scipy) with box bounds equal to the
action bounds and exact gradients from torch autograd through the whole propagation.

Objective of one sequence::

    J = sum_t gamma^t alive_t E[r(s_t, a_t, s_t+1)]
        - variance_penalty * sum_t tr cov[s_t+1]
        - chance_weight * sum_t (violation of the chance constraint at t+1)^2

* ``E[r]``: the mean of the reward over the ``4 O`` cubature points of the joint Gaussian of
  ``(s_t, s_t+1)`` (``reward_expectation="cubature"``; exact for cubic rewards, any reward
  function works as a black box), or the reward at the mean (``"mean"``). For Pendulum
  (``-(atan2(sin, cos)^2 + 0.1 thdot^2 + 0.001 u^2)`` read from ``obs = [cos, sin, thdot]``)
  the points are evaluated in ``(cos, sin)`` space, off the unit circle; ``atan2`` only uses
  their direction, and ``theta^2`` is continuous at ``theta = +-pi`` (a kink at the bottom, the
  cost's maximum), so the average is a smooth, slightly smoothed expected cost. A second-order
  ``r(mean) + tr(H cov) / 2`` correction would need the reward's Hessian and be wrong at
  that kink. Termination: ``alive`` is multiplied by the fraction of cubature points that do
  not terminate.
* chance constraint ``P(low <= s_t[d] <= high) >= chance_prob`` on state dimension
  ``chance_dim``, imposed on the Gaussian marginal as ``mean +- z std`` inside the bounds
  (``z`` the normal quantile; the two sides share the violation budget) through a quadratic
  penalty (L-BFGS-B handles only the action bounds).

The objective's expected return is the rollout core's: :func:`mbrl.rollout.core.simulate`
over :class:`~mbrl.models.gp.belief.BeliefDynamics` (the GP's belief propagation as a model
whose observation is the flattened belief) with :class:`~mbrl.models.gp.belief.ExpectedReward`
and :class:`~mbrl.models.gp.belief.ExpectedTermination` (``soft_termination``). So the
divergence rule is the core's: a sequence whose belief or expected reward turns non-finite
ends there, earns nothing more, and is ranked last (``-inf``; L-BFGS-B sees ``-1e12`` with a
zero gradient, as it needs finite values). The penalties are computed from the recorded
beliefs.

Several sequences are optimised jointly (``restarts``: the previous plan shifted by the steps
reported through :meth:`GPMPC.advance` -- the warm start -- plus uniformly random sequences
drawn from the planner's generator); the best one is returned and becomes the next warm start. Random restarts matter for the
Pendulum swing-up (a zero sequence at the bottom is a saddle of the objective).

Cost: one objective evaluation is ``H`` propagation steps of all restarts at once, forward and
backward; with linearisation, ``H = 25``, 4 restarts and 256 inducing points that is ~50 ms
on one CPU core (Python/autograd overhead dominates, so more restarts cost little), and a
warm-started plan takes ~12 evaluations. Moment matching costs ``O(O^2 N^2)`` memory and time
per row and step (~50-100 ms per step at ``N = 256``): use it with few (inducing) points.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import scipy.optimize
import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel, require_gaussian_belief
from mbrl.models.gp.belief import EXPECTATIONS, BeliefDynamics
from mbrl.models.gp.moments import GaussianState
from mbrl.planners.base import Planner, as_obs_tensor
from mbrl.planners.deadline import AnytimeConfig
from mbrl.planners.optimizer import shift_sequences
from mbrl.planners.registry import bounded_planner_builder, register_planner
from mbrl.rollout.core import simulate
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.validation import check_positive_int

METHODS = ("moment_matching", "linearization", "mean")
_DTYPE = torch.float64
_FLOOR = -1e12  # what L-BFGS-B sees for a sequence ranked -inf (it needs finite values)


@dataclass(frozen=True)
class GPMPCConfig(AnytimeConfig):
    """Settings of :class:`GPMPC` (and, keyword-only, ``plan_budget_ms`` of
    :class:`~mbrl.planners.deadline.AnytimeConfig`: L-BFGS-B stops once it is spent, after
    its first iteration, and the iterate so far is returned).

    Attributes:
        propagation: belief propagation: ``linearization`` (default; cheap, any kernel),
            ``moment_matching`` (exact for the SE kernel; ``O(O^2 N^2)`` per row and step) or
            ``mean`` (prediction at the mean, variances added without input uncertainty).
        reward_expectation: ``cubature`` (default) or ``mean`` (reward at the mean).
        restarts: sequences optimised jointly per plan: the warm start plus ``restarts - 1``
            random ones (default 4).
        iterations: L-BFGS-B iterations per warm-started plan (default 10: MPC keeps improving
            the shifted plan from step to step).
        first_iterations: L-BFGS-B iterations of an episode's first plan, which has no warm
            start (default 40).
        horizon: planning horizon overriding the shared ``--horizon`` (default ``None``: use it).
        variance_penalty: weight of the summed predicted state variances (default 0).
        chance_dim: state dimension with a chance constraint (default ``None``: none).
        chance_low / chance_high: its bounds (``None``: unbounded on that side).
        chance_prob: required probability of staying inside (default 0.95).
        chance_weight: weight of the squared-violation penalty (default 1000).
        warm_start: start from the previous plan, shifted by :meth:`GPMPC.advance` (default
            True).
    """

    propagation: str = "linearization"
    reward_expectation: str = "cubature"
    restarts: int = 4
    iterations: int = 10
    first_iterations: int = 40
    horizon: int | None = None
    variance_penalty: float = 0.0
    chance_dim: int | None = None
    chance_low: float | None = None
    chance_high: float | None = None
    chance_prob: float = 0.95
    chance_weight: float = 1000.0
    warm_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.propagation not in METHODS:
            raise ValueError(f"propagation must be one of {METHODS}, got {self.propagation!r}")
        if self.reward_expectation not in EXPECTATIONS:
            raise ValueError(
                f"reward_expectation must be one of {EXPECTATIONS}, got {self.reward_expectation!r}"
            )
        for name in ("restarts", "iterations", "first_iterations"):
            check_positive_int(getattr(self, name), name)
        if self.horizon is not None:
            check_positive_int(self.horizon, "horizon")
        for name in ("variance_penalty", "chance_weight"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.chance_dim is not None:
            check_positive_int(self.chance_dim, "chance_dim", minimum=0)
            if self.chance_low is None and self.chance_high is None:
                raise ValueError("chance_dim needs chance_low and/or chance_high")
            if (
                self.chance_low is not None
                and self.chance_high is not None
                and not self.chance_low < self.chance_high
            ):
                raise ValueError(
                    f"chance_low ({self.chance_low}) must be < chance_high ({self.chance_high})"
                )
            if not 0.5 <= self.chance_prob < 1.0:
                raise ValueError(f"chance_prob must be in [0.5, 1), got {self.chance_prob}")


class GPMPC(Planner):
    """MPC by gradient-based optimisation of ``(H, A)`` actions through a GP's belief propagation.

    ``plan(obs (O,)) -> (H, A)`` within ``[low, high]``. See the module docstring.

    Args:
        model: a model declaring the ``gaussian_belief`` capability (``propagate``;
            :class:`GPDynamics`).
        reward_fn / termination_fn: task functions ``(obs (M, O), action (M, A), next_obs (M, O))
            -> (M,)``.
        low / high: action bounds ``(A,)``.
        horizon: ``H``.
        config: :class:`GPMPCConfig`.
        gamma: discount per step (default 1).
        generator: randomness of the random restarts.

    Attributes:
        last_info: diagnostics of the last plan (objective, iterations, evaluations, seconds,
            chance-constraint violation of the returned plan).

    Raises:
        TypeError: a model without the ``gaussian_belief`` capability.
    """

    def __init__(
        self,
        model: DynamicsModel,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None,
        low: Tensor,
        high: Tensor,
        horizon: int,
        config: GPMPCConfig | None = None,
        *,
        gamma: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        require_gaussian_belief(model, "GPMPC")
        check_positive_int(horizon, "horizon")
        self.config = config if config is not None else GPMPCConfig()
        if low.shape != (model.action_dim,) or high.shape != (model.action_dim,):
            raise ValueError(
                f"low/high must have shape ({model.action_dim},), got {tuple(low.shape)}, {tuple(high.shape)}"
            )
        if not bool((low < high).all()):
            raise ValueError("every action bound must satisfy low < high")
        if self.config.chance_dim is not None and self.config.chance_dim >= model.obs_dim:
            raise ValueError(
                f"chance_dim must be < obs_dim ({model.obs_dim}), got {self.config.chance_dim}"
            )
        self.model = model
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        cfg = self.config
        self.belief = BeliefDynamics(model, cfg.propagation)
        # The belief lives in the model's coordinates (phasors as Cartesian pairs): the
        # expectations map every cubature point back to an observation for the task functions.
        self._reward = self.belief.expected_reward(reward_fn, cfg.reward_expectation)
        self._termination = (
            None
            if termination_fn is None
            else self.belief.expected_termination(termination_fn, cfg.reward_expectation)
        )
        self.low, self.high = low, high
        self.horizon = self.config.horizon or horizon
        self.gamma = float(gamma)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self._previous: Tensor | None = None
        self.last_info: dict[str, float] = {}
        two_sided = cfg.chance_low is not None and cfg.chance_high is not None
        tail = (1.0 - cfg.chance_prob) / (2.0 if two_sided else 1.0)
        self._z = NormalDist().inv_cdf(1.0 - tail)

    def reset(self) -> None:
        """Forget the warm start (new episode)."""
        self._previous = None

    def advance(self, steps: int) -> None:
        """``steps`` actions of the last plan were executed: the warm start becomes that plan
        from step ``steps`` on, padded by repeating its last action."""
        if self._previous is None or steps <= 0:
            return
        self._previous = shift_sequences(self._previous, steps, self._previous[-1])

    # ------------------------------------------------------------------ objective
    def _chance_violation(self, state: GaussianState) -> Tensor:
        """Violation ``(K,)`` (>= 0) of the tightened chance-constraint bounds at ``state``."""
        cfg = self.config
        d = cfg.chance_dim
        mean = state.mean[:, d]
        std = (state.cov[:, d, d].clamp_min(0.0) + 1e-12).sqrt()
        viol = torch.zeros_like(mean)
        if cfg.chance_high is not None:
            viol = viol + torch.relu(mean + self._z * std - cfg.chance_high)
        if cfg.chance_low is not None:
            viol = viol + torch.relu(cfg.chance_low - (mean - self._z * std))
        return viol

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Objective and max chance violation of ``actions (K, H, A)`` from ``obs (O,)``.

        Returns:
            ``(objective (K,), max_violation (K,))`` (float64, differentiable w.r.t. ``actions``);
            ``objective`` is ``-inf`` for a sequence whose belief diverged (ranked last).
        """
        cfg = self.config
        k = actions.shape[0]
        start = self.belief.initial_state(obs.to(_DTYPE).unsqueeze(0).expand(k, -1))
        out = simulate(
            self.belief,
            self.belief.observe(start),
            self._reward,
            self._termination,
            actions=actions,
            gamma=self.gamma,
            soft_termination=True,
            start_state=start,
            record=True,
        )
        assert out.states is not None
        beliefs: list[GaussianState] = [st.belief for st in out.states[1:]]
        objective = out.returns
        zeros = torch.zeros_like(objective)
        if cfg.variance_penalty > 0:
            var_sum = sum((b.cov.diagonal(dim1=-2, dim2=-1).sum(-1) for b in beliefs), zeros)
            objective = objective - cfg.variance_penalty * var_sum
        max_viol = zeros
        if cfg.chance_dim is not None:
            viols = [self._chance_violation(b) for b in beliefs]
            chance = sum((v.square() for v in viols), zeros)
            objective = objective - cfg.chance_weight * chance
            max_viol = torch.stack([v.detach() for v in viols]).amax(0)
        bad = out.diverged[0] | ~torch.isfinite(objective)
        return torch.where(bad, torch.full_like(objective, -torch.inf), objective), max_viol

    # ------------------------------------------------------------------ planning
    def _initial_guesses(self) -> Tensor:
        """Starting sequences ``(K, H, A)``: warm start (or the box centre) + random ones."""
        h, a = self.horizon, self.low.shape[0]
        low, high = self.low.to(_DTYPE), self.high.to(_DTYPE)
        mid = (low + high) / 2
        if self._previous is not None and self.config.warm_start:
            first = self._previous
        else:
            first = mid.expand(h, a).clone()
        n_rand = self.config.restarts - 1
        gen = self.generator
        u = torch.rand(n_rand, h, a, generator=gen, device=gen.device, dtype=_DTYPE)
        rand = low + (high - low) * u.to(low.device)
        return torch.cat([first.unsqueeze(0).to(low.device), rand], dim=0)

    def plan(self, obs: Tensor) -> Tensor:
        """Optimise the ``(H, A)`` sequence from ``obs (O,)``; returns float32 actions in bounds."""
        start_time = time.perf_counter()
        deadline = self.start_plan(self.low.device)
        device = self.low.device
        obs = as_obs_tensor(obs, self.model.obs_dim, device).to(_DTYPE)
        x0_t = self._initial_guesses()
        shape = x0_t.shape
        lo = self.low.to(_DTYPE).expand(shape).reshape(-1).cpu().numpy()
        hi = self.high.to(_DTYPE).expand(shape).reshape(-1).cpu().numpy()
        n_eval = 0

        def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
            nonlocal n_eval
            n_eval += 1
            with torch.enable_grad():  # also when plan() is called under torch.no_grad()
                u = torch.tensor(flat, dtype=_DTYPE, device=device).view(shape)
                u.requires_grad_(True)
                objective, _ = self.evaluate(obs, u)
                finite = torch.isfinite(objective)
                loss = -torch.where(finite, objective, torch.full_like(objective, _FLOOR)).sum()
                (grad,) = torch.autograd.grad(loss, u)
            grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
            return float(loss.detach()), grad.reshape(-1).cpu().numpy()

        iters = (
            self.config.iterations if self._previous is not None else self.config.first_iterations
        )
        iterate = {"x": x0_t.reshape(-1).cpu().numpy(), "nit": 0}

        def on_iteration(xk: np.ndarray) -> None:
            iterate["x"], iterate["nit"] = np.array(xk), iterate["nit"] + 1
            if iterate["nit"] < iters and deadline.expired():
                raise _OutOfTime

        cut_short = False
        try:
            res = scipy.optimize.minimize(
                fun,
                iterate["x"],
                jac=True,
                method="L-BFGS-B",
                bounds=list(zip(lo, hi, strict=True)),
                options={"maxiter": iters, "maxfun": 2 * iters + 10},
                callback=on_iteration,
            )
            x_end, nit = res.x, int(res.nit)
        except _OutOfTime:
            # The callback exception works with every scipy version (StopIteration only in
            # scipy >= 1.11); L-BFGS-B's iterates only improve, so the last one is the best.
            x_end, nit, cut_short = iterate["x"], int(iterate["nit"]), True
        best_x = torch.tensor(np.clip(x_end, lo, hi), dtype=_DTYPE, device=device).view(shape)
        with torch.no_grad():
            values, viol = self.evaluate(obs, best_x)
        best = int(torch.argmax(values))
        plan = best_x[best]
        self._previous = plan.detach().clone()
        self.last_info = {
            "objective": float(values[best]),
            "iterations": float(nit),
            "evaluations": float(n_eval),
            "seconds": time.perf_counter() - start_time,
            "chance_violation": float(viol[best]),
            "best_restart": float(best),
        }
        self.finish_plan(deadline, nit, cut_short)
        return plan.to(torch.float32)


class _OutOfTime(Exception):
    """Raised by the L-BFGS-B callback when the plan's budget is spent."""


register_planner(
    "gpmpc",
    GPMPC,
    bounded_planner_builder(GPMPC, GPMPCConfig),
    "GP-MPC: L-BFGS-B through GP belief propagation (Kamthe & Deisenroth)",
)
