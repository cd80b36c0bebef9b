"""PILCO: policy search by gradient through moment-matched GP rollouts.

Deisenroth & Rasmussen (2011), "PILCO: a model-based and data-efficient approach to policy
search"; Deisenroth (2010), ch. 3. A parametric policy ``u = pi(z)`` -- linear or an RBF network,
squashed into the action box by PILCO's sine saturation -- is optimised for the expected
(discounted) return of the Gaussian state belief that the GP propagates under the policy::

    J(theta) = sum_t gamma^t alive_t E[r_t],   p(z_t+1) from p(z_t, u_t) by moment matching

* the belief starts at ``p(z_0) = N(mean, cov)`` of the episode starts seen so far (each
  :meth:`PILCOPlanner.reset` marks the next observation as a start), plus ``start_std^2 I``;
* at every step the policy's output distribution is moment-matched: exactly for the linear
  policy (a linear map of a Gaussian), with PILCO's closed-form RBF-network moments (the moments
  of a GP mean function at a Gaussian input) for the RBF policy, and exactly through the
  saturation (trigonometric moments, ``gSat``); the joint Gaussian of state and action goes
  through :meth:`~mbrl.models.gp.model.GPDynamics.propagate` (``cov[z, u]`` included);
* ``E[r_t]``: PILCO's saturating cost ``1 - exp(-|z - target|^2_W / 2)`` in closed form
  (``target`` given; :class:`~mbrl.models.gp.belief.SaturatingReward`) or, without a target, the
  task reward's expectation by cubature over the joint state belief at the policy's mean action
  (:class:`~mbrl.models.gp.belief.ExpectedReward`);
* the rollout is the rollout core's (:func:`mbrl.rollout.core.simulate` over
  :class:`~mbrl.models.gp.belief.BeliefDynamics` with a policy), so termination
  (``soft_termination``) and divergence follow the same rules as GP-MPC;
* ``theta`` is optimised by L-BFGS-B (scipy) with exact gradients from torch autograd through
  the whole moment-matched rollout (float64).

As a :class:`~mbrl.planners.base.Planner`: the policy is optimised once per model fit (the
first :meth:`~PILCOPlanner.plan` after the GP's posterior changed re-optimises, warm-started
from the current policy) and every ``plan(obs)`` evaluates it: it returns ``(1, A)``, so an
agent re-evaluates the closed-loop policy at every step. The trained policy is saved and
loaded with the project's checkpoints (:meth:`PILCOPlanner.save_policy`,
:meth:`PILCOPlanner.load_policy`; tensors and JSON-like arguments only, hash-checked).

Cost: one evaluation of ``J`` is ``H`` moment-matching steps forward and backward, each
``O(O^2 N^2)`` for ``N`` GP points (plus the policy's ``O(A^2 B^2)`` for ``B`` basis
functions); keep ``N`` moderate (``num_inducing``) and the horizon at what the task needs.
"""

from __future__ import annotations

import math
import os
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.optimize
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mbrl.models.base import DynamicsModel, require_gaussian_belief
from mbrl.models.checkpoint import load_checkpoint, register_checkpointable, save_checkpoint
from mbrl.models.gp.belief import (
    BeliefDynamics,
    BeliefStep,
    ExpectedReward,
    ExpectedTermination,
    SaturatingReward,
)
from mbrl.models.gp.core import GPPosterior, kernel_from_sqdist, scaled_sqdist
from mbrl.models.gp.moments import GaussianState, moment_match_gain, sine_saturate, sine_saturation
from mbrl.planners.base import Planner, as_obs_tensor
from mbrl.planners.registry import bounded_planner_builder, register_planner
from mbrl.rollout.core import simulate
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.util.configs import bounded, check_config
from mbrl.util.log import get_logger
from mbrl.validation import check_positive_int

_LOG = get_logger(__name__)
_DTYPE = torch.float64
_FLOOR = 1e12  # what L-BFGS-B sees for a diverged rollout (it needs finite values)
POLICIES = ("linear", "rbf")


@dataclass(frozen=True)
class PILCOConfig:
    """Settings of :class:`PILCOPlanner`.

    Attributes:
        policy: ``rbf`` (default; PILCO's RBF network of ``num_basis`` Gaussian basis
            functions, nonlinear) or ``linear`` (``W z + b``); both squashed into the action
            box by the sine saturation.
        num_basis: basis functions of the RBF policy (default 50).
        horizon: rollout length ``H`` of the expected return (default ``None``: the shared
            ``--horizon``, which ``mbrl run`` sets to the episode length when nobody chose
            one, as PILCO's finite-horizon objective is the episode's return). PILCO needs
            the whole manoeuvre and some of what follows it inside it: a Pendulum-v1 swing-up takes 40-60 steps of 0.05 s, and with a
            40-step horizon the rollout never sees the hold (docs/benchmarks.md).
        iterations: L-BFGS-B iterations per policy optimisation (default 100).
        propagation: ``moment_matching`` (default; exact for the SE kernel) or
            ``linearization`` (any kernel) for the GP step.
        target: target state of the saturating cost in *observation* coordinates (mapped to
            the model's coordinates; default ``None``: optimise the task reward's
            expectation instead).
        cost_weights: ``diag(W)`` of the saturating cost in the model coordinates (default
            ``None``: all ones; 0 ignores a dimension). PILCO's cost width ``c`` is
            ``W = I / c^2``.
        reward_expectation: expectation of the task reward without a target: ``cubature``
            (default) or ``mean``.
        start_std: standard deviation added to every dimension of the start distribution
            (default 0.01: a point start still gets a policy that is robust to small offsets).
        max_starts: episode starts the start distribution is estimated from (the most
            recent; default 20).
        start: the start distribution each optimisation uses: ``episodes`` (default; the
            recorded episode starts, PILCO's episodic setting) or ``current`` (the
            observation at which the model changed, plus ``start_std^2 I``: the policy is
            re-optimised from where the agent is, which suits refits inside an episode and
            envs whose starts are spread too widely for one Gaussian, e.g. Pendulum-v1's
            uniform angle).
        init_std: standard deviation of the random initial policy weights (default 0.1:
            breaks the symmetry of a zero policy, whose gradient can vanish at an unstable
            equilibrium).
        restarts: extra optimisations from fresh random policies per :meth:`optimise`, the
            best result kept (default 0). A narrow saturating cost is flat far from the
            target, so L-BFGS-B can stop within a few iterations at a policy that never
            reaches it (Pendulum swing-up, seed 1 in docs/benchmarks.md); each restart costs
            one more optimisation.
    """

    policy: Literal["linear", "rbf"] = "rbf"
    num_basis: int = bounded(50, ge=1)
    horizon: int | None = None
    iterations: int = bounded(100, ge=1)
    propagation: Literal["moment_matching", "linearization"] = "moment_matching"
    target: tuple[float, ...] | None = None
    cost_weights: tuple[float, ...] | None = None
    reward_expectation: Literal["cubature", "mean"] = "cubature"
    start_std: float = bounded(0.01, ge=0)
    max_starts: int = bounded(20, ge=1)
    init_std: float = bounded(0.1, ge=0)
    start: Literal["episodes", "current"] = "episodes"
    restarts: int = bounded(0, ge=0)

    def __post_init__(self) -> None:
        for name in ("target", "cost_weights"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        check_config(self)
        if self.horizon is not None:
            check_positive_int(self.horizon, "horizon")
        for name in ("target", "cost_weights"):
            value = getattr(self, name)
            if value is not None and not all(
                isinstance(v, int | float) and math.isfinite(v) for v in value
            ):
                raise ValueError(f"PILCOConfig.{name} must hold finite numbers, got {value!r}")
        if self.cost_weights is not None and any(v < 0 for v in self.cost_weights):
            raise ValueError(f"PILCOConfig.cost_weights must be >= 0, got {self.cost_weights!r}")
        if self.cost_weights is not None and self.target is None:
            raise ValueError("PILCOConfig.cost_weights needs a target (the saturating cost)")


# ---------------------------------------------------------------------- policies
class SaturatedPolicy(nn.Module):
    """A policy ``u = c + h (9 sin y + sin 3y) / 8`` of a pre-activation ``y = g(z)``.

    ``c``, ``h`` are the centre and half-width of the action box, so ``u`` is in
    ``[low, high]`` (see :func:`~mbrl.models.gp.moments.sine_saturation`). Subclasses define
    ``g`` (:meth:`pre`) and its moments at a Gaussian state (:meth:`pre_moments`).
    Parameters and buffers are float64 (the GP's algebra).

    Args:
        state_dim: ``O`` (model coordinates).
        action_dim: ``A``.
        low / high: action bounds ``(A,)`` (sequences or tensors), ``low < high``.

    Raises:
        ValueError: bounds of the wrong length, non-finite or not ``low < high``.
    """

    def __init__(self, state_dim: int, action_dim: int, low: Any, high: Any) -> None:
        super().__init__()
        check_positive_int(state_dim, "state_dim")
        check_positive_int(action_dim, "action_dim")
        low_t = torch.as_tensor(low, dtype=_DTYPE).reshape(-1)
        high_t = torch.as_tensor(high, dtype=_DTYPE).reshape(-1)
        if low_t.shape != (action_dim,) or high_t.shape != (action_dim,):
            raise ValueError(
                f"low/high must have {action_dim} values (action_dim), got "
                f"{tuple(low_t.shape)}, {tuple(high_t.shape)}"
            )
        if not bool((torch.isfinite(low_t) & torch.isfinite(high_t) & (low_t < high_t)).all()):
            raise ValueError(f"action bounds must be finite with low < high, got {low}, {high}")
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.register_buffer("low", low_t)
        self.register_buffer("high", high_t)

    def init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (for checkpoints)."""
        return {
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }

    @abstractmethod
    def pre(self, z: Tensor) -> Tensor:
        """Pre-activation ``y (M, A)`` at states ``z (M, O)``."""

    @abstractmethod
    def pre_moments(self, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Moments of ``y`` at ``z ~ N(mean (M, O), cov (M, O, O))``: ``(M, A)``, ``(M, A, A)``
        and the gain ``(M, O, A)`` with ``cov[z, y] = cov @ gain``."""

    @torch.no_grad()
    def initialize(
        self, center: Tensor, scale: Tensor, init_std: float, generator: torch.Generator
    ) -> None:
        """Random initial parameters for states around ``center (O,)`` with spread
        ``scale (O,)``; weights of standard deviation ``init_std`` (override per policy)."""

    def forward(self, z: Tensor) -> Tensor:
        """Actions ``(M, A)`` in ``[low, high]`` at states ``z (M, O)``."""
        return sine_saturate(self.pre(z.to(_DTYPE)), self.low, self.high)

    def moments(self, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Action moments at ``z ~ N(mean (M, O), cov (M, O, O))``: ``u_mean (M, A)``,
        ``u_cov (M, A, A)``, ``gain (M, O, A)`` with ``cov[z, u] = cov @ gain`` (a
        :class:`~mbrl.models.gp.belief.BeliefPolicy`)."""
        y_mean, y_cov, y_gain = self.pre_moments(mean.to(_DTYPE), cov.to(_DTYPE))
        u_mean, u_cov, s_gain = sine_saturation(y_mean, y_cov, self.low, self.high)
        # cov[z, u] = cov[z, y] cov[y]^-1 cov[y, u] = cov y_gain s_gain (Stein: exact, since
        # (z, y) is jointly Gaussian for the linear policy; PILCO's approximation otherwise).
        return u_mean, u_cov, y_gain @ s_gain


@register_checkpointable
class LinearPolicy(SaturatedPolicy):
    """``u = sat(W z + b)``: ``W (A, O)``, ``b (A,)``; its moments are exact.

    Args: as :class:`SaturatedPolicy`.
    """

    def __init__(self, state_dim: int, action_dim: int, low: Any, high: Any) -> None:
        super().__init__(state_dim, action_dim, low, high)
        self.weight = nn.Parameter(torch.zeros(action_dim, state_dim, dtype=_DTYPE))
        self.bias = nn.Parameter(torch.zeros(action_dim, dtype=_DTYPE))

    def pre(self, z: Tensor) -> Tensor:
        """``W z + b`` ``(M, A)``."""
        return z @ self.weight.transpose(0, 1) + self.bias

    def pre_moments(self, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(W m + b, W S W^T, W^T)`` (exact)."""
        w = self.weight
        gain = w.transpose(0, 1).expand(mean.shape[0], -1, -1)
        y_cov = w @ cov @ w.transpose(0, 1)
        return self.pre(mean), 0.5 * (y_cov + y_cov.transpose(-1, -2)), gain

    @torch.no_grad()
    def initialize(
        self, center: Tensor, scale: Tensor, init_std: float, generator: torch.Generator
    ) -> None:
        """``W ~ N(0, init_std^2) / scale`` (an O(init_std) response over the states' spread),
        ``b`` such that ``y(center) = 0`` (the box centre)."""
        noise = _randn(self.weight.shape, generator).to(self.weight.device)
        self.weight.copy_(init_std * noise / scale.to(self.weight))
        self.bias.copy_(-(self.weight @ center.to(_DTYPE)))


@register_checkpointable
class RBFPolicy(SaturatedPolicy):
    """``u = sat(sum_i w_i exp(-|(z - c_i) / l|^2 / 2))``: PILCO's RBF network.

    ``num_basis`` centres ``c (B, O)``, weights ``w (A, B)`` and log-lengthscales
    ``(A, O)`` per action dimension, all learned. The pre-activation is the mean function of a
    GP with the SE kernel (unit signal variance), so its moments at a Gaussian state are the
    exact moment-matching formulas without the posterior-variance term (PILCO's ``gp2``).

    Args:
        state_dim / action_dim / low / high: as :class:`SaturatedPolicy`.
        num_basis: ``B`` (default 50).
    """

    def __init__(
        self, state_dim: int, action_dim: int, low: Any, high: Any, num_basis: int = 50
    ) -> None:
        super().__init__(state_dim, action_dim, low, high)
        check_positive_int(num_basis, "num_basis")
        self.num_basis = int(num_basis)
        self.centers = nn.Parameter(torch.zeros(num_basis, state_dim, dtype=_DTYPE))
        self.weights = nn.Parameter(torch.zeros(action_dim, num_basis, dtype=_DTYPE))
        self.log_lengthscale = nn.Parameter(torch.zeros(action_dim, state_dim, dtype=_DTYPE))

    def init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (for checkpoints)."""
        return {**super().init_kwargs(), "num_basis": self.num_basis}

    def _posterior(self) -> GPPosterior:
        """The network as a GP mean function (``alpha`` = weights, ``inducing`` = centres)."""
        a, b = self.action_dim, self.num_basis
        ones = torch.ones(a, dtype=_DTYPE, device=self.weights.device)
        return GPPosterior(
            "rbf",
            self.centers.unsqueeze(0).expand(a, -1, -1),
            self.weights,
            torch.zeros(a, b, b, dtype=_DTYPE, device=self.weights.device),
            self.log_lengthscale.exp(),
            ones,
            ones,
        )

    def pre(self, z: Tensor) -> Tensor:
        """``sum_i w_i k(z, c_i)`` ``(M, A)``."""
        centers = self.centers.unsqueeze(0).expand(self.action_dim, -1, -1)
        r2 = scaled_sqdist(z, centers, self.log_lengthscale.exp())  # (A, M, B)
        ones = torch.ones(self.action_dim, dtype=_DTYPE, device=z.device)
        k = kernel_from_sqdist("rbf", r2, ones)
        return (k @ self.weights.unsqueeze(-1)).squeeze(-1).transpose(0, 1)

    def pre_moments(self, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Exact moments of the network output (``moment_match_gain`` without variance)."""
        return moment_match_gain(self._posterior(), mean, cov, latent_variance=False)

    @torch.no_grad()
    def initialize(
        self, center: Tensor, scale: Tensor, init_std: float, generator: torch.Generator
    ) -> None:
        """Centres ``~ N(center, diag(scale^2))``, lengthscales ``scale``, weights
        ``~ N(0, init_std^2)`` (PILCO: small random targets)."""
        b, o = self.centers.shape
        noise = _randn((b, o), generator).to(self.centers.device)
        center, scale = center.to(self.centers), scale.to(self.centers)
        self.centers.copy_(center + noise * scale)
        self.log_lengthscale.copy_(scale.log().expand_as(self.log_lengthscale))
        self.weights.copy_(init_std * _randn(self.weights.shape, generator).to(self.weights))


def _randn(shape: tuple[int, ...] | torch.Size, generator: torch.Generator) -> Tensor:
    """Standard normal float64 draws from ``generator`` (on its device)."""
    return torch.randn(shape, generator=generator, dtype=_DTYPE, device=generator.device)


def build_policy(
    kind: str, state_dim: int, action_dim: int, low: Any, high: Any, num_basis: int = 50
) -> SaturatedPolicy:
    """A ``linear`` or ``rbf`` policy (see :class:`LinearPolicy`, :class:`RBFPolicy`).

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind == "linear":
        return LinearPolicy(state_dim, action_dim, low, high)
    if kind == "rbf":
        return RBFPolicy(state_dim, action_dim, low, high, num_basis)
    raise ValueError(f"policy must be one of {POLICIES}, got {kind!r}")


class _NegativeReturn:
    """``theta -> (-J(theta), -dJ/dtheta)`` for scipy: the planner's expected return from
    ``start`` with the policy parameters ``params`` set to the flat vector ``theta``
    (float64 numpy); a diverged rollout gives ``_FLOOR`` and a zero gradient. The last
    result is kept: L-BFGS-B starts by evaluating the point whose return ``optimise`` has
    just reported, and one evaluation is a whole rollout and its backward pass."""

    def __init__(self, planner: PILCOPlanner, start: GaussianState, params: list[Tensor]) -> None:
        self.planner, self.start, self.params = planner, start, params
        self.evaluations = 0
        self._last: tuple[np.ndarray, tuple[float, np.ndarray]] | None = None

    def current(self) -> np.ndarray:
        """The parameters as they are now, flat."""
        return nn.utils.parameters_to_vector(self.params).detach().cpu().numpy()

    def load(self, theta: np.ndarray) -> None:
        """Set the parameters to ``theta``."""
        vec = torch.as_tensor(theta, dtype=_DTYPE, device=self.params[0].device)
        with torch.no_grad():
            nn.utils.vector_to_parameters(vec, self.params)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        if self._last is not None and np.array_equal(self._last[0], theta):
            value, grad = self._last[1]
            return value, grad.copy()
        result = self._evaluate(theta)
        self._last = (np.array(theta, copy=True), result)
        return result[0], result[1].copy()

    def _evaluate(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        self.load(theta)
        with torch.enable_grad():  # also when plan() is called under torch.no_grad()
            ret = self.planner.expected_return(self.start).mean()
            if not bool(torch.isfinite(ret)):
                return _FLOOR, np.zeros_like(theta)
            grads = torch.autograd.grad(-ret, self.params, allow_unused=True)
        flat = torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, self.params, strict=True)
            ]
        )
        flat = torch.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0)
        return float(-ret.detach()), flat.cpu().numpy()


# ---------------------------------------------------------------------- planner
class PILCOPlanner(Planner):
    """PILCO policy search as a planner: optimise once per model fit, act by the policy.

    ``plan(obs (O,)) -> (1, A)``: the policy's action at ``obs`` (float32, in bounds). See the
    module docstring.

    Args:
        model: a model with the ``gaussian_belief`` capability (:class:`GPDynamics`).
        reward_fn / termination_fn: task functions ``(obs (M, O), action (M, A), next_obs (M, O))
            -> (M,)``; the reward is used when ``config.target`` is ``None``.
        low / high: action bounds ``(A,)``.
        horizon: ``H`` (``config.horizon`` overrides it).
        config: :class:`PILCOConfig`.
        gamma: discount per step (default 1).
        generator: randomness of the initial policy.

    Attributes:
        policy: the :class:`SaturatedPolicy` being optimised.
        last_info: diagnostics of the last optimisation (expected return before and after,
            iterations, whether L-BFGS-B converged (1.0 or 0.0), ``best_start`` (0: the
            warm start won, ``r``: restart ``r``), evaluations, seconds).

    Raises:
        TypeError: a model without the ``gaussian_belief`` capability; ValueError: bad bounds,
            horizon or a target / weights of the wrong length.
    """

    horizon_is_episode: ClassVar[bool] = True

    def __init__(
        self,
        model: DynamicsModel,
        reward_fn: RewardFn | None,
        termination_fn: TerminationFn | None,
        low: Tensor,
        high: Tensor,
        horizon: int,
        config: PILCOConfig | None = None,
        *,
        gamma: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        require_gaussian_belief(model, "PILCO")
        if config is not None and not isinstance(config, PILCOConfig):
            raise TypeError(f"config must be a PILCOConfig, got {type(config).__name__}")
        self.config = cfg = config if config is not None else PILCOConfig()
        check_positive_int(horizon, "horizon")
        o, a = model.obs_dim, model.action_dim
        if low.shape != (a,) or high.shape != (a,):
            raise ValueError(
                f"low/high must have shape ({a},), got {tuple(low.shape)}, {tuple(high.shape)}"
            )
        for name in ("target", "cost_weights"):
            value = getattr(cfg, name)
            if value is not None and len(value) != o:
                raise ValueError(f"{name} must have obs_dim = {o} values, got {len(value)}")
        if cfg.target is None and reward_fn is None:
            raise ValueError("PILCO needs a reward_fn or a config.target (the saturating cost)")
        self.model = model
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.low, self.high = low, high
        self.horizon = cfg.horizon or horizon
        self.gamma = float(gamma)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.policy: SaturatedPolicy = build_policy(
            cfg.policy, o, a, low.cpu(), high.cpu(), cfg.num_basis
        ).to(low.device)
        self.belief = BeliefDynamics(model, cfg.propagation, self.policy)
        if cfg.target is not None:
            target_z = _to_model(model, torch.tensor([cfg.target], dtype=_DTYPE))[0]
            weights = torch.tensor(cfg.cost_weights or (1.0,) * o, dtype=_DTYPE)
            self._reward: Any = SaturatingReward(target_z, weights)
        else:
            self._reward = ExpectedReward(
                reward_fn, o, cfg.reward_expectation, to_obs=self.belief.to_obs
            )
        self._termination = (
            None
            if termination_fn is None
            else ExpectedTermination(
                termination_fn, o, cfg.reward_expectation, to_obs=self.belief.to_obs
            )
        )
        self._starts: list[Tensor] = []
        self._at_start = True
        self._initialized = False
        self._optimised_for: object | None = None
        self._has_policy = False  # optimised or loaded at least once
        self.last_info: dict[str, float] = {}

    # ------------------------------------------------------------------ episode / model state
    def reset(self) -> None:
        """A new episode: the next observation handed to :meth:`plan` is an episode start."""
        self._at_start = True

    def _model_version(self) -> object | None:
        """The model's current posterior (a new object after every fit or data update), or
        ``None`` for an unfitted model."""
        if not getattr(self.model, "is_fitted", True):
            return None
        return self.model.posterior

    def start_distribution(self) -> GaussianState:
        """``p(z_0)`` (one row, model coordinates): mean and covariance of the recorded episode
        starts plus ``start_std^2 I``.

        Raises:
            RuntimeError: before any start was recorded (no :meth:`plan` call yet).
        """
        if not self._starts:
            raise RuntimeError("PILCO has no start state yet: call plan(obs) first")
        starts = torch.stack(self._starts)  # (S, O)
        o = starts.shape[1]
        mean = starts.mean(0)
        cov = torch.zeros(o, o, dtype=_DTYPE, device=starts.device)
        if starts.shape[0] > 1:
            cov = torch.cov(starts.T, correction=1).reshape(o, o)
        cov = cov + self.config.start_std**2 * torch.eye(o, dtype=_DTYPE, device=starts.device)
        return GaussianState(mean.unsqueeze(0), cov.unsqueeze(0))

    # ------------------------------------------------------------------ objective
    def expected_return(self, start: GaussianState) -> Tensor:
        """Expected discounted return ``(M,)`` of the policy from beliefs ``start`` (model
        coordinates); differentiable w.r.t. the policy's parameters; ``-inf`` where the
        belief diverged."""
        state = BeliefStep(
            GaussianState(start.mean.to(_DTYPE), start.cov.to(_DTYPE)),
            torch.zeros_like(start.cov, dtype=_DTYPE),
        )
        out = simulate(
            self.belief,
            self.belief.observe(state),
            self._reward,
            self._termination,
            policy=self.belief.policy_mean,
            horizon=self.horizon,
            gamma=self.gamma,
            soft_termination=True,
            start_state=state,
        )
        return out.returns

    def _initialize_policy(self, start: GaussianState) -> None:
        """Random initial parameters around the start, spread like the model's training states."""
        center = start.mean[0]
        scale = torch.ones_like(center)
        norm = getattr(self.model, "input_norm", None)
        if norm is not None:
            # The GP's first O inputs are the model coordinates (an angle's sine in its place).
            scale = norm.std[: center.shape[0]].to(center).clamp_min(1e-3)
        self.policy.initialize(center, scale, self.config.init_std, self.generator)
        self._initialized = True

    def optimise(
        self, start: GaussianState | None = None, *, progress: bool | None = None
    ) -> dict[str, float]:
        """Optimise the policy for the expected return from ``start`` (default
        :meth:`start_distribution`) by L-BFGS-B; returns (and stores) :attr:`last_info`.

        Warm-starts from the current policy (randomly initialised on the first call); with
        ``config.restarts = R`` it also optimises from ``R`` fresh random policies and keeps
        the best of the ``R + 1`` results (never worse than the warm start).
        ``progress``: a progress bar over the L-BFGS-B iterations with the expected return
        (default ``None``: shown on a terminal only; one optimisation can take minutes).
        """
        t0 = time.perf_counter()
        start = start if start is not None else self.start_distribution()
        if not self._initialized:
            self._initialize_policy(start)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        objective = _NegativeReturn(self, start, params)
        theta0 = objective.current()
        initial = -objective(theta0)[0]
        best, best_cost = theta0, -initial
        best_start, iterations, converged, message = 0, 0, False, ""
        for attempt in range(self.config.restarts + 1):
            if attempt > 0:
                self._initialize_policy(start)
            res = self._lbfgs(objective, objective.current(), progress, attempt)
            iterations += int(res.nit)
            if attempt == 0:
                converged, message = bool(res.success), str(res.message).lower()
            if float(res.fun) < best_cost:
                best, best_cost, best_start = res.x, float(res.fun), attempt
                converged, message = bool(res.success), str(res.message).lower()
        objective.load(best)
        self._has_policy = True
        self.last_info = {
            "initial_return": float(initial),
            "expected_return": float(-best_cost),
            "iterations": float(iterations),
            "converged": float(converged),
            "best_start": float(best_start),
            "evaluations": float(objective.evaluations),
            "seconds": time.perf_counter() - t0,
        }
        _LOG.info(
            "PILCO policy: expected return %.4g -> %.4g in %d L-BFGS-B iterations (%s; best "
            "from start %d of %d), %.1f s",
            initial,
            -best_cost,
            iterations,
            "converged" if converged else message,
            best_start,
            self.config.restarts + 1,
            self.last_info["seconds"],
        )
        return self.last_info

    def _lbfgs(
        self, objective: _NegativeReturn, theta0: np.ndarray, progress: bool | None, attempt: int
    ) -> scipy.optimize.OptimizeResult:
        """One L-BFGS-B run of ``config.iterations`` from ``theta0``, with its progress bar."""
        its = self.config.iterations
        bar = tqdm(
            total=its,
            desc="PILCO policy" if attempt == 0 else f"PILCO policy, restart {attempt}",
            unit="it",
            leave=False,
            disable=None if progress is None else not progress,
        )

        def advance(intermediate_result: scipy.optimize.OptimizeResult) -> None:
            bar.update()
            bar.set_postfix_str(f"J {-float(intermediate_result.fun):.4g}")

        try:
            return scipy.optimize.minimize(
                objective,
                theta0,
                jac=True,
                method="L-BFGS-B",
                callback=advance,
                options={"maxiter": its, "maxfun": 2 * its + 10},
            )
        finally:
            bar.close()

    # ------------------------------------------------------------------ acting
    def act(self, obs: Tensor) -> Tensor:
        """The policy's actions ``(M, A)`` (float32) at observations ``obs (M, O)``."""
        with torch.no_grad():
            z = _to_model(self.model, obs.to(_DTYPE))
            return self.policy(z).to(torch.float32)

    def plan(self, obs: Tensor) -> Tensor:
        """``(1, A)``: the policy's action at ``obs (O,)``, after optimising it when the model
        changed since the last optimisation.

        Raises:
            RuntimeError: the model is not fitted and no policy was loaded.
        """
        deadline = self.start_plan(self.low.device)
        obs = as_obs_tensor(obs, self.model.obs_dim, self.low.device).to(_DTYPE)
        if self._at_start:
            self._starts = [*self._starts, _to_model(self.model, obs.unsqueeze(0))[0]]
            self._starts = self._starts[-self.config.max_starts :]
            self._at_start = False
        version = self._model_version()
        work = 0
        if version is None and not self._has_policy:
            raise RuntimeError(
                "PILCO needs a fitted model (call mbrl.models.fit first) or a loaded policy"
            )
        if version is not None and version is not self._optimised_for:
            start = None
            if self.config.start == "current":
                z = _to_model(self.model, obs.unsqueeze(0))
                eye = torch.eye(z.shape[1], dtype=_DTYPE, device=z.device)
                start = GaussianState(z, (self.config.start_std**2 * eye).unsqueeze(0))
            work = int(self.optimise(start)["iterations"])
            self._optimised_for = version
        action = self.act(obs.unsqueeze(0))
        self.finish_plan(deadline, work, False)
        return action

    # ------------------------------------------------------------------ persistence
    def save_policy(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Write the policy to a checkpoint at ``path`` (class, arguments, tensors, a SHA-256;
        loads without running code from the file)."""
        meta = {"planner": "pilco", "config": _plain(self.config), **(metadata or {})}
        save_checkpoint(path, self.policy, meta)

    def load_policy(self, path: str | os.PathLike) -> dict:
        """Load a policy saved by :meth:`save_policy`; returns its metadata.

        The loaded policy acts as it is until the model next changes (a later fit re-optimises
        it, warm-started from the loaded parameters).

        Raises:
            ValueError: an unreadable / tampered file, a class that is not a policy, or a
                policy of other dimensions or action bounds than this planner's.
        """
        policy, meta = load_checkpoint(path, self.low.device, expected_class=SaturatedPolicy)
        assert isinstance(policy, SaturatedPolicy)
        o, a = self.model.obs_dim, self.model.action_dim
        if (policy.state_dim, policy.action_dim) != (o, a):
            raise ValueError(
                f"policy {str(path)!r} maps {policy.state_dim} states to {policy.action_dim} "
                f"actions; this planner needs {o} -> {a}"
            )
        low, high = self.low.to(_DTYPE), self.high.to(_DTYPE)
        if not (torch.allclose(policy.low, low) and torch.allclose(policy.high, high)):
            raise ValueError(
                f"policy {str(path)!r} has action bounds {policy.low.tolist()} / "
                f"{policy.high.tolist()}, this planner {low.tolist()} / {high.tolist()}"
            )
        self.policy = policy.train()
        self.belief.policy = policy
        self._initialized = self._has_policy = True
        self._optimised_for = self._model_version()
        return meta


def _to_model(model: DynamicsModel, obs: Tensor) -> Tensor:
    """``obs (M, O)`` in the model's coordinates (identity for models without them)."""
    to_model = getattr(model, "to_model", None)
    return obs.to(_DTYPE) if to_model is None else to_model(obs).to(_DTYPE)


def _plain(config: PILCOConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()}


register_planner(
    "pilco",
    PILCOPlanner,
    bounded_planner_builder(PILCOPlanner, PILCOConfig),
    "PILCO: policy search through moment-matched GP rollouts (Deisenroth & Rasmussen)",
)

__all__ = [
    "POLICIES",
    "LinearPolicy",
    "PILCOConfig",
    "PILCOPlanner",
    "RBFPolicy",
    "SaturatedPolicy",
    "build_policy",
]
